"""Head finder on a tiny random model: the scoring arithmetic against hand-made patterns, the cache, the ablation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gnothi.tools import heads


def test_offset_score_reads_the_pattern_it_is_given():
    # [layer=1, n=1, head=2, q=4, k=4]: head 0 attends to the previous token, head 1 uniformly over what it can see
    pat = torch.zeros(1, 1, 2, 4, 4)
    for q in range(4):
        pat[0, 0, 0, q, max(q - 1, 0)] = 1.0
        pat[0, 0, 1, q, : q + 1] = 1.0 / (q + 1)
    qs = torch.arange(1, 4)
    s = heads._offset_score(pat, qs, qs - 1)
    assert s[0, 0] == pytest.approx(1.0)
    assert s[0, 1] == pytest.approx(heads._uniform(qs), abs=1e-4)  # a uniform head scores the uniform baseline
    assert heads._uniform(qs) == pytest.approx(np.mean([1 / 2, 1 / 3, 1 / 4]), abs=1e-4)


def test_repeated_sequences_repeat_and_controls_do_not(tiny):
    rep = heads._random_sequences(tiny, 4, 10, seed=0, repeat=True)
    ctl = heads._random_sequences(tiny, 4, 10, seed=0, repeat=False)
    assert rep.shape == (4, 21) and torch.equal(rep[:, 1:11], rep[:, 11:])
    assert torch.equal(rep[:, :11], ctl[:, :11]) and not torch.equal(ctl[:, 1:11], ctl[:, 11:])


def test_scores_cover_every_head_and_are_cached(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("GNOTHI_CACHE_DIR", str(tmp_path))
    s = heads.head_scores(tiny, n_sequences=4, length=8, n_windows=2, window=16)
    assert not s.cached
    for b in heads.BEHAVIOURS:
        arr = np.asarray(s.scores[b])
        assert arr.shape == (tiny.n_layers, tiny.n_heads) and ((arr >= 0) & (arr <= 1 + 1e-6)).all()
    again = heads.head_scores(tiny, n_sequences=4, length=8, n_windows=2, window=16)
    assert again.cached and again.scores == s.scores
    # a damaged cache file is measured again, not trusted
    f = next((tmp_path / "per-model").rglob("scores-*.json"))
    f.write_text("{not json")
    fresh = heads.head_scores(tiny, n_sequences=4, length=8, n_windows=2, window=16)
    assert not fresh.cached and fresh.scores == s.scores
    assert json.loads(f.read_text())["model"] == tiny.name


def test_bad_settings_say_what_to_do(tiny):
    with pytest.raises(Exception, match="at least"):
        heads.head_scores(tiny, length=1, use_cache=False)


def test_ablating_heads_changes_the_copying_loss(tiny):
    base = heads.head_ablation_loss(tiny, [], n_sequences=2, length=8)
    assert heads.head_ablation_loss(tiny, [], n_sequences=2, length=8) == pytest.approx(base)  # deterministic
    every = [(l, h) for l in range(tiny.n_layers) for h in range(tiny.n_heads)]
    assert heads.head_ablation_loss(tiny, every, n_sequences=2, length=8) != pytest.approx(base, abs=1e-4)


def test_agent_names_the_valid_range_for_a_missing_layer(tiny):
    from gnothi.agents.toolkit import TOOLKIT

    r = TOOLKIT["heads"].run(tiny, {"behaviours": ["induction"], "layer": 40})
    assert not r.ok and "layers 0 to 1" in r.summary


def test_behaviours_are_read_from_what_the_heads_do():
    from gnothi.agents.toolkit.heads import behaviours_in

    assert behaviours_in("which heads attend to the previous token?") == ["previous_token"]
    assert behaviours_in("are there induction heads, as previously reported?") == ["induction"]
    assert behaviours_in("find the attention sinks") == ["first_token"]
    assert behaviours_in("which heads detect repeated tokens?") == ["duplicate_token"]
