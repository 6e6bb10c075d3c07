"""The probing tool end to end: :func:`run_probe`, and :func:`get_or_train_probe` for tools that need a direction."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Sequence

from ..datasets import LabeledDataset, check_dataset, load_dataset
from ..errors import CacheCorruptError, InputError, check_range
from ..results import provenance
from ..units import parse_layers  # the one layer-list grammar of every command
from .activations import collect_features
from .fitting import _pick_best, probe_features
from .report import ProbeReport
from .saved import SavedProbe, load_probe, save_probes
from .schemas import HOOK_KIND, POSITIONS, ControlKind, Position

if TYPE_CHECKING:
    from ..model import ModelHandle


def _resolve_layers(handle: ModelHandle, layers: Sequence[int] | str | int | None) -> list[int]:
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


def run_probe(
    handle: ModelHandle,
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


def get_or_train_probe(
    handle: ModelHandle, dataset: str | LabeledDataset = "true_false", position: Position = "last", **kw: Any
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


def list_datasets() -> list[dict]:
    """Built-in probing datasets (re-exported from :mod:`gnothi.tools.datasets`)."""
    from ..datasets import list_datasets as _ld

    return _ld()
