"""Sparse probing with SAE latents beside the same probe on the hook point's dimensions."""

from __future__ import annotations

import numpy as np
import pytest

from gnothi.tools import sparse_probing as SP
from gnothi.tools.datasets import load_dataset
from test_sae import random_sae


def test_top_k_picks_the_separating_column():
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 100)
    X = rng.normal(size=(200, 20))
    X[:, 7] += 3.0 * y  # one column carries the label
    tr, te = np.arange(0, 100), np.arange(100, 200)
    assert int(np.argmax(SP._separation(X[tr], y[tr]))) == 7
    assert SP.top_k_accuracy(X, y, tr, te, 1, 0) > 0.9
    noise = np.delete(X, 7, axis=1)
    assert SP.top_k_accuracy(noise, y, tr, te, 1, 0) < 0.7


def test_sparse_probe_on_the_tiny_model(tiny):
    sae = random_sae(hook="blocks.1.hook_resid_post", seed=2)
    ds = load_dataset("sentiment", n=60, seed=0)
    rep = SP.sparse_probe(tiny, sae, [ds], ks=(1, 5, tiny.d_model))
    assert [r.k for r in rep.rows] == [1, 5, tiny.d_model] and rep.n_test["sentiment"] > 0
    # with every dimension chosen, the "k neurons" probe is the dense probe (columns permuted)
    assert rep.rows[-1].neurons == pytest.approx(rep.dense["sentiment"])
