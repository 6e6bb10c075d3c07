"""The saved-probe format: raw-space weights as safetensors + JSON under the model's cache, read back as :class:`SavedProbe`."""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch

from ..config import model_cache_dir
from ..errors import CacheCorruptError, InputError, OutOfRangeError
from ..files import sha256_file
from .activations import collect_features
from .report import ProbeReport
from .schemas import Position

if TYPE_CHECKING:
    from ..model import ModelHandle

FORMAT_VERSION = 1


def probes_dir(model_name: str, dataset: str) -> Path:
    from ..datasets import _safe_name

    return model_cache_dir(model_name) / "probes" / _safe_name(dataset)


def _atomic_write(path: Path, write: Callable[[str], object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent))
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def save_probes(model_name: str, report: ProbeReport, params: dict[int, tuple]) -> Path:
    """Write ``probe_<position>.safetensors`` + ``probe_<position>.json``; returns the folder."""
    from safetensors.numpy import save_file

    d = probes_dir(model_name, report.dataset)
    st = d / f"probe_{report.position}.safetensors"
    meta = d / f"probe_{report.position}.json"
    tensors = {}
    for layer, (w, b, mean, scale) in params.items():
        tensors[f"layer{layer}.weight"] = np.ascontiguousarray(w)
        tensors[f"layer{layer}.bias"] = np.ascontiguousarray(b)
        tensors[f"layer{layer}.mean"] = np.ascontiguousarray(mean)
        tensors[f"layer{layer}.scale"] = np.ascontiguousarray(scale)
    _atomic_write(st, lambda p: save_file(tensors, p, metadata={"format": f"gnothi-probe-{FORMAT_VERSION}"}))
    info = {
        "format_version": FORMAT_VERSION,
        "model": model_name,
        "dataset": report.dataset,
        "dataset_source": report.dataset_source,
        "hook": report.hook,
        "position": report.position,
        "label_names": report.label_names,
        "layers": [r.layer for r in report.layers],
        "best_layer": report.best_layer,
        "accuracy": {str(r.layer): r.accuracy for r in report.layers},
        "selectivity": {str(r.layer): r.selectivity for r in report.layers},
        "n_train": report.n_train,
        "n_test": report.n_test,
        "C": report.C,
        "seed": report.seed,
        "weights_file": st.name,
        "weights_sha256": sha256_file(st),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _atomic_write(meta, lambda p: Path(p).write_text(json.dumps(info, indent=1)))
    return d


@dataclass
class SavedProbe:
    """Probes read back from disk: per layer, ``score = act @ weight.T + bias``.

    For two classes ``weight`` is ``[1, d_model]`` and the score is the logit of
    ``label_names[1]`` (e.g. "true"). Activations are the residual stream after the
    layer at ``position`` (use :func:`collect_features`, or :meth:`scores_for_texts`).
    """

    info: dict
    weight: dict[int, np.ndarray] = field(default_factory=dict)
    bias: dict[int, np.ndarray] = field(default_factory=dict)
    mean: dict[int, np.ndarray] = field(default_factory=dict)
    scale: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def layers(self) -> list[int]:
        return sorted(self.weight)

    @property
    def best_layer(self) -> int:
        return int(self.info["best_layer"])

    @property
    def label_names(self) -> list[str]:
        return list(self.info["label_names"])

    @property
    def position(self) -> Position:
        return self.info["position"]

    def _check(self, layer: int) -> int:
        if layer not in self.weight:
            raise OutOfRangeError(f"No saved probe for layer {layer} (saved: {self.layers}).",
                                  f"Use one of {self.layers}, or re-run the probe on that layer.")
        return layer

    def direction(self, layer: int | None = None) -> np.ndarray:
        """Unit vector in the residual stream pointing toward ``label_names[1]`` (two classes)."""
        layer = self._check(self.best_layer if layer is None else layer)
        w = self.weight[layer]
        v = w[0] if w.shape[0] == 1 else w[-1] - w[0]
        return (v / (np.linalg.norm(v) + 1e-12)).astype(np.float32)

    def decision(self, acts: torch.Tensor | np.ndarray, layer: int | None = None) -> np.ndarray:
        """Scores ``[n]`` (two classes: logit of label 1) or ``[n, k]`` for activations ``[n, d]``."""
        layer = self._check(self.best_layer if layer is None else layer)
        a = acts.detach().float().cpu().numpy() if isinstance(acts, torch.Tensor) else np.asarray(acts, dtype=np.float32)
        s = a @ self.weight[layer].T + self.bias[layer]
        return s[:, 0] if s.shape[1] == 1 else s

    def predict_proba(self, acts: torch.Tensor | np.ndarray, layer: int | None = None) -> np.ndarray:
        """Class probabilities ``[n, k]``."""
        s = self.decision(acts, layer)
        if s.ndim == 1:
            p1 = 1 / (1 + np.exp(-s))
            return np.stack([1 - p1, p1], 1)
        e = np.exp(s - s.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def scores_for_texts(self, handle: ModelHandle, texts: Sequence[str], layer: int | None = None) -> np.ndarray:
        """P(``label_names[1]``) (two classes) or ``[n, k]`` probabilities for raw texts."""
        layer = self._check(self.best_layer if layer is None else layer)
        feats = collect_features(handle, list(texts), [layer], position=self.position)[0]
        p = self.predict_proba(feats, layer)
        return p[:, 1] if p.shape[1] == 2 else p


def load_probe(model_name: str, dataset: str, position: Position = "last") -> SavedProbe:
    """Read probes saved by :func:`run_probe` for ``model_name`` and ``dataset``."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    d = probes_dir(model_name, dataset)
    meta = d / f"probe_{position}.json"
    if not meta.exists():
        raise InputError(
            f"No saved {position}-token probe for dataset {dataset!r} on {model_name}.",
            f"Run `gnothi probe --dataset {dataset} --position {position}` first.",
        )
    try:
        info = json.loads(meta.read_text())
        st = d / info["weights_file"]
        if sha256_file(st) != info["weights_sha256"]:
            raise ValueError("checksum mismatch")
        tensors = load_file(str(st))
    except (OSError, ValueError, KeyError, SafetensorError) as e:
        raise CacheCorruptError(
            f"The saved probe in {d} is damaged ({type(e).__name__}: {e}).",
            f"Delete {d} and run `gnothi probe --dataset {dataset}` again.",
        ) from None
    sp = SavedProbe(info=info)
    for key, arr in tensors.items():
        lname, part = key.split(".", 1)
        layer = int(lname[len("layer"):])
        getattr(sp, part)[layer] = arr
    return sp


def list_saved_probes(model_name: str) -> list[dict]:
    """Saved probes for a model: dataset, position, layers, best layer and its accuracy."""
    root = model_cache_dir(model_name) / "probes"
    out: list[dict] = []
    if not root.exists():
        return out
    for meta in sorted(root.glob("*/probe_*.json")):
        try:
            info = json.loads(meta.read_text())
            out.append({"dataset": info["dataset"], "position": info["position"], "layers": info["layers"],
                        "best_layer": info["best_layer"], "accuracy": info["accuracy"].get(str(info["best_layer"])),
                        "path": str(meta.parent)})
        except (OSError, ValueError, KeyError):
            out.append({"dataset": meta.parent.name, "position": None, "damaged": True, "path": str(meta.parent)})
    return out
