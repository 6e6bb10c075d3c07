"""The bundled SmolLM2-135M-Instruct: loads, reproduces HF, answers, describes itself."""

import json
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.integration

TEXTS = [
    "The capital of France is Paris. The capital of Italy is Rome.",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)",
    "In the beginning God created the heaven and the earth.",
]


def test_shape(bundled):
    s = bundled.shape
    assert (s.n_layers, s.d_model, s.d_mlp, s.n_heads, s.n_kv_heads, s.d_vocab) == (30, 576, 1536, 9, 3, 49152)


def test_reproduces_hf_logprobs(bundled):
    from gnothi.tools.model import compare_with_hf

    diff = compare_with_hf(bundled, TEXTS)
    assert diff <= 1e-3, diff


def test_answers_paris(bundled):
    out = bundled.generate("What is the capital of France?", max_new_tokens=16)
    assert "Paris" in out


def test_next_token_prefers_paris(bundled):
    lp = bundled.log_probs("The capital of France is")[0, -1]
    assert lp[bundled.token_id(" Paris")] > lp[bundled.token_id(" Rome")]


def test_early_stop_matches_full_run(bundled):
    names = [bundled.hook_name("mlp_post", 3), bundled.hook_name("resid_post", 5)]
    logits, early = bundled.run_with_cache(TEXTS[0], names)
    assert logits is None
    full_logits, full = bundled.run_with_cache(TEXTS[0], names, stop_early=False)
    assert full_logits is not None
    for n in names:
        assert torch.allclose(early[n], full[n], atol=1e-5)


def test_loss_on_plain_english_is_sane(bundled):
    toks = bundled.to_tokens(TEXTS[2] + " And the earth was without form, and void.")
    lp = bundled.log_probs(toks)
    nll = -lp[0, :-1].gather(-1, toks[0, 1:, None]).mean().item()
    assert 0.5 < nll < 5.0


def test_cli_info_json():
    out = subprocess.run([sys.executable, "-m", "gnothi.ui.cli", "info", "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["n_layers"] == 30 and d["d_mlp"] == 1536 and d["d_model"] == 576 and d["n_heads"] == 9
    assert "blocks.29.mlp.hook_post" in d["hook_points"] and d["name"] == "smollm2-135m-instruct"


def test_cli_models_and_errors():
    out = subprocess.run([sys.executable, "-m", "gnothi.ui.cli", "models"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "smollm2-135m-instruct" in out.stdout and "How to add" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "gnothi.ui.cli", "info", "--model", "nope"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Unknown model" in bad.stderr and "fix:" in bad.stderr and "Traceback" not in bad.stderr
