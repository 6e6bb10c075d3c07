"""The feature index: every feature's explanation and score, saved as ``features.json`` beside the SAE."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from ..errors import SAECorruptError, SAENotFoundError
from ..results import ToolResult, provenance
from ..sae import SAE, SAEUnits, estimate_seconds, human_seconds

if TYPE_CHECKING:
    from ..model import ModelHandle

INDEX_FILE = "features.json"
EMB_FILE = "features_emb.npy"
DEFAULT_INDEX_TOKENS = 32768
INDEX_WINDOW = 64


class FeatureInfo(BaseModel):
    id: int
    explanation: str
    score: float | None = None  # Pearson of simulated vs true activations on held-out records
    frequency: float = 0.0  # share of tokens where it fires
    max_activation: float = 0.0
    top_tokens: list[str] = Field(default_factory=list)


class FeatureIndex(BaseModel):
    sae: str
    units_id: str
    layer: int
    hook_name: str
    store_path: str
    n_tokens: int
    corpus: str
    explainer: str = "offline"
    simulator: str = "offline"
    features: list[FeatureInfo]
    seconds: float = 0.0
    built_at: str = ""

    def by_id(self) -> dict[int, FeatureInfo]:
        if not hasattr(self, "_by_id_cache"):
            object.__setattr__(self, "_by_id_cache", {f.id: f for f in self.features})
        return self._by_id_cache  # type: ignore[attr-defined]


class IndexReport(BaseModel):
    sae: str
    path: str
    layer: int
    n_features: int
    n_alive: int
    n_tokens: int
    mean_score: float | None
    median_score: float | None
    store_seconds: float
    explain_seconds: float
    tokens_per_second: float
    reused_store: bool

    def to_tool_result(self, handle: ModelHandle | None = None) -> ToolResult:
        ms = f"{self.median_score:.2f}" if self.median_score is not None else "n/a"
        return ToolResult(
            tool="sae_index",
            summary=(f"Indexed {self.n_features} features of SAE {self.sae} on {self.n_tokens:,} tokens: {self.n_alive} fire at least once; "
                     f"median explanation score {ms} (Pearson, offline simulator, held-out records)."),
            headline={"n_features": self.n_features, "n_alive": self.n_alive, "median_score": self.median_score, "n_tokens": self.n_tokens},
            provenance=provenance(handle, sae=self.path, layer=self.layer),
            timings={"store_s": self.store_seconds, "explain_s": self.explain_seconds},
            data=self.model_dump(mode="json"),
        )


def estimate_index_seconds(handle: ModelHandle, sae: SAE, n_tokens: int = DEFAULT_INDEX_TOKENS) -> float:
    """Rough wall time of :func:`index_features` here (model pass + explaining every feature)."""
    return estimate_seconds(handle.name, sae.layer or 0, n_tokens) + 0.03 * sae.d_sae


def index_command(sae: SAE) -> str:
    return f"gnothi sae index --sae {sae.name}"


def load_feature_index(sae: SAE) -> FeatureIndex | None:
    """The SAE's feature index, or ``None`` when there is none for these weights.

    A damaged index file raises :class:`SAECorruptError` (it is never silently used).
    """
    if sae.path is None:
        return None
    f = Path(sae.path) / INDEX_FILE
    if not f.exists():
        return None
    st = f.stat()
    key = (str(f), st.st_mtime_ns, st.st_size)
    hit = _INDEX_CACHE.get(str(f))
    if hit is not None and hit[0] == key:
        idx = hit[1]
    else:
        idx = _read_index(f, sae)
        _INDEX_CACHE[str(f)] = (key, idx)
    if idx.units_id != SAEUnits(sae).id:
        return None  # written for other weights (the SAE was retrained): stale
    if len(idx.features) != sae.d_sae or any(fi.id != i for i, fi in enumerate(idx.features)):
        raise SAECorruptError(
            f"The feature index of SAE {sae.name} does not list its {sae.d_sae} features in order.",
            f"Rebuild it: `{index_command(sae)} --force`.",
        )
    return idx


_INDEX_CACHE: dict[str, tuple[tuple, FeatureIndex]] = {}


def _read_index(f: Path, sae: SAE) -> FeatureIndex:
    try:
        return FeatureIndex.model_validate_json(f.read_text(encoding="utf-8"))
    except Exception:
        raise SAECorruptError(
            f"The feature index of SAE {sae.name} ({f}) is damaged.",
            f"Rebuild it: `{index_command(sae)} --force`.",
        ) from None


def require_index(handle: ModelHandle, sae: SAE) -> FeatureIndex:
    idx = load_feature_index(sae)
    if idx is None:
        est = human_seconds(estimate_index_seconds(handle, sae))
        raise SAENotFoundError(
            f"The features of SAE {sae.name} have no explanations yet, so they cannot be searched by meaning.",
            f"Build the feature index once: `{index_command(sae)}` (about {est} here).",
        )
    return idx
