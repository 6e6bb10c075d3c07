"""The quick evaluation tier on the bundled model: every suite runs (or says why it cannot),
the report is written, and the checked answers hold."""

from __future__ import annotations

import json

import pytest

from gnothi.evals.registry import SuiteContext, discover
from gnothi.evals.runner import run_suites

MINE = ("neurons", "sae", "probing", "patching", "end_to_end", "heads", "methods", "bias", "steering")
# The hallucination suite trains and evaluates the detector on generated answers; its own
# integration test (tests/integration/test_hallucination*.py) covers it, and running it
# twice would double that cost in CI. `gnothi eval --quick` runs it with the others.
LEFT_TO_OWN_TEST = {"hallucination"}


@pytest.mark.integration
def test_quick_tier(bundled, tmp_path):
    ctx = SuiteContext(quick=True, model_handle=bundled, seed=0)
    rep = run_suites([n for n in discover() if n not in LEFT_TO_OWN_TEST], ctx, out_dir=tmp_path)
    # a suite that cannot run fails this test: skipped is not passed
    not_run = {n: f"{r.status}: {r.reason[:600]}" for n, r in rep.suites.items() if r.status in ("error", "skipped")}
    assert not not_run, not_run
    run_dir = tmp_path / rep.run_id
    data = json.loads((run_dir / "report.json").read_text())
    assert data["provenance"]["model"]["name"] == bundled.name
    assert data["provenance"]["git"].get("commit") is None or len(data["provenance"]["git"]["commit"]) == 40
    md = (run_dir / "report.md").read_text()
    for name, r in rep.suites.items():
        assert f"## {name}" in md
        for f in r.figure_files:
            assert (run_dir / f).read_bytes()[:4] == b"\x89PNG"
    ran = {n: r for n, r in rep.suites.items() if n in MINE and r.result is not None}
    assert set(ran) == set(MINE), sorted(set(MINE) - set(ran))  # every suite below is checked against its control
    for n, r in ran.items():
        assert r.missing_baselines == [], (n, r.missing_baselines)  # no number without its control
    for n in ("heads", "methods", "steering"):  # checked answers: top heads beat their controls and random-head ablation,
        assert rep.suites[n].status == "passed", (n, rep.suites[n].result.metrics if rep.suites[n].result else rep.suites[n].reason)
    b = rep.suites["bias"].result  # retrieval beats keyword overlap; steering beats a random direction and no steering
    assert b.metrics["group_difference_nats"] > b.baselines["group_difference_nats"]["neutral_pair"]
    assert rep.suites["patching"].status == "passed", rep.suites["patching"].result.metrics
    m = ran["neurons"].result.metrics["refined_explainer"]
    b = ran["neurons"].result.baselines["refined_explainer"]
    assert m["pearson"] > b["pearson"]["shuffled_explanation"]
    assert rep.suites["sae"].status == "passed", ran["sae"].result.metrics
    sp, spb = ran["sae"].result.metrics["sparse_probing"], ran["sae"].result.baselines["sparse_probing"]
    assert sp["k10"] > spb["k10"]["random_latents"] + 0.1, (sp, spb)  # chosen latents carry the property; random ones do not
    m = ran["probing"].result.metrics["sentiment"]
    assert m["best_accuracy"] > ran["probing"].result.baselines["sentiment"]["best_accuracy"]
    assert ran["end_to_end"].result.metrics["clean_reply_rate"] == 1.0
    assert ran["end_to_end"].result.metrics["traceable_reply_rate"] == 1.0, ran["end_to_end"].result.notes
