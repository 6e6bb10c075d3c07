"""Probes on the bundled SmolLM2-135M: a few layers, small datasets (about a minute)."""

from __future__ import annotations

import numpy as np
import pytest

from gnothi.tools.probing import load_probe, run_probe

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    # probes go to a temporary cache; the converted model stays where it is (already loaded)
    monkeypatch.setattr("gnothi.tools.probing.saved.model_cache_dir", lambda name: tmp_path / name)


def test_singular_plural_emerges_with_depth(bundled):
    """The last token is an attractor noun of random number, so layer 0 cannot tell the
    subject's number; later layers can (measured: chance at layer 0, ~0.99 by layer 18)."""
    rep = run_probe(bundled, "singular_vs_plural", layers=[0, 18], n=200, save=False)
    l0, l18 = rep.layer(0), rep.layer(18)
    assert rep.split == "grouped" and rep.n_test >= 40
    assert l0.accuracy < 0.7, rep.layers
    assert l18.accuracy >= 0.85 and l18.ci_low > 0.7, rep.layers
    assert l18.selectivity > 0.25
    assert rep.best_layer == 18


def test_true_false_probe_saved_and_reused(bundled):
    """Truth of held-out facts is linearly readable in the middle layers, and the saved
    probe scores new statements: true ones above false ones on average."""
    rep = run_probe(bundled, "true_false", layers=[0, 12], n=300)
    assert rep.layer(12).accuracy >= 0.65, rep.layers
    assert rep.layer(12).accuracy > rep.layer(0).accuracy, rep.layers
    sp = load_probe(bundled.name, "true_false")
    assert sp.layers == [0, 12]
    true = ["The capital of France is Paris.", "The capital of Japan is Tokyo.", "The capital of Italy is Rome.",
            "The chemical symbol for gold is Au.", "Hamlet was written by William Shakespeare."]
    false = ["The capital of France is Tokyo.", "The capital of Japan is Rome.", "The capital of Italy is Paris.",
             "The chemical symbol for gold is Fe.", "Hamlet was written by Jane Austen."]
    p_true = sp.scores_for_texts(bundled, true, layer=12)
    p_false = sp.scores_for_texts(bundled, false, layer=12)
    assert np.mean(p_true) > np.mean(p_false), (p_true, p_false)
    tr = rep.to_tool_result()
    assert "layer 12" in tr.summary or "layer 0" in tr.summary
