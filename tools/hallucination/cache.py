"""Signals for dataset examples, cached per model in ``signals.safetensors`` beside the detector."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .. import hallu_data as D
from .detector import detector_dir
from .signals import Signals, candidate_layers, compute_signals

if TYPE_CHECKING:
    from ..model import ModelHandle


def dataset_signals(
    handle: ModelHandle, examples: Sequence[D.Example], layers: Sequence[int] | None = None, progress: bool = False, use_cache: bool = True
) -> Signals:
    """Signals for dataset examples, cached per model (``signals.safetensors``) by question,
    answer and layers, so retraining and evaluating again does not re-run the model."""
    layers = sorted(set(layers)) if layers is not None else candidate_layers(handle.n_layers)
    keys = [hashlib.sha1(f"{D.PROMPT_VERSION}|{layers}|{e.question}|{e.answer}".encode()).hexdigest()[:20] for e in examples]
    cached = _load_signal_cache(handle.name) if use_cache else {}
    todo = [i for i, k in enumerate(keys) if f"{k}.unc" not in cached]
    if todo:
        sub = [examples[i] for i in todo]
        prompts = [D.prompt_text(handle, e.question) for e in sub]
        sig = compute_signals(handle, prompts, [e.answer for e in sub], layers, progress=progress)
        fresh = {}
        for j, i in enumerate(todo):
            fresh[f"{keys[i]}.rq"] = sig.resid_q[j]
            fresh[f"{keys[i]}.ra"] = sig.resid_a[j]
            fresh[f"{keys[i]}.unc"] = sig.unc[j]
        cached.update(fresh)
        if use_cache:
            _save_signal_cache(handle.name, cached)
    rq = np.stack([cached[f"{k}.rq"] for k in keys]).astype(np.float32)
    ra = np.stack([cached[f"{k}.ra"] for k in keys]).astype(np.float32)
    unc = np.stack([cached[f"{k}.unc"] for k in keys]).astype(np.float64)
    return Signals(layers, rq, ra, unc)


def _signal_cache_path(model_name: str) -> Path:
    return detector_dir(model_name) / "signals.safetensors"


def _load_signal_cache(model_name: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    p = _signal_cache_path(model_name)
    if not p.exists():
        return {}
    try:
        return dict(load_file(str(p)))
    except Exception:  # damaged: start again (the signals are recomputed)
        return {}


def _save_signal_cache(model_name: str, tensors: dict[str, np.ndarray]) -> None:
    from safetensors.numpy import save_file

    p = _signal_cache_path(model_name)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, p)
