"""The `gnothi index` commands and layer lists that the store's messages suggest."""

from __future__ import annotations

from typing import Sequence

from ..config import DEFAULT_MODEL
from .format import DEFAULT_STORE_TOKENS, DEFAULT_WINDOW, StoreConfig


def build_command(model_name: str, units_id: str = "mlp", n_tokens: int = DEFAULT_STORE_TOKENS) -> str:
    """The `gnothi index` command line that builds the store of ``model_name`` for ``units_id``."""
    m = "" if model_name in ("smollm2-135m-instruct",) else f" --model {model_name}"
    u = "" if units_id == "mlp" else f" --units {units_id}"
    return f"gnothi index{m}{u} --tokens {n_tokens}"


def _fmt_layers(layers: Sequence[int]) -> str:
    """``layers`` as text for messages: ``"0-29"`` for a run, else comma-separated (``"none"`` when empty)."""
    if not layers:
        return "none"
    if list(layers) == list(range(layers[0], layers[-1] + 1)) and len(layers) > 2:
        return f"{layers[0]}-{layers[-1]}"
    return ",".join(map(str, layers))


def _index_command(c: StoreConfig, layers: Sequence[int]) -> str:
    """The `gnothi index` command that adds ``layers`` to the store with config ``c``."""
    cmd = f"gnothi index --layers {','.join(str(l) for l in sorted(set(layers) - set(c.layers)) or sorted(set(layers)))} --tokens {c.n_tokens}"
    if c.window != DEFAULT_WINDOW:
        cmd += f" --window {c.window}"
    if c.seed:
        cmd += f" --seed {c.seed}"
    if c.corpus != "default":
        cmd += f" --corpus PATH/{c.corpus}"  # the store keeps the corpus's name, not where it lies
    if c.units_id != "mlp":
        cmd += " --units sae:PATH"  # the SAE's folder
    if c.model != DEFAULT_MODEL:
        cmd += f" --model {c.model}"
    return cmd
