"""Token text for people: one place that turns token ids into strings.

Byte-level tokenizers (GPT-2 style, SmolLM2, Qwen) and byte-fallback ones (Gemma,
Llama's SentencePiece) split a character outside ASCII, such as 東, into several tokens
that each hold part of its UTF-8 bytes. Decoding such a token alone gives U+FFFD, the
replacement character, which is what a naive per-token list shows. Here:

* :func:`token_bytes` is a token's raw bytes, read from the tokenizer's own vocabulary;
* :func:`pieces` splits a sequence's text over its tokens so that the pieces join to
  exactly the decoded text: each character sits on the token that completes it (where
  the model has read all of it), and a token that only starts a character is "";
* :func:`labels` gives every token a readable label of its own: a character split over
  tokens is shown whole with its part, ``東(1/2)`` and ``東(2/2)``;
* :func:`label` is one token out of context: its text, with the bytes of an unfinished
  character written as ``\\xe6\\x9d``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Sequence

from .errors import InputError

_BYTE_TOKEN = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable alphabet for bytes, inverted (the ByteLevel pre-tokenizer's map)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def _text(tokenizer, i: int) -> str:
    return tokenizer.decode([int(i)], clean_up_tokenization_spaces=False)


def token_bytes(tokenizer, i: int) -> bytes:
    """The raw bytes token ``i`` stands for (its decoded text's UTF-8 when that is whole)."""
    s = _text(tokenizer, i)
    if "\ufffd" not in s:
        return s.encode("utf-8")
    raw = tokenizer.convert_ids_to_tokens(int(i))
    if isinstance(raw, str):
        m = _BYTE_TOKEN.match(raw)
        if m:  # SentencePiece byte fallback: "<0xE6>"
            return bytes([int(m.group(1), 16)])
        dec = _byte_decoder()
        if raw and all(c in dec for c in raw):  # byte-level BPE: the token in GPT-2's byte alphabet
            return bytes(dec[c] for c in raw)
    return s.encode("utf-8")  # a token that really is U+FFFD


def label(tokenizer, i: int) -> str:
    """One token out of context: its text, an unfinished character's bytes as ``\\xe6\\x9d``."""
    s = _text(tokenizer, i)
    if "\ufffd" not in s:
        return s
    return token_bytes(tokenizer, i).decode("utf-8", errors="backslashreplace")


def _chars(chunks: Sequence[bytes]) -> list[tuple[str, int, int]]:
    """The characters of the joined bytes as ``(char, first token, last token)``; a byte
    that starts no valid character stands for itself as ``\\xNN``."""
    owner = [k for k, c in enumerate(chunks) for _ in c]
    data = b"".join(chunks)
    out: list[tuple[str, int, int]] = []
    p = 0
    while p < len(data):
        b = data[p]
        n = 1 if b < 0x80 else 2 if b >> 5 == 0b110 else 3 if b >> 4 == 0b1110 else 4 if b >> 3 == 0b11110 else 0
        ch = None
        if n:
            try:
                ch = data[p:p + n].decode("utf-8")
            except UnicodeDecodeError:
                ch = None
        if ch is None:
            out.append((f"\\x{b:02x}", owner[p], owner[p]))
            p += 1
        else:
            out.append((ch, owner[p], owner[p + n - 1]))
            p += n
    return out


def _simple(tokenizer, ids: Sequence[int]) -> list[str] | None:
    """Each token's own text, when none of them holds part of a character."""
    texts = [_text(tokenizer, i) for i in ids]
    return None if any("\ufffd" in t for t in texts) else texts


def _per_token(tokenizer, ids: Sequence[int], place) -> list[str]:
    """One string per token: each token's own text when none holds part of a character,
    else built by ``place(out, char, first token, last token)`` for every character."""
    ids = [int(i) for i in ids]
    simple = _simple(tokenizer, ids)
    if simple is not None:
        return simple
    out = [""] * len(ids)
    for ch, first, last in _chars([token_bytes(tokenizer, i) for i in ids]):
        place(out, ch, first, last)
    return out


def _on_last(out: list[str], ch: str, first: int, last: int) -> None:
    out[last] += ch


def _on_each(out: list[str], ch: str, first: int, last: int) -> None:
    if first == last:
        out[first] += ch
        return
    for j in range(first, last + 1):
        out[j] += f"{ch}({j - first + 1}/{last - first + 1})"


def pieces(tokenizer, ids: Sequence[int]) -> list[str]:
    """Text per token that joins to the sequence's text; a character sits on the token that
    completes it, so a token that only starts one is ""."""
    return _per_token(tokenizer, ids, _on_last)


def labels(tokenizer, ids: Sequence[int]) -> list[str]:
    """A readable label per token: a character split over k tokens is shown whole on each,
    with its part: ``東(1/2)``, ``東(2/2)``."""
    return _per_token(tokenizer, ids, _on_each)


def find(tokens: Sequence[str], token: str | int, start: int = 0) -> int:
    """The position of ``token`` in ``tokens`` (the :func:`pieces` of a text).

    An int is a position (negative counts from the end). A string matches, from ``start``
    on: a token exactly; then one equal up to case and surrounding space; then the last
    token of a word the tokenizer split (its first occurrence); then a token of at least
    two characters that holds it. Anything else is an InputError that
    lists the tokens.
    """
    n = len(tokens)
    if isinstance(token, int) and not isinstance(token, bool):
        if not -n <= token < n:
            raise InputError(f"Token position {token} is out of range: the text has {n} tokens (0 to {n - 1}).",
                             f"Pick a position from 0 to {n - 1}; the tokens are {list(tokens)[:40]}.")
        return token % n
    if not isinstance(token, str) or not token.strip():
        raise InputError("No token given.", "Name a token that occurs in the text, or give its position as an integer.")
    want = token.strip().lower()
    rng = range(start, n)
    for ok in (lambda t: t == token, lambda t: t.strip().lower() == want):
        hit = next((i for i in rng if ok(tokens[i])), None)
        if hit is not None:
            return hit
    joined = ""
    for i in rng:
        joined += tokens[i]
        if joined.lower().rstrip().endswith(want):
            return i
    for i in rng:
        t = tokens[i].strip().lower()
        if len(t) >= 2 and want in t:  # "Paris" in " Parisian"; never a shorter token inside what was asked
            return i
    shown = [t for t in tokens[start:]][:40]
    raise InputError(f"{token!r} is not a token of the text.", f"Pick one of its tokens, {shown}, or give a position number.")


def completing(pieces_: Sequence[str], i: int) -> int:
    """The position that shows token ``i``'s character: ``i`` itself, or, for a token that
    only starts a character (an empty piece), the next token, which completes it."""
    while i + 1 < len(pieces_) and not pieces_[i]:
        i += 1
    return i


def merge_partial(tokens_: Sequence[str], values: Sequence[float]) -> tuple[list[str], list[float]]:
    """``(tokens, values)`` for display: each empty piece (a token that only starts a
    character, see :func:`pieces`) is folded into the token that completes it, which keeps
    the larger of their values by magnitude. Texts without split characters pass unchanged."""
    if all(tokens_):
        return list(tokens_), [float(v) for v in values]
    out_t: list[str] = []
    out_v: list[float] = []
    pending: list[float] = []
    for t, v in zip(tokens_, values):
        if not t:
            pending.append(float(v))
            continue
        out_t.append(t)
        out_v.append(max([*pending, float(v)], key=abs))
        pending = []
    if pending:  # a text that ends inside a character
        out_t.append("")
        out_v.append(max(pending, key=abs))
    return out_t, out_v
