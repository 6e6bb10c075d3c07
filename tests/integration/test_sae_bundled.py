"""SAE workflow on the bundled SmolLM2: train (CI-sized) -> save -> load -> index -> search.

One small SAE (layer 2, a few thousand tokens) is trained through the CLI, so the JSON
contract of `gnothi sae train/index/search/features` is checked on the real model. It
lives under a test name in the model's cache and is removed afterwards.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

NAME = "pytest-sae-L2"


def _cli(capsys, *argv):
    from gnothi.ui.cli import main

    rc = main(list(argv))
    out = capsys.readouterr().out
    return rc, out


@pytest.fixture(scope="module")
def trained(bundled):
    """Train through the CLI; yield (json result, SAE); clean up the folder and its store."""
    from gnothi.tools.sae import saes_dir

    path = saes_dir(bundled.name) / NAME
    shutil.rmtree(path, ignore_errors=True)
    from gnothi.ui.cli import main
    import io
    import contextlib

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["sae", "train", "--layer", "2", "--tokens", "6000", "--eval-tokens", "1024", "--ce-tokens", "256",
                   "--epochs", "8", "--expansion", "2", "-k", "16", "--name", NAME, "--json"])
    assert rc == 0
    res = json.loads(buf.getvalue())
    from gnothi.tools.sae import load_sae

    sae = load_sae(res["path"])
    yield res, sae
    from gnothi.tools.sae import SAEUnits
    from gnothi.tools.store import store_path

    units_id = SAEUnits(sae).id
    shutil.rmtree(store_path(bundled.name, units_id), ignore_errors=True)
    shutil.rmtree(store_path(bundled.name, units_id).with_name(units_id + ".partial"), ignore_errors=True)
    shutil.rmtree(path, ignore_errors=True)


def test_train_metrics_are_sane(bundled, trained):
    res, sae = trained
    for key in ("explained_variance", "l0", "ce_loss_recovered", "dead_fraction", "path"):
        assert key in res
    assert Path(res["path"]).name == NAME and sae.d_sae == 2 * bundled.d_model
    # learning happened: explained variance well above 0 after training, and above the init's
    assert res["explained_variance"] > 0.5
    assert res["explained_variance"] > res["explained_variance_before"] + 0.2
    assert res["l0"] <= 16
    assert 0.0 <= res["dead_fraction"] <= 1.0
    m = res["metrics"]
    # splicing the SAE in hurts less than zero-ablating the layer
    assert m["ce_sae"] < m["ce_zero"] and res["ce_loss_recovered"] > 0.5
    assert m["ce_clean"] < m["ce_sae"] + 0.5


def test_saved_sae_loads_in_sae_lens(trained):
    import torch

    sae_lens = pytest.importorskip("sae_lens")
    res, sae = trained
    theirs = sae_lens.SAE.load_from_disk(res["path"])
    x = torch.randn(5, sae.d_in) * 10
    with torch.no_grad():
        assert torch.allclose(theirs.encode(x), sae.encode(x), atol=1e-4)


def test_features_on_text_and_contrast(bundled, trained, capsys):
    from gnothi.tools.features import contrast_features, features_on_text

    _, sae = trained
    r = features_on_text(bundled, "The Eiffel Tower is in Paris, the capital of France.", sae, token="Paris", k=5)
    assert r.tokens[r.focus].strip() == "Paris" and len(r.features) == 5
    assert r.explained_variance > 0.3 and 0 < r.mean_active_per_token <= 16
    code = ["def add(a, b):\n    return a + b", "for i in range(10):\n    print(i)", "import os\nx = os.path.join(a, b)",
            "class Foo:\n    def __init__(self):\n        self.x = 1"]
    prose = ["The cat sat on the mat and looked out of the window.", "She walked to the market to buy fresh bread.",
             "The river flows quietly through the old town.", "They talked about the weather for a long time."]
    c = contrast_features(bundled, code, prose, sae, k=5, label_a="code", label_b="prose")
    assert c.features_a and c.features_a[0].auroc == 1.0
    assert c.split_half_auroc is not None and c.split_half_auroc >= 0.75
    rc, out = _cli(capsys, "sae", "features", "The Eiffel Tower is in Paris", "--token", "Paris", "--sae", NAME, "--json")
    d = json.loads(out)
    assert rc == 0 and d["features"] and {"id", "activation", "values"} <= set(d["features"][0])


def test_index_then_search_and_page(bundled, trained, capsys):
    _, sae = trained
    rc, out = _cli(capsys, "sae", "search", "numbers", "--sae", NAME, "--json")
    assert rc == 2 and json.loads(out)["error"] == "sae_not_found"  # offers the index command
    rc, out = _cli(capsys, "sae", "index", "--sae", NAME, "--tokens", "4096", "--json")
    rep = json.loads(out)
    assert rc == 0 and rep["n_features"] == sae.d_sae and rep["n_alive"] > sae.d_sae // 2
    rc, out = _cli(capsys, "sae", "search", "Python code keywords", "--sae", NAME, "-k", "5", "--json")
    d = json.loads(out)
    assert rc == 0 and len(d["features"]) == 5
    f0 = d["features"][0]
    assert {"id", "explanation", "similarity"} <= set(f0) and f0["similarity"] >= d["features"][-1]["similarity"]
    rc, out = _cli(capsys, "sae", "feature", str(f0["id"]), "--sae", NAME, "--no-modes", "--json")
    page = json.loads(out)
    assert rc == 0 and page["top_contexts"] and "pearson" in page["score"] and "shuffled_pearson" in page["score"]


def test_bad_inputs(bundled, trained, capsys):
    rc, out = _cli(capsys, "sae", "feature", "99999", "--sae", NAME, "--json")
    assert rc == 2 and "0 to" in json.loads(out)["fix"]
    rc, out = _cli(capsys, "sae", "train", "--layer", "30", "--json")
    assert rc == 2 and "0 to 29" in json.loads(out)["message"]
    rc, out = _cli(capsys, "sae", "features", "hello", "--sae", "/nonexistent/sae", "--json")
    assert rc == 2 and json.loads(out)["error"] == "sae_not_found"
