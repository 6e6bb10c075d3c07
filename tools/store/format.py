"""The store's on-disk format: layout constants, paths, the config and meta headers, tensor files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, Field

from ..config import model_cache_dir
from ..files import atomic_write_bytes

STORE_VERSION = 1
DEFAULT_TOP_K = 24
DEFAULT_N_QUANTILE = 12
DEFAULT_N_RANDOM = 32
DEFAULT_WINDOW = 64
DEFAULT_CHUNK_TOKENS = 8192
# an interrupted build loses at most about this much work: a checkpoint (every layer's state) is
# written after the first chunk that ends this long after the last one
CHECKPOINT_SECONDS = 60.0
DEFAULT_BATCH = 16
# the default store of a model: every layer, this many tokens of the default corpus (`gnothi index --quick`: the smaller one)
DEFAULT_STORE_TOKENS = 131072
QUICK_STORE_TOKENS = 16384
QUANTILE_FLOOR = 0.25  # quantile samples: windows reaching >= this share of the running max
HOLDOUT_EVERY = 3  # top records with rank % 3 == 2 are held out for scoring


class StoreConfig(BaseModel):
    model: str
    units_id: str
    units_kind: str
    layers: list[int]
    n_units: dict[str, int]
    hook_names: dict[str, str]
    corpus: str
    corpus_fingerprint: str
    n_tokens: int
    window: int
    seed: int
    top_k: int
    n_quantile: int
    n_random: int
    chunk_tokens: int
    batch_size: int

    def key(self) -> str:
        """A 16-hex-digit hash of the whole config: builds with equal keys are the same build."""
        return hashlib.sha256(json.dumps(self.model_dump(), sort_keys=True).encode()).hexdigest()[:16]


class StoreMeta(BaseModel):
    version: int = STORE_VERSION
    config: StoreConfig
    complete: bool = False
    n_windows: int
    n_tokens_seen: int
    sources: list[str]
    files: dict[str, dict[str, Any]] = Field(default_factory=dict)
    build_seconds: float = 0.0
    tokens_per_second: float = 0.0
    created: float = 0.0


def stores_dir(model_name: str) -> Path:
    """The folder holding all stores of ``model_name`` (created if missing)."""
    p = model_cache_dir(model_name) / "stores"
    p.mkdir(parents=True, exist_ok=True)
    return p


def store_path(model_name: str, units_id: str = "mlp") -> Path:
    """The folder of the ``units_id`` store of ``model_name``."""
    return stores_dir(model_name) / units_id


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save

    data = save({k: v.contiguous() for k, v in tensors.items()})
    atomic_write_bytes(path, data)


def _pack(name: str, t: torch.Tensor, out: dict[str, torch.Tensor]) -> None:
    """Store ``t`` (fp16) dense, or sparse (flat indices + values) when under 30% non-zero."""
    t = t.to(torch.float16)
    nz = int((t != 0).sum())
    if t.numel() and nz < 0.3 * t.numel():
        flat = t.reshape(-1)
        idx = flat.nonzero().reshape(-1)
        out[name + ".idx"] = idx.to(torch.int64 if t.numel() >= 2**31 else torch.int32)
        out[name + ".val"] = flat[idx]
        out[name + ".shape"] = torch.tensor(list(t.shape), dtype=torch.int64)
    else:
        out[name] = t


def _unpack(name: str, d: dict[str, torch.Tensor]) -> torch.Tensor:
    if name in d:
        return d[name]
    shape = [int(x) for x in d[name + ".shape"].tolist()]
    flat = torch.zeros(int(np.prod(shape)), dtype=torch.float16)
    flat[d[name + ".idx"].long()] = d[name + ".val"]
    return flat.reshape(shape)


def _throughput_file(model_name: str) -> Path:
    return stores_dir(model_name) / "throughput.json"


# fields that are sums over the corpus: two builds that added in another order agree to fp64 rounding
SUM_FIELDS = ("sum", "sumsq", "mean")


def store_differences(a: str | Path, b: str | Path, rtol: float = 1e-12) -> list[str]:
    """What differs between the stores in folders ``a`` and ``b`` (empty: the same store).

    Every tensor must be equal bit for bit, except sums over the corpus (:data:`SUM_FIELDS`),
    which must agree to ``rtol`` (a sharded build adds them in another order); the windows
    and their sources must be equal."""
    from safetensors.torch import load_file

    a, b = Path(a), Path(b)
    out = []
    names = sorted({p.name for p in a.glob("*.safetensors")} | {p.name for p in b.glob("*.safetensors")})
    for name in names:
        if not (a / name).exists() or not (b / name).exists():
            out.append(f"{name}: only in one store")
            continue
        da, db = load_file(str(a / name)), load_file(str(b / name))
        for k in sorted(set(da) | set(db)):
            if k not in da or k not in db:
                out.append(f"{name}:{k}: only in one store")
            elif da[k].shape != db[k].shape or da[k].dtype != db[k].dtype:
                out.append(f"{name}:{k}: shape or dtype differs")
            elif k.split(".")[0] in SUM_FIELDS:
                if not torch.allclose(da[k].double(), db[k].double(), rtol=rtol, atol=1e-9):
                    out.append(f"{name}:{k}: differs by more than rounding")
            elif not torch.equal(da[k], db[k]):
                out.append(f"{name}:{k}: differs")
    wa, wb = np.load(a / "windows.npz"), np.load(b / "windows.npz")
    for k in ("tokens", "source"):
        if not np.array_equal(wa[k], wb[k]):
            out.append(f"windows.npz:{k}: differs")
    return out
