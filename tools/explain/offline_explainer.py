"""The offline explainers: the refining one (the default) and the single-pass token statistics."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Sequence

from .. import explain_refine
from ..store import ActivationRecord
from .keys import CONTEXT_SPAN, MAX_TOKENS_NAMED, token_key
from .schemas import Explanation

ACTIVE_FRACTION = 0.5  # a token is "active" in a record at >= this share of the record's max


def _quote(key: str) -> str:
    return f"“{key}”" if '"' in key else f'"{key}"'


def _active_tokens(rec: ActivationRecord, unit_max: float) -> list[tuple[int, float]]:
    mx = rec.max_activation
    if mx <= 0:
        return []
    return [(i, a / unit_max) for i, a in enumerate(rec.activations) if a > 0 and a >= ACTIVE_FRACTION * mx]


_DEAD = "never clearly activates positively on this corpus."


def offline_explain(records: Sequence[ActivationRecord], random_records: Sequence[ActivationRecord] = (), unit_max: float | None = None) -> Explanation:
    """The single-pass explainer: a readable explanation from token and context statistics of
    activating records."""
    recs = [r for r in records if r.max_activation > 0]
    if not recs:
        return Explanation(text=_DEAD, explainer="single-pass")
    unit_max = unit_max or max(r.max_activation for r in recs)
    mass: Counter = Counter()
    raw_forms: dict[str, Counter] = defaultdict(Counter)
    prev_mass: Counter = Counter()
    ctx_docs: Counter = Counter()
    for r in recs:
        seen_ctx = set()
        for i, w in _active_tokens(r, unit_max):
            k = token_key(r.tokens[i])
            mass[k] += w  # type: ignore[assignment]  # a Counter of float masses (fine at runtime; typeshed says int)
            raw_forms[k][r.tokens[i]] += 1
            if i > 0:
                prev_mass[token_key(r.tokens[i - 1])] += w  # type: ignore[assignment]  # float masses, as above
            for j in range(max(1, i - CONTEXT_SPAN), i):
                seen_ctx.add(token_key(r.tokens[j]))
        for k in seen_ctx:
            ctx_docs[k] += 1
    total = sum(mass.values()) or 1.0
    named = [(k, v / total) for k, v in mass.most_common(MAX_TOKENS_NAMED) if v / total >= 0.05]
    if not named:
        named = [(k, v / total) for k, v in mass.most_common(1)]
    cum = sum(s for _, s in named)
    # base rates from random text
    base: Counter = Counter()
    n_base = 0
    for r in random_records:
        for i, t in enumerate(r.tokens):
            if i == 0:
                continue
            base[token_key(t)] += 1
            n_base += 1
    after = [(k, v / total) for k, v in prev_mass.most_common(3) if v / total >= 0.3]
    named_keys = {k for k, _ in named}
    ctx = []
    for k, c in ctx_docs.most_common(50):
        if k in named_keys or k in {a for a, _ in after} or c < max(3, 0.25 * len(recs)):
            continue
        rate = (base[k] + 1) / (n_base + 1) if n_base else 0.01
        expected = 1 - (1 - rate) ** CONTEXT_SPAN
        if c / len(recs) > 2.0 * expected and re.search(r"\w", k):
            ctx.append(k)
        if len(ctx) >= 4:
            break
    src = Counter(r.source for r in recs if r.source)
    sources = [(s, c / len(recs)) for s, c in src.most_common(2)]
    base_src = Counter(r.source for r in random_records if r.source)
    n_bsrc = sum(base_src.values())
    parts = ["fires on " + ", ".join(f"{_quote(k)} ({round(100 * s)}%)" for k, s in named)]
    if cum < 0.6:
        parts[0] += f" and many other tokens (the named ones carry {round(100 * cum)}% of its top activation)"
    if after:
        parts.append("often right after " + ", ".join(f"{_quote(k)} ({round(100 * s)}%)" for k, s in after))
    if ctx:
        parts.append("in contexts with " + ", ".join(_quote(k) for k in ctx))
    if sources:
        s0, f0 = sources[0]
        b0 = base_src[s0] / n_bsrc if n_bsrc else 0.0
        if f0 >= 0.5 and f0 >= 1.5 * b0:  # only when the source mix differs from random text
            parts.append(f"mostly in {s0} text ({round(100 * f0)}% of top records vs {round(100 * b0)}% of random ones)")
    text = "; ".join(parts) + "."
    return Explanation(text=text, explainer="single-pass", tokens=[(k, round(s, 4)) for k, s in named],
                       after=[(k, round(s, 4)) for k, s in after], context_words=ctx, sources=[(s, round(f, 4)) for s, f in sources])


def refined_explain(records: Sequence[ActivationRecord], random_records: Sequence[ActivationRecord] = (), unit_max: float | None = None) -> Explanation:
    """The refining explainer (:func:`gnothi.tools.explain_refine.refine`) over the same
    records; the single-pass explanation where it finds nothing to say."""
    recs = [r for r in records if r.max_activation > 0]
    if not recs:
        return Explanation(text=_DEAD, explainer="refined")
    mx = unit_max or max(r.max_activation for r in recs)
    rf = explain_refine.refine(records, random_records, mx)
    if rf is None:
        single = offline_explain(records, random_records, unit_max)
        return single.model_copy(update={"warnings": single.warnings + ["The refining explainer found no condition that predicts this unit on "
                                                                         "held-out records of its own; this is the single-pass explanation."]})
    pos = [(c, lv) for c, lv in rf.conditions if lv > 0]
    return Explanation(text=rf.text, explainer="refined", steps=rf.steps, cv_pearson=rf.cv_pearson,
                       tokens=[(c.token, lv / 10) for c, lv in pos if c.token is not None][:MAX_TOKENS_NAMED],
                       after=[(c.prev, lv / 10) for c, lv in pos if c.prev is not None][:3],
                       context_words=[c.context for c, _ in pos if c.context is not None][:4])


def explain_offline(explainer: str, records: Sequence[ActivationRecord], random_records: Sequence[ActivationRecord] = (),
                    unit_max: float | None = None) -> Explanation:
    """The offline explainer named ``explainer`` (``"offline"``: refined; ``"single-pass"``)."""
    return (offline_explain if explainer == "single-pass" else refined_explain)(records, random_records, unit_max)
