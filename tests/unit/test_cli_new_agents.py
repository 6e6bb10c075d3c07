"""`gnothi heads | bias | steer | method --json`: one JSON object each on the tiny model; bad input exits 2 with a fix."""

from __future__ import annotations

import json

import pytest

from gnothi.ui import cli, cli_common


@pytest.fixture
def on_tiny(tiny, monkeypatch, tmp_path):
    monkeypatch.setenv("GNOTHI_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cli_common, "handle_from_args", lambda args: tiny)
    return tiny


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def test_heads_json(on_tiny, capsys):
    assert cli.main(["heads", "--behaviour", "induction", "--top", "3", "--json"]) == 0
    out = _json(capsys)
    assert out["behaviours"] == ["induction"] and len(out["top"]["induction"]) == 3
    assert len(out["scores"]["induction"]) == on_tiny.n_layers
    assert cli.main(["heads", "--top", "0", "--json"]) == 2 and "fix" in _json(capsys)


def test_bias_json(on_tiny, capsys):
    assert cli.main(["bias", "--occupation", "nurses", "--json"]) == 0
    out = _json(capsys)
    assert out["asked"] == ["nurse"] and len(out["occupations"]) == 40 and "summary" in out
    assert cli.main(["bias", "--template", "The {occupation} said", "--json"]) == 2
    assert "pair" in _json(capsys)["fix"]


def test_steer_json(on_tiny, capsys):
    assert cli.main(["steer", "--neuron", "1.3", "--strength", "2", "--prompt", "The cat", "--new-tokens", "3", "--json"]) == 0
    out = _json(capsys)
    assert out["source"] == "neuron" and out["asked_strength"] == 2.0 and len(out["sweep"]) == 1
    assert cli.main(["steer", "--neuron", "1.x", "--json"]) == 2 and "LAYER.NEURON" in _json(capsys)["fix"]


def test_method_json(capsys):
    assert cli.main(["method", "what", "is", "causal", "tracing?", "--json"]) == 0
    out = _json(capsys)
    assert out["card"] == "causal_tracing" and out["arxiv"]
    assert cli.main(["method", "--list", "--json"]) == 0 and len(_json(capsys)) >= 10
    assert cli.main(["method", "--json"]) == 2
