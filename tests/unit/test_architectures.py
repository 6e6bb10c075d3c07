"""The model handle's operations on tiny random models of six architectures.

Each is a Hugging Face model built from a config in well under a second (Llama, Gemma 3,
GPT-2, Qwen2, GPT-NeoX, and GPT-NeoX with Pythia's parallel blocks) and wrapped in the same TransformerLens bridge a real model gets.
The checks are identities against the HF model itself or against a full run, so a hook
name mapped to the wrong tensor, a partial run fed the wrong position embeddings or mask,
or a generation that ignores the padding shows up as a number that differs.
"""

from __future__ import annotations

import pytest
import torch

from gnothi.tools.testing import TINY_ARCHS, tiny_handle

TEXT = "the cat is in paris and the dog is in rome"
KINDS = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "mlp_post", "head_out", "attn_pattern")


@pytest.fixture(scope="module", params=TINY_ARCHS)
def h(request):
    return tiny_handle(name=f"tiny-{request.param}", arch=request.param)


@pytest.fixture(scope="module")
def run(h):
    toks = h.to_tokens(TEXT)
    names = [h.hook_name(k, l) for l in range(h.n_layers) for k in KINDS if k in h.hook_points()]
    logits, cache = h.run_with_cache(toks, names, stop_early=False)
    return toks, logits, cache


def test_logits_are_the_hf_models_own(h, run):
    toks, logits, _ = run
    with torch.inference_mode():
        hf = h.adapter.hf(toks).logits
    assert torch.allclose(logits, hf, atol=1e-5)


def test_residual_stream_adds_up(h, run):
    _, logits, c = run
    n = lambda k, l: c[h.hook_name(k, l)]  # noqa: E731
    parallel = "resid_mid" not in h.hook_points()
    assert parallel == (h.tl_model.cfg.parallel_attn_mlp or False)
    for l in range(h.n_layers):
        if parallel:  # attention and MLP both read the block's input (Pythia)
            assert torch.allclose(n("resid_pre", l) + n("attn_out", l) + n("mlp_out", l), n("resid_post", l), atol=1e-5)
            continue
        assert torch.allclose(n("resid_pre", l) + n("attn_out", l), n("resid_mid", l), atol=1e-5)
        assert torch.allclose(n("resid_mid", l) + n("mlp_out", l), n("resid_post", l), atol=1e-5)
    assert torch.equal(n("resid_post", 0), n("resid_pre", 1))
    last = n("resid_post", h.n_layers - 1)
    assert torch.allclose(h.unembed(h.final_norm(last)), logits, atol=1e-4)
    # the embedding as the first block sees it (Gemma scales it by sqrt(d_model))
    assert torch.allclose(h.embed_tokens(run[0]), n("resid_pre", 0), atol=1e-5) or h.shape.architecture == "GPT2LMHeadModel"


def test_shapes_of_heads_and_patterns(h, run):
    toks, _, c = run
    P = toks.shape[1]
    assert c[h.hook_name("head_out", 0)].shape == (1, P, h.n_heads, h.shape.d_head)
    pat = c[h.hook_name("attn_pattern", 1)]
    assert pat.shape == (1, h.n_heads, P, P)
    assert torch.allclose(pat.sum(-1), torch.ones(1, h.n_heads, P), atol=1e-5)
    assert float(pat.triu(1).abs().max()) == 0.0  # causal
    assert c[h.hook_name("mlp_post", 0)].shape == (1, P, h.d_mlp)


def test_mlp_post_feeds_the_output_projection(h, run):
    """``mlp_post`` times W_out is the MLP's output (before a post-MLP norm, where there is one)."""
    _, _, c = run
    out = c[h.hook_name("mlp_post", 0)] @ h.W_out(0)
    mlp_out = c[h.hook_name("mlp_out", 0)]
    if h.shape.architecture == "Gemma3ForCausalLM":
        # Gemma normalises the MLP output: same direction per position, other scale
        cos = torch.nn.functional.cosine_similarity(out * (1 + h.tl_model.blocks[0].ln2_post._original_component.weight), mlp_out, dim=-1)
        assert float(cos.min()) > 0.9999
        assert not torch.allclose(out, mlp_out, atol=1e-3)
    else:
        bias = getattr(h.tl_model.blocks[0].mlp, "b_out", None)
        assert torch.allclose(out + (bias if bias is not None else 0), mlp_out, atol=1e-5)


def test_early_stop_equals_the_full_run(h, run):
    toks, _, c = run
    name = h.hook_name("mlp_post", 0)
    logits, early = h.run_with_cache(toks, [name])
    assert logits is None and list(early) == [name]
    assert torch.equal(early[name], c[name])


def test_running_from_a_layer_reproduces_the_full_run(h, run):
    from gnothi.tools.errors import OutOfRangeError

    toks, _, c = run
    for start, stop in ((-1, None), (h.n_layers, None), (1, 1), (0, h.n_layers + 1)):
        with pytest.raises(OutOfRangeError):
            h.run_from(c[h.hook_name("resid_pre", 0)], start, stop)
    for start in range(h.n_layers):
        out = h.run_from(c[h.hook_name("resid_pre", start)], start)
        assert torch.allclose(out, c[h.hook_name("resid_post", h.n_layers - 1)], atol=1e-5), start
    one = h.run_from(c[h.hook_name("resid_pre", 0)], 0, 1)
    assert torch.allclose(one, c[h.hook_name("resid_post", 0)], atol=1e-5)
    # a batch of several rows, and hooks that fire inside the partial run
    seen = []
    batch = c[h.hook_name("resid_pre", 1)].expand(3, -1, -1).clone()
    out = h.run_from(batch, 1, None, [(h.hook_name("mlp_post", 1), lambda a, hook: seen.append(hook.name))])
    assert out.shape[0] == 3 and seen == [h.hook_name("mlp_post", 1)]
    assert torch.allclose(out[2], c[h.hook_name("resid_post", h.n_layers - 1)][0], atol=1e-5)


def test_patching_a_head_and_gradients_through_it(h, run):
    toks, logits, c = run
    name = h.hook_name("head_out", 1)
    same = h.run_with_patches(toks, {name: c[name]})
    assert torch.allclose(same, logits, atol=1e-5)
    zeroed = c[name].clone()
    zeroed[:, :, 2] = 0
    assert not torch.allclose(h.run_with_patches(toks, {name: zeroed}), logits, atol=1e-4)
    store = {}

    def seed(act, hook):  # the weights need no gradient: the residual stream is the leaf
        return act.detach().clone().requires_grad_(True)

    def keep(act, hook):
        store["z"] = act

    out = h.run_with_hooks(toks, fwd_hooks=[(h.hook_name("resid_pre", 0), seed), (name, keep)], grad=True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(out[0, -1].logsumexp(-1), [store["z"]])
    assert g.shape == c[name].shape and float(g.abs().sum()) > 0


def test_batched_generation_equals_one_at_a_time(h):
    prompts = ["the cat", "the king of france is in", "a dog and a cat"]
    seqs = [h.to_tokens(p)[0].tolist() for p in prompts]
    together = h.generate_ids(seqs, 5)
    alone = [h.generate_ids([s], 5)[0] for s in seqs]
    assert together == alone
    # greedy: the first new token is the argmax of the logits
    for s, new in zip(seqs, alone):
        assert new[0] == int(h.logits(torch.tensor([s]))[0, -1].argmax())


def test_an_architecture_the_bridge_lacks_names_the_closest():
    """BioGPT is a causal LM transformers has and the bridge does not: a clear refusal."""
    from transformers import BioGptConfig, BioGptForCausalLM

    from gnothi.tools.errors import UnsupportedArchitectureError
    from gnothi.tools.model import from_hf_model
    from gnothi.tools.testing import tiny_tokenizer

    tok = tiny_tokenizer()
    cfg = BioGptConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64)
    with pytest.raises(UnsupportedArchitectureError) as e:
        from_hf_model(BioGptForCausalLM(cfg), tok, name="tiny-biogpt")
    assert "BioGptForCausalLM" in e.value.message and "closest supported architecture is" in e.value.fix


def test_a_run_stopped_early_leaves_nothing_behind(h):
    """A batch recorded with an early stop at the embedding, then one prompt: the same logits
    and generation as on a handle that never stopped early (GPT-2's learned position
    embedding once kept the stopped run's batch size)."""
    fresh = tiny_handle(name="fresh", arch=h.name.removeprefix("tiny-"))
    first = "hook_embed" if "hook_embed" in h.all_hook_names() else h.hook_name("resid_pre", 0)
    h.run_with_cache(h.to_tokens(["the cat is", "a dog", "the king of france"]), [first])
    p = h.to_tokens("the cat")[0].tolist()
    assert torch.allclose(h.logits(torch.tensor([p])), fresh.logits(torch.tensor([p])), atol=1e-5)
    h.run_with_cache(h.to_tokens(["the cat is", "a dog", "the king of france"]), [first])
    assert h.generate_ids([p], 4) == fresh.generate_ids([p], 4)
