"""Explain a unit, simulate it from the explanation, and score the simulation.

The loop of the published explain-simulate-score work, runnable offline on a CPU:

1. **Explain** from the unit's *training* records in the store (top windows minus the
   held-out ones, plus quantile samples and random windows). Three explainers:

   * ``"offline"`` (the default): the refining explainer of :mod:`gnothi.tools.explain_refine`.
     It decomposes the activations into atomic conditions (a token, a token after another,
     a word, a context word, a position, a kind of token), keeps those that raise a
     cross-fitted simulation score on its own records, narrows each against its false
     positives and stops when the score stops rising. It writes a decision list with a
     level per clause: ``fires on "respond" after "cor" (9/10); on "ing" (4/10).``
   * ``"single-pass"``: token statistics of the activating tokens in one pass: which tokens
     carry the activation (share of the top activation mass), the token right before them,
     words over-represented in the preceding context, and the corpus sources (quoted
     tokens with percentages). Kept as the baseline the refined one is measured against.
   * a callable ``llm(prompt) -> str``: prompt ``prompts/explain_unit.md``, shown the
     records and the conditions the refining explainer measured. Garbage output falls
     back to the offline explanation with a warning.

2. **Simulate** per-token activations *from the explanation text alone* on held-out
   records (held-out top windows and held-out random windows). Offline simulator: a
   refined explanation's clauses are read back and applied as stated; for other text,
   the tokens, preceding tokens and context words it names are matched. LLM simulator: ``prompts/simulate_units.md``, a few records a call, within a call budget per unit; unreadable
   answers fall back to the offline simulator for that record, with a warning.

3. **Score**: the Pearson correlation of simulated and true activations over all held-out
   tokens, beside the same score for a **shuffled control**: another unit's explanation,
   simulated on the same records.

4. **Modes** (polysemantic units): cluster the activating contexts (MiniLM embeddings of
   the text around the top token, or bag of tokens), explain and score each mode, and say
   whether the modes together (union of their simulations) beat the single explanation.
"""

from __future__ import annotations

from ..stats import pearson
from .keys import CONTEXT_SPAN, MAX_TOKENS_NAMED, token_key
from .llm_explainer import LLM_EXPLAIN_RECORDS, LLM_EXPLAIN_SPAN, _fmt_record_for_llm, _parse_llm_explanation, llm_explain
from .llm_simulator import LLM_CALL_BUDGET, LLM_TOKENS_PER_CALL, llm_batches, llm_call_budget, llm_simulate, llm_simulate_batch
from .modes import _context_text, _embed_contexts, find_modes
from .offline_explainer import _DEAD, ACTIVE_FRACTION, _active_tokens, _quote, explain_offline, offline_explain, refined_explain
from .offline_simulator import _PCT, _STOP, ParsedExplanation, _clauses, offline_simulate, parse_explanation
from .pipeline import _control_unit, _explain_records, explain_unit
from .schemas import LLM, OFFLINE_EXPLAINERS, Explanation, HeldoutRecord, Mode, ModesResult, ScoreResult, UnitReport
from .scoring import _score_on, score_explanation
from .simulator import _Simulator

__all__ = [
    "ACTIVE_FRACTION", "CONTEXT_SPAN", "LLM", "LLM_CALL_BUDGET", "LLM_EXPLAIN_RECORDS", "LLM_EXPLAIN_SPAN", "LLM_TOKENS_PER_CALL",
    "MAX_TOKENS_NAMED", "OFFLINE_EXPLAINERS",
    "Explanation", "HeldoutRecord", "Mode", "ModesResult", "ParsedExplanation", "ScoreResult", "UnitReport",
    "explain_offline", "explain_unit", "find_modes", "llm_batches", "llm_call_budget", "llm_explain", "llm_simulate",
    "llm_simulate_batch", "offline_explain", "offline_simulate", "parse_explanation", "pearson", "refined_explain",
    "score_explanation", "token_key",
    # private helpers the single module had, kept importable from here
    "_DEAD", "_PCT", "_STOP", "_Simulator", "_active_tokens", "_clauses", "_context_text", "_control_unit", "_embed_contexts",
    "_explain_records", "_fmt_record_for_llm", "_parse_llm_explanation", "_quote", "_score_on",
]
