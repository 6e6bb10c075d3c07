"""Head-finder suite: the top head of each behaviour beside its control, the median head and a uniform head;
and a causal check: zeroing the top induction heads hurts in-context copying more than zeroing random heads.

Copying is measured as the loss on the second half of random token sequences repeated twice
(only in-context copying can predict it). The random-head control averages several draws of the
same number of heads, none of them among the top induction heads.
"""

from __future__ import annotations

import random

from gnothi.tools import heads as heads_tool

from .registry import SuiteContext, SuiteResult, suite


@suite("heads")
def run(ctx: SuiteContext) -> SuiteResult:
    """Behaviour scores of the top heads vs their controls; ablation of the top induction heads vs random heads."""
    handle = ctx.handle()
    s = heads_tool.head_scores(handle, seed=ctx.seed)
    res = SuiteResult(suite="heads")
    rows = []
    for b in heads_tool.BEHAVIOURS:
        top = s.ranked(b, 1)[0]
        res.metrics[b] = {"top_head_score": top.score, "n_clear_heads": len(s.clear(b))}
        res.baselines[b] = {"top_head_score": {"its_control": top.control, "median_head": s.median(b), "uniform_head": s.uniform[b]},
                            "n_clear_heads": 0}
        rows.append([heads_tool.LABEL[b], top.head, top.score, top.control, s.median(b), s.uniform[b], len(s.clear(b))])
    res.tables.append({"title": "Top head per behaviour", "columns": ["behaviour", "head", "score", "its control", "median head", "uniform head", "clear heads"],
                       "rows": rows})
    k = min(3, max(1, handle.n_layers * handle.n_heads // 3))  # a third of the heads at most, so random draws exist
    top_heads = [(h.layer, h.index) for h in s.ranked("induction", k)]
    rng = random.Random(ctx.seed)
    pool = [(l, h) for l in range(handle.n_layers) for h in range(handle.n_heads) if (l, h) not in top_heads]
    draws = 3 if ctx.quick else 10
    base = heads_tool.head_ablation_loss(handle, [])
    top_loss = heads_tool.head_ablation_loss(handle, top_heads)
    rand = [heads_tool.head_ablation_loss(handle, rng.sample(pool, k)) for _ in range(draws)]
    res.metrics["induction_ablation"] = {"loss_rise_top_heads": round(top_loss - base, 4)}
    res.baselines["induction_ablation"] = {"loss_rise_top_heads": {"random_heads_mean": round(sum(rand) / len(rand) - base, 4),
                                                                   "random_heads_max": round(max(rand) - base, 4)}}
    res.passed = (s.ranked("induction", 1)[0].score - s.ranked("induction", 1)[0].control >= heads_tool.CLEAR_MARGIN
                  and top_loss - base > sum(rand) / len(rand) - base)
    res.figures.extend(s.figures(["induction", "previous_token"])[:2])
    res.notes.append(f"Ablation: zero the outputs of the top {k} induction heads {', '.join(f'{l}.{h}' for l, h in top_heads)}; loss on the repeated half "
                     f"{base:.3f} -> {top_loss:.3f} nats/token; {draws} draws of {k} random heads: mean {sum(rand) / len(rand):.3f}.")
    res.provenance.update({"settings": s.settings, "ablation_heads": k, "random_draws": draws})
    return res
