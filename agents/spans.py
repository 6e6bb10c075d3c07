"""Free-text arguments learned from data: which words of a question are the answer, the
alternative, the topic or the token.

The grammar (:mod:`gnothi.agents.extract`) reads notations: units, numbers, quotes. What is
left is wording: "which layers make it say woof after '...'", "features relating to
legal language", "the model says Berlin". A small sequence tagger reads it instead of a
rule per phrasing: each word (a quoted text counts as one word) gets B/I/O from a logistic
regression over its neighbourhood (the word, its shape, two words either side, how common
it is in questions at all), trained on the development corpus, one tagger per argument.
The best contiguous B I* run is the argument.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

from .extract import _QUOTE_RE

# (tool, argument) pairs read by a tagger
SPAN_ARGS = [
    ("activation_patching", "answer"),
    ("activation_patching", "alternative"),
    ("sae_feature_search", "query"),
    ("hallucination_detector", "question"),
    ("hallucination_detector", "answer"),
    ("hallucination_detector", "context"),
    ("neuron_explainer", "token"),
]
Q = "<q>"
# a span starts where P(B) reaches this; chosen with C by family-grouped cross-validation on the dev corpus
MIN_SCORE = 0.2
TAGGER_C = 1.0
# words that open a question: a paraphrased question's label reaches back to them
WH = {"who", "whom", "whose", "what", "when", "where", "which", "how", "why", "is", "are", "was", "were", "did", "does", "do", "in", "on", "at",
      "year", "many", "much", "can", "has", "have", "the"}
_WORD = re.compile(r"[\w'’.-]*\w|[^\w\s]")


@dataclass
class Tok:
    text: str  # the word, or the quoted text without its quotes
    start: int
    end: int
    quoted: bool = False

    @property
    def key(self) -> str:
        return Q if self.quoted else self.text.lower()


def tokens(text: str) -> list[Tok]:
    """Words and quoted texts of ``text``, with their character offsets."""
    out: list[Tok] = []
    pos = 0
    for m in _QUOTE_RE.finditer(text):
        out.extend(Tok(w.group(0), pos + w.start(), pos + w.end()) for w in _WORD.finditer(text[pos:m.start()]))
        inner = next(g for g in m.groups() if g is not None)
        out.append(Tok(inner, m.start(), m.end(), quoted=True))
        pos = m.end()
    out.extend(Tok(w.group(0), pos + w.start(), pos + w.end()) for w in _WORD.finditer(text[pos:]))
    return out


def _shape(w: str) -> str:
    if w == Q:
        return "Q"
    if w[:1].isupper():
        return "Xx" if not w.isupper() or len(w) == 1 else "XX"
    if w[:1].isdigit():
        return "d"
    if not w[:1].isalnum():
        return "p"
    return "x"


def _label(toks: list[Tok], value: str, reach_back: bool = False) -> list[str] | None:
    """B/I/O for ``value`` in ``toks``; None when the value is not there word for word.

    ``reach_back``: the value is part of a question ("capital of Brazil" in "what is the
    capital of Brazil"): the span starts at the question words just before it."""
    v = value.strip()
    for i, t in enumerate(toks):
        if t.quoted and t.text.strip().lower() == v.lower():
            return ["O"] * i + ["B"] + ["O"] * (len(toks) - i - 1)
    want = [w.group(0).lower() for w in _WORD.finditer(v)]
    if not want:
        return None
    keys = [t.key for t in toks]
    for i in range(len(keys) - len(want) + 1):
        if keys[i:i + len(want)] == want:
            j = i
            while reach_back and j > 0 and i - j < 4 and keys[j - 1] in WH:
                j -= 1
            return ["O"] * j + ["B"] + ["I"] * (i + len(want) - j - 1) + ["O"] * (len(toks) - i - len(want))
    return None


class SpanTagger:
    """One argument's tagger: ``fit(questions, values)``; ``find(question)`` -> (text, quoted, score) or None."""

    def __init__(self, C: float = TAGGER_C, reach_back: bool = False):
        self.C = C
        self.reach_back = reach_back
        self.df: Counter = Counter()
        self.n_docs = 1

    def _feats(self, toks: list[Tok], i: int) -> dict[str, float]:
        keys = [t.key for t in toks]
        w = keys[i]
        f = {"w=" + w: 1.0, "shape=" + _shape(toks[i].text if not toks[i].quoted else Q): 1.0, "bias": 1.0}
        f["suf3=" + w[-3:]] = 1.0
        for d in (-2, -1, 1, 2):
            j = i + d
            f[f"w{d:+d}=" + (keys[j] if 0 <= j < len(keys) else "<s>")] = 1.0
        f["w-1w-2=" + "|".join(keys[max(0, i - 2):i])] = 1.0
        if toks[i].quoted:
            f["q_words=" + str(min(4, len(toks[i].text.split())))] = 1.0
            f["q_space=" + str(toks[i].text[:1].isspace())] = 1.0
            f["q_mark=" + str(toks[i].text.rstrip().endswith("?"))] = 1.0
            f["q_rank=" + str(sum(1 for t in toks[:i] if t.quoted))] = 1.0
        df = self.df.get(w, 0) / self.n_docs
        f["df=" + str(min(6, int(-math.log10(df + 1e-6) * 2)))] = 1.0
        f["last"] = float(i == len(toks) - 1)
        return f

    def fit(self, questions: Iterable[str], values: Iterable[str | None]) -> "SpanTagger":
        from sklearn.feature_extraction import DictVectorizer
        from sklearn.linear_model import LogisticRegression

        data = [(tokens(q), v) for q, v in zip(questions, values)]
        self.n_docs = max(1, len(data))
        self.df = Counter(k for toks, _ in data for k in {t.key for t in toks})
        X, y = [], []
        for toks, v in data:
            labels = ["O"] * len(toks) if v is None else _label(toks, v, self.reach_back)
            if labels is None:
                continue
            for i in range(len(toks)):
                X.append(self._feats(toks, i))
                y.append(labels[i])
        if "B" not in y:
            raise ValueError("no training question holds this argument word for word")
        self._vec = DictVectorizer()
        self._clf = LogisticRegression(C=self.C, max_iter=2000)
        self._clf.fit(self._vec.fit_transform(X), y)
        self._classes = list(self._clf.classes_)
        return self

    def find(self, question: str, min_score: float = MIN_SCORE) -> tuple[str, bool, float] | None:
        toks = tokens(question)
        if not toks or "B" not in self._classes:
            return None
        P = self._clf.predict_proba(self._vec.transform([self._feats(toks, i) for i in range(len(toks))]))
        b, ii = self._classes.index("B"), self._classes.index("I") if "I" in self._classes else None
        best = None
        for i in range(len(toks)):
            if P[i, b] < min_score:
                continue
            j = i + 1
            while ii is not None and j < len(toks) and not toks[j].quoted and P[j, ii] >= 0.5:
                j += 1
            score = P[i, b]
            if best is None or score > best[2]:
                best = (i, j, score)
        if best is None:
            return None
        i, j, score = best
        if toks[i].quoted and j == i + 1:
            return toks[i].text, True, float(score)
        return question[toks[i].start:toks[j - 1].end], False, float(score)


def _value(args: dict, key: str) -> str | None:
    v = args.get(key, args.get(key + "~"))
    return v if isinstance(v, str) else None


def train_taggers(rows: Iterable[dict]) -> dict[tuple[str, str], SpanTagger]:
    """One tagger per (tool, argument) in :data:`SPAN_ARGS`, from single-call corpus rows of that tool."""
    rows = [r for r in rows if len(r["expect"].get("tools") or []) == 1 and len(r["expect"].get("args") or []) == 1
            and r.get("question", "").strip() and len(r["question"]) < 2000]
    out = {}
    for tool, key in SPAN_ARGS:
        mine = [r for r in rows if r["expect"]["tools"][0] == tool]
        qs = [r["question"] for r in mine]
        vals = [_value(r["expect"]["args"][0], key) for r in mine]
        if any(v is not None for v in vals):
            try:
                out[(tool, key)] = SpanTagger(reach_back=(key == "question")).fit(qs, vals)
            except ValueError:  # nothing to learn this argument from: the grammar alone reads it
                pass
    return out


_LOCK = threading.Lock()
_TAGGERS: dict[tuple[str, str], SpanTagger] | None = None


def get_taggers() -> dict[tuple[str, str], SpanTagger]:
    """The taggers trained on the dev corpus (once per process)."""
    global _TAGGERS
    with _LOCK:
        if _TAGGERS is None:
            from .router import load_rows

            _TAGGERS = train_taggers(load_rows())
        return _TAGGERS


def find_span(tool: str, key: str, question: str, taggers: dict | None = None) -> tuple[str, bool, float] | None:
    """The learned reading of argument ``key`` of ``tool`` in ``question``, or None."""
    t = (taggers if taggers is not None else get_taggers()).get((tool, key))
    return t.find(question) if t is not None else None
