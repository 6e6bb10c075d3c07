"""Activation patching, attribution patching and causal tracing: which components *cause* an answer.

The question these tools answer: the model says " Paris" after "The capital of France is";
which layers, positions, attention heads and MLPs carry the information that makes it say
that rather than " Rome"?

**Activation patching** (Vig et al. 2020, Meng et al. 2022, Wang et al. 2022; the
"best practices" of Zhang & Nanda 2023 and Heimersheim & Nanda 2024). Run the model on a
*clean* prompt ("... France is") and on a *corrupted* one that differs in one place
("... Italy is"). The metric is the logit difference ``logit(answer) - logit(alternative)``
at the last position. Then run the corrupted prompt again, but copy ONE activation from the
clean run into it (the residual stream entering layer L at position P, the output of the
attention or MLP block of layer L, or one attention head's output). The normalized effect

    effect = (patched - corrupted) / (clean - corrupted)

is 1 when that single activation restores the clean answer completely, 0 when it does
nothing, and can be negative or above 1. Patching a whole layer's residual at every position
restores the clean run exactly (effect 1), patching nothing leaves it at 0: the unit tests
check both.

*Cost.* A patched run is identical to the corrupted run up to the layer it patches, so every
run that patches layer L starts from the corrupted residual stream entering layer L and runs
only layers L..n-1, and all runs that start at the same layer are stacked into one batch
(chunked to bound memory). Only the last position is unembedded, and only for the two
tokens compared. A full sweep therefore costs less than the same number of plain forwards
(``benchmarks/bench_patching.py`` measures both side by side).

**Attribution patching** (Nanda 2023; Syed et al. 2023, "AtP"). The linear approximation
``patched - corrupted ≈ (a_clean - a_corrupted) · ∂metric/∂a`` evaluated on the corrupted
run gives an estimate for *every* component from one forward and one backward pass (plus
the clean forward for ``a_clean``). It is good for small, local changes and can miss
saturated nonlinearities (attention patterns, norms), so gnothi reports its agreement with
the exact sweep when both run.

**Causal tracing** (Meng et al. 2022, ROME). Corrupt the *subject's* token embeddings with
Gaussian noise (3x the embedding standard deviation), then restore one clean hidden state
(the residual stream after layer L at position P, or the MLP / attention output over a
window of layers) and measure how much of the answer's probability comes back. It shows
where the subject's information matters: at the last subject token in early-middle MLPs,
and at the last token in later layers.

Multi-token answers: the metric is the logit difference at the FIRST token where answer
and alternative differ; any shared leading tokens (" New York" vs " New Delhi" share
" New") are appended to both prompts first, so the comparison is made where the two answers
actually diverge. Later answer tokens are not measured (each report says so).
"""

from __future__ import annotations

from .activation import patch, patch_or_trace
from .attribution import attribution_sweep
from .corruption import Corruption, auto_corrupt
from .engine import PatchSpec, _last_logits, _logit_diff_readout, _make_hook, _names_for, build_specs, exact_sweep, run_specs
from .prompts import _build_metric, _ids, _length_mismatch, _Metric, _prompt_tokens, _same_length_options, _tok_str, align_prompts, differing_span
from .reports import PatchReport, TraceReport, _component_name, _layer_profile, _pearson, _r, _top_components
from .schemas import KIND_WORDS, KINDS, Component, KindEffects, Mode, PatchArgs, PromptPair, TraceArgs, TracePeak
from .tracing import _embedding_std, causal_trace, find_subject, subject_positions
from .words import _CAP_RUN, _WORD_CATEGORY, _WORD_RE, ENTITIES, _word_case

# every name the single-module gnothi.tools.patching had, private helpers included (tests and benchmarks use some)
__all__ = [
    "ENTITIES", "KINDS", "KIND_WORDS", "Component", "Corruption", "KindEffects", "Mode", "PatchArgs", "PatchReport", "PatchSpec",
    "PromptPair", "TraceArgs", "TracePeak", "TraceReport", "align_prompts", "attribution_sweep", "auto_corrupt", "build_specs",
    "causal_trace", "differing_span", "exact_sweep", "find_subject", "patch", "patch_or_trace", "run_specs", "subject_positions",
    "_CAP_RUN", "_Metric", "_WORD_CATEGORY", "_WORD_RE", "_build_metric", "_component_name", "_embedding_std", "_ids",
    "_last_logits", "_layer_profile", "_length_mismatch", "_logit_diff_readout", "_make_hook", "_names_for", "_pearson",
    "_prompt_tokens", "_r", "_same_length_options", "_tok_str", "_top_components", "_word_case",
]
