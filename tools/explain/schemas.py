"""The result models of explaining a unit: explanation, score, modes, held-out records, unit report."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

from pydantic import BaseModel, Field

from ..store import ActivationRecord, UnitStats

if TYPE_CHECKING:
    from ..model import ModelHandle
    from ..results import Figure, ToolResult

LLM = Callable[[str], str]

OFFLINE_EXPLAINERS = ("offline", "single-pass")


class Explanation(BaseModel):
    text: str
    explainer: str  # refined | single-pass | llm | refined (llm fallback) | single-pass (llm fallback)
    tokens: list[tuple[str, float]] = Field(default_factory=list)  # (token, share of activation mass)
    after: list[tuple[str, float]] = Field(default_factory=list)  # preceding tokens and their share
    context_words: list[str] = Field(default_factory=list)
    sources: list[tuple[str, float]] = Field(default_factory=list)
    steps: list[str] = Field(default_factory=list)  # the refining explainer's accepted steps, each with its score
    cv_pearson: float | None = None  # the refining explainer's cross-fitted score on its own records
    warnings: list[str] = Field(default_factory=list)


class ScoreResult(BaseModel):
    pearson: float  # simulated vs true activations on held-out top + random records
    shuffled_pearson: float  # the same with another unit's explanation (control)
    top_pearson: float | None = None  # held-out top records only
    random_pearson: float | None = None  # held-out random records only
    control_unit: int
    control_explanation: str
    simulator: str
    n_records: int
    n_tokens: int
    warnings: list[str] = Field(default_factory=list)


class Mode(BaseModel):
    index: int
    n_records: int
    share: float  # share of the activating records in this mode
    explanation: str
    pearson: float  # on held-out top records of this mode + held-out random records
    mean_max_activation: float
    examples: list[str] = Field(default_factory=list)  # the top token in context


class ModesResult(BaseModel):
    k: int
    method: str  # minilm | tokens
    silhouette: float
    modes: list[Mode]
    single_pearson: float
    union_pearson: float
    modes_beat_single: bool


class HeldoutRecord(BaseModel):
    """A record the explanation was scored on (never shown to the explainer), with the
    simulator's activations beside the true ones: the score is their Pearson over all such
    records, position 0 (BOS) left out."""

    window: int
    kind: str  # top | random
    rank: int
    tokens: list[str]
    activations: list[float]
    simulated: list[float]


class UnitReport(BaseModel):
    """Everything measured about one unit, read from the store (the model is not re-run)."""

    units_id: str
    kind: str
    layer: int
    unit: int
    label: str
    explanation: str
    explanation_detail: Explanation
    score: ScoreResult
    top_contexts: list[ActivationRecord]
    histogram: dict[str, Any]
    stats: UnitStats
    modes: ModesResult | None = None
    heldout: list[HeldoutRecord] = Field(default_factory=list)  # what the score was computed on
    explained_windows: list[int] = Field(default_factory=list)  # store windows the explainer read
    store: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    cached_at: str | None = None  # when read from the explanation cache: when it was written (UTC)

    # ------------------------------------------------------------------ tool result
    def _figures(self) -> list[Figure]:
        from ..results import Figure

        figs = [
            Figure(
                kind="tokens",
                title=f"{self.label}: top contexts",
                data={"rows": [{"tokens": r.tokens, "values": r.activations} for r in self.top_contexts[:8]],
                      "vmax": max([r.max_activation for r in self.top_contexts] or [1.0]) or 1.0},
                caption="Token colour = activation (red positive, blue negative).",
            ),
            Figure(
                kind="histogram",
                title=f"{self.label}: activations on random text",
                data={**{k: self.histogram[k] for k in ("edges", "counts")}, "xlabel": "activation", "log": True},
                caption=f"{self.histogram.get('n', 0)} tokens of the store's random windows; max over the corpus {self.stats.max:.3g}.",
            ),
        ]
        return figs

    def _summary(self) -> str:
        s = self.score
        out = (f"{self.label}: {self.explanation} Explanation score {s.pearson:.2f} (Pearson, simulated vs true "
               f"activations on {s.n_records} held-out records) vs {s.shuffled_pearson:.2f} for a shuffled explanation.")
        if self.modes is not None:
            m = self.modes
            out += (f" {m.k} modes: together {m.union_pearson:.2f} vs single {m.single_pearson:.2f}"
                    f" ({'modes fit better' if m.modes_beat_single else 'one explanation suffices'}).")
        return out

    def _headline(self) -> dict:
        h = {
            "explanation": self.explanation,
            "pearson": self.score.pearson,
            "shuffled_pearson": self.score.shuffled_pearson,
            "max_activation": self.stats.max,
            "frequency": self.stats.frequency,
        }
        if self.modes is not None:
            h.update({"n_modes": self.modes.k, "modes_beat_single": self.modes.modes_beat_single, "modes_pearson": self.modes.union_pearson})
        return h

    def to_tool_result(self, tool: str = "explain_unit", handle: ModelHandle | None = None, extra_evidence: Sequence[dict] = ()) -> ToolResult:
        """The report as a :class:`~gnothi.tools.results.ToolResult` (summary, headline, evidence, spans, figures, provenance)."""
        from ..results import TokenSpan, ToolResult, provenance

        ev: list[dict] = [
            {"kind": "explanation", "text": self.explanation, "explainer": self.explanation_detail.explainer,
             "tokens": self.explanation_detail.tokens, "after": self.explanation_detail.after, "sources": self.explanation_detail.sources},
            {"kind": "score", **self.score.model_dump()},
            {"kind": "stats", **self.stats.model_dump()},
        ]
        if self.modes is not None:
            ev.append({"kind": "modes", **self.modes.model_dump()})
        ev.extend(extra_evidence)
        spans = [TokenSpan(tokens=r.tokens, values=r.activations, note=f"top #{r.rank} ({r.source}), max {r.max_activation:.3g}")
                 for r in self.top_contexts[:10]]
        c = self.store.get("config", {})
        return ToolResult(
            tool=tool,
            summary=self._summary(),
            headline=self._headline(),
            evidence=ev,
            spans=spans,
            figures=self._figures(),
            provenance=provenance(handle, store=self.store.get("path"), units=self.units_id, layer=self.layer, unit=self.unit,
                                  corpus=c.get("corpus"), n_tokens=self.store.get("n_tokens"), seed=c.get("seed"),
                                  explainer=self.explanation_detail.explainer, simulator=self.score.simulator,
                                  **({"cached_at": self.cached_at} if self.cached_at else {})),
            timings=self.timings,
            warnings=self.warnings,
            data=self.model_dump(mode="json"),
        )
