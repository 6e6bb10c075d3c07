"""The refining explainer on planted units built from records (no model needed): it must
find the condition that was planted, narrow a token to the context it fires in, beat the
single-pass explainer where that matters, and write text the simulator reads back."""

from __future__ import annotations

import numpy as np
import pytest

from gnothi.tools import explain_refine as R
from gnothi.tools.explain import offline_explain, pearson
from gnothi.tools.store import ActivationRecord

WORDS = (" the a of to and in is it that for on with as at by this from or an be are was were not but have "
         "river house water road light green small open about over under after before").split()


def _records(n: int, rule, seed: int, kind: str = "top", plant=None) -> list[ActivationRecord]:
    """``n`` records of 24 tokens (BOS first); ``plant(rng, toks)`` may insert a pattern;
    activations from ``rule(toks, i)`` plus a little noise."""
    rng = np.random.default_rng(seed)
    out = []
    for w in range(n):
        toks = ["<|endoftext|>"] + [" " + WORDS[int(rng.integers(len(WORDS)))] for _ in range(23)]
        if plant is not None:
            plant(rng, toks)
        acts = [0.0] + [rule(toks, i) + float(rng.normal(0, 0.05)) for i in range(1, len(toks))]
        out.append(ActivationRecord(tokens=toks, activations=acts, window=seed * 1000 + w, kind=kind, rank=w))
    return out


def _cor_respond(toks, i):  # fires on "respond" inside "corresponding" only
    return 9.0 if toks[i] == "respond" and toks[i - 1] == " cor" else 0.0


def _plant_respond(rng, toks):
    j = int(rng.integers(2, 20))  # one "corresponding" and bare "respond"s (which must not fire)
    toks[j:j + 3] = [" cor", "respond", "ing"]
    for _ in range(4):
        k = int(rng.integers(2, 22))
        if toks[k - 1] != " cor" and toks[k] != " cor":
            toks[k] = "respond"


def _split(rule, plant):
    train = _records(30, rule, 1, "top", plant) + _records(20, rule, 2, "random")
    held = _records(20, rule, 3, "top", plant) + _records(20, rule, 4, "random")
    return train, held


def _heldout_pearson(conds, held):
    pred = [x for r in held for x in R.simulate(conds, r.tokens)[1:]]
    true = [x for r in held for x in r.activations[1:]]
    return pearson(pred, true)


def test_refiner_narrows_a_token_to_the_context_it_fires_in():
    train, held = _split(_cor_respond, _plant_respond)
    top, rand = [r for r in train if r.kind == "top"], [r for r in train if r.kind == "random"]
    rf = R.refine(top, rand, 10.0)
    assert rf is not None
    first, level = rf.conditions[0]
    assert first.token == "respond" and (first.prev == "cor" or first.word == "corresponding"), rf.text
    assert level >= 8
    assert _heldout_pearson(rf.conditions, held) > 0.95
    # the single-pass explainer names the token but cannot say "only after cor": it scores lower
    single = offline_explain(top, rand, 9.0)
    from gnothi.tools.explain import score_explanation
    sp = score_explanation(single.text, [r for r in held if r.kind == "top"], [r for r in held if r.kind == "random"])["pearson"]
    assert sp < _heldout_pearson(rf.conditions, held) - 0.2, (single.text, sp)
    assert R.parse(rf.text) == rf.conditions  # the text is the whole explanation


def test_refiner_learns_an_exception_from_false_positives():
    def rule(toks, i):  # " light" fires, except in "not light"
        return 7.0 if toks[i] == " light" and toks[i - 1] != " not" else 0.0

    def plant(rng, toks):
        for _ in range(3):
            k = int(rng.integers(2, 22))
            toks[k:k + 2] = [" not", " light"] if rng.random() < 0.5 else [" light", toks[k + 1]]

    train, held = _split(rule, plant)
    top, rand = [r for r in train if r.kind == "top"], [r for r in train if r.kind == "random"]
    rf = R.refine(top, rand, 10.0)
    c, level = rf.conditions[0]
    assert c.token == "light" and "not" in c.not_prev, rf.text
    assert "but not after" in rf.text and any(s.startswith("narrow") for s in rf.steps), rf.steps
    assert _heldout_pearson(rf.conditions, held) > 0.95


def test_refiner_keeps_two_modes_and_their_levels():
    def rule(toks, i):
        return 8.0 if toks[i] == " river" else (4.0 if toks[i - 1] == " green" else 0.0)

    train, held = _split(rule, None)
    top, rand = [r for r in train if r.kind == "top"], [r for r in train if r.kind == "random"]
    rf = R.refine(top, rand, 10.0)
    got = {(c.token, c.prev): lv for c, lv in rf.conditions}
    assert got.get(("river", None)) == pytest.approx(8, abs=1)
    assert any(prev == "green" and abs(lv - 4) <= 1 for (tok, prev), lv in got.items()), rf.text
    assert _heldout_pearson(rf.conditions, held) > 0.9


def test_refiner_on_noise_keeps_nothing_or_scores_near_zero():
    rng = np.random.default_rng(0)

    def noise(toks, i):
        return float(max(0.0, rng.normal(0, 1)))

    train, held = _split(noise, None)
    top, rand = [r for r in train if r.kind == "top"], [r for r in train if r.kind == "random"]
    rf = R.refine(top, rand, 4.0)
    assert rf is None or abs(_heldout_pearson(rf.conditions, held)) < 0.15


def test_grammar_round_trips_every_kind_of_condition():
    C = R.Condition
    conds = [
        (C(token="respond", prev="cor"), 9.0), (C(token="respond", word="corresponding"), 8.0), (C(word="paris"), 7.0),
        (C(prev="the"), 6.0), (C(kind="numbers"), 5.0), (C(kind="word starts", context="france"), 4.0),
        (C(token="\\n", first=2), 3.0), (C(token='say"', not_prev=("i", "we")), 2.0), (C(first=4), 2.0),
        (C(context="king"), 1.0), (C(token="ing", kind="word continuations"), 3.0),
    ]
    text = R.render(conds)
    assert R.parse(text) == conds, text
    assert R.parse('fires on "cat" (60%), "dog" (40%).') is None  # the single-pass grammar is not this one
    sim = R.simulate([(C(token="respond", prev="cor"), 9.0), (C(kind="numbers"), 2.0)], ["<s>", " cor", "respond", " respond", " 42"])
    assert sim == [0.0, 0.0, 9.0, 0.0, 2.0]
