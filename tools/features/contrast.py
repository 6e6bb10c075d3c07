"""Features that separate two sets of texts: effect size, AUROC and a split-half check of the best one."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Sequence

import numpy as np
from pydantic import BaseModel, Field

from ..errors import InputError, SAECorruptError
from ..results import Figure, ToolResult, provenance
from ..sae import SAE, resolve_sae
from .encode import _encode_texts
from .index import load_feature_index

if TYPE_CHECKING:
    from ..model import ModelHandle


class ContrastHit(BaseModel):
    id: int
    mean_a: float
    mean_b: float
    frac_a: float  # share of set-A texts where it fires
    frac_b: float
    effect: float  # (mean_a - mean_b) / pooled std
    auroc: float  # P(a random A text scores above a random B text) on this feature
    explanation: str | None = None


class ContrastResult(BaseModel):
    sae: str
    layer: int
    n_a: int
    n_b: int
    reduce: str  # max | mean over each text's tokens
    label_a: str
    label_b: str
    features_a: list[ContrastHit]  # fire more on A
    features_b: list[ContrastHit]  # fire more on B
    split_half_auroc: float | None  # best feature chosen on even texts, AUROC on odd texts
    split_half_feature: int | None
    warnings: list[str] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)

    def to_tool_result(self, handle: ModelHandle | None = None) -> ToolResult:
        parts = []
        if self.features_a:
            h = self.features_a[0]
            parts.append(f"feature {h.id} fires more on {self.label_a} (AUROC {h.auroc:.2f}, effect {h.effect:.2f}, "
                         f"fires on {h.frac_a:.0%} vs {h.frac_b:.0%} of texts)")
        if self.features_b:
            h = self.features_b[0]
            parts.append(f"feature {h.id} fires more on {self.label_b} (AUROC {1 - h.auroc:.2f}, effect {-h.effect:.2f})")
        summary = f"{self.label_a} ({self.n_a} texts) vs {self.label_b} ({self.n_b}): " + ("; ".join(parts) or "no feature separates them") + "."
        if self.split_half_auroc is not None:
            summary += f" Held-out check: the best feature picked on half the texts reaches AUROC {self.split_half_auroc:.2f} on the other half."
        hits = self.features_a[:8] + self.features_b[:8]
        figs = [Figure(kind="bar", title=f"Features separating {self.label_a} from {self.label_b}",
                       data={"labels": [f"#{h.id}" for h in hits], "values": [h.effect for h in hits],
                             "xlabel": "feature", "ylabel": f"effect size ({self.label_a} - {self.label_b})"})] if hits else []
        return ToolResult(
            tool="sae_contrast",
            summary=summary,
            headline={"top_feature_a": self.features_a[0].id if self.features_a else None,
                      "top_auroc_a": self.features_a[0].auroc if self.features_a else None,
                      "top_feature_b": self.features_b[0].id if self.features_b else None,
                      "split_half_auroc": self.split_half_auroc},
            evidence=[{"set": self.label_a, **h.model_dump()} for h in self.features_a] + [{"set": self.label_b, **h.model_dump()} for h in self.features_b],
            figures=figs,
            provenance=provenance(handle, sae=self.sae, layer=self.layer, reduce=self.reduce),
            timings=self.timings,
            warnings=self.warnings,
            data=self.model_dump(mode="json"),
        )


def _auroc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per column: P(a > b) + 0.5 P(a == b) for a [na, d], b [nb, d]."""
    gt = (a[:, None, :] > b[None, :, :]).mean((0, 1))
    eq = (a[:, None, :] == b[None, :, :]).mean((0, 1))
    return gt + 0.5 * eq


def _effects(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ma, mb = a.mean(0), b.mean(0)
    va = a.var(0, ddof=1) if len(a) > 1 else np.zeros_like(ma)
    vb = b.var(0, ddof=1) if len(b) > 1 else np.zeros_like(mb)
    pooled = np.sqrt((va + vb) / 2)
    floor = 0.05 * np.maximum(np.abs(ma), np.abs(mb)) + 1e-6
    return (ma - mb) / np.maximum(pooled, floor)


def contrast_features(
    handle: ModelHandle,
    texts_a: Sequence[str],
    texts_b: Sequence[str],
    sae: SAE | str | None = None,
    k: int = 10,
    reduce: str = "max",
    label_a: str = "set A",
    label_b: str = "set B",
    layer: int | None = None,
) -> ContrastResult:
    """Features that separate ``texts_a`` from ``texts_b``.

    Each text becomes one number per feature (its ``max`` or ``mean`` activation over the
    text's tokens). Features are ranked by effect size (difference of means over the
    pooled standard deviation, floored at 5% of the larger mean, so a feature that fires
    steadily in one set and never in the other gets an effect of 20) and reported with
    AUROC and how often they fire in each set. With at least 4 texts per set, the best feature is also chosen on the even texts
    and its AUROC measured on the odd ones (``split_half_auroc``), a guard against
    features that only separate these particular texts.
    """
    t0 = time.perf_counter()
    for name, ts in (("texts_a", texts_a), ("texts_b", texts_b)):
        if isinstance(ts, str) or not ts or any(not isinstance(t, str) or not t.strip() for t in ts):
            raise InputError(f"{name} must be a non-empty list of non-empty texts.", "Give at least one text per set (5 or more is better).")
    if reduce not in ("max", "mean"):
        raise InputError(f"reduce must be 'max' or 'mean', got {reduce!r}.", "Use reduce='max' (default) or 'mean'.")
    if not isinstance(k, int) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}.", "Use e.g. k=10.")
    sae = resolve_sae(handle, sae, layer=layer)

    def per_text(texts):
        rows = []
        for _, _, f in _encode_texts(handle, sae, list(texts)):
            rows.append((f.max(0).values if reduce == "max" else f.mean(0)).float().cpu().numpy())
        return np.stack(rows).astype(np.float64)

    A, B = per_text(texts_a), per_text(texts_b)
    eff = _effects(A, B)
    au = _auroc(A, B)
    fired = (A > 0).any(0) | (B > 0).any(0)
    eff = np.where(fired, eff, 0.0)
    idx = None
    warnings = []
    try:
        idx = load_feature_index(sae)
    except SAECorruptError as e:
        warnings.append(e.message)
    by_id = idx.by_id() if idx else {}

    def hit(u: int) -> ContrastHit:
        info = by_id.get(u)
        return ContrastHit(id=u, mean_a=round(float(A[:, u].mean()), 4), mean_b=round(float(B[:, u].mean()), 4),
                           frac_a=round(float((A[:, u] > 0).mean()), 4), frac_b=round(float((B[:, u] > 0).mean()), 4),
                           effect=round(float(eff[u]), 4), auroc=round(float(au[u]), 4), explanation=info.explanation if info else None)

    order = np.argsort(-eff)
    fa = [hit(int(u)) for u in order[:k] if eff[u] > 0]
    fb = [hit(int(u)) for u in order[::-1][:k] if eff[u] < 0]
    sh = shf = None
    if len(A) >= 4 and len(B) >= 4:
        e_even = np.where(fired, _effects(A[0::2], B[0::2]), 0.0)
        best = int(np.argmax(np.abs(e_even)))
        a_odd = _auroc(A[1::2, best : best + 1], B[1::2, best : best + 1])[0]
        sh = round(float(a_odd if e_even[best] >= 0 else 1 - a_odd), 4)
        shf = best
    else:
        warnings.append("Fewer than 4 texts per set: no held-out check; features may only separate these particular texts.")
    return ContrastResult(sae=sae.name, layer=int(sae.layer or 0), n_a=len(A), n_b=len(B), reduce=reduce, label_a=label_a, label_b=label_b,
                          features_a=fa, features_b=fb, split_half_auroc=sh, split_half_feature=shf, warnings=warnings,
                          timings={"total_s": round(time.perf_counter() - t0, 4)})
