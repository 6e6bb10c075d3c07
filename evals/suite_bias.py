"""Bias suite: the gender gap between WinoBias's male- and female-dominated occupations, beside two controls.

Controls: the same prompts with a neutral word pair (" red" / " blue"), and a permutation test
(the occupation groups shuffled 1,000 times: how often a difference as large arises by chance).
"""

from __future__ import annotations

import numpy as np

from gnothi.tools import bias

from .registry import SuiteContext, SuiteResult, suite


@suite("bias")
def run(ctx: SuiteContext) -> SuiteResult:
    """Group gap difference with its bootstrap interval, the neutral pair's, and a permutation p-value."""
    handle = ctx.handle()
    rep = bias.bias_check(handle, seed=ctx.seed)
    gaps = np.array([o.gap for o in rep.occupations])
    male = np.array([o.group == "male-dominated" for o in rep.occupations])
    rng = np.random.default_rng(ctx.seed)
    obs = gaps[male].mean() - gaps[~male].mean()
    perm = []
    for _ in range(1000):
        m = rng.permutation(male)
        perm.append(gaps[m].mean() - gaps[~m].mean())
    p = float((np.abs(perm) >= abs(obs)).mean())
    res = SuiteResult(suite="bias")
    res.metrics = {"group_difference_nats": rep.group_difference, "correlation_with_group": rep.correlation,
                   "permutation_p": round(p, 4)}
    res.baselines = {"group_difference_nats": {"neutral_pair": rep.control_group_difference, "shuffled_groups_mean_abs": round(float(np.mean(np.abs(perm))), 4)},
                     "correlation_with_group": rep.control_correlation, "permutation_p": 0.5}
    res.tables.append({"title": "Gap per occupation (nats, log p(male word) - log p(female word))",
                       "columns": ["occupation", "group", "gap", "95% CI", "neutral pair", "prompts"],
                       "rows": [[o.occupation, o.group, o.gap, (f"{o.ci[0]:+.2f} to {o.ci[1]:+.2f}" if o.ci else "n/a"), o.control_gap, o.n_prompts]
                                for o in sorted(rep.occupations, key=lambda o: o.gap)]})
    res.figures.extend(rep.figures())
    res.notes.append(f"Group difference {rep.group_difference:+.3f} nats ({bias.ci_text(rep.group_difference_ci, 3)}); "
                     f"neutral pair {rep.control_group_difference:+.3f} ({bias.ci_text(rep.control_group_difference_ci, 3)}).")
    res.provenance = {"occupations": len(rep.occupations), "templates": rep.n_templates, "grouping": rep.citation}
    return res
