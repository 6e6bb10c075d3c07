"""The linear model every part of the detector uses: standardize, then logistic regression."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError


@dataclass
class LinearModel:
    """Standardize then logistic regression: ``logit = ((x - mean) / scale) @ coef + intercept``."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def logit(self, X: np.ndarray) -> np.ndarray:
        return ((np.asarray(X, dtype=np.float64) - self.mean) / self.scale) @ self.coef + self.intercept

    def prob(self, X: np.ndarray) -> np.ndarray:
        return _sigmoid(self.logit(X))

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Per-feature log-odds contribution for one example."""
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.scale) * self.coef


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def fit_linear(X: np.ndarray, y: np.ndarray, C: float = 1.0, seed: int = 0) -> LinearModel:
    from sklearn.linear_model import LogisticRegression

    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y).astype(int)
    if len(set(y.tolist())) < 2:
        raise InputError(
            f"The training labels are all {int(y[0]) if len(y) else '?'}: a detector needs both right and wrong answers.",
            "Use more facts (the whole table) so the model gets some right and some wrong.",
        )
    mean = X.mean(0)
    scale = X.std(0)
    scale[scale < 1e-8] = 1.0
    lr = LogisticRegression(C=C, max_iter=2000, random_state=seed)
    lr.fit((X - mean) / scale, y)
    return LinearModel(mean, scale, lr.coef_[0].astype(np.float64), float(lr.intercept_[0]))


def _oof_logits(X: np.ndarray, y: np.ndarray, folds: list[np.ndarray], C: float) -> np.ndarray:
    out = np.zeros(len(y))
    for te in folds:
        tr = np.setdiff1d(np.arange(len(y)), te)
        if len(set(y[tr].tolist())) < 2:
            out[te] = 0.0
            continue
        out[te] = fit_linear(X[tr], y[tr], C).logit(X[te])
    return out
