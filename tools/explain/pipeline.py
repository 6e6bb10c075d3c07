"""The whole loop for one unit: explain, simulate, score against a control, find modes."""

from __future__ import annotations

import time
from typing import cast

from ..errors import InputError, describe_failure
from ..store import ActivationRecord, ActivationStore
from ..units import unit_label
from .llm_explainer import llm_explain
from .modes import find_modes
from .offline_explainer import explain_offline
from .schemas import LLM, OFFLINE_EXPLAINERS, Explanation, HeldoutRecord, ScoreResult, UnitReport
from .scoring import score_explanation
from .simulator import _Simulator


def _explain_records(store: ActivationStore, layer: int, unit: int) -> tuple[list[ActivationRecord], list[ActivationRecord]]:
    sp = store.unit_split(layer, unit)
    return sp.explain, sp.explain_random


def _control_unit(store: ActivationStore, layer: int, unit: int, own: Explanation, explainer: str | LLM, seed: int = 0) -> tuple[int, Explanation]:
    """Another unit's explanation by the same explainer (the first unit after ``n/2`` away
    whose explanation differs)."""
    offline = explainer if isinstance(explainer, str) else "offline"
    n = store.n_units(layer)
    if n < 2:
        return unit, Explanation(text="", explainer="none")
    start = (unit + n // 2 + seed) % n
    own_keys = {k for k, _ in own.tokens}
    last: tuple[int, Explanation] | None = None
    for step in range(min(n - 1, 16)):
        c = (start + step) % n
        if c == unit:
            continue
        train, rtrain = _explain_records(store, layer, c)
        st = store.stats(layer, c)
        e = explain_offline(offline, train, rtrain, st.max if st.max > 0 else None)
        last = (c, e)
        if {k for k, _ in e.tokens} != own_keys and e.text != own.text:
            break
    c, e = cast("tuple[int, Explanation]", last)  # set for n >= 2 with seed 0 (start != unit); cast: no runtime check added
    if not isinstance(explainer, str):
        e = llm_explain(explainer, _explain_records(store, layer, c)[0], store.stats(layer, c).max, e, f"unit {layer}.{c}")
    return c, e


def explain_unit(
    store: ActivationStore,
    layer: int,
    unit: int,
    explainer: str | LLM = "offline",
    simulator: str | LLM = "offline",
    modes: bool = True,
    mode_method: str = "auto",
    n_contexts: int = 10,
) -> UnitReport:
    """Explain, simulate and score one unit (neuron or SAE feature) from the store.

    ``explainer``: ``"offline"`` (the refining explainer), ``"single-pass"`` or a callable
    ``llm(prompt) -> str``; ``simulator``: ``"offline"`` or such a callable.
    ``modes``: also cluster the activating contexts and score per-mode explanations.
    """
    t0 = time.perf_counter()
    for name, v, ok in (("explainer", explainer, OFFLINE_EXPLAINERS), ("simulator", simulator, ("offline",))):
        if not (v in ok or callable(v)):
            raise InputError(f"{name} must be {' or '.join(map(repr, ok))} or a callable llm(prompt) -> str, got {v!r}.",
                             f"Pass {name}='offline' or a function.")
    store.check_unit(layer, unit)
    label = unit_label(store.kind, layer, unit)
    st = store.stats(layer, unit)
    split = store.unit_split(layer, unit)
    train, rtrain = split.explain, split.explain_random
    ho_top, ho_rand = split.heldout_top, split.heldout_random
    t_read = time.perf_counter()
    unit_max = st.max if st.max > 0 else None
    off = explain_offline(explainer if isinstance(explainer, str) else "offline", train, rtrain, unit_max)
    expl = off if isinstance(explainer, str) else llm_explain(explainer, train, st.max, off, label)
    t_expl = time.perf_counter()
    sim = _Simulator(simulator)  # one LLM call budget for the score, the control and the modes
    s = score_explanation(expl.text, ho_top, ho_rand, sim)
    cu, ce = _control_unit(store, layer, unit, expl, explainer)
    sc = score_explanation(ce.text, ho_top, ho_rand, sim) if ce.text else {"pearson": 0.0}
    warnings = list(expl.warnings)
    if ce.warnings:
        warnings.extend(w.replace("explanation", "control explanation", 1) for w in ce.warnings)
    score = ScoreResult(
        pearson=round(s["pearson"], 4), shuffled_pearson=round(sc["pearson"], 4),
        top_pearson=None if s["top"] is None else round(s["top"], 4), random_pearson=None if s["random"] is None else round(s["random"], 4),
        control_unit=cu, control_explanation=ce.text, simulator=s["simulator"], n_records=len(ho_top) + len(ho_rand),
        n_tokens=sum(len(r.tokens) - 1 for r in ho_top + ho_rand),
    )
    t_score = time.perf_counter()
    if st.max <= 0:
        warnings.append("This unit never activates above 0 on the store's corpus; its explanation and score say little.")
    mres = None
    if modes:
        try:
            mres = find_modes(train, ho_top, ho_rand, rtrain, st.max if st.max > 0 else 1.0, score.pearson, method=mode_method,
                              explainer=explainer, simulator=sim, label=label)
        except Exception as e:  # clustering must not sink the report
            warnings.append(f"Mode analysis failed ({describe_failure(e)}).")
    warnings.extend(sim.warnings())
    t_modes = time.perf_counter()
    top = store.top_records(layer, unit)[:n_contexts]
    return UnitReport(
        units_id=store.units_id, kind=store.kind, layer=layer, unit=unit, label=label, explanation=expl.text,
        explanation_detail=expl, score=score,
        top_contexts=top, histogram=store.histogram(layer, unit), stats=st, modes=mres,
        heldout=[HeldoutRecord(window=r.window, kind=r.kind, rank=r.rank, tokens=r.tokens, activations=r.activations, simulated=[round(float(x), 4) for x in p])
                 for r, p in zip(ho_top + ho_rand, s["simulated"])],
        explained_windows=sorted(split.explain_windows()),
        store={"path": str(store.path), "n_tokens": store.n_tokens, "config": {"corpus": store.config.corpus, "seed": store.config.seed}},
        warnings=warnings,
        timings={"read_s": round(t_read - t0, 4), "explain_s": round(t_expl - t_read, 4), "score_s": round(t_score - t_expl, 4),
                 "modes_s": round(t_modes - t_score, 4), "total_s": round(time.perf_counter() - t0, 4)},
    )
