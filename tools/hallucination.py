"""Is it making this up? A hallucination detector read from the model's own internals.

``detect(handle, question, answer=None, context=None)`` runs the model on the question
(chat template, greedy), takes its answer (or the given one) and turns internal signals
into one calibrated risk between 0 and 1:

* **hidden-state probes** (SAPLMA-style): logistic regressions on the residual stream at
  a chosen layer, one read at the last prompt token (before the model answers: does it
  "know" it knows?) and one averaged over the answer's tokens;
* **uncertainty signals**: negative mean log-prob of the answer tokens (log-perplexity),
  their minimum log-prob, mean and max next-token entropy, and the first answer token's
  log-prob and entropy.

A logistic regression over these signals (probes entered as out-of-fold logits, so the
combiner sees honest probe scores) gives the risk; on held-out data its probabilities are
checked with a reliability diagram. Each reply lists how much each signal pushed the risk
up or down (coefficient x standardized value: additive in log-odds).

Labels come from :mod:`gnothi.tools.hallu_data` (the model's own answers to the project's
fact table, checked automatically; fabricated subjects have no true answer). The split is
by entity. A trained detector is saved per model under
``model_cache_dir(model)/hallucination/`` (``detector.safetensors`` + ``detector.json``)
and loaded next time; without one, ``detect`` trains it on the shipped data (progress bar)
or, with ``train=False``, falls back to an uncalibrated uncertainty score
(1 - the geometric-mean probability of the answer tokens), and the report says which.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from pydantic import BaseModel, Field

from . import facts as F
from . import hallu_data as D
from . import hallu_text as HT
from . import tokens as tok_text
from .config import model_cache_dir
from .stats import auroc
from .errors import CacheCorruptError, InputError, NoAnswerError
from .results import Figure, TokenSpan, ToolResult, provenance

DETECTOR_VERSION = 1
UNC_NAMES = ["neg_mean_logprob", "neg_min_logprob", "mean_entropy", "max_entropy", "first_neg_logprob", "first_entropy"]
SIGNAL_TEXT = {
    "probe_question": "hidden-state probe at the last prompt token",
    "probe_answer": "hidden-state probe averaged over the answer tokens",
    "neg_mean_logprob": "answer log-perplexity (minus mean log-prob of its tokens)",
    "neg_min_logprob": "least likely answer token (minus its log-prob)",
    "mean_entropy": "mean next-token entropy over the answer",
    "max_entropy": "largest next-token entropy over the answer",
    "first_neg_logprob": "first answer token (minus its log-prob)",
    "first_entropy": "entropy before the first answer token",
    "uncertainty_combined": "the six uncertainty signals combined (no hidden states)",
    "text_minilm": "text-only control: the question's MiniLM embedding (the model is never run)",
    "text_surface": "text-only control: surface features of the question (length, capitals, letters)",
    "text_char_ngrams": "text-only control: character n-grams of the question (spots invented spellings)",
}
FALLBACK_SIGNAL = "neg_mean_logprob"
PROBE_CS = (0.1,)


# ============================================================================ signals


@dataclass
class Signals:
    """Per-example internal signals (numpy, tensors never leave this module)."""

    layers: list[int]
    resid_q: np.ndarray  # [n, len(layers), d_model] at the last prompt token
    resid_a: np.ndarray  # [n, len(layers), d_model] mean over answer tokens
    unc: np.ndarray  # [n, len(UNC_NAMES)]
    tokens: list[list[str]] = field(default_factory=list)  # scored answer tokens
    token_logprobs: list[list[float]] = field(default_factory=list)

    def subset(self, idx: Sequence[int]) -> "Signals":
        idx = list(idx)
        return Signals(
            self.layers, self.resid_q[idx], self.resid_a[idx], self.unc[idx],
            [self.tokens[i] for i in idx] if self.tokens else [], [self.token_logprobs[i] for i in idx] if self.token_logprobs else [],
        )

    def resid(self, where: str, layer: int) -> np.ndarray:
        j = self.layers.index(layer)
        return (self.resid_q if where == "question" else self.resid_a)[:, j, :]


def scored_text(answer: str) -> str:
    """The part of an answer that is scored: its first sentence (what the label checks)."""
    return F.first_sentence(answer).strip() or answer.strip()


def candidate_layers(n_layers: int) -> list[int]:
    """Layers the probes choose from: every third layer from the first sixth, plus the last."""
    if n_layers <= 4:
        return list(range(n_layers))
    return sorted(set(range(max(1, n_layers // 6), n_layers, 3)) | {n_layers - 1})


@torch.inference_mode()
def compute_signals(
    handle,
    prompts: Sequence[str],
    answers: Sequence[str],
    layers: Sequence[int],
    batch_size: int = 16,
    progress: bool = False,
) -> Signals:
    """Run prompt + answer once per example; read residuals and answer-token uncertainty.

    An empty answer is scored as the end-of-turn token (the model said nothing).
    """
    layers = sorted(set(int(l) for l in layers))
    names = [handle.hook_name("resid_post", l) for l in layers]
    tok = handle.tokenizer
    stop = handle.stop_ids(chat=True)
    items = []
    for p, a in zip(prompts, answers):
        pids = D.prompt_ids(handle, p)
        text = scored_text(a) if a else ""
        aids = tok(text, add_special_tokens=False)["input_ids"] if text else []
        if not aids:
            aids = [stop[-1] if stop else (tok.eos_token_id or 0)]
        aids = aids[: D.MAX_NEW_TOKENS * 2]
        if len(pids) + len(aids) > handle.shape.n_ctx:
            raise InputError(
                f"Prompt and answer are {len(pids) + len(aids)} tokens; the model's context is {handle.shape.n_ctx}.",
                "Shorten the context, the question or the answer.",
            )
        items.append((pids, aids))
    n, d = len(items), handle.d_model
    rq = np.zeros((n, len(layers), d), dtype=np.float32)
    ra = np.zeros((n, len(layers), d), dtype=np.float32)
    unc = np.zeros((n, len(UNC_NAMES)), dtype=np.float64)
    toks_out: list[list[str]] = [[] for _ in range(n)]
    lps_out: list[list[float]] = [[] for _ in range(n)]
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    order = sorted(range(n), key=lambda i: len(items[i][0]) + len(items[i][1]))
    bar = D._bar(n, "reading internals", progress)
    for s in range(0, n, batch_size):
        idx = order[s : s + batch_size]
        seqs = [items[i][0] + items[i][1] for i in idx]
        L = max(len(x) for x in seqs)
        batch = torch.tensor([x + [pad] * (L - len(x)) for x in seqs], dtype=torch.long, device=handle.device)
        logits, cache = handle.run_with_cache(batch, names, stop_early=False)
        for j, i in enumerate(idx):
            pids, aids = items[i]
            P, A = len(pids), len(aids)
            lp_rows = torch.log_softmax(logits[j, P - 1 : P - 1 + A].float(), dim=-1)  # predictions of the answer tokens
            ids = torch.tensor(aids, device=lp_rows.device)
            lp = lp_rows.gather(1, ids[:, None])[:, 0].double()
            ent = -(lp_rows.exp() * lp_rows).sum(-1).double()
            unc[i] = [
                float(-lp.mean()), float(-lp.min()), float(ent.mean()), float(ent.max()), float(-lp[0]), float(ent[0]),
            ]
            for k, nm in enumerate(names):
                act = cache[nm][j].float()
                rq[i, k] = act[P - 1].cpu().numpy()
                ra[i, k] = act[P : P + A].mean(0).cpu().numpy()
            toks_out[i] = tok_text.labels(tok, aids)
            lps_out[i] = [round(float(v), 4) for v in lp.tolist()]
        bar.update(len(idx))
    bar.close()
    return Signals(layers, rq, ra, unc, toks_out, lps_out)


# ============================================================================ the detector


@dataclass
class LinearModel:
    """Standardize then logistic regression: ``logit = ((x - mean) / scale) @ coef + intercept``."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def logit(self, X: np.ndarray) -> np.ndarray:
        return ((np.asarray(X, dtype=np.float64) - self.mean) / self.scale) @ self.coef + self.intercept

    def prob(self, X: np.ndarray) -> np.ndarray:
        return _sigmoid(self.logit(X))

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Per-feature log-odds contribution for one example."""
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.scale) * self.coef


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def fit_linear(X: np.ndarray, y: np.ndarray, C: float = 1.0, seed: int = 0) -> LinearModel:
    from sklearn.linear_model import LogisticRegression

    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y).astype(int)
    if len(set(y.tolist())) < 2:
        raise InputError(
            f"The training labels are all {int(y[0]) if len(y) else '?'}: a detector needs both right and wrong answers.",
            "Use more facts (the whole table) so the model gets some right and some wrong.",
        )
    mean = X.mean(0)
    scale = X.std(0)
    scale[scale < 1e-8] = 1.0
    lr = LogisticRegression(C=C, max_iter=2000, random_state=seed)
    lr.fit((X - mean) / scale, y)
    return LinearModel(mean, scale, lr.coef_[0].astype(np.float64), float(lr.intercept_[0]))


def _oof_logits(X: np.ndarray, y: np.ndarray, folds: list[np.ndarray], C: float) -> np.ndarray:
    out = np.zeros(len(y))
    for te in folds:
        tr = np.setdiff1d(np.arange(len(y)), te)
        if len(set(y[tr].tolist())) < 2:
            out[te] = 0.0
            continue
        out[te] = fit_linear(X[tr], y[tr], C).logit(X[te])
    return out


class HallucinationDetector:
    """Two hidden-state probes and a calibrated combiner over probes + uncertainty signals."""

    def __init__(self, layer_q: int, layer_a: int, probe_q: LinearModel, probe_a: LinearModel, combiner: LinearModel, meta: dict | None = None):
        self.layer_q = layer_q
        self.layer_a = layer_a
        self.probe_q = probe_q
        self.probe_a = probe_a
        self.combiner = combiner
        self.meta = meta or {}

    feature_names = ["probe_question", "probe_answer", *UNC_NAMES]

    @property
    def layers(self) -> list[int]:
        return sorted({self.layer_q, self.layer_a})

    def features(self, sig: Signals) -> np.ndarray:
        """Combiner inputs: the two probe logits, then the uncertainty signals."""
        pq = self.probe_q.logit(sig.resid("question", self.layer_q))
        pa = self.probe_a.logit(sig.resid("answer", self.layer_a))
        return np.column_stack([pq, pa, sig.unc])

    def risk(self, sig: Signals) -> np.ndarray:
        return self.combiner.prob(self.features(sig))

    # ------------------------------------------------------------------ training
    @classmethod
    def fit(
        cls,
        sig: Signals,
        y: Sequence[int],
        groups: Sequence[str],
        k: int = 5,
        seed: int = 0,
        progress: bool = False,
    ) -> tuple["HallucinationDetector", dict]:
        """Choose each probe's layer and strength by grouped cross-validation, fit the
        probes, then fit the combiner on out-of-fold probe logits + uncertainty signals."""
        y = np.asarray(y).astype(int)
        folds = D.group_folds(list(groups), k, seed)
        cv: dict[str, dict[int, float]] = {"question": {}, "answer": {}}
        best: dict[str, tuple[float, int, float]] = {}
        bar = D._bar(2 * len(sig.layers) * len(PROBE_CS), "choosing probe layers", progress)
        for where in ("question", "answer"):
            for layer in sig.layers:
                X = sig.resid(where, layer)
                for C in PROBE_CS:
                    a = auroc(_oof_logits(X, y, folds, C), y)
                    cv[where][layer] = max(cv[where].get(layer, 0.0), a)
                    if where not in best or a > best[where][0]:
                        best[where] = (a, layer, C)
                    bar.update(1)
        bar.close()
        (_, lq, cq), (_, la, ca) = best["question"], best["answer"]
        Xq, Xa = sig.resid("question", lq), sig.resid("answer", la)
        oof = np.column_stack([_oof_logits(Xq, y, folds, cq), _oof_logits(Xa, y, folds, ca), sig.unc])
        comb = fit_linear(oof, y, C=1.0)
        det = cls(lq, la, fit_linear(Xq, y, cq), fit_linear(Xa, y, ca), comb)
        info = {
            "cv_auroc_by_layer": {w: {str(l): round(v, 4) for l, v in d.items()} for w, d in cv.items()},
            "probe_question": {"layer": lq, "C": cq, "cv_auroc": round(best["question"][0], 4)},
            "probe_answer": {"layer": la, "C": ca, "cv_auroc": round(best["answer"][0], 4)},
        }
        det.meta.update(info)
        return det, info

    # ------------------------------------------------------------------ save / load
    def save(self, folder: Path) -> Path:
        """Write ``detector.safetensors`` + ``detector.json`` atomically; returns the folder."""
        from safetensors.numpy import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {}
        for name, m in (("probe_q", self.probe_q), ("probe_a", self.probe_a), ("combiner", self.combiner)):
            tensors[f"{name}.mean"] = np.asarray(m.mean, dtype=np.float64)
            tensors[f"{name}.scale"] = np.asarray(m.scale, dtype=np.float64)
            tensors[f"{name}.coef"] = np.asarray(m.coef, dtype=np.float64)
            tensors[f"{name}.intercept"] = np.asarray([m.intercept], dtype=np.float64)
        st = folder / "detector.safetensors"
        tmp = folder / f".detector.safetensors.tmp{os.getpid()}"
        save_file(tensors, str(tmp))
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
        meta = {
            **self.meta,
            "version": DETECTOR_VERSION,
            "layer_q": self.layer_q,
            "layer_a": self.layer_a,
            "feature_names": self.feature_names,
            "prompt_version": D.PROMPT_VERSION,
            "sha256": digest,
        }
        js = folder / "detector.json"
        tmpj = folder / f".detector.json.tmp{os.getpid()}"
        tmpj.write_text(json.dumps(meta, indent=2, default=_json_default), encoding="utf-8")
        os.replace(tmp, st)
        os.replace(tmpj, js)
        return folder

    @classmethod
    def load(cls, folder: Path) -> "HallucinationDetector":
        """Load a saved detector; :class:`CacheCorruptError` if the files are damaged."""
        from safetensors.numpy import load_file

        folder = Path(folder)
        js, st = folder / "detector.json", folder / "detector.safetensors"
        fix = f"Delete {folder} and run `gnothi eval hallucination` (or any `gnothi hallucination` question) to retrain."
        try:
            meta = json.loads(js.read_text(encoding="utf-8"))
            raw = st.read_bytes()
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CacheCorruptError(f"The saved hallucination detector in {folder} is unreadable ({type(e).__name__}).", fix) from None
        if not isinstance(meta, dict) or meta.get("sha256") != hashlib.sha256(raw).hexdigest():
            raise CacheCorruptError(f"The saved hallucination detector in {folder} is damaged (checksum mismatch).", fix)
        if meta.get("version") != DETECTOR_VERSION or meta.get("prompt_version") != D.PROMPT_VERSION:
            raise CacheCorruptError(f"The saved hallucination detector in {folder} is from another version.", fix)
        try:
            t = load_file(str(st))
            models = {}
            for name in ("probe_q", "probe_a", "combiner"):
                models[name] = LinearModel(t[f"{name}.mean"], t[f"{name}.scale"], t[f"{name}.coef"], float(t[f"{name}.intercept"][0]))
                if not all(np.isfinite(x).all() for x in (models[name].mean, models[name].scale, models[name].coef)):
                    raise ValueError("non-finite weights")
            if models["combiner"].coef.shape[0] != len(cls.feature_names):
                raise ValueError("combiner shape")
            if models["probe_q"].coef.shape != models["probe_q"].mean.shape:
                raise ValueError("probe shape")
        except Exception as e:  # safetensors raises its own error types
            raise CacheCorruptError(f"The saved hallucination detector in {folder} is damaged ({e}).", fix) from None
        return cls(int(meta["layer_q"]), int(meta["layer_a"]), models["probe_q"], models["probe_a"], models["combiner"], meta)


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def detector_dir(model_name: str) -> Path:
    return model_cache_dir(model_name) / "hallucination"


# ============================================================================ evaluation


class ReliabilityBin(BaseModel):
    lo: float
    hi: float
    count: int
    mean_risk: float | None
    frac_hallucinated: float | None


class HallucinationEval(BaseModel):
    """Held-out evaluation of a freshly trained detector (split by entity)."""

    model: str
    n_train: int
    n_test: int
    test_positive_rate: float  # share of test answers that are wrong or made up
    dataset: dict[str, dict[str, int]]  # per family: n, right, wrong, made_up, declined
    auroc: dict[str, float]  # held-out AUROC per signal alone and combined
    auroc_ci: dict[str, list[float]] = Field(default_factory=dict)  # bootstrap 95% CI
    baselines: dict[str, float] = Field(default_factory=dict)
    layers: dict[str, int] = Field(default_factory=dict)
    cv_auroc_by_layer: dict[str, dict[str, float]] = Field(default_factory=dict)
    reliability: list[ReliabilityBin] = Field(default_factory=list)
    ece: float = 0.0
    brier: float = 0.0
    transfer: list[dict[str, Any]] = Field(default_factory=list)  # leave-one-family-out
    # the same held-out answers without the fabricated subjects (controls refit on real ones only)
    n_test_real: int = 0
    auroc_real: dict[str, float] = Field(default_factory=dict)
    auroc_real_ci: dict[str, list[float]] = Field(default_factory=dict)
    # strongest model-free text-only control (hallu_text) on all / real-only held-out answers,
    # and the paired-bootstrap 95% CI of the combined detector's margin over it
    text_control: dict[str, dict[str, Any]] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)
    saved_to: str | None = None

    def figures(self) -> list[Figure]:
        figs = []
        names = list(self.auroc)
        figs.append(Figure(kind="bar", title="Held-out AUROC per signal (chance 0.5)", data={"labels": names, "values": [self.auroc[n] for n in names], "ylabel": "AUROC"}))
        xs = [round((b.lo + b.hi) / 2, 3) for b in self.reliability]
        figs.append(
            Figure(
                kind="line",
                title=f"Reliability of the risk on held-out answers (ECE {self.ece:.3f})",
                data={
                    "x": xs,
                    "series": {
                        "observed share hallucinated": [b.frac_hallucinated if b.frac_hallucinated is not None else float("nan") for b in self.reliability],
                        "perfect calibration": xs,
                    },
                    "xlabel": "predicted risk (bin centre)",
                    "ylabel": "share wrong or made up",
                },
                caption="counts per bin: " + ", ".join(str(b.count) for b in self.reliability),
            )
        )
        if self.cv_auroc_by_layer:
            layers = sorted({int(l) for d in self.cv_auroc_by_layer.values() for l in d})
            figs.append(
                Figure(
                    kind="line",
                    title="Probe AUROC by layer (cross-validated on the training split)",
                    data={"x": layers, "series": {w: [d.get(str(l)) for l in layers] for w, d in self.cv_auroc_by_layer.items()}, "xlabel": "layer", "ylabel": "AUROC"},
                )
            )
        return figs

    def to_tool_result(self) -> ToolResult:
        c = self.auroc.get("combined", 0.5)
        ci = self.auroc_ci.get("combined")
        ppl = self.auroc.get("neg_mean_logprob", 0.5)
        summary = (
            f"Held-out AUROC of the combined hallucination detector: {c:.3f}"
            + (f" (95% CI {ci[0]:.2f}-{ci[1]:.2f})" if ci else "")
            + f" on {self.n_test} answers about entities never seen in training; perplexity alone {ppl:.3f}, chance 0.5."
        )
        for part, label in (("all", "all answers"), ("real", "real subjects only")):
            tc = self.text_control.get(part)
            if tc and tc.get("auroc") is not None:
                summary += (
                    f" A model-free classifier of {HT.CONTROL_LABELS.get(tc['control'], tc['control'])} ({label}): {tc['auroc']:.3f}; detector {tc['detector']:.3f}, "
                    f"margin {tc['margin']:+.3f} (95% CI {tc['margin_ci'][0]:+.2f} to {tc['margin_ci'][1]:+.2f})."
                )
        return ToolResult(
            tool="hallucination_eval",
            summary=summary,
            headline={
                "auroc_combined": c,
                "auroc_perplexity": ppl,
                "ece": self.ece,
                "n_test": self.n_test,
                **{f"auroc_text_only_{p}": t["auroc"] for p, t in self.text_control.items() if t.get("auroc") is not None},
                **({"auroc_combined_real": self.auroc_real["combined"]} if "combined" in self.auroc_real else {}),
            },
            evidence=[{"signal": k, "auroc": v, "meaning": SIGNAL_TEXT.get(k, k)} for k, v in self.auroc.items()] + self.transfer,
            figures=self.figures(),
            provenance=provenance(None, model=self.model, split="by entity", layers=self.layers),
            timings=self.timings,
            data=self.model_dump(mode="json"),
        )


def _reliability(risk: np.ndarray, y: np.ndarray, n_bins: int = 10) -> tuple[list[ReliabilityBin], float]:
    bins, ece = [], 0.0
    edges = np.linspace(0, 1, n_bins + 1)
    for i in range(n_bins):
        lo, hi = edges[i], edges[i + 1]
        m = (risk >= lo) & ((risk < hi) if i < n_bins - 1 else (risk <= hi))
        cnt = int(m.sum())
        if cnt:
            mr, fp = float(risk[m].mean()), float(y[m].mean())
            ece += cnt / len(risk) * abs(mr - fp)
            bins.append(ReliabilityBin(lo=float(lo), hi=float(hi), count=cnt, mean_risk=round(mr, 4), frac_hallucinated=round(fp, 4)))
        else:
            bins.append(ReliabilityBin(lo=float(lo), hi=float(hi), count=0, mean_risk=None, frac_hallucinated=None))
    return bins, float(ece)


def _bootstrap(stat, y: np.ndarray, n: int, seed: int, empty: float) -> list[float]:
    """95% percentile interval of ``stat(i)`` over resamples ``i`` of the answers that hold both classes."""
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        i = rng.integers(0, len(y), len(y))
        if len(set(y[i].tolist())) == 2:
            vals.append(stat(i))
    if not vals:
        return [empty, empty]
    return [round(float(np.percentile(vals, 2.5)), 4), round(float(np.percentile(vals, 97.5)), 4)]


def _bootstrapauroc(scores: np.ndarray, y: np.ndarray, n: int = 500, seed: int = 0) -> list[float]:
    return _bootstrap(lambda i: auroc(scores[i], y[i]), y, n, seed, 0.5)


def _bootstrap_margin(a: np.ndarray, b: np.ndarray, y: np.ndarray, n: int = 1000, seed: int = 0) -> list[float]:
    """Paired bootstrap 95% interval of ``AUROC(a) - AUROC(b)`` on the same answers."""
    return _bootstrap(lambda i: auroc(a[i], y[i]) - auroc(b[i], y[i]), y, n, seed, 0.0)


def _text_control(exs: Sequence[D.Example], y: np.ndarray, tr: Sequence[int], te: Sequence[int], detector_risk: np.ndarray, seed: int) -> tuple[dict[str, float], dict[str, Any]]:
    """Fit the text-only controls on ``tr`` and score ``te``; their AUROCs and the strongest
    one beside the detector's (``detector_risk`` on ``te``), with the margin's interval."""
    yte = y[te]
    if len(set(y[tr].tolist())) < 2 or len(set(yte.tolist())) < 2:
        return {}, {"n": len(te), "note": "one class only on a side of the split"}
    sc = HT.text_only_scores([exs[i].question for i in tr], y[tr], [exs[i].entity for i in tr], [exs[i].question for i in te], seed=seed)
    au = {k: round(auroc(v, yte), 4) for k, v in sc.items()}
    best = max(au, key=au.get)
    det = auroc(detector_risk, yte)
    return au, {
        "n": len(te),
        "control": best,
        "auroc": au[best],
        "auroc_ci": _bootstrapauroc(sc[best], yte, seed=seed),
        "detector": round(det, 4),
        "margin": round(det - au[best], 4),
        "margin_ci": _bootstrap_margin(detector_risk, sc[best], yte, seed=seed),
    }


def dataset_signals(
    handle, examples: Sequence[D.Example], layers: Sequence[int] | None = None, progress: bool = False, use_cache: bool = True
) -> Signals:
    """Signals for dataset examples, cached per model (``signals.safetensors``) by question,
    answer and layers, so retraining and evaluating again does not re-run the model."""
    layers = sorted(set(layers)) if layers is not None else candidate_layers(handle.n_layers)
    keys = [hashlib.sha1(f"{D.PROMPT_VERSION}|{layers}|{e.question}|{e.answer}".encode()).hexdigest()[:20] for e in examples]
    cached = _load_signal_cache(handle.name) if use_cache else {}
    todo = [i for i, k in enumerate(keys) if f"{k}.unc" not in cached]
    if todo:
        sub = [examples[i] for i in todo]
        prompts = [D.prompt_text(handle, e.question) for e in sub]
        sig = compute_signals(handle, prompts, [e.answer for e in sub], layers, progress=progress)
        fresh = {}
        for j, i in enumerate(todo):
            fresh[f"{keys[i]}.rq"] = sig.resid_q[j]
            fresh[f"{keys[i]}.ra"] = sig.resid_a[j]
            fresh[f"{keys[i]}.unc"] = sig.unc[j]
        cached.update(fresh)
        if use_cache:
            _save_signal_cache(handle.name, cached)
    rq = np.stack([cached[f"{k}.rq"] for k in keys]).astype(np.float32)
    ra = np.stack([cached[f"{k}.ra"] for k in keys]).astype(np.float32)
    unc = np.stack([cached[f"{k}.unc"] for k in keys]).astype(np.float64)
    return Signals(layers, rq, ra, unc)


def _signal_cache_path(model_name: str) -> Path:
    return detector_dir(model_name) / "signals.safetensors"


def _load_signal_cache(model_name: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    p = _signal_cache_path(model_name)
    if not p.exists():
        return {}
    try:
        return dict(load_file(str(p)))
    except Exception:  # damaged: start again (the signals are recomputed)
        return {}


def _save_signal_cache(model_name: str, tensors: dict[str, np.ndarray]) -> None:
    from safetensors.numpy import save_file

    p = _signal_cache_path(model_name)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, p)


def train_and_evaluate(
    handle,
    facts: Sequence[F.Fact] | None = None,
    test_frac: float = 0.3,
    seed: int = 0,
    save: bool = True,
    transfer: bool = True,
    controls: bool = True,
    progress: bool = False,
    examples: Sequence[D.Example] | None = None,
    signals: Signals | None = None,
) -> tuple[HallucinationDetector, HallucinationEval]:
    """Build (or reuse cached) answers, split by entity, train on the train side, measure on
    the held-out side, and (``save``) store the detector for this model. ``transfer``: also
    leave one fact family out; ``controls``: also fit the text-only controls."""
    t0 = time.perf_counter()
    exs = list(examples) if examples is not None else D.build_dataset(handle, facts, progress=progress)
    t1 = time.perf_counter()
    sig = signals if signals is not None else dataset_signals(handle, exs, progress=progress)
    t2 = time.perf_counter()
    y = np.array([e.label for e in exs], dtype=int)
    ents = [e.entity for e in exs]
    tr, te = D.split_by_entity(ents, test_frac=test_frac, seed=seed, strata=[e.family for e in exs])
    if len(set(y[tr].tolist())) < 2 or len(set(y[te].tolist())) < 2:
        raise InputError(
            f"The labelled answers do not have both classes on each side of the split ({int(y.sum())} of {len(y)} are hallucinations).",
            "Use more facts (the whole table) so the model gets some right and some wrong.",
        )
    det, info = HallucinationDetector.fit(sig.subset(tr), y[tr], [ents[i] for i in tr], seed=seed, progress=progress)
    sig_te = sig.subset(te)
    yte = y[te]
    feats = det.features(sig_te)
    risk = det.combiner.prob(feats)
    scores = {"combined": risk, "probe_question": feats[:, 0], "probe_answer": feats[:, 1]}
    for j, n in enumerate(UNC_NAMES):
        scores[n] = sig_te.unc[:, j]
    unc_only = fit_linear(sig.unc[tr], y[tr], C=1.0)
    scores["uncertainty_combined"] = unc_only.prob(sig_te.unc)
    au = {k: round(auroc(v, yte), 4) for k, v in scores.items()}
    # real subjects only: the detector as trained, the controls refit on real training questions
    real = np.array([not exs[i].fabricated for i in te])
    tr_real = [i for i in tr if not exs[i].fabricated]
    te_real = [i for i, r in zip(te, real) if r]
    au_real: dict[str, float] = {}
    au_real_ci: dict[str, list[float]] = {}
    if len(set(yte[real].tolist())) == 2:
        au_real = {k: round(auroc(v[real], yte[real]), 4) for k, v in scores.items()}
        au_real_ci = {k: _bootstrapauroc(scores[k][real], yte[real], seed=seed) for k in ("combined", "neg_mean_logprob")}
    text_all: dict[str, Any] = {"n": len(te), "note": "not measured (controls=False)"}
    text_real: dict[str, Any] = {"n": len(te_real), "note": "not measured (controls=False)"}
    if controls:
        text_au, text_all = _text_control(exs, y, tr, te, risk, seed)
        au.update(text_au)
        text_au_real, text_real = _text_control(exs, y, tr_real, te_real, risk[real], seed)
        au_real.update(text_au_real)
    bins, ece = _reliability(risk, yte)
    t3 = time.perf_counter()
    trans = _transfer(sig, y, exs, det) if transfer else []
    t4 = time.perf_counter()
    ev = HallucinationEval(
        model=handle.name,
        n_train=len(tr),
        n_test=len(te),
        test_positive_rate=round(float(yte.mean()), 4),
        dataset=D.summarize(exs),
        auroc=au,
        auroc_ci={k: _bootstrapauroc(scores[k], yte, seed=seed) for k in ("combined", "probe_question", "probe_answer", "neg_mean_logprob")},
        baselines={
            "chance": 0.5,
            "perplexity_only": au["neg_mean_logprob"],
            "uncertainty_only": au["uncertainty_combined"],
            **({"text_only": text_all["auroc"]} if "auroc" in text_all else {}),
            **({"text_only_real": text_real["auroc"]} if "auroc" in text_real else {}),
        },
        layers={"probe_question": det.layer_q, "probe_answer": det.layer_a},
        cv_auroc_by_layer=info["cv_auroc_by_layer"],
        reliability=bins,
        ece=round(ece, 4),
        brier=round(float(np.mean((risk - yte) ** 2)), 4),
        transfer=trans,
        n_test_real=len(te_real),
        auroc_real=au_real,
        auroc_real_ci=au_real_ci,
        text_control={"all": text_all, "real": text_real},
        timings={"answers_s": round(t1 - t0, 2), "signals_s": round(t2 - t1, 2), "train_eval_s": round(t3 - t2, 2), "transfer_s": round(t4 - t3, 2)},
    )
    det.meta.update(
        {
            "model": handle.name,
            "n_train": len(tr),
            "n_test": len(te),
            "heldout_auroc": au,
            "ece": ev.ece,
            "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    )
    if save:
        ev.saved_to = str(det.save(detector_dir(handle.name)))
        _LOADED[handle.name] = det
    return det, ev


def _transfer(sig: Signals, y: np.ndarray, exs: Sequence[D.Example], det: HallucinationDetector) -> list[dict[str, Any]]:
    """Train on every family but one, test on that one (probe layers fixed to the chosen ones)."""
    rows = []
    fams = sorted({e.family for e in exs})
    for fam in fams:
        te = [i for i, e in enumerate(exs) if e.family == fam]
        tr = [i for i, e in enumerate(exs) if e.family != fam]
        if len(set(y[te].tolist())) < 2 or len(set(y[tr].tolist())) < 2:
            rows.append({"test_family": fam, "n": len(te), "note": "one class only in this family"})
            continue
        s_tr, s_te = sig.subset(tr), sig.subset(te)
        groups = [exs[i].entity for i in tr]
        folds = D.group_folds(groups, 5, 0)
        Xq_tr, Xa_tr = s_tr.resid("question", det.layer_q), s_tr.resid("answer", det.layer_a)
        cq, ca = det.meta["probe_question"]["C"], det.meta["probe_answer"]["C"]
        pq, pa = fit_linear(Xq_tr, y[tr], cq), fit_linear(Xa_tr, y[tr], ca)
        oof = np.column_stack([_oof_logits(Xq_tr, y[tr], folds, cq), _oof_logits(Xa_tr, y[tr], folds, ca), s_tr.unc])
        comb = fit_linear(oof, y[tr], 1.0)
        feats = np.column_stack([pq.logit(s_te.resid("question", det.layer_q)), pa.logit(s_te.resid("answer", det.layer_a)), s_te.unc])
        rows.append(
            {
                "test_family": fam,
                "n": len(te),
                "positive_rate": round(float(y[te].mean()), 3),
                "auroc_combined": round(auroc(comb.prob(feats), y[te]), 4),
                "auroc_probe_question": round(auroc(feats[:, 0], y[te]), 4),
                "auroc_probe_answer": round(auroc(feats[:, 1], y[te]), 4),
                "auroc_perplexity": round(auroc(s_te.unc[:, 0], y[te]), 4),
            }
        )
    return rows


# ============================================================================ getting a detector

_LOADED: dict[str, HallucinationDetector] = {}


def load_detector(model_name: str) -> HallucinationDetector | None:
    """The saved detector for ``model_name``, or None when there is none.
    :class:`CacheCorruptError` when one is there but damaged."""
    if model_name in _LOADED:
        return _LOADED[model_name]
    folder = detector_dir(model_name)
    if not (folder / "detector.json").exists():
        return None
    det = HallucinationDetector.load(folder)
    _LOADED[model_name] = det
    return det


def get_detector(handle, train: bool = True, progress: bool = False) -> tuple[HallucinationDetector | None, str, list[str]]:
    """``(detector or None, how, warnings)``: ``how`` is "loaded", "trained" or "fallback"."""
    warns: list[str] = []
    try:
        det = load_detector(handle.name)
    except CacheCorruptError as e:
        warns.append(f"{e.message} It was {'retrained' if train else 'ignored'}.")
        det = None
    if det is not None:
        return det, "loaded", warns
    if not train:
        warns.append("No trained detector for this model: the risk falls back to uncertainty alone (not calibrated).")
        return None, "fallback", warns
    # inside a turn: the detector only; `gnothi hallucination --eval` measures transfer and controls
    det, ev = train_and_evaluate(handle, progress=progress, transfer=False, controls=False)
    warns.append(f"Trained a detector for this model now (held-out AUROC {ev.auroc['combined']:.3f}); it is saved for next time.")
    return det, "trained", warns


# ============================================================================ one question


class SignalValue(BaseModel):
    value: float  # the raw signal (probe: logit; uncertainty: nats)
    contribution: float | None = None  # log-odds it adds to the risk (trained detector)
    heldout_auroc: float | None = None  # how well this signal alone separated held-out answers
    meaning: str = ""


class HallucinationReport(BaseModel):
    question: str
    context_tokens: int = 0
    answer: str
    answer_source: str  # "model" (generated, greedy) or "given"
    scored_text: str  # the first sentence of the answer, which is what is scored
    risk: float  # 0..1: chance the answer is wrong or made up
    level: str  # low / medium / high
    detector: str  # "trained" (a saved or freshly trained detector) or "fallback"
    detector_how: str  # loaded / trained / fallback
    signals: dict[str, SignalValue]
    drivers: list[str]  # signals that pushed the risk most, in words
    tokens: list[str] = Field(default_factory=list)
    token_logprobs: list[float] = Field(default_factory=list)
    detector_info: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    model: str = ""

    def to_tool_result(self) -> ToolResult:
        how = "trained detector" if self.detector == "trained" else "uncertainty-only fallback (uncalibrated)"
        summary = (
            f"Hallucination risk {self.risk:.2f} ({self.level}) for the answer {self.scored_text!r}, from the {how}"
            + (f"; driven most by {self.drivers[0]}" if self.drivers else "")
            + "."
        )
        figs = []
        contrib = {k: v.contribution for k, v in self.signals.items() if v.contribution is not None}
        if contrib:
            figs.append(Figure(kind="bar", title="What drove the risk (log-odds added by each signal)", data={"labels": list(contrib), "values": list(contrib.values()), "ylabel": "log-odds"}))
        if self.tokens:
            figs.append(Figure(kind="tokens", title="Log-prob of each answer token (more negative: less sure)", data={"rows": [{"tokens": self.tokens, "values": self.token_logprobs}]}))
        return ToolResult(
            tool="hallucination",
            summary=summary,
            headline={"risk": self.risk, "level": self.level, "detector": self.detector, "answer": self.answer, "heldout_auroc": self.detector_info.get("heldout_auroc_combined")},
            evidence=[{"signal": k, **v.model_dump()} for k, v in self.signals.items()],
            spans=[TokenSpan(tokens=self.tokens, values=self.token_logprobs, note="log-prob of each answer token")] if self.tokens else [],
            figures=figs,
            provenance=provenance(None, model=self.model, detector=self.detector_info, decoding="greedy, chat template" if self.answer_source == "model" else "given answer"),
            timings=self.timings,
            warnings=self.warnings,
            data=self.model_dump(mode="json"),
        )


def _level(r: float) -> str:
    return "low" if r < 0.33 else ("medium" if r < 0.66 else "high")


def detect(
    handle,
    question: str,
    answer: str | None = None,
    context: str | None = None,
    train: bool = True,
    progress: bool = False,
    detector: HallucinationDetector | None = None,
) -> HallucinationReport:
    """Answer ``question`` with the model (or take ``answer``) and say how likely it is made up.

    ``context`` (optional) is put before the question in the user turn. ``train``: when
    this model has no saved detector, train one on the shipped fact table (minutes on a
    CPU; progress bar with ``progress``) instead of falling back to uncertainty alone.
    """
    t0 = time.perf_counter()
    if not isinstance(question, str) or not question.strip():
        raise InputError("The question is empty.", 'Ask a question, e.g. gnothi hallucination "What is the capital of Australia?"')
    if answer is not None and (not isinstance(answer, str) or not answer.strip()):
        raise InputError("The given answer is empty.", "Pass a non-empty --answer, or leave it out to let the model answer.")
    if context is not None and not isinstance(context, str):
        raise InputError("The context must be text.", "Pass the context as a string.")
    prompt = D.prompt_text(handle, question, context)
    n_prompt = len(D.prompt_ids(handle, prompt))
    budget = handle.shape.n_ctx - D.MAX_NEW_TOKENS
    if n_prompt > budget:
        ctx_tokens = len(handle.tokenizer(context, add_special_tokens=False)["input_ids"]) if context else 0
        raise InputError(
            f"The question{' and context' if context else ''} are {n_prompt} tokens; this model reads at most {handle.shape.n_ctx} "
            f"(with {D.MAX_NEW_TOKENS} kept for the answer)" + (f"; the context alone is {ctx_tokens} tokens." if context else "."),
            f"Shorten the {'context' if context else 'question'} to under about {max(1, budget - (n_prompt - ctx_tokens if context else 0))} tokens, "
            "keeping the passage the question is about.",
        )
    warns: list[str] = []
    if answer is None:
        t_gen = time.perf_counter()
        answer = D.generate_answers(handle, [prompt])[0]
        if not answer.strip():
            raise NoAnswerError(
                "The model produced no answer to this question (it ended its turn at once).",
                "Rephrase the question, or pass an answer to score with --answer.",
            )
        source = "model"
        gen_s = time.perf_counter() - t_gen
    else:
        source = "given"
        gen_s = 0.0
    if detector is not None:
        det, how = detector, "loaded"
    else:
        det, how, w = get_detector(handle, train=train, progress=progress)
        warns += w
    t_sig = time.perf_counter()
    layers = det.layers if det is not None else []
    sig = compute_signals(handle, [prompt], [answer], layers)
    sig_s = time.perf_counter() - t_sig
    unc = sig.unc[0]
    signals: dict[str, SignalValue] = {}
    if det is not None:
        feats = det.features(sig)[0]
        contrib = det.combiner.contributions(feats)
        risk = float(det.combiner.prob(feats[None])[0])
        au = det.meta.get("heldout_auroc", {})
        for name, v, c in zip(det.feature_names, feats, contrib):
            signals[name] = SignalValue(value=round(float(v), 4), contribution=round(float(c), 4), heldout_auroc=au.get(name), meaning=SIGNAL_TEXT[name])
        order = sorted(signals, key=lambda k: -abs(signals[k].contribution or 0.0))
        drivers = [
            f"{SIGNAL_TEXT[k]} ({'+' if signals[k].contribution >= 0 else ''}{signals[k].contribution:.2f} log-odds)" for k in order[:3]
        ]
        info = {
            "kind": "trained",
            "how": how,
            "layers": {"probe_question": det.layer_q, "probe_answer": det.layer_a},
            "heldout_auroc_combined": au.get("combined"),
            "heldout_auroc_perplexity": au.get("neg_mean_logprob"),
            "n_train": det.meta.get("n_train"),
            "trained_at": det.meta.get("trained_at"),
        }
        kind = "trained"
    else:
        for name, v in zip(UNC_NAMES, unc):
            signals[name] = SignalValue(value=round(float(v), 4), meaning=SIGNAL_TEXT[name])
        risk = float(1.0 - math.exp(-float(unc[UNC_NAMES.index(FALLBACK_SIGNAL)])))
        drivers = [f"{SIGNAL_TEXT[FALLBACK_SIGNAL]} = {unc[0]:.2f} nats (risk = 1 - geometric-mean token probability)"]
        info = {"kind": "fallback", "how": how, "formula": "1 - exp(mean log-prob of the answer tokens)"}
        kind = "fallback"
    if context and det is not None:
        warns.append("The detector was trained on questions without a context; with one, read the risk as indicative.")
    if source == "given":
        warns.append("The answer was given, not generated: the detector was trained on the model's own answers, so treat the risk as indicative.")
    ctx_tokens = len(handle.tokenizer(context, add_special_tokens=False)["input_ids"]) if context else 0
    return HallucinationReport(
        question=question.strip(),
        context_tokens=ctx_tokens,
        answer=answer,
        answer_source=source,
        scored_text=scored_text(answer),
        risk=round(min(1.0, max(0.0, risk)), 4),
        level=_level(risk),
        detector=kind,
        detector_how=how,
        signals=signals,
        drivers=drivers,
        tokens=sig.tokens[0],
        token_logprobs=sig.token_logprobs[0],
        detector_info=info,
        warnings=warns,
        timings={"generate_s": round(gen_s, 3), "signals_s": round(sig_s, 3), "total_s": round(time.perf_counter() - t0, 3)},
        model=handle.name,
    )
