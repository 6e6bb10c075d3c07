"""Features by meaning: explanations embedded with all-MiniLM-L6-v2, ranked by cosine similarity to a query."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, Field

from ..embeddings import embed
from ..errors import InputError
from ..files import atomic_write_bytes
from ..results import Figure, ToolResult, provenance
from ..sae import SAE, resolve_sae
from .encode import _check_text
from .index import EMB_FILE, FeatureIndex, FeatureInfo, require_index

if TYPE_CHECKING:
    from ..model import ModelHandle

_QUOTE_PCT = re.compile(r"\s*\(\d+(?:\.\d+)?%[^)]*\)")


def _search_text(f: FeatureInfo) -> str:
    """What gets embedded for a feature: its explanation without percentages and quotes."""
    t = _QUOTE_PCT.sub("", f.explanation)
    return t.replace('"', "").replace("“", "").replace("”", "").strip()


def _feature_embeddings(sae: SAE, idx: FeatureIndex) -> np.ndarray:
    texts = [_search_text(f) for f in idx.features]
    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    f = Path(sae.path) / EMB_FILE if sae.path else None
    mem = _EMB_CACHE.get(str(f))
    if mem is not None and mem[0] == key:
        return mem[1]
    if f is not None and f.exists():
        try:
            with open(f, "rb") as fh:
                stored_key = np.load(fh, allow_pickle=False)
                arr = np.load(fh, allow_pickle=False)
            if str(stored_key) == key and arr.shape[0] == len(texts):
                _EMB_CACHE[str(f)] = (key, arr)
                return arr
        except Exception:
            pass  # a damaged cache of embeddings is recomputed, it is derived data
    arr = embed(texts)
    if f is not None:
        import io

        buf = io.BytesIO()
        np.save(buf, np.array(key))
        np.save(buf, arr)
        atomic_write_bytes(f, buf.getvalue())
    _EMB_CACHE[str(f)] = (key, arr)
    return arr


_EMB_CACHE: dict[str, tuple[str, np.ndarray]] = {}


class SearchHit(BaseModel):
    id: int
    explanation: str
    similarity: float
    score: float | None = None
    frequency: float = 0.0
    max_activation: float = 0.0
    top_tokens: list[str] = Field(default_factory=list)


class FeatureSearchResult(BaseModel):
    query: str
    sae: str
    layer: int
    features: list[SearchHit]
    n_searched: int  # features with an explanation (dead ones left out)
    method: str = "all-MiniLM-L6-v2 cosine similarity between the query and each feature's explanation"
    warnings: list[str] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)

    def to_tool_result(self, handle: ModelHandle | None = None) -> ToolResult:
        if self.features:
            f0 = self.features[0]
            summary = (f"Best match for {self.query!r} among {self.n_searched} features of SAE {self.sae}: feature {f0.id} "
                       f"(similarity {f0.similarity:.2f}): {f0.explanation}")
        else:
            summary = f"No feature of SAE {self.sae} has an explanation to match {self.query!r}."
        return ToolResult(
            tool="sae_search",
            summary=summary,
            headline={"top_feature": self.features[0].id if self.features else None,
                      "top_similarity": self.features[0].similarity if self.features else None, "n_searched": self.n_searched},
            evidence=[h.model_dump() for h in self.features],
            figures=[Figure(kind="bar", title=f"Features matching {self.query!r}",
                            data={"labels": [f"#{h.id}" for h in self.features], "values": [h.similarity for h in self.features],
                                  "xlabel": "feature", "ylabel": "cosine similarity"})] if self.features else [],
            provenance=provenance(handle, sae=self.sae, layer=self.layer, method=self.method),
            timings=self.timings,
            warnings=self.warnings,
            data=self.model_dump(mode="json"),
        )


def search_features(handle: ModelHandle, query: str, sae: SAE | str | None = None, k: int = 10, min_score: float | None = None,
                    layer: int | None = None) -> FeatureSearchResult:
    """Features whose explanation is closest in meaning to ``query`` (MiniLM cosine).

    Needs the feature index (:func:`index_features`); raises :class:`SAENotFoundError`
    with the command and a time estimate when it is missing. ``min_score`` drops
    features whose explanation scored below it.
    """
    t0 = time.perf_counter()
    _check_text(query, "query")
    if not isinstance(k, int) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}.", "Use e.g. k=10.")
    sae = resolve_sae(handle, sae, layer=layer)
    idx = require_index(handle, sae)
    emb = _feature_embeddings(sae, idx)
    t_emb = time.perf_counter()
    q = embed([query])[0]
    sims = emb @ q
    alive = np.array([fi.max_activation > 0 and (min_score is None or (fi.score is not None and fi.score >= min_score))
                      for fi in idx.features])
    sims = np.where(alive, sims, -np.inf)
    order = np.argsort(-sims)[: min(k, int(alive.sum()))]
    hits = [SearchHit(id=int(i), explanation=idx.features[i].explanation, similarity=round(float(sims[i]), 4),
                      score=idx.features[i].score, frequency=idx.features[i].frequency,
                      max_activation=idx.features[i].max_activation, top_tokens=idx.features[i].top_tokens) for i in order]
    warnings = []
    if hits and hits[0].similarity < 0.3:
        warnings.append(f"The best match is weak (similarity {hits[0].similarity:.2f}): no feature's explanation is close to the query.")
    return FeatureSearchResult(query=query, sae=sae.name, layer=idx.layer, features=hits, n_searched=int(alive.sum()),
                               warnings=warnings, timings={"embed_features_s": round(t_emb - t0, 4), "total_s": round(time.perf_counter() - t0, 4)})
