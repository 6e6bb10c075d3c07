"""Activation patching, attribution patching and causal tracing on the tiny model.

The identities pin the engine down: copying a whole layer's clean residual stream restores
the clean metric exactly; patching nothing leaves the corrupted one; every batched result
equals a plain run with a hand-written hook; attribution patching is the derivative of
exact patching (checked by a finite difference).
"""

from __future__ import annotations

import json

import pytest
import torch

from gnothi.tools.errors import InputError, OutOfRangeError
from gnothi.tools.patching import (
    PatchSpec,
    _build_metric,
    _logit_diff_readout,
    _names_for,
    align_prompts,
    attribution_sweep,
    causal_trace,
    patch,
    run_specs,
)

from gnothi.tools.testing import TINY_ARCHS, tiny_handle

CLEAN = "the capital of france is"
CORR = "the capital of italy is"


@pytest.fixture(scope="module", params=TINY_ARCHS)
def setup(request):
    """The tiny model of each architecture (Llama, Gemma 3, GPT-2, Qwen2, GPT-NeoX): the
    identities below hold on every one. The random Qwen2 of seed 0 barely tells France from
    Italy (the first test checks that the corruption moves the metric), so it takes seed 1."""
    arch = request.param
    h = tiny_handle(name=f"tiny-{arch}", arch=arch, seed=1 if arch == "qwen2" else 0)
    metric = _build_metric(h, " paris", " rome")
    ct, rt, pair = align_prompts(h, CLEAN, CORR)
    names = _names_for(h, ["resid", "attn", "mlp", "heads"])
    cl, clean = h.run_with_cache(ct, names, stop_early=False)
    co, corr = h.run_with_cache(rt, names, stop_early=False)
    m = lambda lg: float(lg[0, -1, metric.answer_id] - lg[0, -1, metric.alt_id])  # noqa: E731
    base = {l: corr[h.hook_name("resid_pre", l)] for l in range(h.n_layers)}
    return dict(h=h, metric=metric, ct=ct, rt=rt, pair=pair, clean=clean, corr=corr, clean_m=m(cl), corr_m=m(co), m=m, base=base)


def _hand(h, tokens, name, value, pos=None, head=None):
    """Patched logits from a plain full run with one hand-written hook."""

    def fn(act, hook):
        act = act.clone()
        if head is None and pos is None:
            act[:] = value
        elif head is None:
            act[:, pos] = value[:, pos]
        else:
            act[:, :, head] = value[:, :, head]
        return act

    return h.run_with_hooks(tokens, fwd_hooks=[(name, fn)])


def test_whole_layer_residual_restores_clean_and_nothing_leaves_corrupted(setup):
    s = setup
    h = s["h"]
    read = _logit_diff_readout(h, s["metric"])
    n_pos = s["ct"].shape[1]
    specs = [PatchSpec(tuple((h.hook_name("resid_pre", l), l, p, None) for p in range(n_pos))) for l in range(h.n_layers)]
    specs.append(PatchSpec(tuple((h.hook_name("resid_pre", l), l, None, None) for l in range(h.n_layers))))  # every layer at once
    specs.append(PatchSpec(()))  # nothing patched
    vals = run_specs(h, s["base"], s["clean"], specs, read)
    assert abs(s["clean_m"] - s["corr_m"]) > 0.1  # the corruption matters on this model
    for v in vals[:-1]:
        assert v == pytest.approx(s["clean_m"], abs=1e-4)
    assert vals[-1] == pytest.approx(s["corr_m"], abs=1e-4)


def test_batched_sweep_matches_hand_written_hooks(setup):
    s = setup
    h = s["h"]
    rep = patch(h, CLEAN, CORR, " paris", " rome", mode="exact")
    assert rep.clean_metric == pytest.approx(s["clean_m"], abs=1e-3)
    assert rep.corrupted_metric == pytest.approx(s["corr_m"], abs=1e-3)
    denom = s["clean_m"] - s["corr_m"]
    ex = {k: e.exact for k, e in rep.effects.items()}
    n_pos = s["ct"].shape[1]
    checks = []
    for l in range(h.n_layers):
        for p in range(n_pos):
            n = h.hook_name("resid_pre", l)
            checks.append((ex["resid"][l][p], n, p, None))
        checks.append((ex["attn"][l], h.hook_name("attn_out", l), None, None))
        checks.append((ex["mlp"][l], h.hook_name("mlp_out", l), None, None))
        for hd in range(h.n_heads):
            checks.append((ex["heads"][l][hd], h.hook_name("head_out", l), None, hd))
    for eff, name, pos, head in checks:
        by_hand = (s["m"](_hand(h, s["rt"], name, s["clean"][name], pos, head)) - s["corr_m"]) / denom
        assert eff == pytest.approx(by_hand, abs=2e-3), (name, pos, head)
    # positions before the changed token are identical in both runs: exactly no effect
    first = min(rep.prompts.changed_positions)
    assert first > 0 and all(v == 0 for row in ex["resid"] for v in row[:first])
    assert rep.n_patched_runs == h.n_layers * ((n_pos - first) + 2 + h.n_heads)


def test_chunking_does_not_change_results(setup):
    h = setup["h"]
    a = patch(h, CLEAN, CORR, " paris", " rome", mode="exact", kinds=["resid", "heads"])
    b = patch(h, CLEAN, CORR, " paris", " rome", mode="exact", kinds=["resid", "heads"], token_budget=7)
    for k in ("resid", "heads"):
        assert torch.allclose(torch.tensor(a.effects[k].exact), torch.tensor(b.effects[k].exact), atol=1e-3)
    # both batching strategies (growing batch, batch per start layer) give the same numbers
    s = setup
    from gnothi.tools.patching import exact_sweep

    g1, n1 = exact_sweep(h, s["clean"], s["corr"], s["metric"], ["resid", "attn", "mlp", "heads"], s["ct"].shape[1], grow=True)
    g0, n0 = exact_sweep(h, s["clean"], s["corr"], s["metric"], ["resid", "attn", "mlp", "heads"], s["ct"].shape[1], grow=False)
    assert n0 == n1
    for k in g1:
        assert torch.allclose(g1[k], g0[k], atol=1e-4)


def test_attribution_is_the_derivative_of_exact_patching(setup):
    """Exact patching toward the clean activation by a small step eps, divided by eps, is the attribution estimate."""
    s = setup
    h = s["h"]
    kinds = ["resid", "attn", "mlp", "heads"]
    at, m0 = attribution_sweep(h, s["rt"], s["clean"], s["metric"], kinds)
    assert m0 == pytest.approx(s["corr_m"], abs=1e-4)
    eps = 1e-3
    names = _names_for(h, kinds)
    step = {n: s["corr"][n] + eps * (s["clean"][n] - s["corr"][n]) for n in names}
    read = _logit_diff_readout(h, s["metric"])
    comps = [
        ("resid", (1, 4), PatchSpec(((h.hook_name("resid_pre", 1), 1, 4, None),))),
        ("resid", (0, 4), PatchSpec(((h.hook_name("resid_pre", 0), 0, 4, None),))),
        ("attn", (0,), PatchSpec(((h.hook_name("attn_out", 0), 0, None, None),))),
        ("mlp", (1,), PatchSpec(((h.hook_name("mlp_out", 1), 1, None, None),))),
        ("heads", (1, 2), PatchSpec(((h.hook_name("head_out", 1), 1, None, 2),))),
        ("heads", (0, 1), PatchSpec(((h.hook_name("head_out", 0), 0, None, 1),))),
    ]
    vals = run_specs(h, s["base"], step, [c for *_, c in comps], read)
    for (kind, idx, _), v in zip(comps, vals):
        fd = (float(v) - s["corr_m"]) / eps
        est = float(at[kind][idx])
        assert fd == pytest.approx(est, rel=0.05, abs=2e-3), (kind, idx, fd, est)
    # (On this random model full-size patches are far from linear, so exact vs attribution on
    # whole activations is compared on the bundled model, in the integration tests.)


def test_report_json_figures_and_top_components(setup):
    h = setup["h"]
    rep = patch(h, CLEAN, CORR, " paris", " rome", mode="both", top_k=5)
    tr = rep.to_tool_result()
    d = json.loads(tr.model_dump_json())
    assert d["headline"]["clean_metric"] == pytest.approx(setup["clean_m"], abs=1e-3)
    assert len(rep.top_components) == 5
    effs = [abs(c.effect) for c in rep.top_components]
    assert effs == sorted(effs, reverse=True)
    assert sum(c.kind == "resid" for c in rep.top_components) <= 3
    names = " ".join(c.name for c in rep.top_components)
    assert any(w in names for w in ("MLP at layer", "attention at layer", "head ", "residual at layer"))
    kinds = [f.kind for f in tr.figures]
    assert kinds.count("heatmap") >= 3 and "line" in kinds
    resid_fig = tr.figures[0]
    assert len(resid_fig.data["x"]) == len(rep.prompts.clean_tokens) and "'france'*" in resid_fig.data["x"][4]
    from gnothi.tools.results import render_png

    assert render_png(resid_fig)[:4] == b"\x89PNG"


def test_automatic_corruption_swaps_the_subject(setup):
    h = setup["h"]
    rep = patch(h, CLEAN, None, " paris", " rome", mode="attribution", kinds=["resid"])
    p = rep.prompts
    assert p.auto and p.corrupted != CLEAN
    assert p.changed_positions == [4]  # only 'france' changed
    assert "swapped 'france' for" in p.note
    assert p.corrupted.replace(p.corrupted_tokens[4], "france") == CLEAN
    # the chosen swap is the one that lowers the metric most among the candidates: below the clean metric
    assert rep.corrupted_metric < rep.clean_metric
    # a word used twice is swapped everywhere (the tiny vocabulary has animals, not names)
    rep2 = patch(h, "the cat and the dog went to the house , the cat gave a fish to the", None, " dog", " cat", mode="attribution", kinds=["resid"])
    p2 = rep2.prompts
    assert p2.auto and p2.corrupted_tokens != p2.clean_tokens and len(p2.corrupted_tokens) == len(p2.clean_tokens)
    assert len(p2.changed_positions) in (1, 2)  # 'cat' twice, or 'dog', or 'fish', or 'house'
    # nothing to swap: a clear refusal
    with pytest.raises(InputError, match="subject or name"):
        patch(h, "the the the is", None, " paris", " rome")


def test_alternative_defaults_to_corrupted_top_prediction(setup):
    h = setup["h"]
    rep = patch(h, CLEAN, CORR, " paris", None, mode="attribution", kinds=["attn"])
    lg = h.logits(setup["rt"])[0, -1].clone()
    lg[setup["metric"].answer_id] = float("-inf")
    assert rep.alternative_token == h.tokenizer.decode([int(lg.argmax())])
    assert any("No alternative given" in n for n in rep.notes)


def test_multi_token_answers_measure_first_differing_token(setup):
    h = setup["h"]
    rep = patch(h, CLEAN, CORR, " paris france", " paris rome", mode="exact", kinds=["resid"])
    assert "shared answer tokens" in rep.metric and "first" in rep.metric
    assert rep.prompts.clean_tokens[-1] == "paris" and len(rep.prompts.clean_tokens) == setup["ct"].shape[1] + 1
    toks = torch.cat([setup["ct"], torch.tensor([[h.token_id("paris")]])], dim=1)
    lg = h.logits(toks)[0, -1]
    assert rep.clean_metric == pytest.approx(float(lg[h.token_id("france")] - lg[h.token_id("rome")]), abs=1e-3)
    rep2 = patch(h, CLEAN, CORR, " paris france", " rome", mode="attribution", kinds=["attn"])
    assert "only this first differing token is measured" in rep2.metric


def test_bad_inputs_are_refused_with_reasons(setup):
    h = setup["h"]
    with pytest.raises(InputError, match=r"5 tokens|6 tokens|line up token for token") as e:
        patch(h, CLEAN, "the capital of the country is", " paris", " rome")
    assert "same number of tokens" in e.value.fix or "same token length" in e.value.fix
    with pytest.raises(InputError, match="same tokens"):
        patch(h, CLEAN, CLEAN, " paris", " rome")
    with pytest.raises(InputError, match="same tokens"):
        patch(h, CLEAN, CORR, " paris", " paris")
    with pytest.raises(InputError, match="prefix"):
        patch(h, CLEAN, CORR, " paris", " paris rome")
    with pytest.raises(InputError, match="empty"):
        patch(h, "  ", CORR, " paris", " rome")
    with pytest.raises(InputError, match="kind"):
        patch(h, CLEAN, CORR, " paris", " rome", kinds=["neurons"])
    with pytest.raises(InputError, match="mode"):
        patch(h, CLEAN, CORR, " paris", " rome", mode="fast")
    with pytest.raises(InputError, match="too slow") as e:
        patch(h, CLEAN, CORR, " paris", " rome", max_positions=4)
    assert "attribution" in e.value.fix
    assert patch(h, CLEAN, CORR, " paris", " rome", mode="attribution", kinds=["resid"], max_positions=4).effects["resid"].attribution
    # a corruption the model cannot see (two tokens given the same embedding): nothing to normalize by
    with pytest.raises(InputError, match="does not change the metric"):
        _patch_with_identical_embeddings(h)


def _patch_with_identical_embeddings(h):
    W_E = h.W_E()
    a, b = h.token_id("cat"), h.token_id("dog")
    saved = W_E.data[[a, b]].clone()
    try:
        W_E.data[b] = W_E.data[a]
        patch(h, "the cat is", "the dog is", " paris", " rome", kinds=["attn"])
    finally:
        W_E.data[[a, b]] = saved


def test_causal_trace_identities(setup):
    h = setup["h"]
    r = causal_trace(h, CLEAN, " paris", subject="france", samples=2, window=1)
    assert r.subject_positions == [4]
    lp = h.log_probs(setup["ct"])[0, -1].exp()
    assert r.p_clean == pytest.approx(float(lp[h.token_id("paris")]), abs=1e-4)
    g = r.grids["resid"]
    # restoring the last layer's output at the last position gives back the clean run exactly
    assert g[h.n_layers - 1][-1] == pytest.approx(r.p_clean, abs=1e-4)
    # positions before the subject are not noised: restoring them changes nothing
    assert all(g[l][p] == pytest.approx(r.p_corrupted, abs=1e-4) for l in range(h.n_layers) for p in range(4))
    # restoring the subject token's state right after layer 0 = only layer 0's own noise remains elsewhere: none
    assert r.p_corrupted != pytest.approx(r.p_clean, abs=1e-6)
    assert set(r.grids) == {"resid", "mlp", "attn"}
    tr = r.to_tool_result()
    assert len(tr.figures) == 3 and json.loads(tr.model_dump_json())["tool"] == "causal_trace"
    with pytest.raises(InputError, match="does not occur"):
        causal_trace(h, CLEAN, " paris", subject="spain")
    with pytest.raises(InputError, match="kind"):
        causal_trace(h, CLEAN, " paris", kinds=["heads"])


def test_causal_trace_matches_hand_written_noise_and_restore(setup):
    """One restored state, recomputed with plain hooks and the same noise."""
    h = setup["h"]
    r = causal_trace(h, CLEAN, " paris", subject="france", samples=1, kinds=["resid"], seed=3)
    from gnothi.tools.patching import _embedding_std

    gen = torch.Generator().manual_seed(3)
    noise = torch.randn(1, 1, h.d_model, generator=gen) * 3.0 * _embedding_std(h)
    _, clean = h.run_with_cache(setup["ct"], [h.hook_name("resid_post", 0)], stop_early=False)

    def add(act, hook):
        act = act.clone()
        act[:, 4] += noise[0]
        return act

    def restore(act, hook):
        act = act.clone()
        act[:, 5] = clean[hook.name][:, 5]
        return act

    lg = h.run_with_hooks(setup["ct"], fwd_hooks=[(h.hook_name("resid_pre", 0), add), (h.hook_name("resid_post", 0), restore)])
    p = float(torch.softmax(lg[0, -1], -1)[h.token_id("paris")])
    assert r.grids["resid"][0][5] == pytest.approx(p, abs=1e-4)


def test_cli_patch_json_and_errors(setup, monkeypatch, capsys, tmp_path):
    from gnothi.ui import cli, cli_common

    monkeypatch.setattr(cli_common, "handle_from_args", lambda args: setup["h"])
    rc = cli.main(["patch", "--clean", CLEAN, "--corrupted", CORR, "--answer", " paris", "--alternative", " rome", "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    d = json.loads(out)
    for key in ("clean_metric", "corrupted_metric", "effects", "top_components"):
        assert key in d
    assert d["top_components"][0]["name"]
    assert d["clean_metric"] == pytest.approx(setup["clean_m"], abs=1e-3)
    rc = cli.main(["patch", "--clean", CLEAN, "--corrupted", "the capital of the country is", "--answer", " paris", "--json"])
    d = json.loads(capsys.readouterr().out)
    assert rc == 2 and d["error"] == "prompt_alignment" and "token" in d["message"]
    rc = cli.main(["attention", "--prompt", CLEAN, "--heads", "1.2,0.0", "--json"])
    d = json.loads(capsys.readouterr().out)
    assert rc == 0 and [x["name"] for x in d["heads"]] == ["1.2", "0.0"]
    rc = cli.main(["patch", "--clean", CLEAN, "--answer", " paris", "--alternative", " rome", "--mode", "attribution", "--top", "3", "--png", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0 and "top components" in out and "(automatic)" in out
    pngs = sorted(tmp_path.glob("patch_*.png"))
    assert pngs and pngs[0].read_bytes()[:4] == b"\x89PNG"
    rc = cli.main(["trace", "--prompt", CLEAN, "--answer", " paris", "--samples", "1", "--kinds", "resid"])
    assert rc == 0 and "Noising 'france'" in capsys.readouterr().out


def test_attention_view(setup):
    from gnothi.tools.attention import attention_view

    h = setup["h"]
    v = attention_view(h, CLEAN, layer=1, heads=[2, "0.3"])
    assert [x.name for x in v.heads] == ["1.2", "0.3"]
    _, cache = h.run_with_cache(setup["ct"], [h.hook_name("attn_pattern", 1)])
    pat = torch.tensor(v.heads[0].pattern)
    assert torch.allclose(pat, cache[h.hook_name("attn_pattern", 1)][0, 2], atol=1e-4)
    assert torch.allclose(pat.sum(-1), torch.ones(pat.shape[0]), atol=1e-3)
    assert torch.triu(pat, diagonal=1).abs().max() < 1e-6  # causal
    top = v.heads[0].last_token_top[0]
    assert top.weight == pytest.approx(float(pat[-1].max()), abs=1e-4)
    tr = v.to_tool_result()
    assert tr.figures[0].data["x"] == tr.figures[0].data["y"] and len(tr.figures) == 2
    assert len(attention_view(h, CLEAN, layer=0).heads) == h.n_heads
    with pytest.raises(OutOfRangeError):
        attention_view(h, CLEAN, heads=["5.0"])
    with pytest.raises(OutOfRangeError):
        attention_view(h, CLEAN, layer=0, heads=[9])
    with pytest.raises(InputError, match="without a layer"):
        attention_view(h, CLEAN, heads=[1])
    with pytest.raises(InputError):
        attention_view(h, CLEAN, heads=["x.y"])


def test_prompts_that_cannot_be_lined_up_fall_back_to_causal_tracing(setup):
    """No dead end: different token lengths run causal tracing on the clean prompt, noising the words that differ."""
    from gnothi.tools.errors import PromptAlignmentError
    from gnothi.tools.patching import PatchReport, TraceReport, differing_span, patch_or_trace

    h = setup["h"]
    longer = "the capital of the united kingdom is"
    with pytest.raises(PromptAlignmentError):
        patch(h, CLEAN, corrupted=longer, answer=" paris")
    assert differing_span(h, CLEAN, longer) == "france"
    rep = patch_or_trace(h, CLEAN, corrupted=longer, answer=" paris")
    assert isinstance(rep, TraceReport) and rep.subject == "france"
    assert "causal tracing instead" in rep.warnings[0] and "token" in rep.warnings[0]
    # the same trace as asking for it directly
    direct = causal_trace(h, CLEAN, " paris", subject="france")
    assert rep.p_clean == pytest.approx(direct.p_clean) and rep.grids == direct.grids
    # prompts that line up are patched as before
    assert isinstance(patch_or_trace(h, CLEAN, corrupted=CORR, answer=" paris", alternative=" rome"), PatchReport)
