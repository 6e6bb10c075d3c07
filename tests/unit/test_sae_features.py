"""SAE training and feature search on a tiny model with planted features (seconds, no network).

Planting: embedding dimension 0 is non-zero only for "paris" and dimension 1 only for
"king", so the residual stream before layer 0 (``blocks.0.hook_resid_pre``, the token
embedding) carries them alone. The planted SAE's feature 0 reads dimension 0 with a
negative bias (fires exactly on "paris"), feature 1 reads dimension 1 (fires exactly on
"king"); the other features are random.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from gnothi.tools.corpus import Corpus, Document
from gnothi.tools.errors import InputError, OutOfRangeError, SAENotFoundError
from gnothi.tools.sae import SAE, sae_config, save_sae

PARIS, KING = 0, 1
HOOK = "blocks.0.hook_resid_pre"


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GNOTHI_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "gnothi-cache"))


@pytest.fixture(scope="module")
def planted():
    from gnothi.tools.testing import tiny_handle

    h = tiny_handle(name="tiny-sae-planted")
    m, tok = h.tl_model, h.tokenizer
    with torch.no_grad():
        m.W_E[:, :2] = 0
        m.W_E[tok.convert_tokens_to_ids("paris"), 0] = 5.0
        m.W_E[tok.convert_tokens_to_ids("king"), 1] = 5.0
    return h


def planted_sae(h, d_sae=24, k=6) -> SAE:
    torch.manual_seed(0)
    sae = SAE(sae_config(h.d_model, d_sae, HOOK, h.name, "topk", k))
    with torch.no_grad():
        sae.W_enc.normal_(0, 0.2)
        sae.W_enc[:2, :] = 0
        sae.W_enc[:, PARIS] = 0
        sae.W_enc[:, KING] = 0
        sae.W_enc[0, PARIS] = 2.0
        sae.W_enc[1, KING] = 2.0
        sae.b_enc[PARIS] = -1.0
        sae.b_enc[KING] = -1.0
        sae.W_dec.copy_(sae.W_enc.T)
    return sae


def corpus(n_docs=200, seed=0) -> Corpus:
    from gnothi.tools.testing import WORDS

    rng = random.Random(seed)
    words = [w for w in WORDS if w.isalpha()]
    return Corpus("synthetic", [Document(" ".join(rng.choice(words) for _ in range(rng.randint(20, 50))), "s") for _ in range(n_docs)])


@pytest.fixture(scope="module")
def saved(planted, tmp_path_factory):
    p = save_sae(planted_sae(planted), tmp_path_factory.mktemp("saes") / "planted")
    from gnothi.tools.sae import load_sae

    return load_sae(p)


def test_features_on_text_finds_planted(planted, saved):
    from gnothi.tools.features import features_on_text

    r = features_on_text(planted, "the king went to paris", saved, token="paris", k=5)
    assert r.tokens[r.focus].strip() == "paris"
    assert r.features[0].id == PARIS
    assert all(f.id != KING for f in r.features)  # king's feature is silent on "paris"
    whole = features_on_text(planted, "the king went to paris", saved, k=24)
    ids = [f.id for f in whole.features]
    assert PARIS in ids and KING in ids
    king = next(f for f in whole.features if f.id == KING)
    assert king.token.strip() == "king" and king.values[king.position] == max(king.values)
    assert sum(v > 0 for v in king.values) == 1
    tr = r.to_tool_result(planted)
    assert tr.headline["top_feature"] == PARIS and tr.spans and not r.indexed
    assert any("index" in w for w in r.warnings)  # tells how to get explanations
    with pytest.raises(InputError, match="not a token"):
        features_on_text(planted, "the king", saved, token="rome")
    with pytest.raises(InputError, match="out of range"):
        features_on_text(planted, "the king", saved, token=7)
    with pytest.raises(InputError):
        features_on_text(planted, "", saved)


def test_contrast_finds_planted_and_checks_held_out(planted, saved):
    from gnothi.tools.features import contrast_features

    rng = random.Random(1)
    filler = "the a cat dog tree sun sea big small red".split()

    def sent(word):
        w = [rng.choice(filler) for _ in range(6)]
        if word:
            w.insert(rng.randint(0, 6), word)
        return " ".join(w)

    a = [sent("king") for _ in range(6)]
    b = [sent(None) for _ in range(6)]
    r = contrast_features(planted, a, b, saved, k=3, label_a="with king", label_b="without")
    assert r.features_a[0].id == KING
    assert r.features_a[0].auroc == 1.0 and r.features_a[0].frac_a == 1.0 and r.features_a[0].frac_b == 0.0
    assert r.split_half_feature == KING and r.split_half_auroc == 1.0
    assert "with king" in r.to_tool_result().summary
    # swapped sets: the same feature, now on the other side
    r2 = contrast_features(planted, b, a, saved, k=3)
    assert r2.features_b[0].id == KING
    with pytest.raises(InputError):
        contrast_features(planted, [], b, saved)
    with pytest.raises(InputError):
        contrast_features(planted, a, b, saved, reduce="median")


def test_search_needs_index_then_finds_planted(planted, saved):
    from gnothi.tools.features import feature_page, index_features, load_feature_index, search_features

    with pytest.raises(SAENotFoundError, match="gnothi sae index") as ei:
        search_features(planted, "Paris", saved)
    assert "about" in ei.value.fix  # with a time estimate
    rep = index_features(planted, saved, n_tokens=2000, corpus=corpus(), progress=False, window=16)
    assert rep.n_features == saved.d_sae and rep.n_alive >= 2
    idx = load_feature_index(saved)
    assert '"paris"' in idx.features[PARIS].explanation and '"king"' in idx.features[KING].explanation
    assert idx.features[PARIS].score > 0.9  # fires exactly where the explanation says
    r = search_features(planted, "the city of Paris", saved, k=3)
    assert r.features[0].id == PARIS and r.features[0].similarity > 0.3
    r = search_features(planted, "a king or a queen, royalty", saved, k=3)
    assert r.features[0].id == KING
    tr = r.to_tool_result(planted)
    assert tr.headline["top_feature"] == KING and tr.evidence[0]["explanation"]
    # the page reads the same store: explanation, score beside a shuffled control
    page = feature_page(planted, PARIS, saved, modes=False)
    assert page.report.score.pearson > 0.9 and page.report.score.shuffled_pearson < 0.5
    assert "paris" in page.report.top_contexts[0].tokens[int(np.argmax(page.report.top_contexts[0].activations))]
    assert page.to_tool_result(planted).headline["pearson"] > 0.9
    with pytest.raises(OutOfRangeError, match="0 to 23"):
        feature_page(planted, 24, saved)


def test_stale_index_is_not_used(planted, tmp_path):
    from gnothi.tools.features import index_features, load_feature_index

    s = planted_sae(planted)
    p = save_sae(s, tmp_path / "s")
    from gnothi.tools.sae import load_sae

    s = load_sae(p)
    index_features(planted, s, n_tokens=1000, corpus=corpus(50), progress=False, window=16)
    assert load_feature_index(s) is not None
    (p / "features.json").write_text('{"sae": "x"')  # damaged
    from gnothi.tools.errors import SAECorruptError

    with pytest.raises(SAECorruptError):
        load_feature_index(s)


def test_train_topk_recovers_planted_structure():
    """On data that is a sparse sum of a few directions, training finds them (EV up, not before)."""
    from gnothi.tools.sae_train import explained_variance, train_topk

    g = torch.Generator().manual_seed(0)
    d, n_dirs, n = 16, 24, 4000
    dirs = torch.randn(n_dirs, d, generator=g)
    dirs /= dirs.norm(dim=-1, keepdim=True)
    pick = torch.rand(n, n_dirs, generator=g).argsort(-1)[:, :2]  # two active directions per sample
    codes = torch.zeros(n, n_dirs).scatter(-1, pick, torch.rand(n, 2, generator=g) * 3 + 1)
    x = (codes @ dirs + 0.5).half()
    sae, info = train_topk(x, d_sae=48, k=2, epochs=8, batch_size=128, progress=False, seed=0)
    ev = explained_variance(sae, x[:1000])
    assert info["ev_before"] < 0.5 < ev
    assert ev > 0.8
    assert info["loss_curve"][-1][1] < info["loss_curve"][0][1]
    # the learned decoder contains the planted directions
    W = sae.W_dec / sae.W_dec.norm(dim=-1, keepdim=True)
    best = (W @ dirs.T).max(0).values
    assert (best > 0.9).float().mean() > 0.8


def test_train_sae_end_to_end_on_tiny(tmp_path):
    from gnothi.tools.sae import default_sae, list_saes, load_sae
    from gnothi.tools.sae_train import TrainConfig, train_sae
    from gnothi.tools.testing import tiny_handle

    h = tiny_handle(name="tiny-train")
    with pytest.raises(SAENotFoundError, match="gnothi sae train --layer"):
        default_sae(h)
    c = tmp_path / "c.txt"
    c.write_text("\n\n".join(d.text for d in corpus(150).documents))
    r = train_sae(h, TrainConfig(layer=1, n_tokens=3000, window=32, eval_tokens=128, k=4, expansion=4,
                                 batch_size=256, epochs=3, corpus=str(c)), progress=False)
    assert r.d_sae == 4 * h.d_model and r.l0 <= 4
    assert r.explained_variance > r.explained_variance_before
    assert 0 <= r.dead_fraction <= 1 and r.ce_loss_recovered is not None
    s = load_sae(r.path)
    assert s.hook_name == "blocks.1.hook_resid_post" and s.model_name == "tiny-train"
    assert default_sae(h).path == s.path
    assert list_saes(h.name)[0]["metrics"]["explained_variance"] == pytest.approx(r.explained_variance)
    tr = r.to_tool_result(h)
    assert tr.headline["path"] == r.path and tr.figures[0].kind == "line"
    with pytest.raises(OutOfRangeError):
        train_sae(h, TrainConfig(layer=5), progress=False)


def test_cli_on_tiny(planted, saved, monkeypatch, capsys):
    """The `gnothi sae` commands print one JSON object; errors come back as JSON with exit 2."""
    import json

    import gnothi.ui.cli as cli
    import gnothi.ui.cli_common as cli_common

    monkeypatch.setattr(cli_common, "handle_from_args", lambda args: planted)

    def run(*argv):
        rc = cli.main(list(argv))
        return rc, json.loads(capsys.readouterr().out)

    rc, d = run("sae", "features", "the king went to paris", "--sae", str(saved.path), "--token", "paris", "--json")
    assert rc == 0 and d["features"][0]["id"] == PARIS
    rc, d = run("sae", "contrast", "--a", "the king is big", "--a", "a king ran", "--b", "the cat is big", "--b", "a dog ran",
                "--sae", str(saved.path), "--json")
    assert rc == 0 and d["features_a"][0]["id"] == KING
    rc, d = run("sae", "info", "--sae", str(saved.path), "--json")
    assert rc == 0 and d["d_sae"] == saved.d_sae and d["hook_name"] == HOOK
    rc, d = run("sae", "features", "the king", "--sae", str(saved.path), "--token", "rome", "--json")
    assert rc == 2 and d["error"] == "bad_input" and "king" in d["fix"]
    rc, d = run("sae", "train", "--layer", "0", "--tokens", "5", "--json")
    assert rc == 2 and "tokens" in d["message"]
