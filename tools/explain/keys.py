"""Token keys and the lengths the explainers, simulators and modes share."""

from __future__ import annotations

from .. import explain_refine

CONTEXT_SPAN = 8  # preceding tokens looked at for context words
MAX_TOKENS_NAMED = 5

token_key = explain_refine.key  # normalised token for matching: stripped, lower-case; whitespace spelled out
