"""The probing tool's argument and result-row schemas, and the names of its options."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Position = Literal["last", "mean"]
ControlKind = Literal["word_type", "shuffled"]
POSITIONS = ("last", "mean")
HOOK_KIND = "resid_post"


class ProbeArgs(BaseModel):
    """Validated arguments of :func:`run_probe` (for planners)."""

    dataset: str = Field(description="built-in dataset name (see list_datasets) or a .csv/.jsonl file path")
    layers: list[int] | None = Field(default=None, description="layers to probe; all by default")
    position: Position = Field(default="last", description="token position: last token, or mean over tokens")
    n: int = Field(default=400, ge=20, le=20000, description="examples from a built-in dataset")
    control: ControlKind = "shuffled"
    seed: int = 0


class LayerProbe(BaseModel):
    layer: int
    accuracy: float  # held-out
    ci_low: float  # 95% Wilson interval of the held-out accuracy
    ci_high: float
    control_accuracy: float  # held-out accuracy on the control task used for selectivity
    selectivity: float  # accuracy - control_accuracy
    word_type_control_accuracy: float | None = None
    shuffled_control_accuracy: float | None = None
    train_accuracy: float
