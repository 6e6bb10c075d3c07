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


def test_a_run_past_the_memory_bound_is_refused_with_what_fits(tiny, monkeypatch):
    """GNOTHI_MEMORY_LIMIT_GB bounds every run: too long a text gets a message with the
    length that fits (and that length then runs); 0 lifts the bound; nonsense is an input error."""
    from gnothi.tools.errors import MemoryBoundError

    names = [tiny.hook_name("resid_post", 0)]
    short, long_ = torch.randint(5, 50, (1, 8)), torch.randint(5, 50, (1, 4000))
    # the bound sits between what the short and the long run need
    lo, hi = tiny.memory_needed(1, 8, names, logits=False), tiny.memory_needed(1, 4000, names, logits=False)
    assert lo < hi
    monkeypatch.setenv("GNOTHI_MEMORY_LIMIT_GB", str((lo + hi) / 2 / 1e9))
    tiny.run_with_cache(short, names)
    with pytest.raises(MemoryBoundError, match="more than the bound") as e:
        tiny.run_with_cache(long_, names)
    assert "GNOTHI_MEMORY_LIMIT_GB" in e.value.fix
    fits = int(e.value.fix.split("under about ")[1].split(" tokens")[0])
    assert 8 < fits < 4000 and tiny.memory_needed(1, fits, names, logits=False) <= (lo + hi) / 2
    tiny.run_with_cache(long_[:, :fits], names)  # what the message says fits, runs
    with pytest.raises(MemoryBoundError):
        tiny.logits(long_)
    with pytest.raises(MemoryBoundError):
        tiny.generate_ids([long_[0].tolist()], 4)
    monkeypatch.setenv("GNOTHI_MEMORY_LIMIT_GB", "0")
    tiny.run_with_cache(long_, names)
    monkeypatch.setenv("GNOTHI_MEMORY_LIMIT_GB", "lots")
    with pytest.raises(InputError, match="not a number of gigabytes"):
        tiny.run_with_cache(short, names)


def test_memory_needed_grows_with_what_is_recorded(tiny):
    """The estimate counts logits, recorded hook points and attention patterns (T^2)."""
    base = tiny.memory_needed(1, 512, [], logits=False)
    assert tiny.memory_needed(1, 512, []) - base == 512 * tiny.shape.d_vocab * 8
    assert tiny.memory_needed(1, 512, [tiny.hook_name("mlp_post", 0)], logits=False) - base == 512 * tiny.d_mlp * 4
    pat = tiny.memory_needed(1, 512, [tiny.hook_name("attn_pattern", 0)], logits=False) - base
    assert pat == tiny.n_heads * 512 * 512 * 4
    assert tiny.memory_needed(2, 512, []) == 2 * (tiny.memory_needed(1, 512, []) - 0.6e9) + 0.6e9


def test_gradient_runs_count_every_layer_and_a_bound_below_the_fixed_cost_says_so(tiny, monkeypatch):
    from gnothi.tools.errors import MemoryBoundError

    fwd, bwd = tiny.memory_needed(1, 512, []), tiny.memory_needed(1, 512, [], grad=True)
    attn_one_layer = tiny.n_heads * 512 * 512 * 4 * 2
    assert bwd - fwd >= (2 * tiny.n_layers - 1) * attn_one_layer  # the backward pass keeps every layer's attention
    long_ = torch.randint(5, 50, (1, 3000))
    monkeypatch.setenv("GNOTHI_MEMORY_LIMIT_GB", str(tiny.memory_needed(1, 3000, []) / 1e9))
    tiny.run_with_hooks(long_)  # a forward fits exactly
    with pytest.raises(MemoryBoundError, match="3000 tokens with gradients") as e:
        tiny.run_with_hooks(long_, grad=True)
    assert "smaller batch" not in e.value.fix  # one prompt: the fix is a shorter text
    monkeypatch.setenv("GNOTHI_MEMORY_LIMIT_GB", "0.5")  # below the fixed 0.6 GB: no length fits
    with pytest.raises(MemoryBoundError) as e:
        tiny.logits(long_[:, :8])
    assert "below the fixed cost" in e.value.fix and "under about" not in e.value.fix
