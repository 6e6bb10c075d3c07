"""Hallucination suite: retrain the detector and report held-out AUROC per signal and combined.

The data are the model's own answers to the project's fact table (checked automatically)
plus questions about fabricated subjects, split by entity. Every AUROC stands beside its
baselines: chance (0.5) and perplexity alone (the usual uncertainty baseline, 0.51-0.68
in the literature). Also reported: calibration (ECE, Brier, reliability diagram) and
transfer between fact families (train on four, test on the fifth), and a model-free
text-only control (a classifier of the question's text alone: MiniLM embedding, surface
features, character n-grams; the strongest is reported) on all held-out answers and on real
subjects only, where made-up names cannot give the answer away.

Quick tier: 14 real + 6 fabricated questions per family (100; the same ones the
integration test asks, so their cached answers are shared), 40% held out. Full tier: the
whole table (565), 30% held out, and the detector trained there is saved for the model. Options:
``per_family``, ``fabricated_per_family``, ``test_frac``, ``save``.
"""

from __future__ import annotations

import time

from gnothi.tools import hallu_data as D
from gnothi.tools import hallu_text as HT
from gnothi.tools import hallucination as H

from .registry import SuiteContext, SuiteResult, suite


@suite("hallucination")
def run(ctx: SuiteContext) -> SuiteResult:
    """Hallucination detector: held-out AUROC per signal and combined, calibration, transfer."""
    t0 = time.perf_counter()
    handle = ctx.handle()
    o = ctx.options
    per: int | None
    fake: int | None
    if ctx.quick:
        per, fake = int(o.get("per_family", 14)), int(o.get("fabricated_per_family", 6))
    else:
        per = int(o["per_family"]) if "per_family" in o else None
        fake = int(o["fabricated_per_family"]) if "fabricated_per_family" in o else None
    facts = D.select_facts(per_family=per, fabricated_per_family=fake, seed=ctx.seed)
    save = bool(o.get("save", per is None and fake is None))
    det, ev = H.train_and_evaluate(handle, facts=facts, test_frac=float(o.get("test_frac", 0.4 if ctx.quick else 0.3)), seed=ctx.seed, save=save, progress=True)
    res = SuiteResult(suite="hallucination")
    for k, v in ev.auroc.items():
        res.metrics[f"auroc_{k}"] = v
        res.baselines[f"auroc_{k}"] = 0.5
    res.metrics["auroc_combined_minus_perplexity"] = round(ev.auroc["combined"] - ev.auroc["neg_mean_logprob"], 4)
    res.baselines["auroc_combined_minus_perplexity"] = 0.0
    # the detector beside what the question's text alone predicts (hallu_text), on all held-out
    # answers and on real subjects only (fabricated names excluded, controls refit without them)
    for part, key in (("all", ""), ("real", "_real")):
        tc = ev.text_control.get(part, {})
        if "auroc" in tc:
            res.metrics[f"auroc_combined{key}_vs_text_only"] = tc["detector"]
            res.baselines[f"auroc_combined{key}_vs_text_only"] = tc["auroc"]
            res.metrics[f"margin_over_text_only{key}"] = tc["margin"]
            res.baselines[f"margin_over_text_only{key}"] = 0.0
        else:
            res.notes.append(f"No text-only control on the {part} held-out answers: {tc.get('note', 'not measured')}.")
    res.metrics["ece"] = ev.ece
    res.baselines["ece"] = round(abs(ev.test_positive_rate - 0.5), 4)  # a constant 0.5 guess
    res.metrics["brier"] = ev.brier
    res.baselines["brier"] = round(ev.test_positive_rate * (1 - ev.test_positive_rate), 4)  # always predicting the base rate
    res.metrics["n_test"] = ev.n_test
    res.baselines["n_test"] = ev.n_test
    res.tables.append(
        {
            "title": "Held-out AUROC per signal (split by entity)",
            "columns": ["signal", "auroc", "95% CI", "chance"],
            "rows": [[k, v, ev.auroc_ci.get(k), 0.5] for k, v in ev.auroc.items()],
        }
    )
    tc_rows = []
    for part, label in (("all", "all held-out answers"), ("real", "real subjects only")):
        tc = ev.text_control.get(part, {})
        if "auroc" in tc:
            tc_rows.append([label, tc["n"], tc["detector"], HT.CONTROL_LABELS.get(tc["control"], tc["control"]), tc["auroc"], tc["auroc_ci"], tc["margin"], tc["margin_ci"]])
    if tc_rows:
        res.tables.append(
            {
                "title": "Detector vs the strongest text-only control (a classifier that never runs the model)",
                "columns": ["answers", "n", "detector AUROC", "text-only control", "its AUROC", "its 95% CI", "margin", "margin 95% CI"],
                "rows": tc_rows,
            }
        )
    if ev.auroc_real:
        res.tables.append(
            {
                "title": f"Held-out AUROC on real subjects only ({ev.n_test_real} answers; fabricated subjects excluded)",
                "columns": ["signal", "auroc", "chance"],
                "rows": [[k, v, 0.5] for k, v in ev.auroc_real.items()],
            }
        )
    res.tables.append(
        {
            "title": "Transfer between fact families (train on the others, test on this one)",
            "columns": ["test family", "n", "positive rate", "combined", "probe (question)", "probe (answer)", "perplexity"],
            "rows": [
                [r["test_family"], r["n"], r.get("positive_rate"), r.get("auroc_combined"), r.get("auroc_probe_question"), r.get("auroc_probe_answer"), r.get("auroc_perplexity")]
                for r in ev.transfer
            ],
        }
    )
    res.tables.append(
        {
            "title": "Dataset: the model's answers per family",
            "columns": ["family", "n", "right", "wrong", "made up", "declined"],
            "rows": [[f, d["n"], d["right"], d["wrong"], d["made_up"], d["declined"]] for f, d in ev.dataset.items()],
        }
    )
    res.figures = ev.figures()
    res.passed = ev.auroc["combined"] > 0.5 and (ev.auroc_ci.get("combined") or [0.0])[0] > 0.5
    res.notes.append(
        f"{ev.n_train} training and {ev.n_test} held-out answers; {ev.test_positive_rate:.0%} of held-out answers are wrong or made up. "
        f"Probe layers: question {ev.layers['probe_question']}, answer {ev.layers['probe_answer']}."
    )
    if ev.saved_to:
        res.notes.append(f"Detector saved to {ev.saved_to}.")
    res.provenance = {"model": handle.name, "split": "by entity", "seed": ctx.seed, "n_facts": len(facts), "timings": ev.timings}
    res.seconds = time.perf_counter() - t0
    return res

