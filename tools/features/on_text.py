"""Which features fire on a text, or on one token of it."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import torch
from pydantic import BaseModel, Field

from .. import tokens as tok_text
from ..errors import InputError, SAECorruptError
from ..results import Figure, TokenSpan, ToolResult, provenance
from ..sae import SAE, human_seconds, resolve_sae
from .encode import _check_text, _encode_texts
from .index import estimate_index_seconds, index_command, load_feature_index

if TYPE_CHECKING:
    from ..model import ModelHandle


class FeatureHit(BaseModel):
    id: int
    activation: float  # at the focus token, or the max over the text
    position: int  # index into ``tokens`` (BOS excluded) where it is largest
    token: str
    values: list[float]  # per token of the text
    explanation: str | None = None
    score: float | None = None
    frequency: float | None = None


class FeaturesOnTextResult(BaseModel):
    sae: str
    layer: int
    hook_name: str
    text: str
    tokens: list[str]
    focus: int | None  # token index asked about, or None for the whole text
    features: list[FeatureHit]
    mean_active_per_token: float
    explained_variance: float  # of this text's activations by the SAE
    indexed: bool
    warnings: list[str] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)

    def to_tool_result(self, handle: ModelHandle | None = None) -> ToolResult:
        where = f"on {self.tokens[self.focus]!r} (token {self.focus})" if self.focus is not None else "on this text"
        if self.features:
            f0 = self.features[0]
            ex = f": {f0.explanation}" if f0.explanation else ""
            summary = (f"{len(self.features)} SAE features fire {where}; the strongest is feature {f0.id} "
                       f"(activation {f0.activation:.3g} at {f0.token!r}){ex}")
        else:
            summary = f"No SAE feature fires {where}."
        figs = []
        if self.features:
            figs.append(Figure(kind="bar", title=f"Top SAE features {where} (layer {self.layer})",
                               data={"labels": [f"#{f.id}" for f in self.features], "values": [f.activation for f in self.features],
                                     "xlabel": "feature", "ylabel": "activation"}))
            figs.append(Figure(kind="tokens", title="Where the top features fire",
                               data={"rows": [{"tokens": self.tokens, "values": f.values} for f in self.features[:5]]},
                               caption="One row per feature (top 5), colour = activation."))
        return ToolResult(
            tool="sae_features_on_text",
            summary=summary,
            headline={"top_feature": self.features[0].id if self.features else None,
                      "top_activation": self.features[0].activation if self.features else 0.0,
                      "n_features": len(self.features), "mean_active_per_token": self.mean_active_per_token,
                      "explained_variance": self.explained_variance},
            evidence=[{"id": f.id, "activation": f.activation, "token": f.token, "position": f.position,
                       "explanation": f.explanation, "score": f.score, "frequency": f.frequency} for f in self.features],
            spans=[TokenSpan(tokens=self.tokens, values=f.values, note=f"feature {f.id}") for f in self.features[:5]],
            figures=figs,
            provenance=provenance(handle, sae=self.sae, hook_point=self.hook_name, layer=self.layer),
            timings=self.timings,
            warnings=self.warnings,
            data=self.model_dump(mode="json"),
        )


def features_on_text(handle: ModelHandle, text: str, sae: SAE | str | None = None, token: int | str | None = None, k: int = 10,
                     layer: int | None = None) -> FeaturesOnTextResult:
    """The ``k`` features that fire most on ``text`` (or on one ``token`` of it).

    ``token``: a position in the text's tokens (0 = first token after BOS; negative counts
    from the end) or a token's text (first match). Activations come from one run of the
    model on ``text``, stopped after the SAE's layer. Explanations are attached when the
    feature index exists.
    """
    t0 = time.perf_counter()
    _check_text(text)
    if not isinstance(k, int) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}.", "Use e.g. k=10.")
    sae = resolve_sae(handle, sae, layer=layer)
    (ids, x, f), = _encode_texts(handle, sae, [text])
    if not ids:
        raise InputError("The text has no tokens after BOS.", "Give a longer text.")
    tokens = tok_text.pieces(handle.tokenizer, ids)
    focus = tok_text.find(tokens, token) if token is not None else None
    score_vec = f[focus] if focus is not None else f.max(0).values
    kk = min(k, int((score_vec > 0).sum()))
    top = torch.topk(score_vec, kk).indices.tolist() if kk > 0 else []
    warnings: list[str] = []
    idx = None
    try:
        idx = load_feature_index(sae)
    except SAECorruptError as e:
        warnings.append(e.message + " " + e.fix)
    if idx is None and not warnings:
        warnings.append(f"No feature explanations yet: run `{index_command(sae)}` "
                        f"(about {human_seconds(estimate_index_seconds(handle, sae))}) to add them.")
    by_id = idx.by_id() if idx else {}
    hits = []
    for u in top:
        col = f[:, u]
        pos = focus if focus is not None else int(col.argmax())
        info = by_id.get(u)
        hits.append(FeatureHit(id=u, activation=round(float(score_vec[u]), 4), position=pos, token=tokens[tok_text.completing(tokens, pos)],
                               values=[round(float(v), 4) for v in col], explanation=info.explanation if info else None,
                               score=info.score if info else None, frequency=info.frequency if info else None))
    with torch.no_grad():
        rec = sae.decode(f)
        denom = float((x - x.mean(0)).pow(2).sum())
        ev = 1.0 - float((x - rec).pow(2).sum()) / denom if denom > 0 and len(x) > 1 else float("nan")
    return FeaturesOnTextResult(
        sae=sae.name, layer=int(sae.layer or 0), hook_name=str(sae.hook_name), text=text, tokens=tokens, focus=focus,
        features=hits, mean_active_per_token=round(float((f > 0).sum(-1).float().mean()), 3),
        explained_variance=round(ev, 4) if math.isfinite(ev) else 0.0, indexed=idx is not None, warnings=warnings,
        timings={"total_s": round(time.perf_counter() - t0, 4)},
    )
