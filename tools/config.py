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


def explanations_dir() -> Path:
    """Cached unit explanations (``gnothi explain`` and the chat): ``$GNOTHI_EXPLANATIONS_DIR``
    or ``<cache>/explanations``. Point several machines' bulk runs at one shared folder here."""
    env = os.environ.get("GNOTHI_EXPLANATIONS_DIR")
    return Path(env).expanduser() if env else cache_dir() / "explanations"


def env_flag(name: str, default: bool) -> bool:
    """An on/off environment variable: 1/true/yes/on or 0/false/no/off (any case); unset or
    anything else is ``default``."""
    raw = os.environ.get(name, "").strip().lower()
    return True if raw in ("1", "true", "yes", "on") else False if raw in ("0", "false", "no", "off") else default


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    """A whole-number environment variable; unset, unreadable or below ``minimum`` is ``default``."""
    try:
        v = int(os.environ.get(name, "").strip())
    except ValueError:
        return default
    return default if minimum is not None and v < minimum else v


def physical_memory_bytes() -> int | None:
    """This machine's RAM, or None where the OS does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def memory_limit_bytes() -> int | None:
    """The memory one model run may use beyond the weights: ``$GNOTHI_MEMORY_LIMIT_GB``
    (``0`` = no bound), by default half this machine's RAM."""
    from .errors import InputError

    raw = os.environ.get("GNOTHI_MEMORY_LIMIT_GB", "").strip()
    if not raw:
        total = physical_memory_bytes()
        return None if total is None else total // 2
    try:
        gb = float(raw)
    except ValueError:
        gb = -1.0
    if not 0 <= gb < float("inf"):
        raise InputError(f"GNOTHI_MEMORY_LIMIT_GB is {raw!r}, not a number of gigabytes.",
                         "Set it to a positive number, e.g. GNOTHI_MEMORY_LIMIT_GB=8, 0 for no bound, or unset it (half the RAM).")
    return None if gb == 0 else int(gb * 1e9)
