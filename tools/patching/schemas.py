"""Argument and result schemas of activation patching and causal tracing (no tensors)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


Mode = Literal["exact", "attribution", "both"]
KINDS: tuple[Literal["resid", "attn", "mlp", "heads"], ...] = ("resid", "attn", "mlp", "heads")
_TRACE_KINDS: tuple[Literal["resid", "mlp", "attn"], ...] = ("resid", "mlp", "attn")  # the default of TraceArgs.kinds
KIND_WORDS = {"resid": "residual stream", "attn": "attention output", "mlp": "MLP output", "heads": "attention heads"}


class PatchArgs(BaseModel):
    """Arguments of :func:`patch` as a tool call (validated by the orchestrator)."""

    clean: str = Field(description="the prompt whose answer we explain, e.g. 'The capital of France is'")
    corrupted: str | None = Field(None, description="same prompt with one thing changed; built automatically when omitted")
    answer: str | None = Field(None, description="the clean answer, e.g. ' Paris' (mind the leading space); default: the model's top prediction")
    alternative: str | None = Field(None, description="the competing answer, e.g. ' Rome'; default: the corrupted prompt's top prediction")
    mode: Mode = "both"
    kinds: list[Literal["resid", "attn", "mlp", "heads"]] = Field(default_factory=lambda: list(KINDS))
    top_k: int = Field(8, ge=1, le=50)


class TraceArgs(BaseModel):
    """Arguments of :func:`causal_trace` as a tool call."""

    prompt: str
    answer: str | None = None
    subject: str | None = Field(None, description="the words whose embeddings get noised; found automatically when omitted")
    samples: int = Field(3, ge=1, le=20)
    noise_scale: float = Field(3.0, gt=0)
    window: int = Field(5, ge=1, le=20)
    kinds: list[Literal["resid", "mlp", "attn"]] = Field(default_factory=lambda: list(_TRACE_KINDS))
    seed: int = 0


class Component(BaseModel):
    """One patched component and its normalized effect."""

    name: str  # in words: "MLP at layer 14", "head 9.3", "residual at layer 6 on token ' France'"
    kind: Literal["resid", "attn", "mlp", "heads"]
    layer: int
    position: int | None = None
    token: str | None = None
    head: int | None = None
    effect: float  # normalized (clean = 1, corrupted = 0)
    method: Literal["exact", "attribution"]


class KindEffects(BaseModel):
    """Normalized effects of one component kind.

    ``resid``: rows = layers (residual stream *entering* the layer), columns = positions.
    ``attn``/``mlp``: one value per layer (output of that block, all positions patched).
    ``heads``: rows = layers, columns = heads (that head's output, all positions patched).
    """

    kind: str
    exact: list | None = None
    attribution: list | None = None
    correlation: float | None = None  # Pearson r between exact and attribution (when both ran)


class PromptPair(BaseModel):
    clean: str
    corrupted: str
    clean_tokens: list[str]
    corrupted_tokens: list[str]
    changed_positions: list[int]
    auto: bool = False
    note: str = ""



class TracePeak(BaseModel):
    layer: int
    position: int
    token: str
    p: float  # answer probability with this state restored (mean over noise samples)
    effect: float  # (p - p_corrupted) / (p_clean - p_corrupted)

