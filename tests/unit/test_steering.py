"""Steering on a tiny random model: hooks live only for the call, strength 0 is no steering, the controls are what they say."""

from __future__ import annotations

import pytest
import torch

from gnothi.tools import steering
from gnothi.tools.errors import InputError


def test_generation_hooks_act_during_generation_and_are_removed(tiny):
    ids = tiny.tokenizer("hello world", add_special_tokens=False)["input_ids"]
    plain = tiny.generate_ids([ids], 6)
    v = torch.randn(tiny.d_model, generator=torch.Generator().manual_seed(0)) * 100
    hooked = tiny.generate_ids([ids], 6, fwd_hooks=[(tiny.hook_name("resid_post", 0), lambda a, hook: a + v)])
    assert hooked != plain
    assert tiny.generate_ids([ids], 6) == plain  # nothing left behind


def test_concept_vector_is_the_difference_of_means(tiny):
    pos, neg = ["I love cats.", "cats are great"], ["I love it.", "things are great"]
    v = steering.concept_vector(tiny, "cats", 1, pos, neg)
    assert torch.allclose(v, steering._mean_resid(tiny, pos, 1) - steering._mean_resid(tiny, neg, 1))


def test_sweep_with_controls_never_changes_the_model(tiny):
    before = tiny.logits("The cat sat")[0, -1].clone()
    rep = steering.steer(tiny, "concept", concept="cats", layer=1, strengths=[0.0, 50.0], prompts=["The cat", "I think"], n_new=4,
                         n_windows=2, window=16)
    assert torch.equal(tiny.logits("The cat sat")[0, -1], before)
    zero = next(p for p in rep.sweep if p.strength == 0.0)
    assert [g.text for g in zero.generations] == [g.text for g in rep.base_generations]  # strength 0 is no steering
    assert zero.relevance == pytest.approx(rep.base_relevance) and zero.cost == pytest.approx(0.0, abs=1e-5)
    big = next(p for p in rep.sweep if p.strength == 50.0)
    assert big.cost != pytest.approx(0.0, abs=1e-4)
    assert rep.prompting_instruction == "Talk about cats." and rep.prompting_relevance is not None


def test_neuron_source_uses_its_output_weights(tiny):
    v, layer, what = steering.direction_for(tiny, "neuron", layer=1, neuron=3)
    assert layer == 1 and torch.equal(v, tiny.neuron_directions(1)[3].float()) and "1.3" in what
    rep = steering.steer(tiny, "neuron", layer=1, neuron=3, strength=2.0, prompts=["The cat"], n_new=3, n_windows=2, window=16)
    assert [p.strength for p in rep.sweep] == [1.0, 2.0, 4.0] and rep.asked_strength == 2.0
    assert rep.prompting_relevance is None  # no concept named: no prompting baseline to invent


def test_bad_requests_say_what_to_do(tiny):
    with pytest.raises(InputError, match="concept"):
        steering.steer(tiny, "concept")
    with pytest.raises(Exception, match="range"):
        steering.steer(tiny, "neuron", layer=1, neuron=10_000)
    with pytest.raises(InputError, match="Unknown steering source"):
        steering.direction_for(tiny, "vibes")
    with pytest.raises(InputError, match="new tokens"):
        steering.steer(tiny, "concept", concept="x", n_new=0)


def test_steering_away_is_judged_by_less_not_more(tiny):
    rep = steering.steer(tiny, "concept", concept="cats", layer=1, strengths=[-20.0, -40.0], prompts=["The cat"], n_new=3, n_windows=2, window=16)
    assert rep.goal == "away" and rep.prompting_instruction == "Do not talk about cats."
    qualify = [p for p in rep.sweep if p.cost <= rep.max_cost and p.relevance < rep.base_relevance and p.relevance < p.random_relevance]
    assert rep.best_strength == (min(qualify, key=lambda p: p.relevance).strength if qualify else None)


def test_the_agent_does_not_read_the_quoted_prompt_as_the_request():
    from gnothi.agents.extract import extract
    from gnothi.agents.toolkit import TOOLKIT
    from gnothi.agents.toolkit.base import Query

    def args(q):
        e = extract(q)
        return TOOLKIT["steering"].extract(Query(clause=q, question=q, parsed=e, whole=e))[0]

    assert args("talk about dogs on 'I can never decide what to eat'") == {"source": "concept", "concept": "dogs", "prompt": "I can never decide what to eat"}
    assert "strength" not in args("make it talk about dogs on 'I ran 3 times'")
    assert args("make the model talk less about France") == {"source": "concept", "concept": "France", "strength": -8.0}
    assert args("amplify L8N77 by 10")["strength"] == 10.0  # a verb of amount, then "by N"
    assert args("talk about cats, crank it up to 12")["strength"] == 12.0
    assert "strength" not in args("boost the cat direction in layer 3 by adding it to 5 tokens")  # a count of tokens is no strength
