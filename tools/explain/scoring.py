"""Scoring an explanation: simulation Pearson of simulated vs true activations on held-out records."""

from __future__ import annotations

from typing import Sequence

from ..stats import pearson
from ..store import ActivationRecord
from .schemas import LLM
from .simulator import _Simulator


def _score_on(sim: _Simulator, explanation: str, records: Sequence[ActivationRecord]) -> tuple[float, list[float], list[float]]:
    pred: list[float] = []
    true: list[float] = []
    for r, p in zip(records, sim.many(explanation, [r.tokens for r in records])):
        # position 0 (BOS) is not evidence
        pred.extend(p[1:])
        true.extend(r.activations[1:])
    return pearson(pred, true), pred, true


def score_explanation(explanation: str, holdout_top: Sequence[ActivationRecord], holdout_random: Sequence[ActivationRecord],
                      simulator: "str | LLM | _Simulator" = "offline") -> dict:
    """Simulate each held-out record once from the explanation and correlate with the true
    activations (BOS excluded): over all records, the top ones and the random ones.
    ``simulated`` holds the simulation per record (top records first), so the score can be
    recomputed from the report. ``simulator`` may be a shared :class:`_Simulator` (its LLM
    call budget then spans every score made with it)."""
    sim = simulator if isinstance(simulator, _Simulator) else _Simulator(simulator)
    top, rand = list(holdout_top), list(holdout_random)
    sims = [list(p) for p in sim.many(explanation, [r.tokens for r in top + rand])]

    def corr(recs, ps):
        pred = [x for p in ps for x in p[1:]]
        true = [x for r in recs for x in r.activations[1:]]
        return pearson(pred, true)

    return {
        "pearson": corr(top + rand, sims),
        "top": corr(top, sims[: len(top)]) if top else None,
        "random": corr(rand, sims[len(top):]) if rand else None,
        "simulated": sims,
        "fallbacks": sim.fallbacks,
        "simulator": sim.name,
    }
