"""SAE model, SAELens-format save/load (round trips through sae-lens itself), damage detection."""

import json
import math

import pytest
import torch

from gnothi.tools.errors import InputError, OutOfRangeError, SAECorruptError, SAEError, SAENotFoundError
from gnothi.tools.sae import (
    SAE,
    SAEUnits,
    load_sae,
    register_architecture,
    sae_config,
    save_sae,
)


def random_sae(d_in=32, d_sae=96, k=8, hook="blocks.1.hook_resid_post", model="tiny-llama", arch="topk", seed=0):
    torch.manual_seed(seed)
    sae = SAE(sae_config(d_in, d_sae, hook, model, architecture=arch, k=k))
    with torch.no_grad():
        sae.W_enc.normal_(0, 1 / math.sqrt(d_in))
        sae.W_dec.copy_(sae.W_enc.T + 0.05 * torch.randn(d_sae, d_in))
        sae.b_enc.normal_(0, 0.1)
        sae.b_dec.normal_(0, 0.1)
        if arch == "jumprelu":
            sae.threshold.uniform_(0.0, 0.3)
    return sae


@pytest.fixture(scope="module")
def sae_lens():
    return pytest.importorskip("sae_lens")


def test_topk_encode_is_sparse_and_decodes():
    sae = random_sae()
    x = torch.randn(3, 5, 32)
    f = sae.encode(x)
    assert f.shape == (3, 5, 96)
    assert ((f > 0).sum(-1) <= 8).all() and (f >= 0).all()
    assert sae.decode(f).shape == x.shape
    assert torch.allclose(sae(x), sae.decode(f), atol=1e-6)


def test_gnothi_save_loads_in_sae_lens(tmp_path, sae_lens):
    for arch in ("topk", "jumprelu", "standard"):
        sae = random_sae(arch=arch, seed=1)
        path = save_sae(sae, tmp_path / arch)
        theirs = sae_lens.SAE.load_from_disk(str(path))
        assert theirs.cfg.architecture() == arch
        assert theirs.cfg.metadata.hook_name == "blocks.1.hook_resid_post"
        x = torch.randn(4, 7, 32)
        with torch.no_grad():
            f_ours, f_theirs = sae.encode(x), theirs.encode(x)
            assert torch.allclose(f_ours, f_theirs, atol=1e-5), arch
            assert torch.allclose(sae.decode(f_ours), theirs.decode(f_theirs), atol=1e-5), arch
            assert torch.allclose(sae(x), theirs(x), atol=1e-5), arch


def test_sae_lens_save_loads_in_gnothi(tmp_path, sae_lens):
    from sae_lens import TopKSAE, TopKSAEConfig
    from sae_lens.saes.jumprelu_sae import JumpReLUSAE, JumpReLUSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    torch.manual_seed(2)
    meta = SAEMetadata(hook_name="blocks.0.hook_resid_post", model_name="tiny-llama")
    cases = {
        "topk": TopKSAE(TopKSAEConfig(d_in=32, d_sae=64, k=6, metadata=meta)),
        "topk_rescaled": TopKSAE(TopKSAEConfig(d_in=32, d_sae=64, k=6, rescale_acts_by_decoder_norm=True, metadata=meta)),
        "jumprelu": JumpReLUSAE(JumpReLUSAEConfig(d_in=32, d_sae=64, metadata=meta)),
    }
    for name, theirs in cases.items():
        with torch.no_grad():
            for p in theirs.parameters():
                p.normal_(0, 0.3)
            if name == "jumprelu":
                theirs.threshold.abs_()
        theirs.save_model(str(tmp_path / name))
        ours = load_sae(tmp_path / name)
        assert ours.hook_name == "blocks.0.hook_resid_post" and ours.layer == 0 and ours.d_sae == 64
        x = torch.randn(2, 9, 32)
        with torch.no_grad():
            assert torch.allclose(ours.encode(x), theirs.encode(x), atol=1e-5), name
            assert torch.allclose(ours(x), theirs(x), atol=1e-5), name


def test_save_is_atomic_and_replaces(tmp_path):
    a, b = random_sae(seed=3), random_sae(seed=4)
    p = save_sae(a, tmp_path / "s")
    (p / "explanations.json").write_text("{}")
    save_sae(b, tmp_path / "s")
    assert not (p / "explanations.json").exists()  # old SAE's files go with it
    assert [q.name for q in tmp_path.iterdir()] == ["s"]  # no temp folders left
    x = torch.randn(4, 32)
    assert torch.allclose(load_sae(p).encode(x), b.encode(x), atol=1e-6)


def _damage(path, how):
    w = path / "sae_weights.safetensors"
    c = path / "cfg.json"
    if how == "truncated":
        w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    elif how == "flipped":
        data = bytearray(w.read_bytes())
        data[-5] ^= 0xFF
        w.write_bytes(bytes(data))
    elif how == "bad_json":
        c.write_text("{not json")
    elif how == "no_weights":
        w.unlink()
    elif how == "wrong_shape":
        cfg = json.loads(c.read_text())
        cfg["d_sae"] = 50
        c.write_text(json.dumps(cfg))
    elif how == "bad_k":
        cfg = json.loads(c.read_text())
        cfg["k"] = 0
        c.write_text(json.dumps(cfg))


@pytest.mark.parametrize("how", ["truncated", "flipped", "bad_json", "no_weights", "wrong_shape", "bad_k"])
def test_damaged_sae_is_detected(tmp_path, how):
    p = save_sae(random_sae(), tmp_path / "s")
    load_sae(p)  # intact first
    _damage(p, how)
    with pytest.raises(SAECorruptError) as ei:
        load_sae(p)
    assert "damaged" in ei.value.message and ei.value.fix


def test_nan_weights_without_manifest_detected(tmp_path):
    from safetensors.torch import save_file

    sae = random_sae()
    p = save_sae(sae, tmp_path / "s")
    (p / "gnothi_sae.json").unlink()  # as if written by another tool
    state = {k: v.clone() for k, v in sae.state_dict().items()}
    state["W_dec"][3, 4] = float("nan")
    save_file(state, str(p / "sae_weights.safetensors"))
    with pytest.raises(SAECorruptError, match="NaN"):
        load_sae(p)


def test_missing_folder_and_unknown_architecture(tmp_path):
    with pytest.raises(SAENotFoundError):
        load_sae(tmp_path / "nope")
    with pytest.raises(SAEError, match="not supported"):
        SAE({"d_in": 4, "d_sae": 8, "architecture": "gated"})
    with pytest.raises(ValueError):
        register_architecture("topk", lambda s, x: x)


def test_fits_handle_and_units(tiny):
    ok = random_sae(d_in=tiny.d_model, hook="blocks.1.hook_resid_post")
    ok.check_fits(tiny)
    with pytest.raises(SAEError, match="size"):
        random_sae(d_in=16, hook="blocks.1.hook_resid_post").check_fits(tiny)
    with pytest.raises(SAEError, match="does not have"):
        random_sae(d_in=tiny.d_model, hook="blocks.9.hook_resid_post").check_fits(tiny)
    units = SAEUnits(ok, tiny)
    assert units.layers == [1] and units.n_units(1) == 96
    assert units.hook_name(1) == "blocks.1.hook_resid_post"
    _, cache = tiny.run_with_cache("the cat sat on the mat", [units.hook_name(1)])
    acts = units.encode(1, cache[units.hook_name(1)])
    assert acts.shape[-1] == 96 and ((acts > 0).sum(-1) <= 8).all()
    with pytest.raises(OutOfRangeError):
        units.n_units(0)
    with pytest.raises(InputError):
        ok.encode(torch.randn(2, 16))
    # a different SAE gets a different store id
    assert SAEUnits(random_sae(d_in=tiny.d_model, seed=9), tiny).id != units.id


def test_units_spec_registry(tiny, tmp_path):
    from gnothi.tools.units import units_from_spec

    p = save_sae(random_sae(d_in=tiny.d_model), tmp_path / "my sae")
    units = units_from_spec(tiny, f"sae:{p}")
    assert isinstance(units, SAEUnits) and units.layers == [1]
    assert " " not in units.id
    with pytest.raises(InputError):
        units_from_spec(tiny, f"sae:{p}", layers="0")


def test_a_folder_that_is_no_sae_is_not_called_damaged(tmp_path):
    """`--sae /etc` or the activation store's folder: "not an SAE folder", and no advice
    anywhere to delete a folder gnothi did not write."""
    from gnothi.tools.errors import SAENotFoundError

    other = tmp_path / "somebodys-folder"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(SAENotFoundError, match="not an SAE folder") as ei:
        load_sae(other)
    assert "delete" not in ei.value.fix.lower()
    # a foreign SAE folder with its weights gone: damaged, but the fix keeps the folder
    p = save_sae(random_sae(), tmp_path / "s")
    (p / "gnothi_sae.json").unlink(missing_ok=True)
    (p / "sae_weights.safetensors").unlink()
    with pytest.raises(SAECorruptError) as ei:
        load_sae(p)
    assert "delete" not in ei.value.fix.lower() and "copy an intact" in ei.value.fix.lower()


def test_ce_loss_recovered_in_sae_lens_convention_matches_sae_lens(tmp_path, sae_lens, tiny):
    """``ce_loss_recovered_saelens`` is sae-lens's own ce_loss_score on the same tokens
    (computed here by sae-lens's evals on the same model); gnothi's figure, whose zero
    ablation keeps BOS, is a different number under its own name."""
    from sae_lens.evals import get_recons_loss
    from sae_lens.training.activation_scaler import ActivationScaler

    from gnothi.tools.sae_train import evaluate_sae

    # layer 0: a later attention layer reads the zeroed BOS, so the conventions differ
    path = save_sae(random_sae(hook="blocks.0.hook_resid_post", seed=3), tmp_path / "l0")
    bos = tiny.tokenizer.bos_token_id
    toks = torch.randint(1, tiny.shape.d_vocab, (4, 32), generator=torch.Generator().manual_seed(1))
    toks[:, 0] = bos
    theirs = sae_lens.SAE.load_from_disk(str(path))
    m = get_recons_loss(theirs, tiny.tl_model, ActivationScaler(), toks, compute_kl=False, compute_ce_loss=True, ignore_tokens=[bos])
    keep = toks[:, :-1] != bos  # sae-lens's run_evals leaves out predictions made from BOS
    ce = {k: float(v[keep].mean()) for k, v in m.items()}
    score = (ce["ce_loss_with_ablation"] - ce["ce_loss_with_sae"]) / (ce["ce_loss_with_ablation"] - ce["ce_loss_without_sae"])
    ours = evaluate_sae(tiny, load_sae(path), toks, progress=False)
    assert ours.ce_zero_all == pytest.approx(ce["ce_loss_with_ablation"], abs=1e-4)
    assert ours.ce_loss_recovered_saelens == pytest.approx(score, abs=1e-4)
    assert abs(ours.ce_loss_recovered - score) > 0.05
