"""`gnothi index --ray` on the bundled SmolLM2: three layers built by two Ray workers (each
loading the model by name, as on a cluster) equal the one-process build of the same windows."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.integration

KW = dict(n_tokens=2048, layers=[0, 1, 2], chunk_tokens=512, batch_size=8, progress=False)


@pytest.fixture
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray worker: the same matmuls, bit for bit
    yield
    torch.set_num_threads(old)


def test_ray_build_of_three_layers_equals_one_process(bundled, tmp_path, one_thread):
    import ray

    from gnothi.tools.store import ActivationStore, build_store, store_differences

    one = build_store(bundled, "mlp", "default", path=tmp_path / "one", **KW)
    try:
        rep = build_store(bundled, "mlp", "default", path=tmp_path / "ray", ray="local", ray_workers=2, **KW)
    finally:
        ray.shutdown()
    assert rep.layers == [0, 1, 2] and rep.n_tokens == one.n_tokens
    assert store_differences(one.path, rep.path) == []
    a, b = ActivationStore(one.path), ActivationStore(rep.path)
    assert [r.window for r in a.top_records(2, 100)] == [r.window for r in b.top_records(2, 100)]
