"""Automatic corruption: swap the subject or a name for a word of the same token length."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import torch

from ..errors import PromptAlignmentError
from .engine import _last_logits
from .prompts import _prompt_tokens
from .words import _WORD_CATEGORY, _WORD_RE, ENTITIES, _word_case

if TYPE_CHECKING:
    from ..model import ModelHandle


@dataclass
class Corruption:
    corrupted: str
    original: str
    replacement: str
    category: str
    tried: int
    metric: float  # the corrupted metric of the chosen swap
    alternative_id: int | None = None



def auto_corrupt(handle: ModelHandle, clean: str, answer_id: int, alt_id: int | None = None, suffix: Sequence[int] = (), max_candidates: int = 64) -> Corruption:
    """Build a corrupted prompt by swapping the subject or a name for another of the same token length.

    Candidate sites are words of the prompt found in :data:`ENTITIES` (countries, cities,
    first names, animals, objects; then any capitalized word after the first); candidate
    replacements are words of the same category whose swap keeps every other token in
    place. All candidates run in one batch; the swap that lowers the metric most is kept
    (with no alternative given: the one that pushes the answer furthest below the
    corrupted prompt's own top prediction, which becomes the alternative).
    """
    base = _prompt_tokens(handle, clean, suffix)[0]
    n = base.shape[0]
    words = list(_WORD_RE.finditer(clean))
    sites = [m for m in words if m.group(0).lower() in _WORD_CATEGORY]
    if not sites:
        sites = [m for m in words[1:] if m.group(0)[:1].isupper()]
    if not sites:
        raise PromptAlignmentError(
            f"Could not find a subject or name to swap in {clean!r} (no known country, city, name, animal or object, and no capitalized word).",
            "Give --corrupted yourself: the same prompt with the subject swapped for a word of the same token length.",
        )
    unk = getattr(handle.tokenizer, "unk_token_id", None)
    cands: list[tuple[str, str, str, str, torch.Tensor]] = []
    seen = set()
    for m in sites:
        word = m.group(0)
        cat = _WORD_CATEGORY.get(word.lower(), "name")
        pool = ENTITIES.get(cat) or [w for ws in ENTITIES.values() for w in ws if w[:1].isupper()]
        pat = re.compile(r"\b" + re.escape(word) + r"\b")
        for w in pool:
            w = _word_case(word, w)
            if w.lower() == word.lower() or (word, w) in seen:
                continue
            seen.add((word, w))
            text = pat.sub(w, clean)
            t = _prompt_tokens(handle, text, suffix)[0]
            if t.shape[0] != n or (unk is not None and bool((t == unk).any()) and not bool((base == unk).any())):
                continue
            cands.append((text, word, w, cat, t))
    if not cands:
        raise PromptAlignmentError(
            f"Found {', '.join(repr(m.group(0)) for m in sites)} to swap, but no replacement keeps the prompt's token count ({n}).",
            "Give --corrupted yourself with the same number of tokens.",
        )
    # spread candidates over sites before truncating
    by_site: dict[str, list] = {}
    for c in cands:
        by_site.setdefault(c[1], []).append(c)
    mixed: list[tuple[str, str, str, str, torch.Tensor]] = []
    while any(by_site.values()) and len(mixed) < max_candidates:
        for k in list(by_site):
            if by_site[k]:
                mixed.append(by_site[k].pop(0))
    toks = torch.stack([c[4] for c in mixed])
    scores, alts = [], []
    for i in range(0, len(mixed), 32):
        lg = _last_logits(handle, toks[i : i + 32])
        if alt_id is not None:
            scores.append(lg[:, answer_id] - lg[:, alt_id])
            alts.append(torch.full((lg.shape[0],), alt_id))
        else:
            other = lg.clone()
            other[:, answer_id] = float("-inf")
            best, arg = other.max(dim=-1)
            scores.append(lg[:, answer_id] - best)
            alts.append(arg)
    scores_t, alts_t = torch.cat(scores), torch.cat(alts)
    j = int(scores_t.argmin())
    text, word, w, cat, _ = mixed[j]
    return Corruption(text, word, w, cat, len(mixed), float(scores_t[j]), int(alts_t[j]))
