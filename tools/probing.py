"""Linear probes per layer: what does each layer of the residual stream know?

For a labelled dataset (see :mod:`gnothi.tools.datasets`), record the residual stream
after every requested layer (``blocks.{L}.hook_resid_post``) at one token position (the
last token, or the mean over the text's tokens without BOS), fit a logistic-regression
probe per layer on a training split and measure it on held-out examples::

    from gnothi.tools.model import get_handle
    from gnothi.tools.probing import run_probe
    rep = run_probe(get_handle(), "true_false")          # all layers, last token
    rep.best_layer, rep.layers[rep.best_layer].accuracy
    rep.to_tool_result()                                  # summary, figure, evidence

Method, and why:

* **Split by group.** Datasets mark near-duplicates with a ``group`` (the same fact said
  true and false; the same sentiment word in several templates). Train and test never
  share a group, so held-out accuracy measures generalisation, not template recall.
* **Probe.** Standardise each feature on the training split, then L2-regularised
  logistic regression (``C``, default 0.1). Accuracy on the test split with a 95% Wilson
  interval.
* **Control tasks.** *Shuffled labels* (labels permuted across examples, same split,
  same probe): held-out accuracy near chance says the probe cannot fit noise that
  generalises; ``selectivity = accuracy - control_accuracy`` uses it by default.
  *Word-type control* (Hewitt & Liang 2019, "Designing and Interpreting Probes with
  Control Tasks"): every word type (the dataset's ``control_key``, e.g. the last word)
  gets a random label with the class frequencies, and the same probe is fit to those.
  Its accuracy is how far this probe can go by memorising word identity: when it is as
  high as the real accuracy on a task that word identity could solve, the probe's
  success says little about the representation. Both are always measured;
  ``control="word_type"`` makes selectivity subtract the word-type one. (On sentence
  tasks with a grouped split, where word identity carries no label, e.g. a question and
  its statement end in the same word, the word-type control can reach 100% while telling
  nothing about the real task; hence the shuffled default.)
* **Saved directions.** Each layer's probe is saved in raw activation space
  (``score = act @ weight.T + bias``), with the standardiser's mean and scale, as
  safetensors + JSON under ``model_cache_dir(model)/probes/<dataset>/``;
  :func:`load_probe` reads it back (the hallucination detector uses it).
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch
from pydantic import BaseModel, Field

from .config import model_cache_dir
from .datasets import LabeledDataset, check_dataset, load_dataset
from .files import sha256_file
from .errors import CacheCorruptError, InputError, OutOfRangeError, check_range
from .results import Figure, ToolResult, provenance
from .units import parse_layers  # the one layer-list grammar of every command

Position = Literal["last", "mean"]
ControlKind = Literal["word_type", "shuffled"]
POSITIONS = ("last", "mean")
HOOK_KIND = "resid_post"
FORMAT_VERSION = 1


class ProbeArgs(BaseModel):
    """Validated arguments of :func:`run_probe` (for planners)."""

    dataset: str = Field(description="built-in dataset name (see list_datasets) or a .csv/.jsonl file path")
    layers: list[int] | None = Field(default=None, description="layers to probe; all by default")
    position: Position = Field(default="last", description="token position: last token, or mean over tokens")
    n: int = Field(default=400, ge=20, le=20000, description="examples from a built-in dataset")
    control: ControlKind = "shuffled"
    seed: int = 0


class LayerProbe(BaseModel):
    layer: int
    accuracy: float  # held-out
    ci_low: float  # 95% Wilson interval of the held-out accuracy
    ci_high: float
    control_accuracy: float  # held-out accuracy on the control task used for selectivity
    selectivity: float  # accuracy - control_accuracy
    word_type_control_accuracy: float | None = None
    shuffled_control_accuracy: float | None = None
    train_accuracy: float


class ProbeReport(BaseModel):
    """Everything one probing run measured (JSON-serializable)."""

    dataset: str
    description: str
    dataset_source: str
    model: str
    hook: str  # e.g. blocks.{L}.hook_resid_post
    position: Position
    label_names: list[str]
    class_counts: dict[str, int]
    n_examples: int
    n_train: int
    n_test: int
    split: Literal["grouped", "stratified"]
    n_groups: int
    control: ControlKind
    C: float
    seed: int
    chance: float  # majority-class accuracy on the test split
    layers: list[LayerProbe]
    best_layer: int  # highest held-out accuracy; ties go to the earliest layer
    best_accuracy: float
    best_selectivity: float
    best_selectivity_layer: int
    first_layer_near_best: int  # first layer within 2 points of the best accuracy
    saved_to: str | None = None
    examples: list[dict] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    provenance: dict = Field(default_factory=dict)

    def layer(self, layer: int) -> LayerProbe:
        for lp in self.layers:
            if lp.layer == layer:
                return lp
        raise OutOfRangeError(f"Layer {layer} was not probed (probed: {[l.layer for l in self.layers]}).",
                              "Run the probe with that layer included.")

    def figure(self) -> Figure:
        xs = [lp.layer for lp in self.layers]
        return Figure(
            kind="line",
            title=f"Probe accuracy by layer: {self.dataset} ({self.position} token, {self.model})",
            data={
                "x": xs,
                "series": {
                    "held-out accuracy": [lp.accuracy for lp in self.layers],
                    f"control ({self.control.replace('_', ' ')})": [lp.control_accuracy for lp in self.layers],
                    "selectivity": [lp.selectivity for lp in self.layers],
                    "chance": [self.chance for _ in self.layers],
                },
                "band": {"held-out accuracy": [[lp.ci_low, lp.ci_high] for lp in self.layers]},
                "xlabel": "layer (residual stream after the block)",
                "ylabel": "accuracy",
            },
            caption=f"{self.n_test} held-out examples ({self.split} split); band: 95% Wilson interval. "
            f"Selectivity = accuracy - control accuracy.",
        )

    def to_tool_result(self) -> ToolResult:
        b = self.layer(self.best_layer)
        pos = "last token" if self.position == "last" else "mean over tokens"
        classes = " vs ".join(self.label_names)
        if b.ci_low <= self.chance:
            summary = (
                f"No layer separates {classes} ({self.dataset}) reliably above chance: the best, layer "
                f"{self.best_layer}, reaches {b.accuracy:.1%} held-out accuracy (95% CI {b.ci_low:.1%}-{b.ci_high:.1%}, "
                f"chance {self.chance:.1%}; {pos}, {self.n_test} test examples)."
            )
        else:
            summary = (
                f"A linear probe separates {classes} ({self.dataset}) best at layer {self.best_layer}: "
                f"{b.accuracy:.1%} held-out accuracy (95% CI {b.ci_low:.1%}-{b.ci_high:.1%}, chance {self.chance:.1%}), "
                f"control {b.control_accuracy:.1%}, selectivity {b.selectivity:+.1%}; within 2 points of the best "
                f"from layer {self.first_layer_near_best} on ({pos}, {self.n_test} test examples)."
            )
        evidence = [
            {"layer": lp.layer, "accuracy": round(lp.accuracy, 4), "ci": [round(lp.ci_low, 4), round(lp.ci_high, 4)],
             "control_accuracy": round(lp.control_accuracy, 4), "selectivity": round(lp.selectivity, 4)}
            for lp in self.layers
        ]
        return ToolResult(
            tool="probe",
            summary=summary,
            headline={
                "best_layer": self.best_layer,
                "best_accuracy": round(b.accuracy, 4),
                "ci": [round(b.ci_low, 4), round(b.ci_high, 4)],
                "control_accuracy": round(b.control_accuracy, 4),
                "selectivity": round(b.selectivity, 4),
                "chance": round(self.chance, 4),
                "first_layer_near_best": self.first_layer_near_best,
                "best_selectivity_layer": self.best_selectivity_layer,
                "n_test": self.n_test,
            },
            evidence=evidence + [{"example": e} for e in self.examples],
            figures=[self.figure()],
            provenance=self.provenance,
            timings=self.timings,
            warnings=self.warnings,
            data=self.model_dump(mode="json"),
        )


# ============================================================================ statistics


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for ``k`` successes in ``n`` trials."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def split_indices(
    labels: Sequence[int] | np.ndarray, groups: Sequence[str], test_frac: float = 0.25, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, str]:
    """Train/test indices. Grouped (no group on both sides) and stratified when the groups
    allow it, else a plain stratified split. Returns ``(train, test, "grouped"|"stratified")``."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedShuffleSplit

    y = np.asarray(labels)
    g = np.asarray([str(x) for x in groups])
    classes = np.unique(y)
    k = max(2, int(round(1 / test_frac)))
    if len(np.unique(g)) >= 2 * k:
        try:
            sgk = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tr, te = next(iter(sgk.split(np.zeros(len(y)), y, g)))
            if all((y[tr] == c).sum() >= 2 and (y[te] == c).sum() >= 1 for c in classes):
                return tr, te, "grouped"
        except ValueError:
            pass
    sss = StratifiedShuffleSplit(n_splits=1, test_size=test_frac, random_state=seed)
    tr, te = next(iter(sss.split(np.zeros(len(y)), y)))
    return tr, te, "stratified"


def control_labels(
    labels: Sequence[int], keys: Sequence[str], kind: ControlKind = "word_type", seed: int = 0
) -> np.ndarray | None:
    """Control-task labels: a random label per word type (``keys``) drawn with the class
    frequencies, or the labels shuffled across examples. None if no two-class draw exists."""
    y = np.asarray(labels)
    rng = np.random.default_rng(seed + 7919)
    classes, counts = np.unique(y, return_counts=True)
    if kind == "shuffled":
        return rng.permutation(y)
    uniq = sorted(set(keys))
    if len(uniq) < 2:
        return None
    p = counts / counts.sum()
    for _ in range(50):
        assign = dict(zip(uniq, rng.choice(classes, size=len(uniq), p=p)))
        out = np.asarray([assign[k] for k in keys])
        if len(np.unique(out)) >= 2:
            return out
    return None


# ============================================================================ activations


def _token_lengths(handle, texts: Sequence[str]) -> list[int]:
    bos = 1 if handle.bos_token_id is not None else 0
    return [len(handle.tokenizer(t, add_special_tokens=False)["input_ids"]) + bos for t in texts]


def collect_features(
    handle,
    texts: Sequence[str],
    layers: Sequence[int],
    position: Position = "last",
    batch_size: int = 32,
    progress: bool = False,
    kind: str = HOOK_KIND,
) -> np.ndarray:
    """Residual activations ``[len(layers), len(texts), d_model]`` (float32 numpy).

    One ``run_with_cache`` per batch records every requested layer at once; the forward
    pass stops after the last of them. Texts are batched by length to limit padding.
    ``position``: ``"last"`` = the text's last token; ``"mean"`` = the mean over its tokens,
    BOS excluded (BOS's residual is large and the same for every text).
    """
    if position not in POSITIONS:
        raise InputError(f"Unknown token position {position!r}.", f"Use one of: {', '.join(POSITIONS)}.")
    if not texts:
        raise InputError("No texts to probe.", "Give a dataset with examples.")
    names = [handle.hook_name(kind, l) for l in layers]
    lengths = _token_lengths(handle, texts)
    has_bos = handle.bos_token_id is not None
    order = np.argsort(lengths, kind="stable")
    out = np.zeros((len(layers), len(texts), handle.d_model), dtype=np.float32)
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    it = batches
    if progress:
        try:
            from tqdm import tqdm

            it = tqdm(batches, desc="activations", unit="batch", file=sys.stderr, leave=False)
        except ImportError:  # pragma: no cover
            pass
    for idx in it:
        toks = handle.to_tokens([texts[i] for i in idx])
        _, cache = handle.run_with_cache(toks, names)
        lens = torch.tensor([lengths[i] for i in idx])
        for li, name in enumerate(names):
            act = cache[name].float().cpu()  # [b, pos, d]
            if position == "last":
                feats = act[torch.arange(len(idx)), lens - 1]
            else:
                pos = torch.arange(act.shape[1])[None, :]
                start = 1 if has_bos else 0
                mask = (pos < lens[:, None]) & (pos >= start)
                # a text that is only BOS: fall back to the BOS position
                mask[mask.sum(1) == 0, 0] = True
                m = mask.float().unsqueeze(-1)
                feats = (act * m).sum(1) / m.sum(1)
            out[li, idx] = feats.numpy()
    return out


# ============================================================================ fitting


def fit_classifier(X: np.ndarray, y: np.ndarray, C: float, seed: int):
    """The probe's classifier, fitted: standardized features, L2 logistic regression of strength ``C``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=3000, random_state=seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on separable data
        clf.fit(X, y)
    return clf


def _raw_space(clf) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
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
    notes = []
    if ctrl["word_type"] is None or len(np.unique(ctrl["word_type"][tr])) < 2:
        ctrl["word_type"] = None
        if control == "word_type":
            notes.append("Too few word types for a word-type control task; used shuffled labels instead.")
            control = "shuffled"
    chance = float(np.bincount(y[te]).max() / len(te))
    rows, params = [], {}
    with _one_blas_thread():
        for li, layer in enumerate(layers):
            row, raw = _probe_layer(feats[li], y, tr, te, ctrl, control, chance, C, seed, int(layer))
            rows.append(row)
            params[int(layer)] = raw
    return {"rows": rows, "params": params, "train": tr, "test": te, "split": split, "chance": chance,
            "control": control, "notes": notes}


def _one_blas_thread():
    """Small fits run ~10x faster with one BLAS thread than with threads fighting for
    shared cores."""
    try:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        import contextlib

        return contextlib.nullcontext()


def _probe_layer(X, y, tr, te, ctrl, control, chance, C, seed, layer) -> tuple[LayerProbe, tuple]:
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
    c_used = cacc[control] if cacc[control] is not None else chance
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


def _resolve_layers(handle, layers) -> list[int]:
    if layers is None or (isinstance(layers, str) and layers.strip().lower() in ("", "all")):
        return list(range(handle.n_layers))
    if isinstance(layers, int):
        layers = [layers]
    if isinstance(layers, str):
        layers = parse_layers(layers, handle.n_layers)
    out = []
    for l in layers:
        if isinstance(l, int) and not isinstance(l, bool) and l < 0:
            l = handle.n_layers + l
        check_range("layer", l, handle.n_layers)
        out.append(int(l))
    out = sorted(set(out))
    if not out:
        raise InputError("No layers to probe.", f"Give layers from 0 to {handle.n_layers - 1}, or leave out for all.")
    return out


# ============================================================================ the tool


def run_probe(
    handle,
    dataset: str | LabeledDataset,
    layers: Sequence[int] | str | None = None,
    position: Position = "last",
    n: int = 400,
    C: float = 0.1,
    seed: int = 0,
    test_frac: float = 0.25,
    control: ControlKind = "shuffled",
    batch_size: int = 32,
    save: bool = True,
    progress: bool = False,
) -> ProbeReport:
    """Probe the residual stream after each layer for the labels of ``dataset``.

    ``dataset``: a built-in name (:func:`list_datasets`), a ``.csv``/``.jsonl`` path, or a
    :class:`LabeledDataset`. ``layers``: all by default. ``position``: ``"last"`` or
    ``"mean"``. ``control``: which control task selectivity subtracts (both are measured).
    With ``save`` the probes go to ``model_cache_dir(model)/probes/<dataset>/``.
    """
    t0 = time.perf_counter()
    if position not in POSITIONS:
        raise InputError(f"Unknown token position {position!r}.", f"Use one of: {', '.join(POSITIONS)}.")
    if control not in ("word_type", "shuffled"):
        raise InputError(f"Unknown control task {control!r}.", "Use word_type or shuffled.")
    if not (isinstance(C, (int, float)) and C > 0):
        raise InputError(f"Regularisation C must be a positive number, got {C!r}.", "Use e.g. C=0.1 (smaller = stronger L2).")
    if not 0.05 <= test_frac <= 0.5:
        raise InputError(f"test_frac={test_frac} is outside 0.05-0.5.", "Use e.g. 0.25.")
    ds = dataset if isinstance(dataset, LabeledDataset) else load_dataset(dataset, n=n, seed=seed)
    check_dataset(ds)
    lay = _resolve_layers(handle, layers)
    texts, labels = ds.texts, ds.labels
    t1 = time.perf_counter()
    feats = collect_features(handle, texts, lay, position=position, batch_size=batch_size, progress=progress)
    t2 = time.perf_counter()
    res = probe_features(feats, labels, [e.group for e in ds.examples], [e.control_key for e in ds.examples], lay,
                         C=C, seed=seed, test_frac=test_frac, control=control)
    t3 = time.perf_counter()
    rows = res["rows"]
    best, best_sel, near = _pick_best(rows)
    warns = list(res["notes"])
    if res["split"] == "stratified" and len({e.group for e in ds.examples}) < len(ds.examples):
        warns.append("Too few groups for a grouped split; near-duplicate examples may sit on both sides of the split.")
    n_test = len(res["test"])
    if n_test < 50:
        warns.append(f"Only {n_test} held-out examples: the confidence intervals are wide.")
    if max(r.train_accuracy for r in rows) - max(r.accuracy for r in rows) > 0.25:
        warns.append("Training accuracy far exceeds held-out accuracy: the probe overfits; try more examples or a smaller C.")
    rep = ProbeReport(
        dataset=ds.name,
        description=ds.description,
        dataset_source=ds.source,
        model=handle.name,
        hook=f"blocks.{{L}}.hook_{HOOK_KIND}",
        position=position,
        label_names=ds.label_names,
        class_counts=ds.class_counts(),
        n_examples=len(texts),
        n_train=len(res["train"]),
        n_test=n_test,
        split=res["split"],
        n_groups=len({e.group for e in ds.examples}),
        control=res["control"],
        C=float(C),
        seed=seed,
        chance=res["chance"],
        layers=rows,
        best_layer=best,
        best_accuracy=next(r.accuracy for r in rows if r.layer == best),
        best_selectivity=next(r.selectivity for r in rows if r.layer == best_sel),
        best_selectivity_layer=best_sel,
        first_layer_near_best=near,
        examples=[{"text": e.text, "label": ds.label_names[e.label]} for e in ds.examples[:4]],
        warnings=warns,
        provenance=provenance(handle, hook=f"blocks.{{L}}.hook_{HOOK_KIND}", dataset=ds.name, dataset_source=ds.source,
                              position=position, seed=seed, C=float(C), n_examples=len(texts)),
    )
    if save:
        t4 = time.perf_counter()
        rep.saved_to = str(save_probes(handle.name, rep, res["params"]))
        rep.timings["save_s"] = round(time.perf_counter() - t4, 3)
    rep.timings.update({"load_dataset_s": round(t1 - t0, 3), "activations_s": round(t2 - t1, 3),
                        "fit_s": round(t3 - t2, 3), "total_s": round(time.perf_counter() - t0, 3)})
    return rep


# ============================================================================ saving and loading


def probes_dir(model_name: str, dataset: str) -> Path:
    from .datasets import _safe_name

    return model_cache_dir(model_name) / "probes" / _safe_name(dataset)




def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent))
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def save_probes(model_name: str, report: ProbeReport, params: dict[int, tuple]) -> Path:
    """Write ``probe_<position>.safetensors`` + ``probe_<position>.json``; returns the folder."""
    from safetensors.numpy import save_file

    d = probes_dir(model_name, report.dataset)
    st = d / f"probe_{report.position}.safetensors"
    meta = d / f"probe_{report.position}.json"
    tensors = {}
    for layer, (w, b, mean, scale) in params.items():
        tensors[f"layer{layer}.weight"] = np.ascontiguousarray(w)
        tensors[f"layer{layer}.bias"] = np.ascontiguousarray(b)
        tensors[f"layer{layer}.mean"] = np.ascontiguousarray(mean)
        tensors[f"layer{layer}.scale"] = np.ascontiguousarray(scale)
    _atomic_write(st, lambda p: save_file(tensors, p, metadata={"format": f"gnothi-probe-{FORMAT_VERSION}"}))
    info = {
        "format_version": FORMAT_VERSION,
        "model": model_name,
        "dataset": report.dataset,
        "dataset_source": report.dataset_source,
        "hook": report.hook,
        "position": report.position,
        "label_names": report.label_names,
        "layers": [r.layer for r in report.layers],
        "best_layer": report.best_layer,
        "accuracy": {str(r.layer): r.accuracy for r in report.layers},
        "selectivity": {str(r.layer): r.selectivity for r in report.layers},
        "n_train": report.n_train,
        "n_test": report.n_test,
        "C": report.C,
        "seed": report.seed,
        "weights_file": st.name,
        "weights_sha256": sha256_file(st),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _atomic_write(meta, lambda p: Path(p).write_text(json.dumps(info, indent=1)))
    return d


@dataclass
class SavedProbe:
    """Probes read back from disk: per layer, ``score = act @ weight.T + bias``.

    For two classes ``weight`` is ``[1, d_model]`` and the score is the logit of
    ``label_names[1]`` (e.g. "true"). Activations are the residual stream after the
    layer at ``position`` (use :func:`collect_features`, or :meth:`scores_for_texts`).
    """

    info: dict
    weight: dict[int, np.ndarray] = field(default_factory=dict)
    bias: dict[int, np.ndarray] = field(default_factory=dict)
    mean: dict[int, np.ndarray] = field(default_factory=dict)
    scale: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def layers(self) -> list[int]:
        return sorted(self.weight)

    @property
    def best_layer(self) -> int:
        return int(self.info["best_layer"])

    @property
    def label_names(self) -> list[str]:
        return list(self.info["label_names"])

    @property
    def position(self) -> str:
        return self.info["position"]

    def _check(self, layer: int) -> int:
        if layer not in self.weight:
            raise OutOfRangeError(f"No saved probe for layer {layer} (saved: {self.layers}).",
                                  f"Use one of {self.layers}, or re-run the probe on that layer.")
        return layer

    def direction(self, layer: int | None = None) -> np.ndarray:
        """Unit vector in the residual stream pointing toward ``label_names[1]`` (two classes)."""
        layer = self._check(self.best_layer if layer is None else layer)
        w = self.weight[layer]
        v = w[0] if w.shape[0] == 1 else w[-1] - w[0]
        return (v / (np.linalg.norm(v) + 1e-12)).astype(np.float32)

    def decision(self, acts, layer: int | None = None) -> np.ndarray:
        """Scores ``[n]`` (two classes: logit of label 1) or ``[n, k]`` for activations ``[n, d]``."""
        layer = self._check(self.best_layer if layer is None else layer)
        a = acts.detach().float().cpu().numpy() if isinstance(acts, torch.Tensor) else np.asarray(acts, dtype=np.float32)
        s = a @ self.weight[layer].T + self.bias[layer]
        return s[:, 0] if s.shape[1] == 1 else s

    def predict_proba(self, acts, layer: int | None = None) -> np.ndarray:
        """Class probabilities ``[n, k]``."""
        s = self.decision(acts, layer)
        if s.ndim == 1:
            p1 = 1 / (1 + np.exp(-s))
            return np.stack([1 - p1, p1], 1)
        e = np.exp(s - s.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def scores_for_texts(self, handle, texts: Sequence[str], layer: int | None = None) -> np.ndarray:
        """P(``label_names[1]``) (two classes) or ``[n, k]`` probabilities for raw texts."""
        layer = self._check(self.best_layer if layer is None else layer)
        feats = collect_features(handle, list(texts), [layer], position=self.position)[0]
        p = self.predict_proba(feats, layer)
        return p[:, 1] if p.shape[1] == 2 else p


def load_probe(model_name: str, dataset: str, position: Position = "last") -> SavedProbe:
    """Read probes saved by :func:`run_probe` for ``model_name`` and ``dataset``."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    d = probes_dir(model_name, dataset)
    meta = d / f"probe_{position}.json"
    if not meta.exists():
        raise InputError(
            f"No saved {position}-token probe for dataset {dataset!r} on {model_name}.",
            f"Run `gnothi probe --dataset {dataset} --position {position}` first.",
        )
    try:
        info = json.loads(meta.read_text())
        st = d / info["weights_file"]
        if sha256_file(st) != info["weights_sha256"]:
            raise ValueError("checksum mismatch")
        tensors = load_file(str(st))
    except (OSError, ValueError, KeyError, SafetensorError) as e:
        raise CacheCorruptError(
            f"The saved probe in {d} is damaged ({type(e).__name__}: {e}).",
            f"Delete {d} and run `gnothi probe --dataset {dataset}` again.",
        ) from None
    sp = SavedProbe(info=info)
    for key, arr in tensors.items():
        lname, part = key.split(".", 1)
        layer = int(lname[len("layer"):])
        getattr(sp, part)[layer] = arr
    return sp


def get_or_train_probe(
    handle, dataset: str | LabeledDataset = "true_false", position: Position = "last", **kw
) -> SavedProbe:
    """The saved probe for ``handle``'s model and ``dataset`` if there is one (and it is not
    damaged), else train it with :func:`run_probe` (all layers unless ``layers=`` is given)
    and save it first. For tools that need a direction, e.g. a truth direction."""
    if isinstance(dataset, str):
        try:  # a saved probe by the name it was saved under
            return load_probe(handle.name, dataset, position)
        except (InputError, CacheCorruptError):
            pass
    ds = dataset if isinstance(dataset, LabeledDataset) else load_dataset(dataset, n=kw.get("n", 400), seed=kw.get("seed", 0))
    try:
        return load_probe(handle.name, ds.name, position)
    except (InputError, CacheCorruptError):
        pass
    kw.pop("n", None)
    rep = run_probe(handle, ds, position=position, save=True, **kw)
    return load_probe(handle.name, rep.dataset, position)


def list_saved_probes(model_name: str) -> list[dict]:
    """Saved probes for a model: dataset, position, layers, best layer and its accuracy."""
    root = model_cache_dir(model_name) / "probes"
    out = []
    if not root.exists():
        return out
    for meta in sorted(root.glob("*/probe_*.json")):
        try:
            info = json.loads(meta.read_text())
            out.append({"dataset": info["dataset"], "position": info["position"], "layers": info["layers"],
                        "best_layer": info["best_layer"], "accuracy": info["accuracy"].get(str(info["best_layer"])),
                        "path": str(meta.parent)})
        except (OSError, ValueError, KeyError):
            out.append({"dataset": meta.parent.name, "position": None, "damaged": True, "path": str(meta.parent)})
    return out


def list_datasets() -> list[dict]:
    """Built-in probing datasets (re-exported from :mod:`gnothi.tools.datasets`)."""
    from .datasets import list_datasets as _ld

    return _ld()
