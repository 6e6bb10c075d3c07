"""Store status without a model run: whether a store exists, is resumable or damaged, and build-time estimates."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from ..errors import StoreError
from .commands import _fmt_layers, build_command
from .format import DEFAULT_STORE_TOKENS, _throughput_file, store_path
from .reader import ActivationStore

if TYPE_CHECKING:
    from ..model import ModelHandle


class StoreStatus(BaseModel):
    """What the orchestrator needs to know before asking a unit question (no model run)."""

    exists: bool
    complete: bool
    damaged: bool = False
    path: str
    units_id: str
    layers: list[int] = Field(default_factory=list)
    n_tokens: int = 0
    resumable_tokens: int = 0  # tokens already done by an interrupted build
    estimated_build_seconds: float
    build_command: str
    message: str


def estimate_build_seconds(handle: ModelHandle, n_tokens: int = DEFAULT_STORE_TOKENS, n_layers: int | None = None) -> float:
    """About how long a build of ``n_tokens`` tokens over ``n_layers`` layers takes here.

    Uses the throughput a previous build on this machine measured, else a rough guess
    from the model's size (about 3e10 useful FLOP/s on a CPU, 1e12 on a GPU).
    """
    n_layers = n_layers or handle.n_layers
    frac = n_layers / max(1, handle.n_layers)
    try:
        rec = json.loads(_throughput_file(handle.name).read_text())
        tps_full = float(rec["tokens_per_second_full_depth"])
        if tps_full > 0:
            return round(n_tokens / tps_full * max(frac, 0.1) + 5.0, 1)
    except Exception:
        pass
    per_layer = 2 * (4 * handle.d_model**2 + 3 * handle.d_model * max(1, handle.d_mlp))
    flops = per_layer * n_layers
    speed = 3e10 if str(handle.device) == "cpu" else 1e12
    return round(n_tokens * flops / speed + 10.0, 1)


def store_status(handle: ModelHandle, units_id: str = "mlp") -> StoreStatus:
    """Whether a store exists for ``handle`` and how long building one would take (fast)."""
    path = store_path(handle.name, units_id)
    est = estimate_build_seconds(handle)
    cmd = build_command(handle.name, units_id)
    meta_p = path / "meta.json"
    partial = path.with_name(path.name + ".partial")
    done = 0
    if (partial / "progress.json").exists():
        try:
            done = int(json.loads((partial / "progress.json").read_text())["n_tokens_seen"])
        except Exception:
            done = 0
    if not meta_p.exists():
        msg = f"No activation store for {handle.name} ({units_id}) yet; building one takes about {est:.0f} s: `{cmd}`."
        if done:
            msg += f" An interrupted build has {done} tokens done and will resume."
        return StoreStatus(exists=False, complete=False, path=str(path), units_id=units_id, resumable_tokens=done,
                           estimated_build_seconds=est, build_command=cmd, message=msg)
    try:
        st = ActivationStore(path, verify=False)
        return StoreStatus(exists=True, complete=st.meta.complete, path=str(path), units_id=units_id, layers=st.layers,
                           n_tokens=st.n_tokens, estimated_build_seconds=est, build_command=cmd,
                           message=f"Store ready: {st.n_tokens} tokens, layers {_fmt_layers(st.layers)}.")
    except StoreError as e:
        return StoreStatus(exists=True, complete=False, damaged=True, path=str(path), units_id=units_id,
                           estimated_build_seconds=est, build_command=cmd + " --force", message=e.message)

