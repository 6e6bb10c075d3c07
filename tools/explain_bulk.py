"""Explanations in bulk, and the per-unit cache that the chat and bulk runs share.

:class:`UnitCache` keeps one finished :class:`~gnothi.tools.explain.UnitReport` per unit, in a
folder named by everything that decides the report: the store's data, the explainer (offline,
or the LLM endpoint, model and sampling), the mode options and the explainer's own code and
prompts. A unit asked about again is read back, with no LLM call. A report is cached only
when every LLM call it made was answered (a timeout or an unreachable server leaves offline
fallbacks in it, which a later run should redo).

:func:`explain_units` explains and scores many units (``10:0-1535``) against the store,
offline or with any OpenAI-compatible server, on ``concurrency`` threads, each unit retried
with exponential backoff when the endpoint fails, each finished unit written to the cache
as it finishes (so an interrupted run resumes where it stopped: the same command again),
with a progress bar and a summary in units per minute.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from pydantic import BaseModel, Field

from .config import explanations_dir
from .errors import GnothiError, InputError, LLMError, describe_failure
from .explain import UnitReport, explain_unit
from .files import atomic_write_json, read_json
from .store import STORE_VERSION, ActivationStore
from .units import parse_indices

ALL_CONTEXTS = 1_000_000  # a cached report keeps every top context; a reader slices what it shows


# =========================================================================== unit specs


def parse_unit_spec(spec: str, store: ActivationStore) -> list[tuple[int, int]]:
    """The (layer, unit) pairs a spec names: groups ``LAYERS:UNITS`` separated by spaces or
    ``;``, each side in the grammar of ``--layers`` (``10:0-1535``, ``0-2:5,7``,
    ``-1:all``, ``3:1,2 4:7``). Layers count within the store's layers' model; every unit is checked."""
    groups = [g for g in re.split(r"[;\s]+", (spec or "").strip()) if g]
    fix = "Write units as LAYERS:UNITS, e.g. 10:0-1535, 0-2:5,7 or -1:all (several groups separated by spaces)."
    if not groups:
        raise InputError("No units named.", fix)
    n_layers = max(store.layers) + 1
    out: list[tuple[int, int]] = []
    for g in groups:
        if g.count(":") != 1:
            raise InputError(f"Cannot read the unit group {g!r}.", fix)
        ls, us = g.split(":")
        for layer in parse_indices(ls, n_layers, "layer"):
            store.check_layer(layer)
            what = "neuron" if store.kind == "mlp" else "feature"
            out.extend((layer, u) for u in parse_indices(us, store.n_units(layer), what))
    return list(dict.fromkeys(out))


# =========================================================================== the cache


def _method_fingerprint() -> str:
    """The explainer's code and prompts: a change to either makes old cached reports stale."""
    from gnothi import __version__, prompts

    from . import explain, explain_refine

    h = hashlib.sha256(__version__.encode())
    sources = sorted(Path(str(explain.__file__)).parent.glob("*.py")) + [Path(str(explain_refine.__file__))]
    for src in sources:
        h.update(src.read_bytes())
    for name in ("explain_unit", "simulate_units"):
        h.update(prompts.path(name).read_bytes())
    return h.hexdigest()[:12]


def explainer_identity(llm: Any) -> str | None:
    """``"offline"``, the LLM client's identity, or ``None`` for an anonymous callable (not cached)."""
    if llm is None or llm == "offline":
        return "offline"
    owner = getattr(llm, "__self__", llm)  # a bound ``client.complete`` names its client
    ident = getattr(owner, "identity", None)
    return ident if isinstance(ident, str) else None


class UnitCache:
    """Finished unit reports, one JSON file per unit, keyed by store, explainer and options."""

    def __init__(self, store: ActivationStore, explainer: str, modes: bool, mode_method: str = "auto", root: Path | None = None):
        from .explain import llm_call_budget

        c = store.config
        key = {
            "store": [STORE_VERSION, c.model, c.units_id, c.corpus, c.corpus_fingerprint, c.n_tokens, c.window, c.seed,
                      c.top_k, c.n_quantile, c.n_random, store.n_tokens],
            "explainer": explainer, "budget": llm_call_budget() if explainer != "offline" else None,
            "modes": [bool(modes), mode_method if modes else None], "method": _method_fingerprint(),
        }
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        safe_model = re.sub(r"[^A-Za-z0-9._-]+", "_", c.model)[:60]
        self.dir = (root or explanations_dir()) / safe_model / c.units_id / digest
        self.key = key

    def path(self, layer: int, unit: int) -> Path:
        return self.dir / f"{layer}.{unit}.json"

    def get(self, layer: int, unit: int) -> UnitReport | None:
        d = read_json(self.path(layer, unit))
        if not isinstance(d, dict):
            return None
        try:
            return UnitReport.model_validate(d)
        except Exception:  # a damaged or outdated file is a cache miss; it is rewritten
            return None

    def put(self, report: UnitReport) -> None:
        d = report.model_dump(mode="json")
        d["cached_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        atomic_write_json(self.path(report.layer, report.unit), d, indent=None)
        if not (self.dir / "key.json").exists():
            atomic_write_json(self.dir / "key.json", self.key)

    def done(self) -> set[tuple[int, int]]:
        out = set()
        for p in self.dir.glob("*.json"):
            m = re.fullmatch(r"(\d+)\.(\d+)\.json", p.name)
            if m:
                out.add((int(m.group(1)), int(m.group(2))))
        return out


class _Tracked:
    """An LLM callable that counts its calls and remembers the endpoint failures under it."""

    def __init__(self, llm: Callable[[str], str]):
        self.llm = llm
        self.calls = 0
        self.errors: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.calls += 1
        try:
            return self.llm(prompt)
        except Exception as e:
            self.errors.append(describe_failure(e))
            raise


def cached_explain_unit(store: ActivationStore, layer: int, unit: int, llm: Callable[[str], str] | None = None,
                        simulator: str | Callable[[str], str] | None = None, modes: bool = True, mode_method: str = "auto",
                        n_contexts: int = 10, cache: bool = True) -> UnitReport:
    """:func:`~gnothi.tools.explain.explain_unit` through the per-unit cache: a unit already
    explained the same way is read back (``cached_at`` says when it was written); a new report
    is cached unless one of its LLM calls failed. Offline reports (seconds to recompute), an
    LLM without an identity (a plain function) and a simulator other than the explainer are
    not cached here."""
    sim: str | Callable[[str], str] = simulator if simulator is not None else (llm if llm is not None else "offline")
    ident = explainer_identity(llm) if llm is not None else None
    uc = UnitCache(store, ident, modes, mode_method) if cache and ident is not None and sim is llm else None
    if uc is not None:
        hit = uc.get(layer, unit)
        if hit is not None:
            hit.top_contexts = hit.top_contexts[:n_contexts]
            return hit
    tracked = _Tracked(llm) if llm is not None else None
    rep = explain_unit(store, layer, unit, explainer=tracked or "offline", simulator=tracked if tracked is not None and sim is llm else sim, modes=modes,
                       mode_method=mode_method, n_contexts=ALL_CONTEXTS if uc is not None else n_contexts)
    if uc is not None and not (tracked and tracked.errors):
        uc.put(rep)
    rep.top_contexts = rep.top_contexts[:n_contexts]
    return rep


# =========================================================================== bulk


class BulkResult(BaseModel):
    n_units: int
    explained: int  # explained and scored in this run
    from_cache: int  # already done by an earlier run (resumed)
    failed: list[str] = Field(default_factory=list)  # "layer.unit: why", after every retry
    skipped: int = 0  # not started: the run stopped after too many failures in a row
    concurrency: int
    explainer: str
    seconds: float
    units_per_minute: float | None  # units explained in this run per minute of wall time
    llm_calls: int = 0
    mean_pearson: float | None = None  # over every finished unit (this run's and the cache's)
    mean_shuffled_pearson: float | None = None
    cache_dir: str
    out: str | None = None


def _row(rep: UnitReport, cached: bool) -> dict:
    return {"layer": rep.layer, "unit": rep.unit, "label": rep.label, "explanation": rep.explanation,
            "explainer": rep.explanation_detail.explainer, "simulator": rep.score.simulator, "pearson": rep.score.pearson,
            "shuffled_pearson": rep.score.shuffled_pearson, "n_records": rep.score.n_records, "max_activation": rep.stats.max,
            "frequency": rep.stats.frequency, "seconds": rep.timings.get("total_s"), "from_cache": cached, "warnings": rep.warnings}


def explain_units(store: ActivationStore, units: Sequence[tuple[int, int]], llm: Callable[[str], str] | None = None,
                  concurrency: int = 1, retries: int = 3, backoff_s: float = 2.0, modes: bool = True, mode_method: str = "auto",
                  out: str | Path | None = None, progress: bool = True, max_failures_in_a_row: int | None = None,
                  sleep: Callable[[float], None] = time.sleep) -> BulkResult:
    """Explain and score ``units`` of ``store`` (offline when ``llm`` is None), resuming from the cache.

    ``concurrency`` units run at once (threads; the LLM calls are the slow part). A unit whose
    LLM calls failed is retried up to ``retries`` times after ``backoff_s * 2**attempt``
    seconds (with jitter); after ``max_failures_in_a_row`` units (default ``2 * concurrency +
    2``) failed in a row the run stops and raises :class:`LLMError` saying how far it got; the
    finished units stay in the cache. ``out``: a JSON-lines file with one row per unit, written
    as units finish."""
    if concurrency < 1 or concurrency > 64:
        raise InputError(f"Concurrency {concurrency} is out of range.", "Use 1 to 64 parallel units.")
    if retries < 0:
        raise InputError(f"Retries must be 0 or more, not {retries}.", "Use e.g. --retries 3.")
    ident = explainer_identity(llm)
    if ident is None:
        raise InputError("Bulk explanations need an LLM client with an identity (an LLMClient), or none for offline.",
                         "Pass gnothi.agents.llm.LLMClient(...) or llm=None.")
    cache = UnitCache(store, ident, modes, mode_method)
    units = list(dict.fromkeys(units))
    limit = max_failures_in_a_row if max_failures_in_a_row is not None else 2 * concurrency + 2
    lock = threading.Lock()
    stop = threading.Event()
    state: dict[str, Any] = {"in_a_row": 0, "calls": 0, "explained": 0, "cached": 0, "failed": [], "pearson": [], "shuffled": []}
    owner = getattr(llm, "__self__", llm)
    out_f = None
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        out_f = open(out, "w", encoding="utf-8")
    from tqdm.auto import tqdm

    bar = tqdm(total=len(units), desc=f"Explaining {len(units)} units ({'offline' if llm is None else 'LLM'}, {concurrency} at once)",
               unit="unit", disable=not progress, file=sys.stderr, dynamic_ncols=True)

    def finish(rep: UnitReport | None, cached: bool, failure: str | None) -> None:
        with lock:
            if rep is not None:
                state["cached" if cached else "explained"] += 1
                state["in_a_row"] = 0 if not cached else state["in_a_row"]
                if np.isfinite(rep.score.pearson):
                    state["pearson"].append(rep.score.pearson)
                    state["shuffled"].append(rep.score.shuffled_pearson)
                if out_f is not None:
                    out_f.write(json.dumps(_row(rep, cached), ensure_ascii=False) + "\n")
                    out_f.flush()
            else:
                state["failed"].append(failure)
                state["in_a_row"] += 1
                if state["in_a_row"] >= limit:
                    stop.set()
            bar.update(1)

    def one(lu: tuple[int, int]) -> None:
        layer, unit = lu
        if stop.is_set():
            return
        hit = cache.get(layer, unit)
        if hit is not None:
            finish(hit, True, None)
            return
        why = "not run"
        for attempt in range(retries + 1):
            tracked = _Tracked(llm) if llm is not None else None
            try:
                rep = explain_unit(store, layer, unit, explainer=tracked or "offline", simulator=tracked or "offline", modes=modes,
                                   mode_method=mode_method, n_contexts=ALL_CONTEXTS)
            except Exception as e:  # one unit must not sink the run
                why = describe_failure(e)
                rep = None
            with lock:
                state["calls"] += tracked.calls if tracked else 0
            if rep is not None and not (tracked and tracked.errors):
                cache.put(rep)
                finish(rep, False, None)
                return
            if tracked and tracked.errors:
                why = f"{len(tracked.errors)} LLM call(s) failed ({tracked.errors[-1]})"
            if llm is None or attempt == retries or stop.is_set():
                break  # offline, a failure comes back the same on a retry
            sleep(backoff_s * (2**attempt) * (1 + 0.25 * random.random()))
            reset = getattr(owner, "reset_breaker", None)
            if callable(reset):
                reset()
        finish(None, False, f"{layer}.{unit}: {why}")

    t0 = time.perf_counter()
    try:
        if concurrency == 1:
            for lu in units:
                one(lu)
        else:
            with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="gnothi-explain") as pool:
                list(pool.map(one, units))
    finally:
        bar.close()
        if out_f is not None:
            out_f.close()
    secs = time.perf_counter() - t0
    done = state["explained"] + state["cached"] + len(state["failed"])
    res = BulkResult(
        n_units=len(units), explained=state["explained"], from_cache=state["cached"], failed=state["failed"],
        skipped=len(units) - done, concurrency=concurrency, explainer=ident, seconds=round(secs, 2),
        units_per_minute=round(60 * state["explained"] / secs, 3) if state["explained"] and secs > 0 else None,
        llm_calls=state["calls"], mean_pearson=round(float(np.mean(state["pearson"])), 4) if state["pearson"] else None,
        mean_shuffled_pearson=round(float(np.mean(state["shuffled"])), 4) if state["shuffled"] else None,
        cache_dir=str(cache.dir), out=str(out) if out is not None else None,
    )
    if stop.is_set():
        said = (f"Stopped after {state['in_a_row']} units failed in a row (last: {state['failed'][-1]}); "
                f"{res.explained + res.from_cache} of {res.n_units} units are done and kept.")
        again = "then run the same command again: it resumes from the finished units."
        if llm is not None:
            raise LLMError(said, "Check the LLM server, " + again)
        raise GnothiError(said, "Read the failure (a damaged store, or a unit it cannot read), fix that, " + again)
    return res
