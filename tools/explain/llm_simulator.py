"""The LLM simulator: prompt ``simulate_units`` over a few records a call, and the call budget."""

from __future__ import annotations

import re
from typing import Sequence

from .schemas import LLM

LLM_TOKENS_PER_CALL = 128  # record tokens simulated in one LLM call (two 64-token windows; fits a 2,048-token context)
LLM_CALL_BUDGET = 40  # LLM simulation calls one unit report may make (GNOTHI_LLM_CALL_BUDGET); the rest are simulated offline


def llm_call_budget() -> int:
    """The LLM simulation calls one unit report may make: ``GNOTHI_LLM_CALL_BUDGET``, else :data:`LLM_CALL_BUDGET`."""
    from ..config import env_int

    return env_int("GNOTHI_LLM_CALL_BUDGET", LLM_CALL_BUDGET, minimum=0)


def llm_simulate_batch(llm: LLM, explanation: str, token_lists: Sequence[Sequence[str]]) -> list[list[float] | None]:
    """Simulate several records in one call (prompt ``simulate_units``: tokens numbered
    ``text.index``; the answer lists only the active tokens, or says "none"). None for every
    record when the answer holds neither a readable line nor "none"."""
    from gnothi import prompts

    listing = "\n\n".join("\n".join(f"{r}.{i}\t{t!r}" for i, t in enumerate(toks)) for r, toks in enumerate(token_lists))
    try:
        raw = llm(prompts.load("simulate_units", explanation=explanation, tokens=listing, n_records=len(token_lists)))
    except Exception:
        return [None] * len(token_lists)
    if not isinstance(raw, str):
        return [None] * len(token_lists)
    vals: dict[tuple[int, int], float] = {}
    # "text.index<TAB>value" or "text.index<TAB>token<TAB>value"; with one text, a bare "index<TAB>value" too
    bare = re.compile(r"^\s*(\d+)\s*[\t:,|=\-]+\s*(?:('[^']*'|\"[^\"]*\"|\S+)\s*[\t:,|=\-]+\s*)?(\d+(?:\.\d+)?)\s*$")
    line_re = re.compile(r"^\s*(\d+)\.(\d+)\s*[\t:,|=\-]+\s*(?:('[^']*'|\"[^\"]*\"|\S+)\s*[\t:,|=\-]+\s*)?(\d+(?:\.\d+)?)\s*$")
    for line in raw.splitlines():
        m = line_re.match(line)
        if m:
            r, i, v = int(m.group(1)), int(m.group(2)), float(m.group(4))
        elif len(token_lists) == 1 and (b := bare.match(line)):
            r, i, v = 0, int(b.group(1)), float(b.group(3))
        else:
            continue
        if 0 <= r < len(token_lists) and 0 <= i < len(token_lists[r]) and 0 <= v <= 10:
            vals[(r, i)] = v
    if not vals and not re.search(r"\bnone\b", raw, flags=re.I):
        return [None] * len(token_lists)
    return [[vals.get((r, k), 0.0) for k in range(len(toks))] for r, toks in enumerate(token_lists)]


def llm_batches(lengths: Sequence[int], per_call: int | None = None) -> list[list[int]]:
    """Record indices grouped into LLM calls of at most ``per_call`` tokens (a longer record alone)."""
    per_call = per_call or LLM_TOKENS_PER_CALL
    groups: list[list[int]] = []
    used = 0
    for i, n in enumerate(lengths):
        if groups and used + n <= per_call:
            groups[-1].append(i)
            used += n
        else:
            groups.append([i])
            used = n
    return groups


def llm_simulate(llm: LLM, explanation: str, tokens: Sequence[str]) -> list[float] | None:
    """Ask ``llm`` to predict 0-10 per token of one record; None if unreadable."""
    return llm_simulate_batch(llm, explanation, [tokens])[0]
