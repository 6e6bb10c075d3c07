"""Methods suite: does retrieval find the right method card (and section) for questions people ask?

The questions (``evals/data/methods_questions.jsonl``, 66, six per card) were written from a list of
the card names and subjects, without the cards' text, and frozen before retrieval was measured on
them. Controls: chance (one card in 11), a keyword-overlap retriever (the card whose keywords the
question shares most), and for sections the most frequent section.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from gnothi.tools import methods

from .registry import SuiteContext, SuiteResult, suite

QUESTIONS = Path(__file__).resolve().parent / "data" / "methods_questions.jsonl"


def keyword_baseline(question: str, cards: list[methods.Card]) -> str:
    q = question.lower()
    score = {c.name: sum(1 for k in c.keywords if re.search(r"\b" + re.escape(k.lower()) + r"\b", q)) for c in cards}
    return max(cards, key=lambda c: (score[c.name], -cards.index(c))).name


@suite("methods")
def run(ctx: SuiteContext) -> SuiteResult:
    """Card and section accuracy of method-card retrieval, beside chance, keyword overlap and the majority section."""
    rows = [json.loads(x) for x in QUESTIONS.read_text(encoding="utf-8").splitlines() if x.strip()]
    cards = methods.load_cards()
    hits, sec_hits, kw_hits, misses = 0, 0, 0, []
    by_card: dict[str, list[bool]] = {}
    for r in rows:
        a = methods.explain_method(r["question"])
        ok = a.card == r["card"]
        hits += ok
        sec_hits += ok and a.section == r["section"]
        kw_hits += keyword_baseline(r["question"], cards) == r["card"]
        by_card.setdefault(r["card"], []).append(ok)
        if not ok:
            misses.append([r["id"], r["question"][:90], r["card"], a.card])
    n = len(rows)
    majority = Counter(r["section"] for r in rows).most_common(1)[0][1] / n
    res = SuiteResult(suite="methods")
    res.metrics = {"card_accuracy": round(hits / n, 4), "card_and_section_accuracy": round(sec_hits / n, 4)}
    res.baselines = {"card_accuracy": {"chance": round(1 / len(cards), 4), "keyword_overlap": round(kw_hits / n, 4)},
                     "card_and_section_accuracy": round(majority / len(cards), 4)}
    res.tables.append({"title": "Card accuracy per card", "columns": ["card", "right", "questions"],
                       "rows": [[c, sum(v), len(v)] for c, v in sorted(by_card.items())]})
    res.tables.append({"title": "Misses", "columns": ["id", "question", "expected card", "retrieved"], "rows": misses})
    res.passed = hits / n > kw_hits / n and hits / n > 1 / len(cards)
    res.provenance = {"questions": str(QUESTIONS.name), "n": n, "cards": len(cards)}
    return res
