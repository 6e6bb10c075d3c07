"""The statistics every tool and evaluation reports, defined once: Pearson correlation and AUROC.

Both take plain sequences or arrays and say what they return when the answer is undefined
(a constant side, a missing class), so no caller has to guess.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _arr(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(-1)


def pearson(x, y, undefined: Any = 0.0, min_n: int = 2):
    """Pearson correlation over the pairs where both values are finite; ``undefined`` (0.0 by default) when
    fewer than ``min_n`` pairs remain or either side is constant (no signal to correlate)."""
    a, b = _arr(x), _arr(y)
    if a.size != b.size:
        raise ValueError(f"pearson: {a.size} vs {b.size} values")
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < max(2, min_n):
        return undefined
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else undefined


def auroc(scores, labels) -> float:
    """Area under the ROC curve: the chance that a positive scores above a negative, ties counting half;
    0.5 when one class is missing."""
    s, y = _arr(scores), _arr(labels) > 0.5
    npos, nneg = int(y.sum()), int((~y).sum())
    if npos == 0 or nneg == 0:
        return 0.5
    order = np.argsort(s, kind="mergesort")
    ss = s[order]
    ranks = np.empty(len(s), dtype=np.float64)
    # average ranks over ties: each run of equal scores gets the mean of its positions
    starts = np.r_[0, np.flatnonzero(np.diff(ss)) + 1]
    ends = np.r_[starts[1:], len(ss)]
    for a, b in zip(starts, ends):
        ranks[order[a:b]] = (a + b - 1) / 2.0 + 1.0
    return float((ranks[y].sum() - npos * (npos + 1) / 2.0) / (npos * nneg))
