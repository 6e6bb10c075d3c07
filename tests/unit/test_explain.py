"""Explain -> simulate -> score on planted neurons of a tiny model (see test_store.py)."""

from __future__ import annotations

import json
import re

import pytest

from gnothi.tools.errors import InputError, OutOfRangeError
from gnothi.tools.testing import CAT_NEURON, TWO_MODE_NEURON
from test_store import _one_thread, planted  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def store(planted):
    from gnothi.tools.store import open_store

    h, _ = planted
    return open_store(h)


def test_offline_explainer_names_the_planted_token_and_scores_high(store):
    from gnothi.tools.explain import explain_unit

    rep = explain_unit(store, 0, CAT_NEURON, modes=False)
    assert rep.explanation_detail.tokens[0][0] == "cat"
    assert '"cat"' in rep.explanation
    s = rep.score
    assert s.pearson > 0.9, rep.explanation
    assert s.shuffled_pearson < 0.3 and s.control_unit != CAT_NEURON
    assert s.pearson - s.shuffled_pearson > 0.6
    assert s.n_records == len(store.unit_split(0, CAT_NEURON).heldout) == len(rep.heldout)
    # a random (unplanted) neuron's explanation scores far below the planted one
    other = explain_unit(store, 1, 3, modes=False)
    assert other.score.pearson < s.pearson


def test_heldout_records_never_reach_the_explainer(store, monkeypatch):
    from gnothi.tools import explain as E

    caught = 0
    for layer in store.layers:
        for unit in range(store.n_units(layer)):
            sp = store.unit_split(layer, unit)
            assert not sp.heldout_windows() & sp.explain_windows(), (layer, unit)
            wins = [r.window for r in sp.heldout]
            assert len(wins) == len(set(wins))  # each held-out window scored once
            raw = {r.window for r in store.top_records(layer, unit, "train") + store.quantile_records(layer, unit) + store.random_records(layer, unit, "train")}
            caught += bool(raw & sp.heldout_windows())
    assert caught > 0  # the store's own samples do overlap the held-out ones: the split has work to do
    seen = []
    real = E.explain_offline
    # patched where explain_unit looks it up (the package re-exports it; the pipeline module calls it)
    monkeypatch.setattr(E.pipeline, "explain_offline", lambda kind, recs, rand=(), mx=None: seen.append({r.window for r in [*recs, *rand]}) or real(kind, recs, rand, mx))
    rep = E.explain_unit(store, 0, CAT_NEURON, modes=False)
    held = {r.window for r in rep.heldout}
    assert seen[0] and held and not seen[0] & held and set(rep.explained_windows) == seen[0]
    # the report carries what anyone needs to recompute the score
    pred = [x for r in rep.heldout for x in r.simulated[1:]]
    true = [x for r in rep.heldout for x in r.activations[1:]]
    assert E.pearson(pred, true) == pytest.approx(rep.score.pearson, abs=1e-3)
    assert {r.kind for r in rep.heldout} == {"top", "random"}


def test_two_mode_neuron_splits_into_modes(store):
    from gnothi.tools.explain import explain_unit

    rep = explain_unit(store, 0, TWO_MODE_NEURON, modes=True, mode_method="tokens")
    named = {k for k, _ in rep.explanation_detail.tokens}
    assert {"king", "river"} <= named
    m = rep.modes
    assert m is not None and m.k >= 2 and m.method == "tokens"
    firsts = {re.search(r'"([^"]+)"', md.explanation).group(1) for md in m.modes}
    assert {"king", "river"} <= firsts  # each token leads some mode
    assert m.modes_beat_single == (m.union_pearson > m.single_pearson + 0.01)
    assert m.union_pearson > 0.8
    assert abs(sum(md.share for md in m.modes) - 1.0) < 1e-3


def test_parse_and_simulate():
    from gnothi.tools.explain import offline_simulate, parse_explanation, pearson

    p = parse_explanation('fires on "cat" (60%), "dog" (40%); often right after "the" (50%); in contexts with "house".')
    assert p.tokens == {"cat": 0.6, "dog": 0.4} and p.after == {"the": 0.5} and p.context == ["house"]
    sim = offline_simulate(p, ["a", "cat", "the", "dog", "house", "fish"])
    assert sim[1] == pytest.approx(0.6) and sim[0] == 0 and sim[2] == 0
    assert sim[3] > 0.4 * 1.5  # "dog" right after "the" is boosted above its own weight
    assert 0 < sim[5] < 0.1  # "fish" after the context word "house": a small prediction
    free = parse_explanation("Mentions of rivers and mountains.")
    assert "rivers" in free.tokens and "of" not in free.tokens
    assert pearson([1, 1, 1], [0, 1, 2]) == 0.0 and pearson([0, 1, 2], [0, 2, 4]) == pytest.approx(1.0)


def test_llm_explainer_and_simulator_callables(store, monkeypatch):
    from gnothi.tools import explain as E
    from gnothi.tools.explain import explain_unit

    prompts_seen = []

    def good_llm(prompt: str) -> str:
        prompts_seen.append(prompt)
        if "Explanation:" in prompt and "text.index<TAB>token" in prompt:  # simulation request, several records
            lines = re.findall(r"^(\d+\.\d+)\t'(.*)'$", prompt, flags=re.M)
            return "\n".join(f"{i}\t{10 if t == 'cat' else 0}" for i, t in lines)
        return "Explanation: the word \"cat\"."

    rep = explain_unit(store, 0, CAT_NEURON, explainer=good_llm, simulator=good_llm, modes=False)
    assert rep.explanation_detail.explainer == "llm" and rep.explanation == 'the word "cat".'
    assert rep.score.simulator == "llm" and rep.score.pearson > 0.9 and not rep.warnings
    n_sim = sum("text.index<TAB>token" in p for p in prompts_seen)
    calls_per_score = len(E.llm_batches([len(r.tokens) for r in rep.heldout]))
    assert calls_per_score < rep.score.n_records and n_sim == 2 * calls_per_score  # own score and control, a few records a call
    assert any("<start>" in p for p in prompts_seen)
    # the LLM is shown what the refining explainer measured on the same records
    asked = next(p for p in prompts_seen if "<start>" in p)
    assert '"cat"' in asked.split("Conditions measured", 1)[1] and "/10)" in asked

    def garbage(prompt: str) -> str:
        return "}}}{{ 42 ###"

    rep2 = explain_unit(store, 0, CAT_NEURON, explainer=garbage, simulator=garbage, modes=False)
    assert rep2.explanation_detail.explainer == "refined (llm fallback)"
    assert any("unusable" in w for w in rep2.warnings) and any("simulator" in w for w in rep2.warnings)
    assert rep2.score.pearson > 0.9  # the fallback still measures

    def dead(prompt: str) -> str:
        raise ConnectionError("no server")

    # a bounded budget: past it the records are simulated offline, and the report says so
    own_calls = calls_per_score
    monkeypatch.setenv("GNOTHI_LLM_CALL_BUDGET", str(own_calls + 1))  # the own score fits; the control and the modes do not
    prompts_seen.clear()
    rep4 = explain_unit(store, 0, CAT_NEURON, explainer=good_llm, simulator=good_llm, modes=True, mode_method="tokens")
    assert sum("text.index<TAB>token" in p for p in prompts_seen) == own_calls
    assert any("budget" in w and "simulated offline" in w for w in rep4.warnings) and rep4.score.pearson > 0.9
    monkeypatch.delenv("GNOTHI_LLM_CALL_BUDGET")

    rep3 = explain_unit(store, 0, CAT_NEURON, explainer=dead, modes=False)
    assert any("failed" in w for w in rep3.warnings)
    with pytest.raises(InputError):
        explain_unit(store, 0, CAT_NEURON, explainer="gpt-9")


def test_neuron_page_output_tokens_and_json(planted, store):
    from gnothi.tools.neurons import explain_neuron
    from gnothi.tools.results import render_png

    h, _ = planted
    rep = explain_neuron(h, 0, CAT_NEURON, store=store, mode_method="tokens")
    assert len(rep.promoted) == 10 and len(rep.suppressed) == 10
    assert rep.promoted[0].logit >= rep.promoted[-1].logit > rep.suppressed[-1].logit
    # the direct effect really is W_out[n] through the unembedding (up to the final norm's scale)
    w = h.W_out(0)[CAT_NEURON].float()
    direct = (w * h.tl_model.original_model.model.norm.weight.float()) @ h.W_U().float()
    assert h.tokenizer.decode([int(direct.argmax())]) == rep.promoted[0].token
    d = json.loads(rep.model_dump_json())
    assert isinstance(d["explanation"], str) and {"pearson", "shuffled_pearson"} <= set(d["score"])
    assert d["top_contexts"][0]["tokens"] and len(d["top_contexts"][0]["tokens"]) == len(d["top_contexts"][0]["activations"])
    tr = rep.to_tool_result(h)
    json.dumps(tr.model_dump(mode="json"))
    assert "cat" in tr.summary and tr.headline["pearson"] == rep.score.pearson
    assert {f.kind for f in tr.figures} >= {"tokens", "histogram", "bar"}
    assert render_png(tr.figures[1])[:4] == b"\x89PNG"
    with pytest.raises(OutOfRangeError, match="0 to 63"):
        explain_neuron(h, 0, 64, store=store)
    with pytest.raises(OutOfRangeError):
        explain_neuron(h, 2, 0, store=store)


def test_top_neurons_for_token(planted, store):
    from gnothi.tools.neurons import top_neurons_for_token

    h, _ = planted
    res = top_neurons_for_token(h, "the big cat ate a fish", "cat", layer=0, k=5, store=store)
    assert res.token == "cat" and res.position == 3 and res.ranked_by == "relative"
    assert (res.neurons[0].layer, res.neurons[0].neuron) == (0, CAT_NEURON)
    assert res.neurons[0].relative > 0.5 and "cat" in res.neurons[0].top_tokens
    raw = top_neurons_for_token(h, "the big cat ate a fish", 3, k=5, rank_by="activation")
    assert raw.ranked_by == "activation" and (raw.neurons[0].layer, raw.neurons[0].neuron) == (0, CAT_NEURON)
    tr = res.to_tool_result(h)
    assert "0.5" in tr.summary or "neuron 0.5" in tr.summary
    with pytest.raises(InputError, match="not a token"):
        top_neurons_for_token(h, "the big cat", "dog")
    with pytest.raises(OutOfRangeError):
        top_neurons_for_token(h, "the big cat", "cat", layer=7)


def test_llm_batch_answers_are_read_per_record():
    from gnothi.tools.explain import llm_batches, llm_simulate_batch

    assert llm_batches([64, 64, 64, 200, 10]) == [[0, 1], [2], [3], [4]]
    recs = [["<s>", " a", " cat"], ["<s>", " dog"]]
    assert llm_simulate_batch(lambda p: "0.2\t9\n1.1\t'dog'\t4", "x", recs) == [[0, 0, 9.0], [0, 4.0]]
    assert llm_simulate_batch(lambda p: "None of them.", "x", recs) == [[0, 0, 0], [0, 0]]  # a real "nothing fires"
    assert llm_simulate_batch(lambda p: "I cannot help with that.", "x", recs) == [None, None]  # unreadable
    assert llm_simulate_batch(lambda p: "2\t7", "x", recs[:1]) == [[0, 0, 7.0]]  # one record: a bare index is read too
