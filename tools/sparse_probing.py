"""Sparse probing: how much of a labelled property k SAE latents carry, beside k neurons.

For a labelled dataset (the probing datasets), the SAE's hook point is read at each text's
last token and encoded by the SAE. On the training split the k latents whose mean differs
most between the two classes (in units of their standard deviation) are chosen and a
logistic regression is fit on them alone; its test accuracy is the sparse-probing score
for that k (SAEBench's sparse probing, here at the last token). Beside it, the same
procedure on the hook point's own dimensions (the basis the SAE reads: residual dimensions
or MLP neurons), on k latents drawn at random (control), and a dense probe on every
dimension (ceiling). The split is grouped as the probing tool's is, so no template is on
both sides.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from pydantic import BaseModel

from .datasets import LabeledDataset
from .errors import InputError
from .probing import collect_features, fit_classifier, split_indices

DEFAULT_KS = (1, 2, 5, 10)


class SparseProbeRow(BaseModel):
    dataset: str
    k: int
    sae_latents: float  # test accuracy with the k most class-separating latents
    neurons: float  # the same with k dimensions of the hook point itself
    random_latents: float  # k latents drawn at random (control)


class SparseProbeReport(BaseModel):
    hook_name: str
    rows: list[SparseProbeRow]
    dense: dict[str, float]  # per dataset: a probe on every dimension of the hook point (ceiling)
    chance: dict[str, float]  # per dataset: the majority class's share of the test split
    n_test: dict[str, int]


def _hook_kind(handle, hook_name: str, layer: int) -> str:
    from .adapter import HOOK_KINDS

    for kind, pat in HOOK_KINDS.items():
        if pat.format(layer=layer) == hook_name:
            return kind
    raise InputError(f"The SAE reads {hook_name}, which is not a hook point the probing datasets can be read at.",
                     "Use an SAE trained on a residual or MLP hook point.")


def _separation(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """|mean difference between the classes| / pooled standard deviation, per column."""
    a, b = X[y == 1], X[y == 0]
    sd = np.sqrt((a.var(0) + b.var(0)) / 2) + 1e-6
    return np.abs(a.mean(0) - b.mean(0)) / sd


def _accuracy(Xtr, ytr, Xte, yte, seed: int) -> float:
    return float((fit_classifier(Xtr, ytr, 1.0, seed).predict(Xte) == yte).mean())


def top_k_accuracy(X: np.ndarray, y: np.ndarray, tr: np.ndarray, te: np.ndarray, k: int, seed: int) -> float:
    """Test accuracy of a probe on the ``k`` columns that separate the classes best on ``tr``."""
    cols = np.argsort(-_separation(X[tr], y[tr]), kind="stable")[:k]
    return _accuracy(X[tr][:, cols], y[tr], X[te][:, cols], y[te], seed)


@torch.no_grad()
def sparse_probe(handle, sae, datasets: Sequence[LabeledDataset], ks: Sequence[int] = DEFAULT_KS, seed: int = 0) -> SparseProbeReport:
    """Sparse-probing accuracy of ``sae``'s latents for each dataset and k (see the module)."""
    layer = int(sae.layer)
    kind = _hook_kind(handle, str(sae.hook_name), layer)
    rng = np.random.default_rng(seed)
    rows, dense, chance, n_test = [], {}, {}, {}
    for ds in datasets:
        if len(ds.label_names) != 2:
            raise InputError(f"Sparse probing takes two-class datasets; {ds.name} has {len(ds.label_names)}.", "Use a two-class dataset.")
        y = np.asarray(ds.labels)
        X = collect_features(handle, ds.texts, [layer], position="last", kind=kind)[0]
        Z = sae.encode(torch.from_numpy(X).to(next(sae.parameters()).device)).float().cpu().numpy()
        tr, te, _ = split_indices(y, [e.group for e in ds.examples], seed=seed)
        dense[ds.name] = round(_accuracy(X[tr], y[tr], X[te], y[te], seed), 4)
        chance[ds.name] = round(float(max(np.mean(y[te]), 1 - np.mean(y[te]))), 4)
        n_test[ds.name] = int(len(te))
        for k in ks:
            rand = rng.choice(Z.shape[1], size=min(k, Z.shape[1]), replace=False)
            rows.append(SparseProbeRow(
                dataset=ds.name, k=int(k),
                sae_latents=round(top_k_accuracy(Z, y, tr, te, k, seed), 4),
                neurons=round(top_k_accuracy(X, y, tr, te, k, seed), 4),
                random_latents=round(_accuracy(Z[tr][:, rand], y[tr], Z[te][:, rand], y[te], seed), 4),
            ))
    return SparseProbeReport(hook_name=str(sae.hook_name), rows=rows, dense=dense, chance=chance, n_test=n_test)
