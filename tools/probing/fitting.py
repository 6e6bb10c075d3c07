"""Probe fitting: the standardised L2 logistic regression per layer, its controls, and the best layer."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Sequence, cast

import numpy as np

from .controls import control_labels
from .schemas import ControlKind, LayerProbe
from .stats import split_indices, wilson_interval

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from sklearn.pipeline import Pipeline


def fit_classifier(X: np.ndarray, y: np.ndarray, C: float, seed: int) -> Pipeline:
    """The probe's classifier, fitted: standardized features, L2 logistic regression of strength ``C``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=3000, random_state=seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on separable data
        clf.fit(X, y)
    return clf


def _raw_space(clf: Pipeline) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(weight [k, d], bias [k], mean [d], scale [d]) so that score = x @ weight.T + bias."""
    sc, lr = clf[0], clf[-1]
    scale = np.where(sc.scale_ == 0, 1.0, sc.scale_)
    w = lr.coef_ / scale[None, :]
    b = lr.intercept_ - (lr.coef_ * (sc.mean_ / scale)[None, :]).sum(1)
    return w.astype(np.float32), b.astype(np.float32), sc.mean_.astype(np.float32), scale.astype(np.float32)


def probe_features(
    feats: np.ndarray,
    labels: Sequence[int],
    groups: Sequence[str],
    control_keys: Sequence[str],
    layers: Sequence[int],
    C: float = 0.1,
    seed: int = 0,
    test_frac: float = 0.25,
    control: ControlKind = "shuffled",
) -> dict:
    """Fit and score probes on precomputed features ``[len(layers), n, d]``; see :func:`run_probe`."""
    y = np.asarray(labels)
    tr, te, split = split_indices(y, groups, test_frac=test_frac, seed=seed)
    ctrl = {
        "word_type": control_labels(y, control_keys, "word_type", seed),
        "shuffled": control_labels(y, control_keys, "shuffled", seed),
    }
    notes: list[str] = []
    if ctrl["word_type"] is None or len(np.unique(ctrl["word_type"][tr])) < 2:
        ctrl["word_type"] = None
        if control == "word_type":
            notes.append("Too few word types for a word-type control task; used shuffled labels instead.")
            control = "shuffled"
    chance = float(np.bincount(y[te]).max() / len(te))
    rows: list[LayerProbe] = []
    params: dict[int, tuple] = {}
    with _one_blas_thread():
        for li, layer in enumerate(layers):
            row, raw = _probe_layer(feats[li], y, tr, te, ctrl, control, chance, C, seed, int(layer))
            rows.append(row)
            params[int(layer)] = raw
    return {"rows": rows, "params": params, "train": tr, "test": te, "split": split, "chance": chance,
            "control": control, "notes": notes}


def _one_blas_thread() -> AbstractContextManager[Any]:
    """Small fits run ~10x faster with one BLAS thread than with threads fighting for
    shared cores."""
    try:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        import contextlib

        return contextlib.nullcontext()


def _probe_layer(
    X: np.ndarray, y: np.ndarray, tr: np.ndarray, te: np.ndarray, ctrl: dict[str, np.ndarray | None], control: ControlKind,
    chance: float, C: float, seed: int, layer: int,
) -> tuple[LayerProbe, tuple]:
    """One layer: the probe, its held-out accuracy and interval, and the control tasks."""
    clf = fit_classifier(X[tr], y[tr], C, seed)
    acc_k = int((clf.predict(X[te]) == y[te]).sum())
    acc = acc_k / len(te)
    lo, hi = wilson_interval(acc_k, len(te))
    cacc: dict[str, float | None] = {}
    for kind, yc in ctrl.items():
        if yc is None or len(np.unique(yc[tr])) < 2:
            cacc[kind] = None
            continue
        cc = fit_classifier(X[tr], yc[tr], C, seed)
        cacc[kind] = float((cc.predict(X[te]) == yc[te]).mean())
    c_used = cast(float, cacc[control]) if cacc[control] is not None else chance
    row = LayerProbe(
        layer=layer,
        accuracy=acc,
        ci_low=lo,
        ci_high=hi,
        control_accuracy=c_used,
        selectivity=acc - c_used,
        word_type_control_accuracy=cacc["word_type"],
        shuffled_control_accuracy=cacc["shuffled"],
        train_accuracy=float((clf.predict(X[tr]) == y[tr]).mean()),
    )
    return row, _raw_space(clf)


def _pick_best(rows: list[LayerProbe]) -> tuple[int, int, int]:
    # highest held-out accuracy; among ties the earliest layer (where the information is first readable)
    best = max(rows, key=lambda r: (round(r.accuracy, 4), -r.layer))
    best_sel = max(rows, key=lambda r: (round(r.selectivity, 4), round(r.accuracy, 4), -r.layer))
    near = min((r.layer for r in rows if r.accuracy >= best.accuracy - 0.02), default=best.layer)
    return best.layer, best_sel.layer, near
