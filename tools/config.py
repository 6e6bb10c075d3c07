"""Where gnothi keeps its files, and the environment variables that move them."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL = "smollm2-135m-instruct"


def cache_dir() -> Path:
    """Root of gnothi's cache: ``$GNOTHI_CACHE_DIR`` or the user's cache dir."""
    env = os.environ.get("GNOTHI_CACHE_DIR")
    if env:
        p = Path(env).expanduser()
    else:
        from platformdirs import user_cache_dir

        p = Path(user_cache_dir("gnothi"))
    p.mkdir(parents=True, exist_ok=True)
    return p


def models_dir() -> Path:
    p = cache_dir() / "models"
    p.mkdir(parents=True, exist_ok=True)
    return p


def model_cache_dir(model_name: str) -> Path:
    """Per-model folder for stores, SAEs, probes and detectors."""
    safe = model_name.replace("/", "--").replace("\\", "--").replace(":", "_")
    p = cache_dir() / "per-model" / safe
    p.mkdir(parents=True, exist_ok=True)
    return p
