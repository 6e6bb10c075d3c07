"""Statistics of a probe: the Wilson interval of its accuracy and the grouped train/test split."""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for ``k`` successes in ``n`` trials."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def split_indices(
    labels: Sequence[int] | np.ndarray, groups: Sequence[str], test_frac: float = 0.25, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, str]:
    """Train/test indices. Grouped (no group on both sides) and stratified when the groups
    allow it, else a plain stratified split. Returns ``(train, test, "grouped"|"stratified")``."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedShuffleSplit

    y = np.asarray(labels)
    g = np.asarray([str(x) for x in groups])
    classes = np.unique(y)
    k = max(2, int(round(1 / test_frac)))
    if len(np.unique(g)) >= 2 * k:
        try:
            sgk = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tr, te = next(iter(sgk.split(np.zeros(len(y)), y, g)))
            if all((y[tr] == c).sum() >= 2 and (y[te] == c).sum() >= 1 for c in classes):
                return tr, te, "grouped"
        except ValueError:
            pass
    sss = StratifiedShuffleSplit(n_splits=1, test_size=test_frac, random_state=seed)
    tr, te = next(iter(sss.split(np.zeros(len(y)), y)))
    return tr, te, "stratified"
