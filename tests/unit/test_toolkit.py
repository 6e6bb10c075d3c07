"""The toolkit contract: one module per agent, typed calls, no argument silently dropped."""

from __future__ import annotations

import types

import pytest

from gnothi.agents import toolkit
from gnothi.agents.toolkit import TOOLKIT, ToolAgent, register
from gnothi.tools.results import ToolResult


class _Report:
    def to_tool_result(self, **kw):
        return ToolResult(tool="x", ok=True, summary="recorded")


class Recorder:
    """Stands in for a tool function and keeps what it was called with."""

    def __init__(self):
        self.calls: list[tuple[tuple, dict]] = []

    def __call__(self, *a, **kw):
        self.calls.append((a, kw))
        return _Report()

    def values(self, handle_first: bool = True) -> list:
        a, kw = self.calls[-1]
        return list(a[1 if handle_first else 0:]) + list(kw.values())  # a[0] is the handle, for agents that need a model


HANDLE = types.SimpleNamespace(n_layers=30, d_mlp=1536, n_heads=9, name="tiny", source="config", device="cpu", dtype="float32")

# (agent, tool function to replace as module.attr, fully specified arguments)
CASES = [
    ("neuron_explainer", "neurons.explain_neuron", {"layer": 3, "neuron": 45, "k": 7}),
    ("neuron_explainer", "neurons.top_neurons_for_token", {"token": " Paris", "text": "I love Paris", "layer": 4, "k": 6}),
    ("sae_feature_search", "features.search_features", {"query": "French", "layer": 6, "k": 4}),
    ("sae_feature_search", "features.explain_feature", {"feature": 17, "layer": 6, "k": 3}),
    ("sae_feature_search", "features.features_on_text", {"text": "Bonjour", "layer": 6, "k": 2}),
    ("activation_patching", "patching.patch_or_trace", {"clean": "The capital of France is", "corrupted": "The capital of Italy is",
                                                         "answer": " Paris", "alternative": " Rome", "mode": "heads"}),
    ("activation_patching", "patching.causal_trace", {"clean": "The Space Needle is in", "answer": " Seattle", "mode": "trace"}),
    ("hallucination_detector", "hallucination.detect", {"question": "Who wrote Hamlet?", "answer": "Dickens", "context": "Hamlet is a play."}),
    ("attention", "attention.attention_view", {"prompt": "The cat sat", "layer": 5, "head": 3}),
    ("probing", "probing.run_probe", {"dataset": "sentiment", "layers": [2, 3], "position": "mean"}),
    ("bias", "bias.bias_check", {"occupations": ["nurse"], "template": "The {occupation} said that", "pair": "he/she"}),
    ("steering", "steering.steer", {"source": "neuron", "layer": 12, "neuron": 400, "strength": 5.0, "prompt": "My favourite food is",
                                    "words": ["food"]}),
    ("steering", "steering.steer", {"source": "concept", "concept": "France", "layer": 4}),
    ("methods", "methods.explain_method", {"question": "what is causal tracing?", "about": "activation_patching"}),
]

@pytest.mark.parametrize("agent_name,target,args", CASES, ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_every_argument_reaches_the_tool(monkeypatch, agent_name, target, args):
    agent = TOOLKIT[agent_name]
    mod_name, fn_name = target.split(".")
    module = getattr(__import__(type(agent).__module__, fromlist=["x"]), mod_name)
    rec = Recorder()
    monkeypatch.setattr(module, fn_name, rec)
    tr = agent.run(HANDLE, args)
    assert tr.ok, tr.error
    assert rec.calls, f"{target} was not called"
    got = rec.values(handle_first=agent.needs_model)
    for k, v in args.items():
        if k == "mode":
            continue  # becomes the kinds list (checked below) or the choice of function
        assert v in got or [v] in got, f"{agent_name}: argument {k}={v!r} did not reach {target}: {rec.calls[-1]}"
    if args.get("mode") == "heads":
        assert rec.calls[-1][1]["kinds"] == ["heads"]


def test_probe_examples_become_the_dataset(monkeypatch):
    rec = Recorder()
    monkeypatch.setattr(toolkit.probing.probing, "run_probe", rec)
    exs = [{"text": f"good {i}", "label": "pos"} for i in range(10)] + [{"text": f"bad {i}", "label": "neg"} for i in range(10)]
    tr = TOOLKIT["probing"].run(HANDLE, {"examples": exs, "layers": [1]})
    assert tr.ok, tr.error
    ds = rec.calls[-1][0][1]
    assert sorted(ds.label_names) == ["neg", "pos"] and len(ds.examples) == 20
    assert rec.calls[-1][1]["save"] is False  # the user's examples are not saved as a named probe
    few = TOOLKIT["probing"].run(HANDLE, {"examples": exs[:3] + exs[-3:]})
    assert not few.ok and "add 14 more" in (few.error["fix"] or "").lower()


def test_unknown_arguments_fail_loudly():
    for agent in TOOLKIT.values():
        r = agent.run(HANDLE, {"no_such_argument": 1})
        assert not r.ok and "no_such_argument" in r.summary, agent.name


def test_registry_refuses_a_second_agent_of_the_same_name():
    class Again(ToolAgent):
        name = "probing"

    with pytest.raises(ValueError, match="registered twice"):
        register(Again)


def test_each_agent_owns_its_parts():
    for agent in TOOLKIT.values():
        assert agent.title and agent.description and agent.examples, agent.name
        assert agent.Args.model_config.get("extra") == "forbid", agent.name
        assert agent.openai_tool()["function"]["name"] == agent.name
