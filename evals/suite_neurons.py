"""Neurons suite: how well do explanations predict the units they explain?

A seeded sample of live units (MLP neurons) is drawn from the activation store. Each is
explained from its *training* records and scored by simulate-and-score (OpenAI 2023):
a simulator predicts per-token activations from the explanation text alone on held-out
top + random records, and the score is the Pearson correlation with the true ones.
Every score stands beside its controls:

* **shuffled explanation**: another unit's explanation simulated on this unit's records
  (the explainer tool's own control);
* **random unit**: this unit's explanation simulated on the held-out records of another
  unit from the sample -- an explanation that scores well everywhere says nothing;
* **chance** (0.5) for the delphi-style **detection** (activating vs quiet held-out
  windows) and **fuzzing** (truly active vs randomly highlighted tokens), each as AUROC and
  as balanced accuracy of a yes/no call (:func:`gnothi.evals.metrics.half_max_calls`),
  also computed for the shuffled explanation and the random unit.

Every metric is a mean over units with a bootstrap interval over units (``*_ci_low`` /
``*_ci_high``); ``gnothi eval --seeds N`` adds the interval over seeds. Two offline
explainers are scored on the same units: the **refined** one (the default; see
:mod:`gnothi.tools.explain_refine`) and the **single-pass** one it is measured against.
Modes (clustered activating contexts, each explained) are compared with one explanation.
With an LLM configured (``--llm-base-url``) the LLM explainer is scored the same way beside
them. A **label-corruption sanity check** replaces a growing share of the true
activations by random ones and shows which metrics fall as the labels lose their meaning
(Pearson and AUPRC are expected to; balanced accuracy and recall may not).

Quick tier: 6 units from a small store (built once, 3 layers x 4096 tokens, if the model
has no default store). Full tier: 48 units from the default store (built if missing).
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Callable

import numpy as np

from gnothi.tools.results import Figure

from . import metrics as M
from gnothi.tools import explain
from gnothi.tools import store as st_mod

from .registry import SuiteContext, SuiteResult, SuiteSkipped, suite

QUICK_STORE_TOKENS = 4096
CORRUPTION_FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)


def store_fingerprint(store) -> dict[str, Any]:
    files = getattr(store.meta, "files", {}) or {}
    h = hashlib.sha256(json.dumps(files, sort_keys=True, default=str).encode()).hexdigest()[:16]
    d = store.describe()
    return {"hash": h, "config_key": store.config.key(), "path": d.get("path"), "units": d.get("units"),
            "layers": d.get("layers"), "n_tokens": d.get("n_tokens"), "corpus": d.get("corpus"),
            "corpus_fingerprint": store.config.corpus_fingerprint, "seed": store.config.seed}


def quick_layers(n_layers: int) -> list[int]:
    """Three early-to-middle layers: a quick store only runs the model up to the last."""
    return sorted({max(0, n_layers // 8), n_layers // 4, n_layers // 2})


def get_mlp_store(handle, ctx: SuiteContext, log: Callable[[str], None] | None = None):
    """The default MLP store if it exists; else a small quick-tier store (quick) or the
    default one built now (full). Returns ``(store, note)``."""
    status = st_mod.store_status(handle, "mlp")
    if status.exists and not status.damaged and status.complete:
        return st_mod.open_store(handle, "mlp"), "default store"
    if not ctx.quick:
        st_mod.ensure_default_store(handle, progress=True)
        return st_mod.open_store(handle, "mlp"), "default store (built for this run)"
    from gnothi.tools.config import model_cache_dir

    path = model_cache_dir(handle.name) / "evals" / "store-quick-mlp"
    n_tokens = int(ctx.options.get("store_tokens", QUICK_STORE_TOKENS))
    corpus = ctx.options.get("store_corpus")  # a Corpus or a path; default: the default corpus
    if corpus is not None and not isinstance(corpus, str):
        path = path.with_name(path.name + f"-{corpus.fingerprint()}")
    if n_tokens != QUICK_STORE_TOKENS:  # other sizes sit beside the default one (a build never replaces a finished store)
        path = path.with_name(path.name + f"-{n_tokens}")
    rep = st_mod.build_store(handle, "mlp", corpus, n_tokens=n_tokens, layers=quick_layers(handle.n_layers), path=path,
                             seed=0, progress=True)
    note = f"quick store: layers {quick_layers(handle.n_layers)}, {rep.n_tokens} tokens ({'reused' if rep.seconds < 5 else f'built in {rep.seconds:.0f} s'})"
    return st_mod.ActivationStore(path, verify=False, tokenizer=handle.tokenizer), note


def sample_units(store, n: int, seed: int) -> tuple[list[tuple[int, int]], int]:
    """``n`` distinct live units (max activation > 0), seeded; also how many dead ones were drawn."""
    rng = np.random.default_rng(seed)
    out: list[tuple[int, int]] = []
    dead, seen = 0, set()
    layers = list(store.layers)
    tries = 0
    while len(out) < n and tries < 50 * n:
        tries += 1
        layer = int(layers[int(rng.integers(len(layers)))])
        unit = int(rng.integers(store.n_units(layer)))
        if (layer, unit) in seen:
            continue
        seen.add((layer, unit))
        if float(store.max_activations(layer)[unit]) <= 0:
            dead += 1
            continue
        out.append((layer, unit))
    return out, dead


def _sim_records(simulate, explanation: str, records) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and truths over records, skipping position 0 (BOS), as the explainer does."""
    pred, true = [], []
    for r in records:
        p = list(simulate(explanation, r.tokens))
        if len(p) != len(r.tokens):
            p = [0.0] * len(r.tokens)
        pred.extend(p[1:])
        true.extend(r.activations[1:])
    return np.asarray(pred, dtype=float), np.asarray(true, dtype=float)


def _as_records(recs) -> list[tuple[list[str], list[float]]]:
    return [(r.tokens[1:], r.activations[1:]) for r in recs]


def score_units(store, units: list[tuple[int, int]], ctx: SuiteContext, explainer: Any = "offline", simulator: Any = "offline",
                modes: bool = True, label: str = "offline") -> dict[str, Any]:
    """Explain and score each unit with its controls; returns per-unit rows and pooled numbers.

    Per unit: simulation Pearson, detection and fuzzing (AUROC and balanced accuracy), each
    beside the shuffled explanation (another unit's, simulated on this unit's records) and
    the random unit (this explanation simulated on another sampled unit's records)."""
    sim = explain.offline_simulate if simulator == "offline" else (lambda e, t: explain.llm_simulate(simulator, e, t) or explain.offline_simulate(e, t))
    reports = []
    for layer, unit in units:
        t0 = time.perf_counter()
        rep = explain.explain_unit(store, layer, unit, explainer=explainer, simulator=simulator, modes=modes)
        reports.append((rep, time.perf_counter() - t0))

    def judged(layer: int, unit: int, umax: float):
        split = store.unit_split(layer, unit)
        quiet = [r for r in split.heldout_random if r.max_activation < 0.25 * umax]
        return split, _as_records(split.heldout_top), _as_records(quiet)

    per: list[dict[str, Any]] = []
    for i, ((rep, secs), (layer, unit)) in enumerate(zip(reports, units)):
        umax = rep.stats.max if rep.stats.max > 0 else 1.0
        split, top, quiet = judged(layer, unit, umax)
        ho_top, ho_rand = split.heldout_top, split.heldout_random
        # random-unit control: this explanation on the next sampled unit's held-out records
        ol, ou = units[(i + 1) % len(units)] if len(units) > 1 else (layer, (unit + 1) % store.n_units(layer))
        omax = store.stats(ol, ou).max
        osplit, otop, oquiet = judged(ol, ou, omax if omax > 0 else 1.0)
        p_o, t_o = _sim_records(sim, rep.explanation, osplit.heldout)
        ctrl = rep.score.control_explanation or ""
        none = {"auroc": 0.5, "balanced_accuracy": 0.5}
        det = M.detection_scores(sim, rep.explanation, top, quiet)
        fuz = M.fuzzing_scores(sim, rep.explanation, top, seed=ctx.seed)
        det_s = M.detection_scores(sim, ctrl, top, quiet) if ctrl else none
        fuz_s = M.fuzzing_scores(sim, ctrl, top, seed=ctx.seed) if ctrl else none
        det_r = M.detection_scores(sim, rep.explanation, otop, oquiet)
        fuz_r = M.fuzzing_scores(sim, rep.explanation, otop, seed=ctx.seed)
        # predictions for the label-corruption check
        p_u, t_u = _sim_records(sim, rep.explanation, ho_top + ho_rand)
        lc = M.label_corruption(t_u, p_u, CORRUPTION_FRACTIONS, seed=ctx.seed) if t_u.size > 10 and t_u.max() > 0 else None
        m = rep.modes
        row = {
            "unit": f"{layer}.{unit}", "layer": layer, "explanation": rep.explanation,
            "explainer": rep.explanation_detail.explainer, "cv_pearson": rep.explanation_detail.cv_pearson,
            "pearson": rep.score.pearson, "shuffled": rep.score.shuffled_pearson, "random_unit": M.pearson(p_o, t_o),
            "top_pearson": rep.score.top_pearson, "random_pearson": rep.score.random_pearson,
            "modes_k": m.k if m else None, "modes_union": m.union_pearson if m else None,
            "modes_single": m.single_pearson if m else None, "modes_beat_single": m.modes_beat_single if m else None,
            "max_activation": rep.stats.max, "frequency": rep.stats.frequency, "n_records": rep.score.n_records,
            "label_corruption": lc, "seconds": round(secs, 2), "warnings": rep.warnings,
        }
        for name, d, ds, dr in (("detection", det, det_s, det_r), ("fuzzing", fuz, fuz_s, fuz_r)):
            for k in ("auroc", "balanced_accuracy"):
                row[f"{name}_{k}"], row[f"{name}_{k}_shuffled"], row[f"{name}_{k}_random_unit"] = d[k], ds[k], dr[k]
        per.append(row)
    return {"label": label, "units": per}


def pooled(per: list[dict[str, Any]], key: str) -> float:
    return M.mean([p[key] for p in per if p.get(key) is not None])


HEADLINE = ("pearson", "detection_auroc", "detection_balanced_accuracy", "fuzzing_auroc", "fuzzing_balanced_accuracy")
COLUMNS = ["unit", "explanation", "pearson", "shuffled expl.", "random unit", "top records only", "random records only",
           "detection AUROC", "detection bal. acc.", "fuzzing AUROC", "fuzzing bal. acc.", "modes", "modes union", "max act.", "frequency"]


def summarise(scored: dict[str, Any], seed: int) -> tuple[dict, dict, list[list]]:
    """Metrics (each a mean over units, with a bootstrap interval over units), baselines
    (the shuffled explanation, the random unit, and chance where there is one) and a
    per-unit table (columns :data:`COLUMNS`)."""
    per = scored["units"]
    metrics: dict[str, Any] = {}
    baselines: dict[str, Any] = {}
    for key in HEADLINE:
        own = "pearson" if key == "pearson" else key
        vals = [p[own] for p in per if p.get(own) is not None and np.isfinite(p[own])]
        shuffled = pooled(per, "shuffled" if key == "pearson" else f"{key}_shuffled")
        random_unit = pooled(per, f"{key}_random_unit" if key != "pearson" else "random_unit")
        lo, hi = M.bootstrap_ci(vals, seed=seed)
        metrics[key], metrics[f"{key}_ci_low"], metrics[f"{key}_ci_high"] = M.mean(vals), lo, hi
        base = {"shuffled_explanation": shuffled, "random_unit": random_unit}
        if key != "pearson":
            base["chance"] = 0.5
        baselines[key] = base
        baselines[f"{key}_ci_low"] = baselines[f"{key}_ci_high"] = shuffled  # the interval over units, read against the control's mean
    with_modes = [p for p in per if p["modes_union"] is not None]
    if with_modes:
        metrics["modes_union_pearson"] = pooled(with_modes, "modes_union")
        baselines["modes_union_pearson"] = {"single_explanation": pooled(with_modes, "modes_single")}
        metrics["modes_beat_single_share"] = M.mean([1.0 if p["modes_beat_single"] else 0.0 for p in with_modes])
        baselines["modes_beat_single_share"] = 0.0
    rows = [[p["unit"], p["explanation"], p["pearson"], p["shuffled"], p["random_unit"], p["top_pearson"], p["random_pearson"],
             p["detection_auroc"], p["detection_balanced_accuracy"], p["fuzzing_auroc"], p["fuzzing_balanced_accuracy"],
             p["modes_k"], p["modes_union"], p["max_activation"], p["frequency"]] for p in per]
    return metrics, baselines, rows


def selectivity(store, units: list[tuple[int, int]]) -> tuple[dict[str, float], dict[str, float]]:
    """How selective the store's top contexts are: per unit, the mean peak of its top-k
    windows as a share of its maximum over the corpus, beside the same for the store's
    random windows (the control), averaged over units."""
    top, rand = [], []
    for layer, unit in units:
        mx = store.stats(layer, unit).max
        if mx <= 0:
            continue
        top.append(M.mean([r.max_activation for r in store.top_records(layer, unit)]) / mx)
        rand.append(M.mean([r.max_activation for r in store.random_records(layer, unit)]) / mx)
    return ({"top_context_peak_share": M.mean(top), "n_tokens": float(store.n_tokens)},
            {"top_context_peak_share": M.mean(rand), "n_tokens": float(store.n_tokens)})


EXPLAINERS = (("refined", "offline"), ("single_pass", "single-pass"))  # metric name, explain_unit's explainer


def score_explainers(store, units: list[tuple[int, int]], ctx: SuiteContext, res: SuiteResult, what: str = "Units",
                     modes: bool = True) -> list[tuple[str, dict[str, Any]]]:
    """Score the refined and the single-pass offline explainers (and the LLM one when
    configured) on the same units; metrics, baselines, a table per explainer and one
    comparing them go into ``res``. Returns ``[(name, scored)]``."""
    runs = [(name, score_units(store, units, ctx, kind, "offline", modes=modes and name == "refined", label=name)) for name, kind in EXPLAINERS]
    if ctx.llm is not None:
        llm_sim = ctx.llm if ctx.options.get("llm_simulator") else "offline"
        runs.append(("llm", score_units(store, units, ctx, ctx.llm, llm_sim, modes=False, label="llm")))
    else:
        res.notes.append("LLM explainer: not configured (pass --llm-base-url to score it beside the offline ones).")
    for name, scored in runs:
        m, b, rows = summarise(scored, ctx.seed)
        res.metrics[f"{name}_explainer"] = m
        res.baselines[f"{name}_explainer"] = b
        res.tables.append({"title": f"{what}, {name.replace('_', '-')} explainer (Pearson on held-out top + random records; controls beside)",
                           "columns": COLUMNS, "rows": rows})
    by = dict(runs)
    cols = ["unit"] + [c for name, _ in runs for c in (f"{name} explanation", f"{name} pearson")]
    res.tables.append({"title": f"{what}: the explainers side by side (held-out Pearson)", "columns": cols,
                       "rows": [[rows[0]["unit"]] + [x for r in rows for x in (r["explanation"], r["pearson"])]
                                for rows in zip(*(by[name]["units"] for name, _ in runs))]})
    return runs


def corruption_summary(per: list[dict[str, Any]]) -> tuple[dict, dict, dict, Figure | None]:
    """Mean curves over units, metric at 0% vs 100% corruption, share of units each metric passes."""
    lcs = [p["label_corruption"] for p in per if p.get("label_corruption")]
    if not lcs:
        return {}, {}, {}, None
    names = list(lcs[0]["curves"])
    curves = {n: [M.mean([lc["curves"][n][i] for lc in lcs]) for i in range(len(CORRUPTION_FRACTIONS))] for n in names}
    passes = {n: M.mean([1.0 if lc["passes"][n] else 0.0 for lc in lcs]) for n in names}
    metrics = {n: curves[n][0] for n in names}
    baselines = {n: curves[n][-1] for n in names}  # the same metric on fully corrupted labels
    fig = Figure(kind="line", title="Label-corruption sanity check (mean over units)",
                 data={"x": [f"{int(f * 100)}%" for f in CORRUPTION_FRACTIONS], "series": curves,
                       "xlabel": "share of true activations replaced by random ones", "ylabel": "metric"},
                 caption="A metric that does not fall as the labels lose their meaning cannot separate good explanations from bad ones.")
    return metrics, baselines, passes, fig


@suite("neurons")
def run(ctx: SuiteContext) -> SuiteResult:
    """Neuron explanations: simulate-and-score Pearson, detection, fuzzing, modes, against shuffled and random-unit controls."""
    handle = ctx.handle()
    store, store_note = get_mlp_store(handle, ctx)
    n = int(ctx.options.get("n_units", 6 if ctx.quick else 48))
    units, dead = sample_units(store, n, ctx.seed)
    if not units:
        raise SuiteSkipped("the store has no live units to explain")
    res = SuiteResult(suite="neurons")
    modes = bool(ctx.options.get("modes", True))
    runs = score_explainers(store, units, ctx, res, "Units", modes=modes)
    res.metrics["store"], res.baselines["store"] = selectivity(store, units)
    for name, scored in runs:
        per = scored["units"]
        res.figures.append(Figure(kind="line", title=f"Explanation score per unit ({name.replace('_', '-')} explainer) vs controls",
                                  data={"x": [p["unit"] for p in per],
                                        "series": {"explanation": [p["pearson"] for p in per],
                                                   "shuffled explanation": [p["shuffled"] for p in per],
                                                   "random unit": [p["random_unit"] for p in per]},
                                        "xlabel": "layer.neuron", "ylabel": "Pearson r"}))
        for p in per:
            for w in p["warnings"][:2]:
                res.notes.append(f"{p['unit']} ({name}): {w}")
    lm, lb, passes, fig = corruption_summary(runs[0][1]["units"])
    if lm:
        res.metrics["label_corruption_clean"] = lm
        res.baselines["label_corruption_clean"] = lb
        res.tables.append({"title": "Label-corruption sanity check: share of units where each metric falls as labels are corrupted",
                           "columns": ["metric", "at 0% corruption", "at 100% corruption", "share of units passing"],
                           "rows": [[k, lm[k], lb[k], passes[k]] for k in lm]})
        if fig is not None:
            res.figures.append(fig)
    res.provenance = {"store": store_fingerprint(store), "store_note": store_note, "units": [f"{l}.{u}" for l, u in units],
                      "dead_units_drawn": dead, "seed": ctx.seed, "simulator": "offline",
                      "corruption_fractions": list(CORRUPTION_FRACTIONS)}
    res.notes.insert(0, f"{len(units)} live units sampled with seed {ctx.seed} ({dead} dead units drawn and skipped); {store_note}.")
    return res
