"""Scoring functions the suites share, each with the control it should be read against.

* :func:`pearson` -- simulate-and-score (OpenAI 2023): correlation between the activations
  a simulator predicts from an explanation and the true ones, over held-out top and
  random records pooled together.
* :func:`detection_scores` / :func:`fuzzing_scores` -- delphi-style: can the explanation tell
  activating contexts from random ones (detection), and correctly highlighted tokens from
  randomly highlighted ones (fuzzing)? Both are reported as AUROC and as balanced accuracy
  of a yes/no call (chance 0.5 for each); see :func:`half_max_calls` for the call.
* :func:`label_corruption` -- the sanity check from the explanation-scoring literature:
  replace a growing fraction of the true activations by random ones and watch each metric.
  A metric that does not fall as the labels lose their meaning cannot tell a good
  explanation from a bad one. Pearson and AUPRC are expected to pass; balanced accuracy and
  recall of a thresholded simulator are expected to be weaker.
"""

from __future__ import annotations

from typing import Callable, Sequence

import math

import numpy as np

from gnothi.tools.stats import auroc, pearson  # noqa: F401  (the one definition; re-exported for the suites)


def _arr(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(-1)


def auprc(scores, labels) -> float:
    """Average precision (area under precision-recall); its chance level is the positive rate."""
    s, y = _arr(scores), _arr(labels) > 0.5
    npos = int(y.sum())
    if npos == 0:
        return 0.0
    order = np.argsort(-s, kind="mergesort")
    yy = y[order]
    tp = np.cumsum(yy)
    precision = tp / np.arange(1, len(yy) + 1)
    return float((precision * yy).sum() / npos)


def balanced_accuracy(pred, labels) -> float:
    p, y = _arr(pred) > 0.5, _arr(labels) > 0.5
    parts = []
    if y.any():
        parts.append(float((p & y).sum() / y.sum()))
    if (~y).any():
        parts.append(float((~p & ~y).sum() / (~y).sum()))
    return float(np.mean(parts)) if parts else 0.0


def recall(pred, labels) -> float:
    p, y = _arr(pred) > 0.5, _arr(labels) > 0.5
    return float((p & y).sum() / y.sum()) if y.any() else 0.0


def bootstrap_ci(values, n: int = 1000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean."""
    v = _arr(values)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (float("nan"), float("nan"))
    if v.size == 1:
        return (float(v[0]), float(v[0]))
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n, v.size))].mean(axis=1)
    return (float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2)))


def seed_interval(values, alpha: float = 0.05) -> dict[str, float | int | None]:
    """Mean over seeds with Student's t interval of the mean (``n`` finite values; one value
    gives no interval): ``{"mean", "lo", "hi", "sd", "n"}``."""
    from scipy import stats

    v = _arr(values)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": None, "lo": None, "hi": None, "sd": None, "n": 0}
    m = float(v.mean())
    if v.size == 1:
        return {"mean": m, "lo": None, "hi": None, "sd": None, "n": 1}
    sd = float(v.std(ddof=1))
    half = float(stats.t.ppf(1 - alpha / 2, v.size - 1)) * sd / math.sqrt(v.size)
    return {"mean": m, "lo": m - half, "hi": m + half, "sd": sd, "n": int(v.size)}


def mean(values) -> float:
    v = _arr(values)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


# ----------------------------------------------------------------------------- records

Record = tuple[Sequence[str], Sequence[float]]  # tokens, one activation per token


def simulate_records(simulate: Callable[[str, list[str]], Sequence[float]], explanation: str, records: Sequence[Record]) -> list[np.ndarray]:
    """Run a simulator ``simulate(explanation, tokens) -> per-token predictions`` on records."""
    out = []
    for toks, acts in records:
        p = _arr(simulate(explanation, list(toks)))
        if p.size != len(acts):  # a simulator that drops or adds tokens scores as no signal
            p = np.zeros(len(acts))
        out.append(p)
    return out


def score_explanation(simulate, explanation: str, records: Sequence[Record]) -> float:
    """Pearson over all tokens of ``records`` pooled (top and random together)."""
    if not records:
        return float("nan")
    preds = simulate_records(simulate, explanation, records)
    return pearson(np.concatenate(preds), np.concatenate([_arr(a) for _, a in records]))


def half_max_calls(scores) -> np.ndarray:
    """The yes/no call a simulator makes on the items being judged: yes where its score
    reaches half of the highest score among them (no everywhere when none is above 0).
    Scale-free, so a 0-10 LLM simulator and the offline ones are called the same way."""
    s = _arr(scores)
    top = float(s.max()) if s.size else 0.0
    return (s >= 0.5 * top) if top > 0 else np.zeros(s.size, dtype=bool)


def _both(scores: list[float], labels: list[int], calls: Sequence[bool] | None = None) -> dict[str, float]:
    if not labels or len(set(labels)) < 2:
        return {"auroc": float("nan"), "balanced_accuracy": float("nan")}
    said = half_max_calls(scores) if calls is None else np.asarray(calls, dtype=bool)
    return {"auroc": auroc(scores, labels), "balanced_accuracy": balanced_accuracy(said, labels)}


def detection_scores(simulate, explanation: str, activating: Sequence[Record], non_activating: Sequence[Record]) -> dict[str, float]:
    """Detection: the simulator's max prediction per record, activating vs not, as AUROC and
    as the balanced accuracy of :func:`half_max_calls` (chance 0.5 for both)."""
    if not activating or not non_activating:
        return _both([], [])
    pa = [float(np.max(p)) if p.size else 0.0 for p in simulate_records(simulate, explanation, activating)]
    pn = [float(np.max(p)) if p.size else 0.0 for p in simulate_records(simulate, explanation, non_activating)]
    return _both(pa + pn, [1] * len(pa) + [0] * len(pn))


def fuzzing_scores(simulate, explanation: str, activating: Sequence[Record], seed: int = 0, threshold_frac: float = 0.5) -> dict[str, float]:
    """Fuzzing: in each activating record mark the truly active tokens (activation
    >= ``threshold_frac`` x the record max), and in a copy mark the same number of random
    tokens; the score of a marking is the mean simulated activation on marked tokens.
    AUROC of correct vs random markings (chance 0.5), and the balanced accuracy of a
    yes/no call made on each marked record alone, as delphi's judge does: "yes" when the
    marked tokens' mean simulation reaches half of the simulation's peak in that record.
    (A call pooled over all records, :func:`half_max_calls`, would let one record's peak
    decide the others'.)"""
    rng = np.random.default_rng(seed)
    scores, labels, calls = [], [], []
    for (_toks, acts), pred in zip(activating, simulate_records(simulate, explanation, activating)):
        a = _arr(acts)
        if a.size < 2 or a.max() <= 0:
            continue
        true_idx = np.flatnonzero(a >= threshold_frac * a.max())
        k = len(true_idx)
        if k == 0 or k >= a.size:
            continue
        rand_idx = rng.choice(a.size, size=k, replace=False)
        peak = float(pred.max())
        for idx, label in ((true_idx, 1), (rand_idx, 0)):
            v = float(pred[idx].mean())
            scores.append(v)
            labels.append(label)
            calls.append(peak > 0 and v >= 0.5 * peak)
    return _both(scores, labels, calls)


def label_corruption(
    true_acts: Sequence[float] | np.ndarray,
    predicted: Sequence[float] | np.ndarray,
    fractions: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    seed: int = 0,
    active_frac: float = 0.5,
) -> dict:
    """Replace a fraction of the true activations by others drawn at random (a permutation of
    the true values, so the marginal distribution stays the same) and compute each metric
    of the same predictions against the corrupted truth.

    Binary metrics threshold the truth at ``active_frac`` x its max (the active tokens) and
    the prediction at the same share of tokens. A metric passes when it falls by at least a
    quarter of its clean-to-chance gap from 0% to 100% corruption and never rises by more
    than noise along the way. Returns ``{"fractions", "curves": {metric: [...]}, "passes": {metric: bool}}``.
    """
    t, p = _arr(true_acts), _arr(predicted)
    rng = np.random.default_rng(seed)
    n = t.size
    order = rng.permutation(n)
    shuffled = t[rng.permutation(n)]
    thr_true = active_frac * t.max() if t.max() > 0 else 0.5
    pos_rate = float((t >= thr_true).mean()) if n else 0.0
    k = max(1, int(round(pos_rate * n)))
    pred_bin = np.zeros(n)
    pred_bin[np.argsort(-p, kind="mergesort")[:k]] = 1.0
    curves: dict[str, list[float]] = {"pearson": [], "auprc": [], "auroc": [], "balanced_accuracy": [], "recall": []}
    for f in fractions:
        c = t.copy()
        m = order[: int(round(f * n))]
        c[m] = shuffled[m]
        lab = (c >= thr_true).astype(float)
        curves["pearson"].append(pearson(p, c))
        curves["auprc"].append(auprc(p, lab))
        curves["auroc"].append(auroc(p, lab))
        curves["balanced_accuracy"].append(balanced_accuracy(pred_bin, lab))
        curves["recall"].append(recall(pred_bin, lab))
    chance = {"pearson": 0.0, "auprc": pos_rate, "auroc": 0.5, "balanced_accuracy": 0.5, "recall": pos_rate}
    passes = {}
    for name, ys in curves.items():
        gap = ys[0] - chance[name]
        drop = ys[0] - ys[-1]
        rises = max((ys[i + 1] - ys[i] for i in range(len(ys) - 1)), default=0.0)
        passes[name] = bool(gap > 0 and drop >= 0.25 * gap and rises <= 0.05 + 0.1 * abs(gap))
    return {"fractions": list(fractions), "curves": curves, "chance": chance, "passes": passes, "positive_rate": pos_rate}
