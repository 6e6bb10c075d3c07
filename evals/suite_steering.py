"""Steering suite: concept steering's effect and cost beside a random direction of the same norm and a prompting baseline.

Effect: the MiniLM similarity of the continuations to the concept; cost: the loss rise on held-out
corpus text. Quick tier: one concept, three prompts, 12 new tokens, the default sweep of four strengths. Full tier: four concepts,
the six default prompts and the default sweep.
"""

from __future__ import annotations

from typing import Any

from gnothi.tools import steering

from .registry import SuiteContext, SuiteResult, suite

QUICK = ["France"]
FULL = ["France", "dogs", "music", "winter"]


@suite("steering")
def run(ctx: SuiteContext) -> SuiteResult:
    """Best steering effect per concept vs random direction, no steering and prompting; its loss cost vs the random direction's."""
    handle = ctx.handle()
    res = SuiteResult(suite="steering")
    rows: list[list[Any]] = []
    for c in (QUICK if ctx.quick else FULL):
        kw: dict[str, Any] = dict(prompts=steering.PROMPTS[:3], n_new=12) if ctx.quick else {}
        rep = steering.steer(handle, "concept", concept=c, seed=ctx.seed, **kw)
        pick = rep.best() or max(rep.sweep, key=lambda p: p.relevance)
        res.metrics[c] = {"relevance": pick.relevance, "cost": pick.cost}
        res.baselines[c] = {"relevance": {"random_direction": pick.random_relevance, "no_steering": rep.base_relevance,
                                          "prompting": rep.prompting_relevance},
                            "cost": {"random_direction": pick.random_cost, "prompting": rep.prompting_cost}}
        rows.append([c, rep.layer, pick.strength, pick.relative_norm, pick.relevance, pick.random_relevance, rep.base_relevance,
                     rep.prompting_relevance, pick.cost, pick.random_cost, rep.best_strength is not None])
        if not res.figures:
            res.figures.extend(rep.figures())
    res.tables.append({"title": "Steering per concept (the best trade-off, else the strongest effect)",
                       "columns": ["concept", "layer", "strength", "x residual norm", "relevance", "random dir.", "no steering", "prompting",
                                   "loss rise", "random loss rise", "within cost limit"], "rows": rows})
    res.passed = all(r[4] > r[5] and r[4] > r[6] for r in rows)
    res.provenance = {"concepts": [r[0] for r in rows], "max_cost": steering.MAX_COST}
    return res
