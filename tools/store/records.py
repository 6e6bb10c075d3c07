"""The records a store hands out: activation records, a unit's explain/held-out split, unit statistics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel


@dataclass
class UnitSplit:
    """One unit's records, split for explain-simulate-score with no window on both sides.

    Held out: every third top record (by rank) and the odd random slots, each window once.
    The explainer reads the other top records, the quantile samples and the even random
    slots, less any window that is held out (a quantile sample or a random window can be
    the same window as a held-out top record)."""

    explain_top: list["ActivationRecord"]
    explain_quantile: list["ActivationRecord"]
    explain_random: list["ActivationRecord"]
    heldout_top: list["ActivationRecord"]
    heldout_random: list["ActivationRecord"]

    @property
    def explain(self) -> list["ActivationRecord"]:
        """The activating records an explainer reads: top, then quantile samples."""
        return self.explain_top + self.explain_quantile

    @property
    def heldout(self) -> list["ActivationRecord"]:
        """The held-out records an explanation is scored on: top, then random."""
        return self.heldout_top + self.heldout_random

    def heldout_windows(self) -> set[int]:
        """The window indices of the held-out records."""
        return {r.window for r in self.heldout}

    def explain_windows(self) -> set[int]:
        """The window indices of every record the explainer reads (random ones included)."""
        return {r.window for r in self.explain + self.explain_random}


class ActivationRecord(BaseModel):
    """Tokens and one activation per token (the explain-simulate-score record)."""

    tokens: list[str]
    activations: list[float]
    window: int = -1  # index of the window in the store
    source: str = ""  # corpus source of the window
    kind: str = "top"  # top | quantile | random
    rank: int = 0

    @property
    def max_activation(self) -> float:
        """The record's largest activation (0.0 when empty)."""
        return max(self.activations) if self.activations else 0.0

    @property
    def argmax(self) -> int:
        """The position of the record's largest activation (0 when empty)."""
        return int(np.argmax(self.activations)) if self.activations else 0

    def export(self) -> dict:
        """``{"tokens", "activations"}``: the record in the explain-simulate-score JSON layout."""
        return {"tokens": self.tokens, "activations": self.activations}


class UnitStats(BaseModel):
    layer: int
    unit: int
    n_tokens: int
    frequency: float  # share of tokens with activation > 0
    mean: float
    std: float
    max: float
    min: float

