"""Shared fixtures. Tiers: unit (tiny random models, seconds), integration (bundled model,
marked ``integration``), browser (marked ``browser``), llm (marked ``llm``)."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def _threads():
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def tiny():
    """A tiny random llama-style ModelHandle (2 layers, d_model 32, d_mlp 64)."""
    from gnothi.tools.testing import tiny_handle

    return tiny_handle()


@pytest.fixture(scope="session")
def bundled():
    """The bundled SmolLM2-135M-Instruct handle (converted once into the cache)."""
    from gnothi.tools.model import get_handle

    return get_handle()


@pytest.fixture(scope="session")
def gemma():
    """The second bundled model, Gemma 3 270M (converted once into the cache). Loaded as its
    own handle, so the SmolLM2 handle other tests share stays loaded beside it."""
    from gnothi.tools.model import load_model

    return load_model("gemma-3-270m")


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster of two workers (one CPU each), for the tests of ``--ray`` builds."""
    import ray  # a test dependency (requirements/test.txt): a missing ray fails these tests, it does not skip them

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()
