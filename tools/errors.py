"""Errors a user can hit, each with what went wrong and what to do about it.

Every error gnothi raises on purpose is a :class:`GnothiError`: it carries a one-line
``message`` (what happened) and a ``fix`` (what to do). The CLI prints both and exits
with status 2; the UI and the assistant show them in the reply. The README's error
catalogue lists every subclass (``tests/unit/test_errors.py`` checks that it does).
"""

from __future__ import annotations

import re


class GnothiError(Exception):
    """Base class: an expected problem with a message and a fix."""

    code = "gnothi_error"

    def __init__(self, message: str, fix: str = ""):
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:  # pragma: no cover - trivial
        return f"{self.message}\n  fix: {self.fix}" if self.fix else self.message

    def to_dict(self) -> dict:
        return {"error": self.code, "message": self.message, "fix": self.fix}


class UnknownModelError(GnothiError):
    code = "unknown_model"


class ModelNotCachedError(GnothiError):
    code = "model_not_cached"


class UnsafeWeightsError(GnothiError):
    code = "unsafe_weights"


class UnsupportedArchitectureError(GnothiError):
    code = "unsupported_architecture"


class CacheCorruptError(GnothiError):
    code = "cache_corrupt"


class OutOfRangeError(GnothiError):
    code = "out_of_range"


class UnknownHookPointError(GnothiError):
    code = "unknown_hook_point"


class CorpusError(GnothiError):
    code = "corpus_error"


class InputError(GnothiError):
    """Malformed or unusable user input (empty text, mismatched prompts, bad file)."""

    code = "bad_input"


class PromptAlignmentError(InputError):
    """Clean and corrupted prompts that cannot be lined up token for token (different token
    counts, or no same-length swap of the subject exists)."""

    code = "prompt_alignment"


class StoreError(GnothiError):
    code = "store_error"


class SAEError(GnothiError):
    code = "sae_error"


class SAENotFoundError(SAEError):
    """No SAE where one was asked for (none trained yet, or a wrong path)."""

    code = "sae_not_found"


class SAECorruptError(SAEError):
    """An SAE folder is damaged: missing/garbled files, wrong shapes, NaNs, checksum mismatch."""

    code = "sae_corrupt"


class MemoryBoundError(GnothiError):
    """A run would need more memory than the bound (``GNOTHI_MEMORY_LIMIT_GB``)."""

    code = "memory_bound"


class LLMError(GnothiError):
    code = "llm_error"


class ToolUnavailableError(GnothiError):
    """A tool agent's tool is not installed in this version (the agent says so, no fake result)."""

    code = "tool_unavailable"


class NoAnswerError(GnothiError):
    """The model produced no answer to score (empty generation)."""

    code = "no_answer"


class CardError(GnothiError):
    """A method card (``tools/cards/*.md``) that breaks the card format."""

    code = "card_invalid"


SURROGATE_RE = re.compile("[\ud800-\udfff]")  # lone surrogates: how Python decodes bytes that were not UTF-8


def check_unicode(text: str) -> None:
    """InputError for text holding lone surrogates: no tokenizer can read them."""
    m = SURROGATE_RE.search(text)
    if m:
        raise InputError(
            f"The text holds a character that is not valid Unicode at position {m.start()} (a lone surrogate, e.g. from bytes that were not UTF-8).",
            "Pass UTF-8 text (replace such characters, e.g. with U+FFFD).",
        )


def shorten(text: str, limit: int = 200) -> str:
    """``text`` cut at a word boundary to at most ``limit`` characters, with an ellipsis when cut."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:") + "…"


def describe_failure(e: BaseException, limit: int = 200) -> str:
    """What went wrong, for a message: a gnothi error's own message, else its type and text."""
    if isinstance(e, GnothiError):
        return shorten(e.message, limit)
    return shorten(f"{type(e).__name__}: {e}", limit)


def check_range(what: str, value: int, n: int) -> int:
    """Raise :class:`OutOfRangeError` unless ``0 <= value < n``; return ``value``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise OutOfRangeError(f"{what} must be an integer, got {value!r}.", f"Use an integer from 0 to {n - 1}.")
    if not 0 <= value < n:
        raise OutOfRangeError(
            f"{what} {value} is out of range: this model has {n} ({what}s 0 to {n - 1}).",
            f"Pick a {what} from 0 to {n - 1}.",
        )
    return value
