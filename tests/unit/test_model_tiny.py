import pytest
import torch

from gnothi.tools.errors import InputError, OutOfRangeError, UnknownHookPointError


def test_shape_and_hook_points(tiny):
    assert tiny.n_layers == 2 and tiny.d_model == 32 and tiny.d_mlp == 64
    hp = tiny.hook_points()
    for kind in ["resid_pre", "resid_mid", "resid_post", "attn_out", "head_out", "attn_pattern", "mlp_post", "mlp_out"]:
        assert len(hp[kind]) == 2, kind
    assert tiny.hook_name("mlp_post", 1) == "blocks.1.mlp.hook_post"


def test_run_with_cache_records_only_requested_and_stops_early(tiny):
    toks = tiny.to_tokens(["the cat sat on the red car", "a dog"])
    assert toks.shape[0] == 2
    name = tiny.hook_name("mlp_post", 0)
    logits, cache = tiny.run_with_cache(toks, [name])
    assert logits is None  # stopped after layer 0
    assert list(cache) == [name]
    assert cache[name].shape == (2, toks.shape[1], 64)
    # the early-stopped activations equal those of a full run
    full_logits, full = tiny.run_with_cache(toks, [name], stop_early=False)
    assert full_logits.shape[-1] == tiny.shape.d_vocab
    assert torch.allclose(full[name], cache[name])


def test_patch_identity_and_added_vector(tiny):
    toks = tiny.to_tokens("the king of france is in paris")
    base = tiny.logits(toks)
    name = tiny.hook_name("resid_post", 0)
    _, cache = tiny.run_with_cache(toks, [name])
    patched = tiny.run_with_patches(toks, {name: cache[name]})
    assert torch.allclose(base, patched, atol=1e-5)
    v = torch.zeros(tiny.d_model)
    assert torch.allclose(base, tiny.run_with_added(toks, {name: v}), atol=1e-6)
    v[0] = 10.0
    assert not torch.allclose(base, tiny.run_with_added(toks, {name: v}), atol=1e-3)


def test_log_probs_normalised(tiny):
    lp = tiny.log_probs("the cat")
    assert torch.allclose(lp.exp().sum(-1), torch.ones(lp.shape[:-1]), atol=1e-4)


def test_bad_inputs(tiny):
    with pytest.raises(OutOfRangeError, match="0 to 1"):
        tiny.hook_name("mlp_post", 2)
    with pytest.raises(OutOfRangeError):
        tiny.check_neuron(0, 64)
    with pytest.raises(UnknownHookPointError):
        tiny.run_with_cache("the cat", ["blocks.0.hook_nope"])
    with pytest.raises(OutOfRangeError):
        tiny.run_with_cache("the cat", ["blocks.7.hook_resid_post"])
    with pytest.raises(InputError):
        tiny.to_tokens("")
    with pytest.raises(InputError):
        tiny.token_id("the cat")


def test_generate_runs(tiny):
    out = tiny.generate("the cat", max_new_tokens=3, chat=False)
    assert isinstance(out, str)


def test_thread_safety(tiny):
    import threading

    toks = tiny.to_tokens("the sun and the moon")
    ref = tiny.logits(toks)
    errs = []

    def work():
        for _ in range(5):
            if not torch.allclose(tiny.logits(toks), ref, atol=1e-6):
                errs.append("mismatch")

    ts = [threading.Thread(target=work) for _ in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert not errs


def test_text_that_is_not_unicode_is_refused_with_a_message(tiny):
    bad = "the cat \udce9 is"  # how Python decodes a byte that is not UTF-8 (surrogateescape)
    for call in (lambda: tiny.to_tokens(bad), lambda: tiny.token_id("\ud800"), lambda: tiny.generate(bad)):
        with pytest.raises(InputError, match="not valid Unicode"):
            call()
    tiny.to_tokens("the cat is")  # plain text is fine
