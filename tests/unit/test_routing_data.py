"""The routing data: the held-out families are frozen, both sets follow the format, and they share no family."""

from __future__ import annotations

import hashlib

import pytest

from gnothi.agents.toolkit import TOOLKIT
from gnothi.evals.suite_routing import DEV, HELDOUT, TUNING, arg_matches, load_rows

FROZEN_SHA256 = "0532af2af827ae6471832137bbd3cc9aabad9086c9f1d1989a8fa5539c23af6f"  # routing/FROZEN.md
CATEGORIES = {"neuron", "sae", "probing", "patching", "hallucination", "attention", "heads", "methods", "bias", "steering", "help",
              "off_topic", "injection", "followup", "multi", "clarify_answer", "clarify", "guard"}


def test_heldout_is_frozen():
    assert hashlib.sha256(HELDOUT.read_bytes()).hexdigest() == FROZEN_SHA256, (
        "heldout.jsonl changed: it is frozen (see evals/data/routing/FROZEN.md); write a new held-out set instead")


@pytest.mark.parametrize("path", [DEV, *TUNING, HELDOUT], ids=["dev", *[p.stem for p in TUNING], "heldout"])
def test_rows_follow_the_format(path):
    rows = load_rows(path)
    assert len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        assert r["category"] in CATEGORIES, r["id"]
        exp = r["expect"]
        assert len(exp["args"]) == len(exp["tools"]), r["id"]
        assert bool(exp["clarify"]) == (exp["tools"] == []) or r["category"] == "guard", r["id"]
        for tool, args in zip(exp["tools"], exp["args"]):
            fields = TOOLKIT[tool].Args.model_fields
            assert all(k.rstrip("~") in fields for k in args), (r["id"], tool, args)


def test_not_yet_labels_read_as_the_agents_built_since():
    """Frozen files keep their "not yet" labels; they are read as calls of the agent that now answers them."""
    import json

    from gnothi.agents.router import read_row

    line = json.dumps({"id": "x", "family": "f", "category": "not_yet", "question": "make it talk about dogs", "history": [
        {"question": "q", "plan": [{"tool": "help", "args": {"reason": "not_yet", "topic": "head_finder"}}], "clarify": None, "pending": None}],
        "expect": {"tools": ["help"], "args": [{"reason": "not_yet", "topic": "steering"}], "clarify": False}})
    row = read_row(line)
    assert row["expect"]["tools"] == ["steering"] and row["expect"]["args"] == [{}] and row["expect"]["or_clarify"]
    assert row["category"] == "steering" and row["history"][0]["plan"] == [{"tool": "heads", "args": {}}]
    other = json.loads(line)
    other["expect"]["args"] = [{"reason": "off_topic"}]
    assert read_row(json.dumps(other))["expect"]["tools"] == ["help"]  # other help rows stay as written


def test_sets_are_disjoint_and_big_enough():
    train, held = load_rows([DEV, *TUNING]), load_rows(HELDOUT)
    assert len(train) >= 1500 and len({r["family"] for r in train}) >= 100
    assert len(held) >= 300 and len({r["family"] for r in held}) >= 45
    assert not {r["family"] for r in train} & {r["family"] for r in held}
    assert not {r["question"].strip().lower() for r in train if len(r["question"]) > 12} & {r["question"].strip().lower() for r in held}


def test_argument_matching_rules():
    assert arg_matches("answer", " Paris", {"answer": " Paris"})
    assert not arg_matches("answer", " Paris", {"answer": "Paris"})  # the leading space is the token
    assert arg_matches("clean", "The capital of France is", {"clean": "the capital of France is."})
    assert arg_matches("question~", "capital of Australia", {"question": "What is the capital of Australia?"})
    assert not arg_matches("question~", "capital of Austria", {"question": "What is the capital of Australia?"})
    assert not arg_matches("layer", 3, {"neuron": 3})
