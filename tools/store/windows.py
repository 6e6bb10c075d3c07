"""Cutting a corpus into the store's token windows, its sources interleaved."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..corpus import Corpus, token_windows
from ..errors import StoreError


def corpus_windows(corpus: Corpus, tokenizer: Any, window: int, n_tokens: int, seed: int, bos_token_id: int | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
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
    out: list[np.ndarray] = []
    src_idx: list[int] = []
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
