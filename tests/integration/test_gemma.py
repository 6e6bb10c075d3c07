"""Every tool's core check on a second real architecture: Gemma 3 270M.

Gemma 3 differs from SmolLM2's Llama in the ways the adapter has to absorb: scaled and tied
embeddings, norms after attention and after the MLP as well as before, (1 + w) RMSNorm,
q/k norms, sliding-window layers between global ones, one key/value head for four query
heads, a 262k vocabulary, and no chat template (a base model). Inputs are kept small so
the file runs in a few minutes on two CPU cores.
"""

from __future__ import annotations

import json

import pytest
import torch

pytestmark = pytest.mark.integration

TEXTS = [
    "The capital of France is Paris. The capital of Italy is Rome.",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)",
]
LAYER = 6


def test_shape_and_hf_logprobs(gemma):
    from gnothi.tools.model import compare_with_hf

    s = gemma.shape
    assert s.architecture == "Gemma3ForCausalLM"
    assert (s.n_layers, s.d_model, s.d_mlp, s.n_heads, s.n_kv_heads, s.d_head, s.d_vocab) == (18, 640, 2048, 4, 1, 256, 262144)
    assert compare_with_hf(gemma, TEXTS) <= 1e-4


def test_knows_paris_and_answers(gemma):
    lp = gemma.log_probs("The capital of France is")[0, -1]
    assert lp[gemma.token_id(" Paris")] > lp[gemma.token_id(" Rome")]
    assert "Paris" in gemma.generate("What is the capital of France?", max_new_tokens=12)
    # a base model's answer ends at the first newline token, whichever: "\n", "\n\n" ...
    stops = set(gemma.stop_ids())
    nl = {gemma.tokenizer("\n", add_special_tokens=False)["input_ids"][0], gemma.tokenizer("\n\n", add_special_tokens=False)["input_ids"][0]}
    assert len(nl) == 2 and nl <= stops


def test_hook_identities_early_stop_and_run_from(gemma):
    """The residual stream adds up through Gemma's post-norms; an early-stopped recording
    equals the full one; running from a middle layer reproduces the full run."""
    toks = gemma.to_tokens(TEXTS[0])
    names = [gemma.hook_name(k, l) for l in (LAYER, LAYER + 1) for k in ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "mlp_post")]
    logits, full = gemma.run_with_cache(toks, names, stop_early=False)
    n = lambda k, l: full[gemma.hook_name(k, l)]  # noqa: E731
    assert torch.allclose(n("resid_pre", LAYER) + n("attn_out", LAYER), n("resid_mid", LAYER), atol=1e-4)
    assert torch.allclose(n("resid_mid", LAYER) + n("mlp_out", LAYER), n("resid_post", LAYER), atol=1e-4)
    assert torch.equal(n("resid_post", LAYER), n("resid_pre", LAYER + 1))
    _, early = gemma.run_with_cache(toks, [gemma.hook_name("mlp_post", LAYER)])
    assert torch.equal(early[gemma.hook_name("mlp_post", LAYER)], n("mlp_post", LAYER))
    final = gemma.run_from(n("resid_pre", LAYER + 1), LAYER + 1)
    again = gemma.unembed(gemma.final_norm(final))
    assert (again - logits).abs().max() < 1e-3 * logits.abs().max()


def test_patching_identities_and_handoff(gemma):
    from gnothi.tools.patching import patch

    rep = patch(gemma, "The capital of France is", "The capital of Italy is", " Paris", " Rome", mode="exact", kinds=["resid"])
    assert rep.clean_metric > 0 > rep.corrupted_metric
    lp = rep.layer_profile
    subj, last = lp["resid_at_changed_token"], lp["resid_at_last_token"]
    assert subj[0] == pytest.approx(1.0, abs=1e-3)  # the changed token entering layer 0 carries everything
    assert last[0] == pytest.approx(0.0, abs=1e-3)  # the last token entering layer 0 carries nothing yet
    # the metrics are the model's own logit differences
    for prompt, metric in (("The capital of France is", rep.clean_metric), ("The capital of Italy is", rep.corrupted_metric)):
        lg = gemma.logits(prompt)[0, -1]
        assert metric == pytest.approx(float(lg[gemma.token_id(" Paris")] - lg[gemma.token_id(" Rome")]), abs=1e-3)
    h = lp["handoff_layer"]
    print(f"\nGemma 3 patching: handoff layer {h}; at the subject {[round(v, 2) for v in subj]}; last {[round(v, 2) for v in last]}")
    assert h is not None and 0 < h < gemma.n_layers


def test_probe_above_its_control(gemma, tmp_path, monkeypatch):
    from gnothi.tools.probing import run_probe

    monkeypatch.setattr("gnothi.tools.probing.saved.model_cache_dir", lambda name: tmp_path / name)
    rep = run_probe(gemma, "singular_vs_plural", layers=[0, 9], n=200, save=False)
    l0, l9 = rep.layer(0), rep.layer(9)
    print(f"\nGemma 3 singular/plural probe: layer 0 {l0.accuracy:.2f}, layer 9 {l9.accuracy:.2f} (selectivity {l9.selectivity:+.2f})")
    assert l0.accuracy < l9.accuracy - 0.2
    assert l9.accuracy >= 0.8 and l9.ci_low > 0.6 and l9.selectivity > 0.2


def test_store_and_scored_neuron(gemma, tmp_path):
    from gnothi.tools.neurons import explain_neuron
    from gnothi.tools.store import ActivationStore, build_store

    rep = build_store(gemma, "mlp", "default", n_tokens=2048, layers=[LAYER], path=tmp_path / "mlp", progress=False)
    st = ActivationStore(tmp_path / "mlp", verify=True, tokenizer=gemma.tokenizer)
    assert rep.n_tokens == 2048 and st.n_units(LAYER) == 2048
    r = st.top_records(LAYER, int(st.max_activations(LAYER).argmax()))[0]
    toks = torch.from_numpy(st.windows[r.window].astype("int64"))[None]
    n = int(st.max_activations(LAYER).argmax())
    _, cache = gemma.run_with_cache(toks, [gemma.hook_name("mlp_post", LAYER)])
    fresh = cache[gemma.hook_name("mlp_post", LAYER)][0, 1:, n].float()
    assert torch.allclose(torch.tensor(r.activations[1:]), fresh, atol=0.02 * float(fresh.abs().max()) + 1e-3)
    gaps = []
    for unit in torch.topk(st.max_activations(LAYER), 3).indices.tolist():
        page = explain_neuron(gemma, LAYER, unit, store=st, modes=False)
        assert page.explanation.startswith("fires on") and len(page.promoted) == 10
        gaps.append(page.score.pearson - page.score.shuffled_pearson)
        json.dumps(page.to_tool_result(gemma).model_dump(mode="json"))
    print(f"\nGemma 3 neuron explanations, pearson minus shuffled control: {[round(g, 2) for g in gaps]}")
    assert sum(gaps) / len(gaps) > 0.1


def test_sae_trained_and_spliced_in(gemma):
    from gnothi.tools.sae_train import TrainConfig, train_sae

    res = train_sae(gemma, TrainConfig(layer=LAYER, n_tokens=6000, eval_tokens=1024, ce_tokens=256, epochs=8, expansion=2, k=16,
                                       name="pytest-gemma"), progress=False, save=False)
    m = res.metrics
    print(f"\nGemma 3 SAE: explained variance {res.explained_variance:.2f} (init {res.explained_variance_before:.2f}), "
          f"CE clean {m.ce_clean:.2f} / SAE {m.ce_sae:.2f} / zero-ablated {m.ce_zero:.2f}")
    assert res.explained_variance > res.explained_variance_before + 0.2 and res.explained_variance > 0.5
    assert m.ce_clean < m.ce_sae < m.ce_zero and res.ce_loss_recovered > 0.5


def test_hallucination_detector_held_out(gemma):
    from gnothi.tools import hallu_data as D
    from gnothi.tools import hallucination as H

    facts = D.select_facts(per_family=14, fabricated_per_family=6, seed=0)
    det, ev = H.train_and_evaluate(gemma, facts=facts, test_frac=0.4, save=False, transfer=False)
    print(f"\nGemma 3 hallucination detector: held-out AUROC {ev.auroc} (CI {ev.auroc_ci}), positive rate {ev.test_positive_rate:.2f}")
    assert 0.2 < ev.test_positive_rate < 0.95
    assert ev.auroc["combined"] >= 0.65 and ev.auroc_ci["combined"][0] > 0.5
