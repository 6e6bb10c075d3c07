"""Activation store and neuron explainer on the bundled SmolLM2 (one layer, 2k tokens)."""

from __future__ import annotations

import json
import math

import pytest
import torch

pytestmark = pytest.mark.integration

LAYER = 3
N_TOKENS = 2048


@pytest.fixture(scope="module")
def small_store(bundled, tmp_path_factory):
    from gnothi.tools.store import ActivationStore, build_store

    path = tmp_path_factory.mktemp("stores") / "mlp"
    rep = build_store(bundled, "mlp", "default", n_tokens=N_TOKENS, layers=[LAYER], path=path, progress=False)
    return rep, ActivationStore(path, verify=True, tokenizer=bundled.tokenizer)


def test_store_on_bundled_model(bundled, small_store):
    rep, st = small_store
    assert rep.n_tokens == N_TOKENS and rep.layers == [LAYER] and rep.tokens_per_second > 0
    assert st.n_units(LAYER) == bundled.d_mlp == 1536
    assert len(st.sources) >= 3  # the default corpus mixes its sources
    maxes = st.max_activations(LAYER)
    n = int(maxes.argmax())
    top = st.top_records(LAYER, n)
    assert len(top) == st.config.top_k
    # the stored record equals a fresh forward pass over the same window
    r = top[0]
    toks = torch.from_numpy(st.windows[r.window].astype("int64"))[None]
    _, cache = bundled.run_with_cache(toks, [bundled.hook_name("mlp_post", LAYER)])
    fresh = cache[bundled.hook_name("mlp_post", LAYER)][0, 1:, n].float()
    assert torch.allclose(torch.tensor(r.activations[1:]), fresh, atol=0.02 * float(fresh.abs().max()) + 1e-3)
    assert abs(r.max_activation - float(maxes[n])) < 0.01 * float(maxes[n]) + 1e-3


def test_explain_bundled_neurons(bundled, small_store):
    from gnothi.tools.neurons import explain_neuron

    _, st = small_store
    maxes = st.max_activations(LAYER)
    picks = torch.topk(maxes, 3).indices.tolist()
    gaps = []
    for n in picks:
        rep = explain_neuron(bundled, LAYER, n, store=st, modes=(n == picks[0]))
        assert rep.explanation and rep.explanation.startswith("fires on")
        assert rep.score.pearson != rep.score.shuffled_pearson  # the gap against the control is asserted below
        assert rep.score.control_unit != n and rep.score.n_tokens > 500
        assert len(rep.promoted) == 10 and rep.promoted[0].logit > rep.suppressed[0].logit
        gaps.append(rep.score.pearson - rep.score.shuffled_pearson)
        if rep.modes is not None:
            assert rep.modes.method == "minilm" and 2 <= rep.modes.k <= 3
        json.dumps(rep.to_tool_result(bundled).model_dump(mode="json"))
    # the strongest neurons' explanations beat other neurons' explanations on their held-out records
    assert sum(gaps) / len(gaps) > 0.1, gaps


def test_reverse_lookup_agrees_with_store(bundled, small_store):
    from gnothi.tools.neurons import top_neurons_for_token

    _, st = small_store
    n = int(st.max_activations(LAYER).argmax())
    r = st.top_records(LAYER, n)[0]
    text = "".join(r.tokens[1 : r.argmax + 1])
    res = top_neurons_for_token(bundled, text, -1, layer=LAYER, k=10, store=st)
    assert res.ranked_by == "relative"
    # the token that gave this neuron its top activation still ranks it high (prefix context only)
    assert n in [x.neuron for x in res.neurons] or res.neurons[0].relative > 0.5


def test_cli_neuron_json_and_errors(bundled, small_store, monkeypatch, capsys):
    import gnothi.tools.store as store_mod
    from gnothi.tools.store import build as store_build, opened as store_opened, status as store_status_mod
    from gnothi.ui.cli import main

    rep, st = small_store
    # store_path is looked up where it is used: opening, status and building the default store
    for mod in (store_opened, store_status_mod, store_build):
        monkeypatch.setattr(mod, "store_path", lambda model, units_id="mlp": st.path)
    store_mod._OPEN.clear()
    n = int(st.max_activations(LAYER).argmax())
    assert main(["neuron", str(LAYER), str(n), "--json", "--no-modes"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert isinstance(d["explanation"], str) and d["explanation"]
    assert math.isfinite(d["score"]["pearson"]) and math.isfinite(d["score"]["shuffled_pearson"])
    assert d["top_contexts"] and len(d["top_contexts"][0]["tokens"]) == len(d["top_contexts"][0]["activations"])
    # unit out of range: exit 2, one JSON error naming the valid range
    assert main(["neuron", str(LAYER), "5000", "--json"]) == 2
    err = json.loads(capsys.readouterr().out)
    assert err["error"] == "out_of_range" and "0 to 1535" in err["message"]
    # a layer the store lacks: says which layers it has and how to index this one
    assert main(["neuron", "7", "0", "--json"]) == 2
    err = json.loads(capsys.readouterr().out)
    assert "not in the mlp store" in err["message"] and "gnothi index --layers 7" in err["fix"]
    store_mod._OPEN.clear()


def test_missing_store_offers_build_with_estimate(bundled):
    from gnothi.tools.errors import StoreError
    from gnothi.tools.store import open_store, store_status

    s = store_status(bundled, "sae-never-built")
    assert not s.exists and s.estimated_build_seconds > 0 and "gnothi index" in s.build_command
    with pytest.raises(StoreError) as e:
        open_store(bundled, "sae-never-built")
    assert "gnothi index" in e.value.fix and "about" in e.value.fix
