"""The logit-difference metric and lining up clean and corrupted prompts token for token."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import torch

from .. import tokens as tok_text
from ..errors import InputError, PromptAlignmentError
from .schemas import PromptPair
from .words import _WORD_CATEGORY, ENTITIES, _word_case

if TYPE_CHECKING:
    from ..model import ModelHandle


@dataclass
class _Metric:
    answer_id: int
    alt_id: int
    suffix: list[int]  # shared leading answer tokens appended to both prompts
    answer: str
    alternative: str
    note: str


def _ids(handle: ModelHandle, text: str) -> list[int]:
    return list(handle.tokenizer(text, add_special_tokens=False)["input_ids"])


def _tok_str(handle: ModelHandle, i: int) -> str:
    return tok_text.label(handle.tokenizer, i)


def _build_metric(handle: ModelHandle, answer: str, alternative: str) -> _Metric:
    if not isinstance(answer, str) or answer == "":
        raise InputError("The answer is empty.", "Give the answer the model should produce, e.g. --answer ' Paris' (mind the leading space).")
    if not isinstance(alternative, str) or alternative == "":
        raise InputError("The alternative answer is empty.", "Give a competing answer, e.g. --alternative ' Rome', or leave it out to use the corrupted prompt's top prediction.")
    a, b = _ids(handle, answer), _ids(handle, alternative)
    if a == b:
        raise InputError(
            f"The answer {answer!r} and the alternative {alternative!r} are the same tokens.",
            "Pick an alternative the model could say instead, e.g. the answer for the corrupted prompt.",
        )
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    if k == len(a) or k == len(b):
        short, long_ = (answer, alternative) if k == len(a) else (alternative, answer)
        raise InputError(
            f"{short!r} is a prefix of {long_!r} at the token level, so no token tells them apart.",
            "Use answers that differ in at least one token position, e.g. ' Paris' vs ' Rome'.",
        )
    note = f"logit({_tok_str(handle, a[k])!r}) - logit({_tok_str(handle, b[k])!r}) at the last position"
    if k > 0:
        note += (
            f", after appending the shared answer tokens {[_tok_str(handle, t) for t in a[:k]]} to both prompts "
            "(the answers share them; this is the first token where they differ)"
        )
    if len(a) > k + 1 or len(b) > k + 1:
        note += f". The answers are {len(a)} and {len(b)} tokens; only this first differing token is measured, later tokens are not"
    return _Metric(a[k], b[k], a[:k], answer, alternative, note)


def _prompt_tokens(handle: ModelHandle, text: str, suffix: Sequence[int] = ()) -> torch.Tensor:
    if not isinstance(text, str) or not text.strip():
        raise InputError("The prompt is empty.", "Give a prompt, e.g. --clean 'The capital of France is'.")
    toks = handle.to_tokens(text)
    if suffix:
        toks = torch.cat([toks, torch.tensor([list(suffix)], dtype=toks.dtype, device=toks.device)], dim=1)
    return toks



def _same_length_options(handle: ModelHandle, word: str, n_tokens: int, limit: int = 6) -> list[str]:
    cat = _WORD_CATEGORY.get(word.strip().lower())
    pool = ENTITIES[cat] if cat else [w for ws in ENTITIES.values() for w in ws if w[:1].isupper()]
    out = []
    for w in pool:
        w = _word_case(word.strip(), w)
        if w.lower() == word.strip().lower():
            continue
        if len(_ids(handle, " " + w)) == n_tokens:
            out.append(w)
        if len(out) >= limit:
            break
    return out


def _length_mismatch(handle: ModelHandle, clean: str, corrupted: str, ct: list[int], rt: list[int]) -> PromptAlignmentError:
    cs, rs = [_tok_str(handle, t) for t in ct], [_tok_str(handle, t) for t in rt]
    sm = difflib.SequenceMatcher(a=ct, b=rt, autojunk=False)
    diffs = [(i1, i2, j1, j2) for tag, i1, i2, j1, j2 in sm.get_opcodes() if tag != "equal"]
    parts = [f"{''.join(cs[i1:i2])!r} ({i2 - i1} token{'s' if i2 - i1 != 1 else ''}) became {''.join(rs[j1:j2])!r} ({j2 - j1} token{'s' if j2 - j1 != 1 else ''})" for i1, i2, j1, j2 in diffs]
    fix = "Give a corrupted prompt with the same number of tokens (swap a word for one of the same token length), or leave --corrupted out to build one automatically."
    if len(diffs) == 1:
        i1, i2, _, _ = diffs[0]
        word = "".join(cs[i1:i2])
        opts = _same_length_options(handle, word, i2 - i1)
        if opts:
            fix = f"Swap {word.strip()!r} for a word of the same token length, e.g. {', '.join(opts)}; or leave --corrupted out to build one automatically."
    return PromptAlignmentError(
        f"The clean prompt is {len(ct)} tokens and the corrupted one {len(rt)}: {'; '.join(parts) or 'they differ'}. "
        "Patching copies activations position by position, so both prompts must line up token for token.",
        fix,
    )


def align_prompts(handle: ModelHandle, clean: str, corrupted: str, suffix: Sequence[int] = ()) -> tuple[torch.Tensor, torch.Tensor, PromptPair]:
    """Tokenize clean and corrupted prompts that line up token for token, or refuse with the reason.

    Raises :class:`InputError` when the token counts differ (with the differing spans and
    same-length replacements to use instead) or when the two prompts are the same tokens.
    """
    ct = _prompt_tokens(handle, clean, suffix)
    if not isinstance(corrupted, str) or not corrupted.strip():
        raise InputError("The corrupted prompt is empty.", "Give one, or leave --corrupted out to build one automatically.")
    rt = _prompt_tokens(handle, corrupted, suffix)
    if ct.shape[1] != rt.shape[1]:
        raise _length_mismatch(handle, clean, corrupted, ct[0].tolist(), rt[0].tolist())
    changed = (ct[0] != rt[0]).nonzero().flatten().tolist()
    if not changed:
        raise InputError(
            "The clean and corrupted prompts are the same tokens, so there is nothing to patch.",
            "Change the subject or a name in the corrupted prompt (same token length), or leave --corrupted out.",
        )
    pair = PromptPair(
        clean=clean,
        corrupted=corrupted,
        clean_tokens=handle.str_tokens(ct[0]),
        corrupted_tokens=handle.str_tokens(rt[0]),
        changed_positions=changed,
    )
    return ct, rt, pair


def differing_span(handle: ModelHandle, clean: str, corrupted: str) -> str | None:
    """The words of ``clean`` that ``corrupted`` changes (the subject two prompts disagree on), or None."""
    try:
        ct = handle.tokenizer(clean, add_special_tokens=False, return_offsets_mapping=True)
    except (NotImplementedError, ValueError):  # a slow tokenizer has no offsets: the subject is guessed instead
        return None
    rt = handle.tokenizer(corrupted, add_special_tokens=False)["input_ids"]
    sm = difflib.SequenceMatcher(a=ct["input_ids"], b=rt, autojunk=False)
    spans = [(i1, i2) for tag, i1, i2, _, _ in sm.get_opcodes() if tag != "equal" and i2 > i1]
    if not spans:
        return None
    a, b = ct["offset_mapping"][spans[0][0]][0], ct["offset_mapping"][spans[-1][1] - 1][1]
    span = clean[a:b].strip()
    return span or None
