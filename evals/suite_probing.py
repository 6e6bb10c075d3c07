"""Probing suite: held-out accuracy, control-task accuracy and selectivity per layer per dataset.

Every accuracy stands beside two baselines the probe must beat: the majority-class rate
of the test split (chance) and the control task (Hewitt & Liang: each word type gets a
random label; a probe that does as well there is memorising words, not reading a
feature). Selectivity = accuracy - control accuracy, with baseline 0. A shuffled-label
probe (labels permuted across examples) is reported too: it should sit at chance.

Quick tier: two datasets, six layers, 160 examples each. Full tier: every built-in
dataset, every layer, 400 examples.
"""

from __future__ import annotations

import time

from gnothi.tools.results import Figure

from gnothi.tools import probing

from .registry import SuiteContext, SuiteResult, SuiteSkipped, suite

QUICK_DATASETS = ["sentiment", "true_false"]


def _layers(n_layers: int, quick: bool) -> list[int] | None:
    if not quick:
        return None
    k = 6
    return sorted({round(i * (n_layers - 1) / (k - 1)) for i in range(k)})


@suite("probing")
def run(ctx: SuiteContext) -> SuiteResult:
    """Probe accuracy, control task and selectivity per layer for each labelled dataset."""
    handle = ctx.handle()
    opts = ctx.options
    all_names = [d["name"] for d in probing.list_datasets()]
    names = opts.get("datasets")
    if isinstance(names, str):
        names = [s.strip() for s in names.split(",") if s.strip()]
    if not names:
        names = [d for d in QUICK_DATASETS if d in all_names] if ctx.quick else all_names
    if not names:
        raise SuiteSkipped("no probing datasets available")
    n = int(opts.get("probe_n", 100 if ctx.quick else 400))
    layers = _layers(handle.n_layers, ctx.quick)
    res = SuiteResult(suite="probing")
    rows, summary_rows = [], []
    acc_series: dict[str, list[float]] = {}
    sel_series: dict[str, list[float]] = {}
    xs: list[int] = []
    for ds in names:
        t0 = time.perf_counter()
        rep = probing.run_probe(handle, ds, layers=layers, n=n, seed=ctx.seed, save=False)
        secs = time.perf_counter() - t0
        best = rep.layer(rep.best_layer)
        shuffled = [lp.shuffled_control_accuracy for lp in rep.layers if lp.shuffled_control_accuracy is not None]
        res.metrics[ds] = {
            "best_accuracy": best.accuracy,
            "control_accuracy_at_best": best.control_accuracy,
            "selectivity_at_best": best.selectivity,
            "best_selectivity": rep.best_selectivity,
            "max_shuffled_label_accuracy": max(shuffled) if shuffled else None,
        }
        res.baselines[ds] = {
            "best_accuracy": rep.chance,
            "control_accuracy_at_best": rep.chance,  # the control should sit near chance
            "selectivity_at_best": 0.0,
            "best_selectivity": 0.0,
            "max_shuffled_label_accuracy": rep.chance,
        }
        ci_above = best.ci_low > rep.chance
        summary_rows.append([ds, rep.best_layer, best.accuracy, f"{best.ci_low:.3f}-{best.ci_high:.3f}", rep.chance,
                             best.control_accuracy, best.selectivity, rep.best_selectivity_layer, rep.best_selectivity,
                             ci_above, rep.n_test, round(secs, 1)])
        for lp in rep.layers:
            rows.append([ds, lp.layer, lp.accuracy, lp.control_accuracy, lp.word_type_control_accuracy, lp.shuffled_control_accuracy,
                         lp.selectivity, rep.chance])
        xs = [lp.layer for lp in rep.layers]
        acc_series[ds] = [lp.accuracy for lp in rep.layers]
        sel_series[ds] = [lp.selectivity for lp in rep.layers]
        res.figures.append(rep.figure())
        for w in rep.warnings:
            res.notes.append(f"{ds}: {w}")
        res.provenance[ds] = {"selectivity_control": rep.control, "n_examples": rep.n_examples, "n_test": rep.n_test, "split": rep.split, "control": rep.control,
                              "C": rep.C, "position": rep.position, "dataset_source": rep.dataset_source, "seconds": round(secs, 1)}
    res.tables.append({
        "title": "Best layer per dataset (accuracy beside chance and the control task)",
        "columns": ["dataset", "best layer", "accuracy", "95% CI", "chance", "control acc.", "selectivity",
                    "most selective layer", "its selectivity", "CI above chance", "test examples", "seconds"],
        "rows": summary_rows,
    })
    res.tables.append({
        "title": "Per layer",
        "columns": ["dataset", "layer", "accuracy", "control used for selectivity", "word-type control", "shuffled-label control",
                    "selectivity", "chance"],
        "rows": rows,
    })
    if len(names) > 1:
        res.figures.insert(0, Figure(kind="line", title="Selectivity by layer, all datasets",
                                     data={"x": xs, "series": sel_series, "xlabel": "layer", "ylabel": "accuracy - control accuracy"},
                                     caption="Baseline: 0 (the probe does no better on the real labels than on the control task)."))
    res.provenance.update({"layers": layers or "all", "n_per_dataset": n, "seed": ctx.seed})
    return res
