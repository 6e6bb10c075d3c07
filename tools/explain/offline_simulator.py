"""The offline simulator: per-token activations read back from an explanation's text."""

from __future__ import annotations

import re
from typing import Sequence

from pydantic import BaseModel, Field

from .. import explain_refine
from .keys import CONTEXT_SPAN, token_key

_STOP = set(
    "the a an of to in on at and or but is was are were be been it this that with for as by from its their his her "
    "fires fire firing activates activation token tokens word words often right after before contexts context mostly "
    "text texts neuron feature unit also about on when which".split()
)


_PCT = re.compile(r'(?:"([^"]+)"|“([^”]+)”)\s*(?:\((\d+(?:\.\d+)?)%\))?')


def _clauses(text: str) -> list[str]:
    return [c.strip() for c in re.split(r";|\.\s", text) if c.strip()]


class ParsedExplanation(BaseModel):
    tokens: dict[str, float] = Field(default_factory=dict)
    after: dict[str, float] = Field(default_factory=dict)
    context: list[str] = Field(default_factory=list)


def parse_explanation(text: str) -> ParsedExplanation:
    """Read the tokens, preceding tokens and context words an explanation names.

    Quoted strings are tokens; a percentage after one is its weight (else equal weights).
    A clause starting "after"/"right after"/"following" names preceding tokens; one with
    "context" names context words. With nothing quoted, the explanation's content words
    are taken as tokens (so free-form LLM explanations simulate too).
    """
    p = ParsedExplanation()
    if text.startswith("never clearly activates"):  # the offline explainer's "dead unit" text predicts nothing
        return p
    found_any = False
    for clause in _clauses(text):
        items = [(a or b, float(c) if c else None) for a, b, c in _PCT.findall(clause)]
        if not items:
            continue
        found_any = True
        low = clause.lower()
        if re.match(r"^(often |usually |mostly )?(right |just |directly )?(after|following|preceded by)\b", low):
            target = p.after
        elif "context" in low or "near" in low or "around" in low:
            p.context.extend(token_key(k) for k, _ in items)
            continue
        else:
            target = p.tokens
        for k, w in items:
            key = token_key(k)
            target[key] = target.get(key, 0.0) + (w / 100.0 if w is not None else 1.0 / len(items))
    if not found_any:
        words = [w.lower() for w in re.findall(r"[A-Za-z][A-Za-z'\-]*|\d+|[^\sA-Za-z\d]", text) if w.lower() not in _STOP]
        words = [w for w in words if len(w) > 1 or not w.isalpha()][:8]
        if words:
            for w in words:
                p.tokens[token_key(w)] = 1.0 / len(words)
    return p


def offline_simulate(explanation: str | ParsedExplanation, tokens: Sequence[str]) -> list[float]:
    """Predicted activation per token from the explanation alone (0 where nothing matches): a
    refined explanation's clauses as stated, else the tokens and contexts it names."""
    if isinstance(explanation, str):
        clauses = explain_refine.parse(explanation)
        if clauses is not None:
            return explain_refine.simulate(clauses, tokens)
    p = explanation if isinstance(explanation, ParsedExplanation) else parse_explanation(explanation)
    keys = [token_key(t) for t in tokens]
    top_w = max(p.tokens.values(), default=1.0)
    out = []
    for i, k in enumerate(keys):
        v = p.tokens.get(k, 0.0)
        if p.after and i > 0 and keys[i - 1] in p.after:
            v = v * 1.5 + 0.1 * top_w * p.after[keys[i - 1]]
        if p.context and v == 0.0:
            if any(keys[j] in p.context for j in range(max(0, i - CONTEXT_SPAN), i)):
                v = 0.02 * top_w
        out.append(v)
    return out
