"""The activation store: stream a corpus through the model once, keep what explains each unit.

For every unit (MLP neuron or SAE feature, see :mod:`gnothi.tools.units`) the store keeps

* its **top-k windows** (by the unit's max activation in the window) with one activation
  per token,
* **quantile samples**: a random reservoir of windows where the unit reaches at least a
  quarter of its running max, so mid-level activations are represented,
* **random windows** (the same windows for every unit, all units' activations kept),
* **summary statistics**: frequency (share of tokens with activation > 0), mean, std,
  max, min.

A record has the shape of the published explain-simulate-score work: tokens plus one
activation per token (:class:`ActivationRecord`), and a unit exports to JSON in the
``NeuronRecord`` layout (``most_positive_activation_records``, ``random_sample``,
``random_sample_by_quantile``...).

Building is memory-bounded (per-unit running top-k and reservoirs kept in torch, fp16
activations; nothing grows with the corpus except the int32 window table), checkpointed
per chunk of windows (versioned files + a progress file written last, all by temp file
and rename) so an interrupted build resumes from its last finished chunk, and shows a
tqdm progress bar with an ETA on stderr. A finished store lists every file with its size
and SHA-256 in ``meta.json``; opening checks sizes, loading a layer checks its hash, and a
damaged store raises :class:`StoreError` instead of being used.

Layout: ``model_cache_dir(model)/stores/<units id>/`` with ``meta.json``, ``windows.npz``
(token ids and source of each window) and ``layer_LLL.safetensors`` per layer.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from pydantic import BaseModel, Field

from . import tokens as tok_text
from .config import DEFAULT_MODEL, model_cache_dir
from .corpus import Corpus, bytes_for_tokens, load_corpus, token_windows
from .files import atomic_write_bytes, atomic_write_json, sha256_file
from .errors import InputError, OutOfRangeError, StoreError, check_range
from .units import UnitSource, check_units, units_from_spec

STORE_VERSION = 1
DEFAULT_TOP_K = 24
DEFAULT_N_QUANTILE = 12
DEFAULT_N_RANDOM = 32
DEFAULT_WINDOW = 64
DEFAULT_CHUNK_TOKENS = 8192
DEFAULT_BATCH = 16
# the default store of a model: every layer, this many tokens of the default corpus (`gnothi index --quick`: the smaller one)
DEFAULT_STORE_TOKENS = 131072
QUICK_STORE_TOKENS = 16384
QUANTILE_FLOOR = 0.25  # quantile samples: windows reaching >= this share of the running max
HOLDOUT_EVERY = 3  # top records with rank % 3 == 2 are held out for scoring


# =========================================================================== records


@dataclass
class UnitSplit:
    """One unit's records, split for explain-simulate-score with no window on both sides.

    Held out: every third top record (by rank) and the odd random slots, each window once.
    The explainer reads the other top records, the quantile samples and the even random
    slots, less any window that is held out (a quantile sample or a random window can be
    the same window as a held-out top record)."""

    explain_top: list["ActivationRecord"]
    explain_quantile: list["ActivationRecord"]
    explain_random: list["ActivationRecord"]
    heldout_top: list["ActivationRecord"]
    heldout_random: list["ActivationRecord"]

    @property
    def explain(self) -> list["ActivationRecord"]:
        """The activating records an explainer reads: top, then quantile samples."""
        return self.explain_top + self.explain_quantile

    @property
    def heldout(self) -> list["ActivationRecord"]:
        return self.heldout_top + self.heldout_random

    def heldout_windows(self) -> set[int]:
        return {r.window for r in self.heldout}

    def explain_windows(self) -> set[int]:
        return {r.window for r in self.explain + self.explain_random}


class ActivationRecord(BaseModel):
    """Tokens and one activation per token (the explain-simulate-score record)."""

    tokens: list[str]
    activations: list[float]
    window: int = -1  # index of the window in the store
    source: str = ""  # corpus source of the window
    kind: str = "top"  # top | quantile | random
    rank: int = 0

    @property
    def max_activation(self) -> float:
        return max(self.activations) if self.activations else 0.0

    @property
    def argmax(self) -> int:
        return int(np.argmax(self.activations)) if self.activations else 0

    def export(self) -> dict:
        return {"tokens": self.tokens, "activations": self.activations}


class UnitStats(BaseModel):
    layer: int
    unit: int
    n_tokens: int
    frequency: float  # share of tokens with activation > 0
    mean: float
    std: float
    max: float
    min: float


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


# =========================================================================== paths & io


def stores_dir(model_name: str) -> Path:
    p = model_cache_dir(model_name) / "stores"
    p.mkdir(parents=True, exist_ok=True)
    return p


def store_path(model_name: str, units_id: str = "mlp") -> Path:
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


# =========================================================================== windows


def corpus_windows(corpus: Corpus, tokenizer, window: int, n_tokens: int, seed: int, bos_token_id) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(windows [n, window] int32, source index [n] int16, source names)``, sources interleaved."""
    per: list[np.ndarray] = []
    names: list[str] = []
    for src in corpus.sources:
        sub = Corpus(src, [d for d in corpus.documents if d.source == src])
        try:
            w = token_windows(sub, tokenizer, window=window, n_tokens=None, seed=seed, bos_token_id=bos_token_id)
        except Exception:
            continue  # a source shorter than one window
        per.append(w)
        names.append(src)
    if not per:
        raise StoreError(
            f"Corpus {corpus.name!r} is shorter than one window of {window} tokens.", "Give more text or a smaller window."
        )
    limit = max(1, -(-n_tokens // window))
    out, src_idx = [], []
    pos = [0] * len(per)
    while len(out) < limit:
        moved = False
        for i, w in enumerate(per):
            if pos[i] < len(w) and len(out) < limit:
                out.append(w[pos[i]])
                src_idx.append(i)
                pos[i] += 1
                moved = True
        if not moved:
            break
    return np.stack(out).astype(np.int32), np.asarray(src_idx, dtype=np.int16), names


# =========================================================================== estimates


def _throughput_file(model_name: str) -> Path:
    return stores_dir(model_name) / "throughput.json"


def estimate_build_seconds(handle, n_tokens: int = DEFAULT_STORE_TOKENS, n_layers: int | None = None) -> float:
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


def build_command(model_name: str, units_id: str = "mlp", n_tokens: int = DEFAULT_STORE_TOKENS) -> str:
    m = "" if model_name in ("smollm2-135m-instruct",) else f" --model {model_name}"
    u = "" if units_id == "mlp" else f" --units {units_id}"
    return f"gnothi index{m}{u} --tokens {n_tokens}"


def store_status(handle, units_id: str = "mlp") -> StoreStatus:
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


def _fmt_layers(layers: Sequence[int]) -> str:
    if not layers:
        return "none"
    if list(layers) == list(range(layers[0], layers[-1] + 1)) and len(layers) > 2:
        return f"{layers[0]}-{layers[-1]}"
    return ",".join(map(str, layers))


# =========================================================================== reading


class ActivationStore:
    """A finished store, read lazily layer by layer (layer files are hash-checked on load)."""

    def __init__(self, path: str | Path, verify: bool = True, tokenizer=None):
        self.path = Path(path)
        meta_p = self.path / "meta.json"
        if not meta_p.exists():
            raise StoreError(f"No activation store at {self.path}.", "Build one with `gnothi index`.")
        try:
            self.meta = StoreMeta.model_validate_json(meta_p.read_text())
        except Exception:
            raise self._damaged("meta.json cannot be read") from None
        if self.meta.version != STORE_VERSION:
            raise StoreError(
                f"The store at {self.path} has format version {self.meta.version}; this gnothi reads version {STORE_VERSION}.",
                "Rebuild it with `gnothi index --force`.",
            )
        if not self.meta.complete:
            raise self._damaged("it is marked incomplete")
        for name, info in self.meta.files.items():
            p = self.path / name
            if not p.exists() or p.stat().st_size != info["size"]:
                raise self._damaged(f"{name} is missing or has the wrong size")
        self.tokenizer = tokenizer
        self._verified: set[str] = set()
        self._layers: OrderedDict[int, dict[str, torch.Tensor]] = OrderedDict()
        self._lock = threading.RLock()
        self._decode_cache: dict[int, str] = {}
        w = self._load_npz("windows.npz")
        self.windows: np.ndarray = w["tokens"]
        self.window_source: np.ndarray = w["source"]
        self._vocab: dict[str, str] | None = None
        if verify:
            for name in self.meta.files:
                self._verify(name)

    # ------------------------------------------------------------------ basics
    def _damaged(self, why: str) -> StoreError:
        c = self.meta.config if hasattr(self, "meta") else None
        cmd = build_command(c.model, c.units_id, c.n_tokens) if c else "gnothi index"
        return StoreError(
            f"The activation store at {self.path} is damaged ({why}); it will not be used.",
            f"Rebuild it: `{cmd} --force`.",
        )

    def _verify(self, name: str) -> None:
        if name in self._verified:
            return
        info = self.meta.files.get(name)
        p = self.path / name
        if info is None or not p.exists() or p.stat().st_size != info["size"] or sha256_file(p) != info["sha256"]:
            raise self._damaged(f"{name} does not match its checksum")
        self._verified.add(name)

    def _load_npz(self, name: str) -> dict[str, np.ndarray]:
        self._verify(name)
        try:
            with np.load(self.path / name, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except Exception:
            raise self._damaged(f"{name} cannot be read") from None

    @property
    def config(self) -> StoreConfig:
        return self.meta.config

    @property
    def units_id(self) -> str:
        return self.meta.config.units_id

    @property
    def kind(self) -> str:
        return self.meta.config.units_kind

    @property
    def layers(self) -> list[int]:
        return list(self.meta.config.layers)

    @property
    def n_tokens(self) -> int:
        return self.meta.n_tokens_seen

    @property
    def sources(self) -> list[str]:
        return self.meta.sources

    def n_units(self, layer: int) -> int:
        self.check_layer(layer)
        return self.meta.config.n_units[str(layer)]

    def check_layer(self, layer: int) -> None:
        if not isinstance(layer, int) or layer not in self.meta.config.layers:
            c = self.meta.config
            raise OutOfRangeError(
                f"Layer {layer} is not in the {c.units_id} store (it covers layers {_fmt_layers(self.layers)}).",
                f"Pick one of those layers, or add it to the store (the layers there are kept): `{_index_command(c, [layer])}`.",
            )

    def check_unit(self, layer: int, unit: int) -> None:
        self.check_layer(layer)
        check_range("neuron" if self.kind == "mlp" else "feature", unit, self.n_units(layer))

    # ------------------------------------------------------------------ tokens
    def decode(self, token_id: int) -> str:
        """The text of one token id (from the store's own vocab.json, else the tokenizer)."""
        s = self._decode_cache.get(token_id)
        if s is None:
            if self._vocab is None:
                vp = self.path / "vocab.json"
                if "vocab.json" in self.meta.files:
                    self._verify("vocab.json")
                    try:
                        self._vocab = json.loads(vp.read_text())
                    except Exception:
                        raise self._damaged("vocab.json cannot be read") from None
                else:
                    self._vocab = {}
            s = self._vocab.get(str(int(token_id)))
            if s is None:
                s = tok_text.label(self.tokenizer, int(token_id)) if self.tokenizer is not None else f"<{token_id}>"
            self._decode_cache[token_id] = s
        return s

    def window_tokens(self, w: int) -> list[str]:
        ids = self.windows[w]
        texts = [self.decode(int(t)) for t in ids]
        if self.tokenizer is not None and any("\ufffd" in t or "\\x" in t for t in texts):  # a character split over tokens
            return tok_text.pieces(self.tokenizer, ids.tolist())
        return texts

    # ------------------------------------------------------------------ layers
    def _layer(self, layer: int) -> dict[str, torch.Tensor]:
        self.check_layer(layer)
        with self._lock:
            if layer in self._layers:
                self._layers.move_to_end(layer)
                return self._layers[layer]
            name = f"layer_{layer:03d}.safetensors"
            self._verify(name)
            from safetensors.torch import load_file

            try:
                d = load_file(str(self.path / name))
            except Exception:
                raise self._damaged(f"{name} cannot be read") from None
            out = {k: v for k, v in d.items() if not (k.endswith(".idx") or k.endswith(".val") or k.endswith(".shape"))}
            for base in ("top_acts", "q_acts", "rand_acts"):
                out[base] = _unpack(base, d)
            self._layers[layer] = out
            while len(self._layers) > 3:
                self._layers.popitem(last=False)
            return out

    # ------------------------------------------------------------------ per-unit reads
    def _record(self, w: int, acts: torch.Tensor, kind: str, rank: int) -> ActivationRecord:
        return ActivationRecord(
            tokens=self.window_tokens(w),
            activations=[round(float(x), 4) for x in acts.float().tolist()],
            window=int(w),
            source=self.sources[int(self.window_source[w])] if len(self.sources) else "",
            kind=kind,
            rank=rank,
        )

    def top_records(self, layer: int, unit: int, split: str = "all") -> list[ActivationRecord]:
        """Top-activating windows, best first. ``split``: all | train | holdout."""
        self.check_unit(layer, unit)
        d = self._layer(layer)
        out = []
        for r in range(d["top_win"].shape[0]):
            w = int(d["top_win"][r, unit])
            if w < 0:
                continue
            held = r % HOLDOUT_EVERY == HOLDOUT_EVERY - 1
            if split == "train" and held or split == "holdout" and not held:
                continue
            out.append(self._record(w, d["top_acts"][r, unit], "top", r))
        return out

    def quantile_records(self, layer: int, unit: int) -> list[ActivationRecord]:
        """Random windows where the unit reaches >= 25% of its max, sorted by max activation."""
        self.check_unit(layer, unit)
        d = self._layer(layer)
        recs = []
        for r in range(d["q_win"].shape[0]):
            w = int(d["q_win"][r, unit])
            if w >= 0:
                recs.append(self._record(w, d["q_acts"][r, unit], "quantile", r))
        recs.sort(key=lambda x: -x.max_activation)
        for i, r in enumerate(recs):
            r.rank = i
        return recs

    def random_records(self, layer: int, unit: int, split: str = "all") -> list[ActivationRecord]:
        """The store's random windows (the same for every unit). Odd slots are held out."""
        self.check_unit(layer, unit)
        d = self._layer(layer)
        wins = d["rand_win"]
        out = []
        for r in range(wins.shape[0]):
            held = r % 2 == 1
            if split == "train" and held or split == "holdout" and not held:
                continue
            out.append(self._record(int(wins[r]), d["rand_acts"][r, :, unit], "random", r))
        return out

    def unit_split(self, layer: int, unit: int) -> "UnitSplit":
        """The unit's records split strictly: what an explainer may read and what its
        explanation is scored on, disjoint by window (see :class:`UnitSplit`)."""
        ho_top = self.top_records(layer, unit, "holdout")
        top_wins = {r.window for r in ho_top}
        # a window scored once: a held-out random window that is also a held-out top one is dropped
        ho_rand = [r for r in self.random_records(layer, unit, "holdout") if r.window not in top_wins]
        held = top_wins | {r.window for r in ho_rand}
        return UnitSplit(
            explain_top=[r for r in self.top_records(layer, unit, "train") if r.window not in held],
            explain_quantile=[r for r in self.quantile_records(layer, unit) if r.window not in held],
            explain_random=[r for r in self.random_records(layer, unit, "train") if r.window not in held],
            heldout_top=ho_top,
            heldout_random=ho_rand,
        )

    def stats(self, layer: int, unit: int) -> UnitStats:
        self.check_unit(layer, unit)
        d = self._layer(layer)
        n = max(1, self.meta.n_tokens_seen)
        mean = float(d["sum"][unit]) / n
        var = max(0.0, float(d["sumsq"][unit]) / n - mean * mean)
        return UnitStats(
            layer=layer, unit=unit, n_tokens=self.meta.n_tokens_seen,
            frequency=round(float(d["count_pos"][unit]) / n, 6),
            mean=round(mean, 6), std=round(math.sqrt(var), 6),
            max=round(float(d["max"][unit]), 5), min=round(float(d["min"][unit]), 5),
        )

    def summary(self) -> dict[str, torch.Tensor]:
        """``{"max.L"|"mean.L"|"frequency.L": [n_units]}`` for every layer (one small file)."""
        if getattr(self, "_summary", None) is None:
            from safetensors.torch import load_file

            self._verify("summary.safetensors")
            try:
                self._summary = load_file(str(self.path / "summary.safetensors"))
            except Exception:
                raise self._damaged("summary.safetensors cannot be read") from None
        return self._summary

    def max_activations(self, layer: int) -> torch.Tensor:
        """``[n_units]`` max activation of each unit over the corpus."""
        self.check_layer(layer)
        return self.summary()[f"max.{layer}"].float()

    def layer_stats(self, layer: int) -> dict[str, torch.Tensor]:
        d = self._layer(layer)
        n = max(1, self.meta.n_tokens_seen)
        return {"max": d["max"].float(), "mean": d["sum"].double().div(n).float(), "frequency": d["count_pos"].double().div(n).float()}

    def histogram(self, layer: int, unit: int, bins: int = 30) -> dict:
        """Histogram of the unit's activations over all tokens of the random windows."""
        self.check_unit(layer, unit)
        d = self._layer(layer)
        vals = d["rand_acts"][:, :, unit].float().reshape(-1).numpy()
        lo = float(min(vals.min(), 0.0)) if vals.size else 0.0
        hi = float(max(vals.max(), float(d["max"][unit]))) if vals.size else 1.0
        if hi <= lo:
            hi = lo + 1.0
        counts, edges = np.histogram(vals, bins=bins, range=(lo, hi))
        return {"edges": [round(float(e), 5) for e in edges], "counts": [int(c) for c in counts], "n": int(vals.size)}

    def export_unit(self, layer: int, unit: int) -> dict:
        """The unit in the ``NeuronRecord`` JSON layout of the explain-simulate-score work."""
        st = self.stats(layer, unit)
        q = self.quantile_records(layer, unit)
        nb = 4
        by_q: list[list[dict]] = [[] for _ in range(nb)]
        mx = st.max if st.max > 0 else 1.0
        for r in q:
            b = min(nb - 1, max(0, int((r.max_activation / mx - QUANTILE_FLOOR) / ((1 - QUANTILE_FLOOR) / nb))))
            by_q[b].append(r.export())
        return {
            "dataclass_name": "NeuronRecord",
            "neuron_id": {"layer_index": layer, "neuron_index": unit, "units": self.units_id},
            "most_positive_activation_records": [r.export() for r in self.top_records(layer, unit)],
            "random_sample": [r.export() for r in self.random_records(layer, unit)],
            "random_sample_by_quantile": by_q,
            "quantile_boundaries": [round(mx * (QUANTILE_FLOOR + i * (1 - QUANTILE_FLOOR) / nb), 5) for i in range(nb + 1)],
            "mean": st.mean,
            "variance": st.std**2,
            "frequency": st.frequency,
            "max": st.max,
            "n_tokens": st.n_tokens,
        }

    def describe(self) -> dict:
        c = self.meta.config
        return {
            "path": str(self.path),
            "model": c.model,
            "units": c.units_id,
            "kind": c.units_kind,
            "layers": c.layers,
            "n_units": c.n_units,
            "corpus": c.corpus,
            "n_tokens": self.meta.n_tokens_seen,
            "n_windows": self.meta.n_windows,
            "window": c.window,
            "top_k": c.top_k,
            "n_quantile": c.n_quantile,
            "n_random": c.n_random,
            "sources": self.meta.sources,
            "size_mb": round(sum(f["size"] for f in self.meta.files.values()) / 2**20, 1),
            "build_seconds": self.meta.build_seconds,
            "tokens_per_second": self.meta.tokens_per_second,
        }


_OPEN: dict[tuple[str, str], ActivationStore] = {}
_OPEN_LOCK = threading.Lock()


def open_store(handle, units_id: str = "mlp", verify: bool = False) -> ActivationStore:
    """The finished store of ``handle``'s model for ``units_id``.

    Raises :class:`StoreError` with the build command and a time estimate when there is
    none, and when it is damaged. Opened stores are cached per process.
    """
    path = store_path(handle.name, units_id)
    key = (str(path), units_id)
    with _OPEN_LOCK:
        st = _OPEN.get(key)
        if st is not None:
            try:
                if (path / "meta.json").stat().st_mtime == st._mtime:
                    return st
            except FileNotFoundError:
                pass
            _OPEN.pop(key, None)
        status = store_status(handle, units_id)
        if not status.exists:
            raise StoreError(status.message, f"Build it first: `{status.build_command}` (about {status.estimated_build_seconds:.0f} s here).")
        st = ActivationStore(path, verify=verify, tokenizer=handle.tokenizer)
        if st.config.model != handle.name:
            raise StoreError(f"The store at {path} was built for {st.config.model}, not {handle.name}.", f"Rebuild it: `{status.build_command} --force`.")
        st._mtime = (path / "meta.json").stat().st_mtime
        _OPEN[key] = st
        return st


# =========================================================================== building


class _LayerState:
    """Running per-unit top-k, quantile reservoir and statistics for one layer."""

    def __init__(self, n_units: int, K: int, Q: int, T: int):
        U = n_units
        self.top_val = torch.full((K, U), -math.inf)
        self.top_win = torch.full((K, U), -1, dtype=torch.int32)
        # activations are kept [slot, pos, unit] while building (writes are contiguous) and
        # written [slot, unit, pos] at the end
        self.top_acts = torch.zeros((K, T, U), dtype=torch.float16)
        self.q_key = torch.full((Q, U), -math.inf)
        self.q_win = torch.full((Q, U), -1, dtype=torch.int32)
        self.q_acts = torch.zeros((Q, T, U), dtype=torch.float16)
        self.count_pos = torch.zeros(U, dtype=torch.int64)
        self.sum = torch.zeros(U, dtype=torch.float64)
        self.sumsq = torch.zeros(U, dtype=torch.float64)
        self.max = torch.full((U,), -math.inf)
        self.min = torch.full((U,), math.inf)

    FIELDS = ("top_val", "top_win", "top_acts", "q_key", "q_win", "q_acts", "count_pos", "sum", "sumsq", "max", "min")

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k) for k in self.FIELDS}

    def load(self, d: dict[str, torch.Tensor]) -> None:
        for k in self.FIELDS:
            if d[k].shape != getattr(self, k).shape:
                raise ValueError(f"checkpoint field {k} has shape {tuple(d[k].shape)}")
        for k in self.FIELDS:
            setattr(self, k, d[k].clone())

    @staticmethod
    def _insert(vals, wins, acts, new_vals, new_win, a) -> None:
        """Keep the ``len(vals)`` largest values per unit, unsorted: each new window replaces
        the unit's current smallest slot when it beats it. Only changed slots are written, so
        late in a build (when few windows still qualify) this costs almost nothing."""
        B = new_vals.shape[0]
        K = vals.shape[0]
        inf_rows = torch.isinf(vals).all(dim=1).to(torch.int64)  # [K]
        empty = int(inf_rows.flip(0).cumprod(0).sum())  # trailing rows never written
        start = K - empty
        if empty >= B:
            # filling: the first windows go straight into the empty slots (vectorised);
            # quantile keys of -inf stay -inf and are dropped when the store is finalised
            vals[start:start + B] = new_vals
            wins[start:start + B] = new_win[:, None]
            acts[start:start + B] = a.to(torch.float16)
            return
        for b in range(B):
            mn, slot = vals.min(0)  # [U]
            hit = (new_vals[b] > mn).nonzero().reshape(-1)
            if hit.numel() == 0:
                continue
            s = slot[hit]
            vals[s, hit] = new_vals[b, hit]
            wins[s, hit] = new_win[b]
            acts[s, :, hit] = a[b][:, hit].T.to(torch.float16)

    def update(self, a: torch.Tensor, win_ids: torch.Tensor, gen: torch.Generator) -> None:
        """``a``: ``[B, T, U]`` float unit activations for windows ``win_ids``."""
        self.count_pos += (a > 0).sum((0, 1))
        self.sum += a.sum((0, 1)).double()  # per-batch sums in fp32, running sums in fp64
        self.sumsq += (a * a).sum((0, 1)).double()
        wmax = a.amax(1)  # [B, U]
        self.max = torch.maximum(self.max, wmax.max(0).values)
        self.min = torch.minimum(self.min, a.amin((0, 1)))
        self._insert(self.top_val, self.top_win, self.top_acts, wmax, win_ids, a)
        keys = torch.rand(wmax.shape, generator=gen)
        floor = QUANTILE_FLOOR * self.max.clamp(min=0)
        keys[(wmax < floor[None, :]) | (wmax <= 0)] = -math.inf
        self._insert(self.q_key, self.q_win, self.q_acts, keys, win_ids, a)

    def sorted_top(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Top slots ordered best first per unit (empty slots last)."""
        order = self.top_val.argsort(dim=0, descending=True)
        vals = torch.gather(self.top_val, 0, order)
        wins = torch.gather(self.top_win, 0, order)
        acts = torch.gather(self.top_acts, 0, order[:, None, :].expand(-1, self.top_acts.shape[1], -1))
        return vals, wins, acts.permute(0, 2, 1).contiguous()


class BuildReport(BaseModel):
    path: str
    units_id: str
    layers: list[int]
    n_tokens: int
    n_windows: int
    seconds: float
    tokens_per_second: float
    resumed_from_tokens: int = 0
    size_mb: float
    reused: bool = False
    added_layers: list[int] = []  # layers added to an existing store (the others were kept)

    def to_tool_result(self):
        from .results import ToolResult

        verb = "reused" if self.reused else "built"
        return ToolResult(
            tool="index",
            summary=f"Activation store {verb}: {self.n_tokens} tokens, {len(self.layers)} layers of {self.units_id}, "
            f"{self.tokens_per_second:.0f} tokens/s, {self.size_mb:.0f} MB.",
            headline={"n_tokens": self.n_tokens, "tokens_per_second": self.tokens_per_second, "seconds": self.seconds},
            data=self.model_dump(),
            timings={"build_s": self.seconds},
        )


# what makes two builds the same run (the same windows and samples): all but the layers
_RUN_FIELDS = ("model", "units_id", "units_kind", "corpus", "corpus_fingerprint", "n_tokens", "window", "seed", "top_k",
               "n_quantile", "n_random")


def _same_run(a: "StoreConfig", b: "StoreConfig") -> bool:
    return all(getattr(a, f) == getattr(b, f) for f in _RUN_FIELDS)


def _index_command(c: "StoreConfig", layers: Sequence[int]) -> str:
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


def _add_layers(handle, units, corpus, st: "ActivationStore", missing: list[int], window, top_k, n_quantile, n_random,
                chunk_tokens, batch_size, seed, progress, final: Path, t0: float) -> "BuildReport":
    """Build only ``missing`` layers over the same windows, then merge them into the finished
    store ``st`` (a new folder swapped in when complete: the old store stays whole until then)."""
    from safetensors.torch import load_file

    old_cfg = st.config
    add_dir = final.with_name(final.name + ".add")
    part = _build_store(handle, units_from_spec(handle, "mlp", missing) if units.kind == "mlp" else units, corpus, old_cfg.n_tokens,
                        missing, window, top_k, n_quantile, n_random, chunk_tokens, batch_size, seed, True, progress, add_dir, None)
    new = ActivationStore(add_dir, verify=False)
    if st.meta.files.get("windows.npz", {}).get("sha256") != new.meta.files.get("windows.npz", {}).get("sha256"):
        shutil.rmtree(add_dir, ignore_errors=True)
        raise StoreError("The new layers were built over other windows than the store's (the corpus changed?).",
                         f"Rebuild the whole store: `{_index_command(old_cfg, sorted(set(old_cfg.layers) | set(missing)))} --force`.")
    merged = final.with_name(final.name + ".merge")
    shutil.rmtree(merged, ignore_errors=True)
    merged.mkdir()
    for src, keep in ((add_dir, lambda n: n.startswith("layer_")), (final, lambda n: n not in ("meta.json", "summary.safetensors"))):
        for f in src.iterdir():  # the old store's files (vocab, windows ...) all come along
            if f.is_file() and keep(f.name) and not (merged / f.name).exists():
                try:
                    os.link(f, merged / f.name)
                except OSError:
                    shutil.copy2(f, merged / f.name)
    summ = {**load_file(str(final / "summary.safetensors")), **load_file(str(add_dir / "summary.safetensors"))}
    _save_tensors(merged / "summary.safetensors", summ)
    layers = sorted(set(old_cfg.layers) | set(missing))
    cfg = old_cfg.model_copy(update={
        "layers": layers,
        "n_units": {**old_cfg.n_units, **new.config.n_units},
        "hook_names": {**old_cfg.hook_names, **new.config.hook_names},
    })
    files = {name: {"size": (merged / name).stat().st_size, "sha256": sha256_file(merged / name)}
             for name in sorted(p.name for p in merged.iterdir() if p.is_file())}
    meta = st.meta.model_copy(update={"config": cfg, "files": files, "created": time.time(),
                                      "build_seconds": round(st.meta.build_seconds + new.meta.build_seconds, 2)})
    atomic_write_json(merged / "meta.json", json.loads(meta.model_dump_json()))
    old = final.with_name(final.name + f".old-{os.getpid()}")
    os.replace(final, old)
    os.replace(merged, final)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(add_dir, ignore_errors=True)
    with _OPEN_LOCK:
        for k in [k for k in _OPEN if k[0] == str(final)]:
            _OPEN.pop(k, None)
    size = sum(f["size"] for f in files.values()) / 2**20
    return BuildReport(path=str(final), units_id=units.id, layers=layers, n_tokens=st.n_tokens, n_windows=st.meta.n_windows,
                       seconds=round(time.perf_counter() - t0, 2), tokens_per_second=part.tokens_per_second, size_mb=round(size, 1),
                       added_layers=missing)


def _build_store(
    handle,
    units: UnitSource | str | None = "mlp",
    corpus: Corpus | str | None = None,
    n_tokens: int = DEFAULT_STORE_TOKENS,
    layers: Sequence[int] | str | None = None,
    window: int = DEFAULT_WINDOW,
    top_k: int = DEFAULT_TOP_K,
    n_quantile: int = DEFAULT_N_QUANTILE,
    n_random: int = DEFAULT_N_RANDOM,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    batch_size: int = DEFAULT_BATCH,
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
    path: str | Path | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> BuildReport:
    """The build itself (see :func:`build_store`); the caller holds the build lock."""
    t0 = time.perf_counter()
    if isinstance(units, str) or units is None:
        units = units_from_spec(handle, units or "mlp", layers)
    check_units(units)
    if n_tokens is None or n_tokens < window:
        raise InputError(f"--tokens {n_tokens} is less than one window of {window} tokens.", f"Use at least {window} tokens (e.g. {DEFAULT_STORE_TOKENS}).")
    if n_tokens > 50_000_000:
        raise InputError(f"--tokens {n_tokens} is more than this store is meant for (50M).", "Use fewer tokens.")
    if top_k < 3 or n_random < 2 or n_quantile < 1:
        raise InputError("top_k must be >= 3, n_random >= 2, n_quantile >= 1.", "Use the defaults.")
    if not isinstance(corpus, Corpus):
        corpus = load_corpus(corpus, max_bytes=bytes_for_tokens(n_tokens))
    final = Path(path) if path else store_path(handle.name, units.id)
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(final.name + ".partial")
    cfg = StoreConfig(
        model=handle.name,
        units_id=units.id,
        units_kind=units.kind,
        layers=list(units.layers),
        n_units={str(l): int(units.n_units(l)) for l in units.layers},
        hook_names={str(l): units.hook_name(l) for l in units.layers},
        corpus=corpus.name,
        corpus_fingerprint=corpus.fingerprint(),
        n_tokens=int(n_tokens),
        window=window,
        seed=seed,
        top_k=top_k,
        n_quantile=n_quantile,
        n_random=n_random,
        chunk_tokens=chunk_tokens,
        batch_size=batch_size,
    )
    # a finished store is never replaced without force: reuse it, add the missing layers to
    # it, or refuse
    prog_p = partial / "progress.json"
    resuming = False
    if prog_p.exists():  # an interrupted build of exactly this: it resumes (it was allowed to start)
        try:
            resuming = json.loads(prog_p.read_text()).get("key") == cfg.key()
        except Exception:
            resuming = False
    if not force and not resuming and (final / "meta.json").exists():
        try:
            st = ActivationStore(final, verify=False)
        except StoreError:
            st = None  # damaged: rebuilt below
        if st is not None:
            old_cfg = st.config
            if old_cfg.key() == cfg.key() or (_same_run(old_cfg, cfg) and set(cfg.layers) <= set(old_cfg.layers)):
                return BuildReport(path=str(final), units_id=units.id, layers=st.layers, n_tokens=st.n_tokens, n_windows=st.meta.n_windows,
                                   seconds=round(time.perf_counter() - t0, 2), tokens_per_second=st.meta.tokens_per_second,
                                   size_mb=st.describe()["size_mb"], reused=True)
            if not _same_run(old_cfg, cfg):
                differ = [f"{f} {getattr(old_cfg, f)} vs {getattr(cfg, f)}" for f in _RUN_FIELDS if getattr(old_cfg, f) != getattr(cfg, f)]
                if set(cfg.layers) <= set(old_cfg.layers):
                    keep = f"It already covers layers {_fmt_layers(cfg.layers)}: use it as it is, or add --force to replace it."
                else:
                    keep = f"Add --force to replace it, or add the layers to it with its own settings: `{_index_command(old_cfg, cfg.layers)}`."
                raise StoreError(
                    f"A finished {units.id} store is at {final} (layers {_fmt_layers(old_cfg.layers)}, {old_cfg.n_tokens} tokens); "
                    f"this build differs from it ({'; '.join(differ)}) and would replace it.",
                    keep,
                )
            missing = [l for l in cfg.layers if l not in old_cfg.layers]
            return _add_layers(handle, units, corpus, st, missing, window, top_k, n_quantile, n_random, chunk_tokens,
                               batch_size, seed, progress, final, t0)
    # resume or start fresh (force allows replacing a finished store; it does not throw away progress)
    progress_rec = None
    if prog_p.exists():
        try:
            progress_rec = json.loads(prog_p.read_text())
            if progress_rec.get("key") != cfg.key():
                progress_rec = None
        except Exception:
            progress_rec = None
    if progress_rec is None:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)

    tok = handle.tokenizer
    wins, src_idx, src_names = corpus_windows(corpus, tok, window, n_tokens, seed, handle.bos_token_id)
    n_win, T = wins.shape
    if progress_rec is None:
        np.savez(partial / "windows.tmp.npz", tokens=wins, source=src_idx)
        os.replace(partial / "windows.tmp.npz", partial / "windows.npz")
        vocab = {str(int(i)): tok_text.label(tok, int(i)) for i in np.unique(wins)}
        atomic_write_json(partial / "vocab.json", vocab)
    rng = np.random.default_rng(seed)
    rand_win = np.sort(rng.choice(n_win, size=min(n_random, n_win), replace=False)).astype(np.int64)
    rand_slot = {int(w): i for i, w in enumerate(rand_win)}

    states = {l: _LayerState(units.n_units(l), top_k, n_quantile, T) for l in units.layers}
    start_win, chunk_i, done_tokens, prev_seconds = 0, 0, 0, 0.0
    if progress_rec is not None:
        chunk_i = int(progress_rec["chunk"])
        start_win = int(progress_rec["next_window"])
        done_tokens = int(progress_rec["n_tokens_seen"])
        prev_seconds = float(progress_rec.get("seconds", 0.0))
        from safetensors.torch import load_file

        for l in units.layers:
            try:
                states[l].load(load_file(str(partial / f"state_{l:03d}.c{chunk_i}.safetensors")))
            except Exception:
                # a damaged checkpoint: start over rather than use it
                print("[gnothi] the interrupted build's checkpoint is damaged; starting over", file=sys.stderr)
                return _build_store(handle, units, corpus, n_tokens, None, window, top_k, n_quantile, n_random, chunk_tokens,
                                   batch_size, seed, True, progress, path, on_chunk)
    resumed_from = done_tokens
    hooks = [units.hook_name(l) for l in units.layers]
    skip_first = handle.bos_token_id is not None
    gen = torch.Generator().manual_seed(seed * 7919 + chunk_i)
    wins_per_chunk = max(batch_size, (chunk_tokens // T) // batch_size * batch_size)

    from tqdm.auto import tqdm

    bar = tqdm(total=n_win * T, initial=start_win * T, unit="tok", unit_scale=True, desc=f"Indexing {units.id} ({len(units.layers)} layers)",
               disable=not progress, file=sys.stderr, dynamic_ncols=True)
    t_run = time.perf_counter()
    try:
        w0 = start_win
        while w0 < n_win:
            w1 = min(n_win, w0 + wins_per_chunk)
            rand_here: dict[int, dict[str, torch.Tensor]] = {}
            gen.manual_seed(seed * 7919 + chunk_i)  # per-chunk seed: a resumed build samples as an unbroken one
            for b0 in range(w0, w1, batch_size):
                b1 = min(w1, b0 + batch_size)
                toks = torch.from_numpy(wins[b0:b1].astype(np.int64)).to(handle.device)
                _, cache = handle.run_with_cache(toks, hooks, stop_early=True)
                ids = torch.arange(b0, b1, dtype=torch.int32)
                for l in units.layers:
                    with torch.inference_mode():
                        a = units.encode(l, cache[units.hook_name(l)]).float().cpu()
                        if skip_first:
                            a[:, 0, :] = 0.0  # the BOS position is not part of any record's evidence
                    states[l].update(a, ids, gen)
                    for j, w in enumerate(range(b0, b1)):
                        if w in rand_slot:
                            rand_here.setdefault(l, {})[f"{l}.{rand_slot[w]}"] = a[j].to(torch.float16).clone()
                del cache
                bar.update((b1 - b0) * T)
            # checkpoint: versioned state files, then progress (written last)
            nxt = chunk_i + 1
            for l in units.layers:
                _save_tensors(partial / f"state_{l:03d}.c{nxt}.safetensors", states[l].tensors())
            rflat = {k: v for d in rand_here.values() for k, v in d.items()}
            if rflat:
                _save_tensors(partial / f"rand.c{nxt}.safetensors", rflat)
            done_tokens += (w1 - w0) * T
            atomic_write_json(prog_p, {"key": cfg.key(), "chunk": nxt, "next_window": w1, "n_tokens_seen": done_tokens,
                                        "seconds": prev_seconds + time.perf_counter() - t_run})
            for l in units.layers:
                old = partial / f"state_{l:03d}.c{chunk_i}.safetensors"
                if old.exists():
                    old.unlink()
            chunk_i = nxt
            w0 = w1
            if on_chunk is not None:
                on_chunk(chunk_i, done_tokens)
    finally:
        bar.close()
    run_seconds = prev_seconds + time.perf_counter() - t_run

    # finalize: per-layer files with the random windows' activations merged in
    from safetensors.torch import load_file

    rand_all: dict[str, torch.Tensor] = {}
    for f in sorted(partial.glob("rand.c*.safetensors")):
        rand_all.update(load_file(str(f)))
    files: dict[str, dict] = {}
    for l in units.layers:
        s = states[l]
        U = units.n_units(l)
        rand_acts = torch.zeros((len(rand_win), T, U), dtype=torch.float16)
        for i in range(len(rand_win)):
            t = rand_all.get(f"{l}.{i}")
            if t is None:
                raise StoreError("A random window of the build is missing its activations.", "Rebuild with --force.")
            rand_acts[i] = t
        top_val, top_win, top_acts = s.sorted_top()
        out = {
            "top_val": top_val.float(),
            "top_win": top_win,
            "q_win": torch.where(torch.isinf(s.q_key), torch.full_like(s.q_win, -1), s.q_win),
            "count_pos": s.count_pos,
            "sum": s.sum,
            "sumsq": s.sumsq,
            "max": s.max.float(),
            "min": s.min.float(),
            "rand_win": torch.from_numpy(rand_win).to(torch.int32),
        }
        _pack("top_acts", top_acts, out)
        _pack("q_acts", s.q_acts.permute(0, 2, 1).contiguous(), out)
        _pack("rand_acts", rand_acts, out)
        name = f"layer_{l:03d}.safetensors"
        _save_tensors(partial / name, out)
    # per-layer summary of every unit (max, mean, frequency) in one small file
    n_seen = max(1, n_win * T)
    summ = {}
    for l in units.layers:
        s = states[l]
        summ[f"max.{l}"] = s.max.float()
        summ[f"mean.{l}"] = (s.sum / n_seen).float()
        summ[f"frequency.{l}"] = (s.count_pos.double() / n_seen).float()
    _save_tensors(partial / "summary.safetensors", summ)
    for f in list(partial.glob("state_*.safetensors")) + list(partial.glob("rand.c*.safetensors")) + [prog_p]:
        f.unlink(missing_ok=True)
    for name in sorted(p.name for p in partial.iterdir() if p.is_file()):
        files[name] = {"size": (partial / name).stat().st_size, "sha256": sha256_file(partial / name)}
    tps = n_win * T / max(run_seconds, 1e-9)
    meta = StoreMeta(config=cfg, complete=True, n_windows=n_win, n_tokens_seen=n_win * T, sources=src_names, files=files,
                     build_seconds=round(run_seconds, 2), tokens_per_second=round(tps, 1), created=time.time())
    atomic_write_json(partial / "meta.json", json.loads(meta.model_dump_json()))
    # swap into place
    old = final.with_name(final.name + f".old-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(partial, final)
    shutil.rmtree(old, ignore_errors=True)
    with _OPEN_LOCK:
        for k in [k for k in _OPEN if k[0] == str(final)]:
            _OPEN.pop(k, None)
    if resumed_from == 0 and path is None:
        try:
            full = tps * len(units.layers) / max(1, handle.n_layers)
            atomic_write_json(_throughput_file(handle.name), {"tokens_per_second_full_depth": full, "measured": time.time()})
        except Exception:
            pass
    size = sum(f["size"] for f in files.values()) / 2**20
    return BuildReport(path=str(final), units_id=units.id, layers=list(units.layers), n_tokens=n_win * T, n_windows=n_win,
                       seconds=round(time.perf_counter() - t0, 2), tokens_per_second=round(tps, 1), resumed_from_tokens=resumed_from,
                       size_mb=round(size, 1))


def build_store(
    handle,
    units: UnitSource | str | None = "mlp",
    corpus: Corpus | str | None = None,
    n_tokens: int = DEFAULT_STORE_TOKENS,
    layers: Sequence[int] | str | None = None,
    window: int = DEFAULT_WINDOW,
    top_k: int = DEFAULT_TOP_K,
    n_quantile: int = DEFAULT_N_QUANTILE,
    n_random: int = DEFAULT_N_RANDOM,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    batch_size: int = DEFAULT_BATCH,
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
    path: str | Path | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> BuildReport:
    """Stream ``n_tokens`` tokens of ``corpus`` through the model once and write the store.

    ``units``: a UnitSource, or a spec (``"mlp"``, ``"sae:PATH"``); ``layers`` narrows an
    ``"mlp"`` spec. A finished store with the same settings is reused unless ``force``;
    an interrupted build with the same settings resumes from its last finished chunk
    (``on_chunk(chunk_index, tokens_done)`` is called after each chunk is saved). Only one
    process builds a given store at a time (a lock file next to it); a second gets a
    :class:`StoreError`.
    """
    if isinstance(units, str) or units is None:
        units = units_from_spec(handle, units or "mlp", layers)
    check_units(units)
    final = Path(path) if path else store_path(handle.name, units.id)
    final.parent.mkdir(parents=True, exist_ok=True)
    lock = final.with_name(final.name + ".lock")
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or "0")
                os.kill(pid, 0)
                alive = pid != os.getpid()
            except (ValueError, ProcessLookupError, FileNotFoundError):
                alive = False
            except PermissionError:
                alive = True
            if alive:
                raise StoreError(
                    f"Another process (pid {pid}) is building the store at {final}.",
                    "Wait for it to finish (it shows a progress bar), then use the store.",
                ) from None
            lock.unlink(missing_ok=True)  # a stale lock from a killed build
    else:  # pragma: no cover
        raise StoreError(f"Cannot take the build lock {lock}.", "Remove the file if no build is running.")
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return _build_store(handle, units, corpus, n_tokens, layers, window, top_k, n_quantile, n_random, chunk_tokens,
                            batch_size, seed, force, progress, path, on_chunk)
    finally:
        lock.unlink(missing_ok=True)


def ensure_default_store(handle, progress: bool = True, n_tokens: int = DEFAULT_STORE_TOKENS) -> ActivationStore:
    """The model's MLP store, building a modest default (all layers, ``n_tokens`` tokens) if none exists."""
    st = store_status(handle, "mlp")
    if not st.exists or st.damaged:
        build_store(handle, "mlp", None, n_tokens=n_tokens, progress=progress, force=st.damaged)
    return open_store(handle, "mlp")
