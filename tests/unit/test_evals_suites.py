"""Suites on tiny models: they run against the real tools, every metric has its control,
and a suite whose tool is missing is skipped, not faked."""

from __future__ import annotations

import sys

import pytest

from gnothi.evals.registry import SuiteContext
from gnothi.evals.runner import run_suites


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GNOTHI_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def _tiny_corpus():
    import random

    from gnothi.tools.corpus import Corpus, Document
    from gnothi.tools.testing import WORDS

    rng = random.Random(0)
    words = [w for w in WORDS if w.isalpha()]
    return Corpus("tiny", [Document(" ".join(rng.choice(words) for _ in range(80)), "words") for _ in range(40)])


def test_neurons_suite_on_tiny_model(tiny, cache):
    ctx = SuiteContext(quick=True, model_handle=tiny,
                       options={"n_units": 3, "store_tokens": 1024, "store_corpus": _tiny_corpus(), "modes": False})
    rep = run_suites(["neurons"], ctx, out_dir=cache / "runs", write=False)
    r = rep.suites["neurons"]
    assert r.status == "ok", r.reason
    assert r.missing_baselines == []
    m, b = r.result.metrics["refined_explainer"], r.result.baselines["refined_explainer"]
    # the headline is the mean over the units' rows, and each row carries its own controls
    units = r.result.tables[0]
    col = {c: k for k, c in enumerate(units["columns"])}
    rows = units["rows"]
    assert len(rows) == 3 and abs(m["pearson"] - sum(x[col["pearson"]] for x in rows) / 3) < 1e-3
    assert abs(b["pearson"]["shuffled_explanation"] - sum(x[col["shuffled expl."]] for x in rows) / 3) < 1e-3
    assert set(b["pearson"]) == {"shuffled_explanation", "random_unit"}
    assert set(b["detection_balanced_accuracy"]) == {"shuffled_explanation", "random_unit", "chance"}
    assert m["pearson_ci_low"] <= m["pearson"] <= m["pearson_ci_high"]
    assert "single_pass_explainer" in r.result.metrics  # the baseline explainer is scored on the same units
    side = r.result.tables[-2 if "label_corruption_clean" in r.result.metrics else -1]
    assert side["columns"][:3] == ["unit", "refined explanation", "refined pearson"] and len(side["rows"]) == 3
    assert r.result.provenance["store"]["hash"] and len(r.result.provenance["units"]) == 3
    assert "label_corruption_clean" in r.result.metrics


def test_probing_suite_on_tiny_model(tiny, cache):
    ctx = SuiteContext(quick=True, model_handle=tiny, options={"datasets": "sentiment", "probe_n": 40})
    r = run_suites(["probing"], ctx, out_dir=cache / "runs", write=False).suites["probing"]
    assert r.status == "ok", r.reason
    assert r.missing_baselines == []
    assert r.result.baselines["sentiment"]["best_accuracy"] == pytest.approx(r.result.tables[0]["rows"][0][4])


def test_a_missing_tool_fails_at_import_not_as_a_skip(monkeypatch):
    """Suites import their tools directly: a renamed or missing tool is an import error under test, never a quiet skip."""
    import importlib

    import gnothi.tools

    monkeypatch.setitem(sys.modules, "gnothi.tools.patching", None)  # import now fails
    monkeypatch.delattr(gnothi.tools, "patching", raising=False)
    monkeypatch.delitem(sys.modules, "gnothi.evals.suite_patching", raising=False)
    with pytest.raises(ImportError):
        importlib.import_module("gnothi.evals.suite_patching")