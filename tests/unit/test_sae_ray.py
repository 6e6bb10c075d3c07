"""`gnothi sae train --layers ... --ray`: one SAE per layer as Ray tasks (a local cluster of two
workers), each equal to the SAE trained in this process with the same settings."""

from __future__ import annotations

import functools

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray worker
    yield
    torch.set_num_threads(old)


def test_ray_trains_one_sae_per_layer_as_in_process(ray_cluster, tmp_path, monkeypatch):
    from gnothi.tools.sae import load_sae, saes_dir
    from gnothi.tools.sae_train import TrainConfig, train_sae, train_saes
    from gnothi.tools.testing import synthetic_corpus, tiny_handle

    monkeypatch.setenv("GNOTHI_CACHE_DIR", str(tmp_path / "cache"))
    c = tmp_path / "c.txt"
    c.write_text("\n\n".join(d.text for d in synthetic_corpus(150).documents))
    h = tiny_handle(name="tiny-ray-sae")
    cfg = TrainConfig(layer=0, n_tokens=2000, window=32, eval_tokens=128, ce_tokens=0, k=4, expansion=2, batch_size=256, epochs=1,
                      corpus=str(c), name="ray")
    results = train_saes(h, cfg, [0, 1], progress=False, ray="local", factory=functools.partial(tiny_handle, name="tiny-ray-sae"))
    assert [r.layer for r in results] == [0, 1]
    for r in results:
        assert r.path == str(saes_dir(h.name) / f"ray-L{r.layer}")
        ray_sae = load_sae(r.path)
        here = train_sae(h, cfg.model_copy(update={"layer": r.layer, "name": "here"}), progress=False)
        assert ray_sae.hook_name == f"blocks.{r.layer}.hook_resid_post"
        for k, v in here.sae.state_dict().items():
            assert torch.equal(v, ray_sae.state_dict()[k]), k
        assert r.explained_variance == pytest.approx(here.explained_variance, abs=1e-9)
