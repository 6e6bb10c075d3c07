"""The detector: two hidden-state probes and a calibrated combiner, how it is fitted, and
its saved format (``detector.safetensors`` + ``detector.json`` under :func:`detector_dir`)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import hallu_data as D
from ..config import model_cache_dir
from ..errors import CacheCorruptError
from ..stats import auroc
from .linear import LinearModel, _oof_logits, fit_linear
from .signals import UNC_NAMES, Signals

DETECTOR_VERSION = 1
PROBE_CS = (0.1,)


class HallucinationDetector:
    """Two hidden-state probes and a calibrated combiner over probes + uncertainty signals."""

    def __init__(self, layer_q: int, layer_a: int, probe_q: LinearModel, probe_a: LinearModel, combiner: LinearModel, meta: dict | None = None) -> None:
        self.layer_q = layer_q
        self.layer_a = layer_a
        self.probe_q = probe_q
        self.probe_a = probe_a
        self.combiner = combiner
        self.meta = meta or {}

    feature_names = ["probe_question", "probe_answer", *UNC_NAMES]

    @property
    def layers(self) -> list[int]:
        return sorted({self.layer_q, self.layer_a})

    def features(self, sig: Signals) -> np.ndarray:
        """Combiner inputs: the two probe logits, then the uncertainty signals."""
        pq = self.probe_q.logit(sig.resid("question", self.layer_q))
        pa = self.probe_a.logit(sig.resid("answer", self.layer_a))
        return np.column_stack([pq, pa, sig.unc])

    def risk(self, sig: Signals) -> np.ndarray:
        return self.combiner.prob(self.features(sig))

    # ------------------------------------------------------------------ training
    @classmethod
    def fit(
        cls,
        sig: Signals,
        y: Sequence[int] | np.ndarray,
        groups: Sequence[str],
        k: int = 5,
        seed: int = 0,
        progress: bool = False,
    ) -> tuple["HallucinationDetector", dict]:
        """Choose each probe's layer and strength by grouped cross-validation, fit the
        probes, then fit the combiner on out-of-fold probe logits + uncertainty signals."""
        y = np.asarray(y).astype(int)
        folds = D.group_folds(list(groups), k, seed)
        cv: dict[str, dict[int, float]] = {"question": {}, "answer": {}}
        best: dict[str, tuple[float, int, float]] = {}
        bar = D._bar(2 * len(sig.layers) * len(PROBE_CS), "choosing probe layers", progress)
        for where in ("question", "answer"):
            for layer in sig.layers:
                X = sig.resid(where, layer)
                for C in PROBE_CS:
                    a = auroc(_oof_logits(X, y, folds, C), y)
                    cv[where][layer] = max(cv[where].get(layer, 0.0), a)
                    if where not in best or a > best[where][0]:
                        best[where] = (a, layer, C)
                    bar.update(1)
        bar.close()
        (_, lq, cq), (_, la, ca) = best["question"], best["answer"]
        Xq, Xa = sig.resid("question", lq), sig.resid("answer", la)
        oof = np.column_stack([_oof_logits(Xq, y, folds, cq), _oof_logits(Xa, y, folds, ca), sig.unc])
        comb = fit_linear(oof, y, C=1.0)
        det = cls(lq, la, fit_linear(Xq, y, cq), fit_linear(Xa, y, ca), comb)
        info = {
            "cv_auroc_by_layer": {w: {str(l): round(v, 4) for l, v in d.items()} for w, d in cv.items()},
            "probe_question": {"layer": lq, "C": cq, "cv_auroc": round(best["question"][0], 4)},
            "probe_answer": {"layer": la, "C": ca, "cv_auroc": round(best["answer"][0], 4)},
        }
        det.meta.update(info)
        return det, info

    # ------------------------------------------------------------------ save / load
    def save(self, folder: Path) -> Path:
        """Write ``detector.safetensors`` + ``detector.json`` atomically; returns the folder."""
        from safetensors.numpy import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {}
        for name, m in (("probe_q", self.probe_q), ("probe_a", self.probe_a), ("combiner", self.combiner)):
            tensors[f"{name}.mean"] = np.asarray(m.mean, dtype=np.float64)
            tensors[f"{name}.scale"] = np.asarray(m.scale, dtype=np.float64)
            tensors[f"{name}.coef"] = np.asarray(m.coef, dtype=np.float64)
            tensors[f"{name}.intercept"] = np.asarray([m.intercept], dtype=np.float64)
        st = folder / "detector.safetensors"
        tmp = folder / f".detector.safetensors.tmp{os.getpid()}"
        save_file(tensors, str(tmp))
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
        meta = {
            **self.meta,
            "version": DETECTOR_VERSION,
            "layer_q": self.layer_q,
            "layer_a": self.layer_a,
            "feature_names": self.feature_names,
            "prompt_version": D.PROMPT_VERSION,
            "sha256": digest,
        }
        js = folder / "detector.json"
        tmpj = folder / f".detector.json.tmp{os.getpid()}"
        tmpj.write_text(json.dumps(meta, indent=2, default=_json_default), encoding="utf-8")
        os.replace(tmp, st)
        os.replace(tmpj, js)
        return folder

    @classmethod
    def load(cls, folder: Path) -> "HallucinationDetector":
        """Load a saved detector; :class:`CacheCorruptError` if the files are damaged."""
        from safetensors.numpy import load_file

        folder = Path(folder)
        js, st = folder / "detector.json", folder / "detector.safetensors"
        fix = f"Delete {folder} and run `gnothi eval hallucination` (or any `gnothi hallucination` question) to retrain."
        try:
            meta = json.loads(js.read_text(encoding="utf-8"))
            raw = st.read_bytes()
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CacheCorruptError(f"The saved hallucination detector in {folder} is unreadable ({type(e).__name__}).", fix) from None
        if not isinstance(meta, dict) or meta.get("sha256") != hashlib.sha256(raw).hexdigest():
            raise CacheCorruptError(f"The saved hallucination detector in {folder} is damaged (checksum mismatch).", fix)
        if meta.get("version") != DETECTOR_VERSION or meta.get("prompt_version") != D.PROMPT_VERSION:
            raise CacheCorruptError(f"The saved hallucination detector in {folder} is from another version.", fix)
        try:
            t = load_file(str(st))
            models = {}
            for name in ("probe_q", "probe_a", "combiner"):
                models[name] = LinearModel(t[f"{name}.mean"], t[f"{name}.scale"], t[f"{name}.coef"], float(t[f"{name}.intercept"][0]))
                if not all(np.isfinite(x).all() for x in (models[name].mean, models[name].scale, models[name].coef)):
                    raise ValueError("non-finite weights")
            if models["combiner"].coef.shape[0] != len(cls.feature_names):
                raise ValueError("combiner shape")
            if models["probe_q"].coef.shape != models["probe_q"].mean.shape:
                raise ValueError("probe shape")
        except Exception as e:  # safetensors raises its own error types
            raise CacheCorruptError(f"The saved hallucination detector in {folder} is damaged ({e}).", fix) from None
        return cls(int(meta["layer_q"]), int(meta["layer_a"]), models["probe_q"], models["probe_a"], models["combiner"], meta)


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def detector_dir(model_name: str) -> Path:
    return model_cache_dir(model_name) / "hallucination"
