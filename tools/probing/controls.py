"""Control tasks (Hewitt & Liang 2019): word-type labels and shuffled labels for a probe's baseline."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .schemas import ControlKind


def control_labels(
    labels: Sequence[int] | np.ndarray, keys: Sequence[str], kind: ControlKind = "word_type", seed: int = 0
) -> np.ndarray | None:
    """Control-task labels: a random label per word type (``keys``) drawn with the class
    frequencies, or the labels shuffled across examples. None if no two-class draw exists."""
    y = np.asarray(labels)
    rng = np.random.default_rng(seed + 7919)
    classes, counts = np.unique(y, return_counts=True)
    if kind == "shuffled":
        return rng.permutation(y)
    uniq = sorted(set(keys))
    if len(uniq) < 2:
        return None
    p = counts / counts.sum()
    for _ in range(50):
        assign = dict(zip(uniq, rng.choice(classes, size=len(uniq), p=p)))
        out = np.asarray([assign[k] for k in keys])
        if len(np.unique(out)) >= 2:
            return out
    return None
