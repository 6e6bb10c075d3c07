"""What one probing run measured (:class:`ProbeReport`): its figure and its tool result."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ..errors import OutOfRangeError
from ..results import Figure, ToolResult
from .schemas import ControlKind, LayerProbe, Position


class ProbeReport(BaseModel):
    """Everything one probing run measured (JSON-serializable)."""

    dataset: str
    description: str
    dataset_source: str
    model: str
    hook: str  # e.g. blocks.{L}.hook_resid_post
    position: Position
    label_names: list[str]
    class_counts: dict[str, int]
    n_examples: int
    n_train: int
    n_test: int
    split: Literal["grouped", "stratified"]
    n_groups: int
    control: ControlKind
    C: float
    seed: int
    chance: float  # majority-class accuracy on the test split
    layers: list[LayerProbe]
    best_layer: int  # highest held-out accuracy; ties go to the earliest layer
    best_accuracy: float
    best_selectivity: float
    best_selectivity_layer: int
    first_layer_near_best: int  # first layer within 2 points of the best accuracy
    saved_to: str | None = None
    examples: list[dict] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    provenance: dict = Field(default_factory=dict)

    def layer(self, layer: int) -> LayerProbe:
        for lp in self.layers:
            if lp.layer == layer:
                return lp
        raise OutOfRangeError(f"Layer {layer} was not probed (probed: {[l.layer for l in self.layers]}).",
                              "Run the probe with that layer included.")

    def figure(self) -> Figure:
        xs = [lp.layer for lp in self.layers]
        return Figure(
            kind="line",
            title=f"Probe accuracy by layer: {self.dataset} ({self.position} token, {self.model})",
            data={
                "x": xs,
                "series": {
                    "held-out accuracy": [lp.accuracy for lp in self.layers],
                    f"control ({self.control.replace('_', ' ')})": [lp.control_accuracy for lp in self.layers],
                    "selectivity": [lp.selectivity for lp in self.layers],
                    "chance": [self.chance for _ in self.layers],
                },
                "band": {"held-out accuracy": [[lp.ci_low, lp.ci_high] for lp in self.layers]},
                "xlabel": "layer (residual stream after the block)",
                "ylabel": "accuracy",
            },
            caption=f"{self.n_test} held-out examples ({self.split} split); band: 95% Wilson interval. "
            f"Selectivity = accuracy - control accuracy.",
        )

    def to_tool_result(self) -> ToolResult:
        b = self.layer(self.best_layer)
        pos = "last token" if self.position == "last" else "mean over tokens"
        classes = " vs ".join(self.label_names)
        if b.ci_low <= self.chance:
            summary = (
                f"No layer separates {classes} ({self.dataset}) reliably above chance: the best, layer "
                f"{self.best_layer}, reaches {b.accuracy:.1%} held-out accuracy (95% CI {b.ci_low:.1%}-{b.ci_high:.1%}, "
                f"chance {self.chance:.1%}; {pos}, {self.n_test} test examples)."
            )
        else:
            summary = (
                f"A linear probe separates {classes} ({self.dataset}) best at layer {self.best_layer}: "
                f"{b.accuracy:.1%} held-out accuracy (95% CI {b.ci_low:.1%}-{b.ci_high:.1%}, chance {self.chance:.1%}), "
                f"control {b.control_accuracy:.1%}, selectivity {b.selectivity:+.1%}; within 2 points of the best "
                f"from layer {self.first_layer_near_best} on ({pos}, {self.n_test} test examples)."
            )
        evidence = [
            {"layer": lp.layer, "accuracy": round(lp.accuracy, 4), "ci": [round(lp.ci_low, 4), round(lp.ci_high, 4)],
             "control_accuracy": round(lp.control_accuracy, 4), "selectivity": round(lp.selectivity, 4)}
            for lp in self.layers
        ]
        return ToolResult(
            tool="probe",
            summary=summary,
            headline={
                "best_layer": self.best_layer,
                "best_accuracy": round(b.accuracy, 4),
                "ci": [round(b.ci_low, 4), round(b.ci_high, 4)],
                "control_accuracy": round(b.control_accuracy, 4),
                "selectivity": round(b.selectivity, 4),
                "chance": round(self.chance, 4),
                "first_layer_near_best": self.first_layer_near_best,
                "best_selectivity_layer": self.best_selectivity_layer,
                "n_test": self.n_test,
            },
            evidence=evidence + [{"example": e} for e in self.examples],
            figures=[self.figure()],
            provenance=self.provenance,
            timings=self.timings,
            warnings=self.warnings,
            data=self.model_dump(mode="json"),
        )
