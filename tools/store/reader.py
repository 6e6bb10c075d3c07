"""Reading a finished store: per-unit top, quantile and random records, statistics and exports."""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import tokens as tok_text
from ..errors import OutOfRangeError, StoreError, check_range
from ..files import sha256_file
from .commands import _fmt_layers, _index_command, build_command
from .format import HOLDOUT_EVERY, QUANTILE_FLOOR, STORE_VERSION, StoreConfig, StoreMeta, _unpack
from .records import ActivationRecord, UnitSplit, UnitStats


class ActivationStore:
    """A finished store, read lazily layer by layer (layer files are hash-checked on load)."""

    _mtime: float  # meta.json's mtime when :func:`open_store` cached this store

    def __init__(self, path: str | Path, verify: bool = True, tokenizer: Any = None):
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
        """The settings the store was built with."""
        return self.meta.config

    @property
    def units_id(self) -> str:
        """The id of the units the store covers (``"mlp"``, ``"sae-<name>"``)."""
        return self.meta.config.units_id

    @property
    def kind(self) -> str:
        """The kind of the units (``"mlp"`` or ``"sae"``)."""
        return self.meta.config.units_kind

    @property
    def layers(self) -> list[int]:
        """The layers the store covers, ascending."""
        return list(self.meta.config.layers)

    @property
    def n_tokens(self) -> int:
        """How many corpus tokens the store was built from."""
        return self.meta.n_tokens_seen

    @property
    def sources(self) -> list[str]:
        """The names of the corpus sources of the windows."""
        return self.meta.sources

    def n_units(self, layer: int) -> int:
        """How many units ``layer`` has."""
        self.check_layer(layer)
        return self.meta.config.n_units[str(layer)]

    def check_layer(self, layer: int) -> None:
        """Returns nothing; raises :class:`OutOfRangeError` (with the command that adds it) when ``layer`` is not in the store."""
        if not isinstance(layer, int) or layer not in self.meta.config.layers:
            c = self.meta.config
            raise OutOfRangeError(
                f"Layer {layer} is not in the {c.units_id} store (it covers layers {_fmt_layers(self.layers)}).",
                f"Pick one of those layers, or add it to the store (the layers there are kept): `{_index_command(c, [layer])}`.",
            )

    def check_unit(self, layer: int, unit: int) -> None:
        """Returns nothing; raises :class:`OutOfRangeError` when ``layer`` or ``unit`` is out of range."""
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
        """The token texts of window ``w``."""
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
        for i, rec in enumerate(recs):
            rec.rank = i
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
        """The unit's frequency, mean, std, max and min over every token of the corpus."""
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
        """``{"max"|"mean"|"frequency": [n_units]}`` for every unit of ``layer``."""
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
        """The store's settings, size and build speed, as a JSON-ready dict."""
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
