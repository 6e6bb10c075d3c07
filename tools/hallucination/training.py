"""Getting a detector: train and evaluate one on the shipped data (:func:`train_and_evaluate`),
keep it in memory, load a saved one (:func:`load_detector`) or train on first use (:func:`get_detector`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .. import facts as F
from .. import hallu_data as D
from ..errors import CacheCorruptError, InputError
from ..stats import auroc
from .cache import dataset_signals
from .detector import HallucinationDetector, detector_dir
from .evaluation import HallucinationEval, _bootstrapauroc, _reliability, _text_control, _transfer
from .linear import fit_linear
from .signals import UNC_NAMES, Signals

if TYPE_CHECKING:
    from ..model import ModelHandle


def train_and_evaluate(
    handle: ModelHandle,
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


def get_detector(handle: ModelHandle, train: bool = True, progress: bool = False) -> tuple[HallucinationDetector | None, str, list[str]]:
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
