"""The refining explainer: decompose a unit's activations into atomic conditions, keep the
ones that raise a held-out simulation score, refine each against the records where it
fails, and write the result as a short decision list anyone can read and simulate.

Everything here runs on the explainer's own records (a unit's training top records,
quantile samples and random windows); the records the explanation is finally scored on
never reach it (see :meth:`ActivationStore.unit_split`). Inside those records the windows
are split into two folds, and every decision is judged *cross-fitted*: a condition's level
is measured on one fold and its prediction scored on the other, so a condition that only
memorises one window does not raise the score.

1. **Decompose**: propose atomic conditions from the activating tokens: the token itself,
   the token after a given one, any token after a given one, the word a token is part of
   (``' respond'`` inside ``'corresponding'``), a word earlier in the context, a position
   near the start of the text, and token kinds (numbers, punctuation, line breaks, word
   starts, word continuations, capitalised words).
2. **Select**: greedily add the condition that most raises the cross-fitted Pearson of the
   simulation; stop when the gain falls below :data:`MIN_GAIN` or at
   :data:`MAX_CONDITIONS` conditions (an explanation has to stay readable).
3. **Refine**: for every kept condition, look at its false positives (it matches, the unit
   stays quiet) and try narrower versions (after a given token, but not after a given
   token, with a given context word, of a given kind); look at the misses (the unit fires,
   nothing predicts it) and propose conditions from them. A change is kept only when the
   cross-fitted score rises; the loop ends when nothing raises it.

The explanation is the decision list in words, each clause with its level on a 0-10 scale
(10 = the unit's maximum over the corpus): ``fires on "respond" after "cor" (9/10); on
"ing" (4/10); on numbers (2/10).`` Where several clauses match a token, the strongest
counts. :func:`simulate` reads the text back (nothing else), so the score is the score of
the words a person reads.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Sequence

import numpy as np

from .stats import pearson
from .store import ActivationRecord

CONTEXT_SPAN = 8  # a context word counts when it is among the 8 tokens before
MAX_CONDITIONS = 10
MIN_GAIN = 0.003  # cross-fitted Pearson a condition or a refinement must add
MAX_STEPS = 24  # add / narrow / drop steps
CANDIDATES = 25  # proposals per kind of atom
SIGNED = True  # clauses may state negative levels
LEVEL_PRIOR = 0.0  # pseudo-tokens at 0 added to every level's mean (shrinks rare conditions)
ACTIVE_LEVEL = 1.0  # tokens at >= 1/10 of the unit's max propose conditions
POSITIONS = (1, 2, 4, 8)
KINDS = {
    "numbers": "numbers",
    "punctuation": "punctuation",
    "line breaks": "line breaks",
    "word starts": "word starts (tokens with a leading space)",
    "word continuations": "word continuations (the second or later token of a word)",
    "capitalised words": "capitalised words",
}


# =========================================================================== tokens


def key(tok: str) -> str:
    """The matching key of a token: stripped, lower-case; whitespace spelled out (both
    explainers and simulators match tokens by it; ``explain.token_key`` is this function)."""
    t = tok.strip().lower()
    if t:
        return t
    if tok == "":
        return "<empty>"
    return tok.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r").replace(" ", "␣")


def _kinds(tok: str, prev: str | None) -> set[str]:
    out = set()
    s = tok.strip()
    if "\n" in tok:
        out.add("line breaks")
    if s and re.fullmatch(r"[\d.,]*\d[\d.,]*", s):
        out.add("numbers")
    if s and not re.search(r"\w", s):
        out.add("punctuation")
    if tok[:1] == " " and tok[1:2].isalpha():
        out.add("word starts")
    if tok[:1].isalpha() and prev is not None and prev[-1:].isalnum():
        out.add("word continuations")
    if s[:1].isupper():
        out.add("capitalised words")
    return out


def _words(tokens: Sequence[str]) -> list[str]:
    """The word each token is part of (lower-case; a token that starts with a space,
    a line break or punctuation starts a new word)."""
    spans: list[list[int]] = []
    for i, t in enumerate(tokens):
        joins = (i > 0 and t[:1].isalnum() and tokens[i - 1][-1:].isalnum())
        if joins and spans:
            spans[-1].append(i)
        else:
            spans.append([i])
    out = [""] * len(tokens)
    for sp in spans:
        w = "".join(tokens[i] for i in sp).strip().lower()
        for i in sp:
            out[i] = w
    return out


@dataclass
class Features:
    """Per-token features of a list of records (position 0 of each, BOS, left out)."""

    tok: list[str] = field(default_factory=list)
    prev: list[str] = field(default_factory=list)
    word: list[str] = field(default_factory=list)
    kinds: list[set[str]] = field(default_factory=list)
    pos: list[int] = field(default_factory=list)
    ctx: list[set[str]] = field(default_factory=list)
    record: list[int] = field(default_factory=list)
    multi: list[bool] = field(default_factory=list)  # the token's word spans several tokens

    @classmethod
    def of(cls, token_lists: Iterable[Sequence[str]]) -> "Features":
        f = cls()
        for r, toks in enumerate(token_lists):
            keys = [key(t) for t in toks]
            words = _words(toks)
            for i in range(1, len(toks)):
                f.tok.append(keys[i])
                f.prev.append(keys[i - 1])
                f.word.append(words[i])
                f.multi.append(i > 0 and (words[i - 1] == words[i] and toks[i][:1].isalnum()
                                          or i + 1 < len(toks) and words[i + 1] == words[i] and toks[i + 1][:1].isalnum()))
                f.kinds.append(_kinds(toks[i], toks[i - 1]))
                f.pos.append(i)
                f.ctx.append({keys[j] for j in range(max(1, i - CONTEXT_SPAN), i) if re.search(r"\w", keys[j])})
                f.record.append(r)
        return f

    def __len__(self) -> int:
        return len(self.tok)


# =========================================================================== conditions


@dataclass(frozen=True)
class Condition:
    """A conjunction of atoms; ``None`` means "any"."""

    token: str | None = None
    prev: str | None = None
    word: str | None = None
    kind: str | None = None
    first: int | None = None  # position <= first (1 = the first token after the start)
    context: str | None = None
    not_prev: tuple[str, ...] = ()

    def mask(self, f: Features, cache: dict) -> np.ndarray:
        got = cache.get(self)
        if got is not None:
            return got
        m = np.ones(len(f), dtype=bool)
        if self.token is not None:
            m &= _atom(f, cache, "tok", self.token)
        if self.prev is not None:
            m &= _atom(f, cache, "prev", self.prev)
        if self.word is not None:
            m &= _atom(f, cache, "word", self.word)
        if self.kind is not None:
            m &= _atom(f, cache, "kind", self.kind)
        if self.first is not None:
            m &= _atom(f, cache, "first", self.first)
        if self.context is not None:
            m &= _atom(f, cache, "ctx", self.context)
        for p in self.not_prev:
            m &= ~_atom(f, cache, "prev", p)
        cache[self] = m
        return m

    def describe(self) -> str:
        """The clause in words (without its level); :func:`parse` reads it back."""
        if self.token is not None:
            s = _q(self.token)
            if self.word is not None:
                s += f" inside the word {_q(self.word)}"
        elif self.word is not None:
            s = f"any part of the word {_q(self.word)}"
        elif self.kind is not None:
            s = KINDS[self.kind]
        else:
            s = "any token"
        if self.kind is not None and (self.token is not None or self.word is not None):
            s += f" as {self.kind}"
        if self.prev is not None:
            s = (f"any token right after {_q(self.prev)}" if s == "any token" else f"{s} after {_q(self.prev)}")
        if self.first is not None:
            s += f" among the first {self.first} token{'s' if self.first > 1 else ''}"
        if self.context is not None:
            s += f" with {_q(self.context)} in the {CONTEXT_SPAN} tokens before"
        if self.not_prev:
            s += " but not after " + ", ".join(_q(p) for p in self.not_prev)
        return s


def _atom(f: Features, cache: dict, kind: str, value) -> np.ndarray:
    k = ("atom", kind, value)
    got = cache.get(k)
    if got is None:
        if kind == "tok":
            got = np.fromiter((t == value for t in f.tok), bool, len(f))
        elif kind == "prev":
            got = np.fromiter((t == value for t in f.prev), bool, len(f))
        elif kind == "word":
            got = np.fromiter((t == value for t in f.word), bool, len(f))
        elif kind == "kind":
            got = np.fromiter((value in t for t in f.kinds), bool, len(f))
        elif kind == "first":
            got = np.fromiter((p <= value for p in f.pos), bool, len(f))
        else:
            got = np.fromiter((value in c for c in f.ctx), bool, len(f))
        cache[k] = got
    return got


def _q(k: str) -> str:
    return f"“{k}”" if '"' in k else f'"{k}"'


# =========================================================================== text <-> conditions


_QUOTED = r'(?:"([^"]*)"|“([^”]*)”)'
_LEVEL = re.compile(r"\((-?\d+(?:\.\d+)?)/10\)\s*$")


def _unq(m: re.Match, i: int = 1) -> str:
    a, b = m.group(i), m.group(i + 1)
    return a if a is not None else b


def parse_clause(clause: str) -> tuple[Condition, float] | None:
    """``'"respond" after "cor" (9/10)'`` -> (Condition(token='respond', prev='cor'), 9.0);
    None for a clause that is not in the grammar."""
    c = clause.strip().rstrip(".").strip()
    lm = _LEVEL.search(c)
    if not lm:
        return None
    level = float(lm.group(1))
    c = c[: lm.start()].strip()
    c = re.sub(r"^(fires|activates)\s+on\s+|^(below zero\s+)?on\s+", "", c, flags=re.I)
    kw: dict = {}
    m = re.search(r"\s+but not after\s+(.+)$", c)
    if m:
        kw["not_prev"] = tuple(_unq(x) for x in re.finditer(_QUOTED, m.group(1)))
        c = c[: m.start()]
    m = re.search(r"\s+with\s+" + _QUOTED + rf"\s+in the {CONTEXT_SPAN} tokens before$", c)
    if m:
        kw["context"] = _unq(m)
        c = c[: m.start()]
    m = re.search(r"\s+among the first (\d+) tokens?$", c)
    if m:
        kw["first"] = int(m.group(1))
        c = c[: m.start()]
    m = re.match(r"^any token right after\s+" + _QUOTED + "$", c)
    if m:
        kw["prev"] = _unq(m)
        c = "any token"
    m = re.search(r"\s+after\s+" + _QUOTED + "$", c)
    if m and c != "any token":
        kw["prev"] = _unq(m)
        c = c[: m.start()]
    m = re.search(r"\s+as (" + "|".join(map(re.escape, KINDS)) + ")$", c)
    if m:
        kw["kind"] = m.group(1)
        c = c[: m.start()]
    m = re.match(r"^" + _QUOTED + r"(?:\s+inside the word\s+" + _QUOTED + ")?$", c)
    if m:
        kw["token"] = _unq(m)
        if m.group(3) is not None or m.group(4) is not None:
            kw["word"] = _unq(m, 3)
        return Condition(**kw), level
    m = re.match(r"^any part of the word\s+" + _QUOTED + "$", c)
    if m:
        kw["word"] = _unq(m)
        return Condition(**kw), level
    for name, text in KINDS.items():
        if c == text or c == name:
            kw["kind"] = name
            return Condition(**kw), level
    if c == "any token" and kw:
        return Condition(**kw), level
    return None


def _clauses(text: str) -> list[str]:
    return [c for c in re.split(r";\s*", text.strip()) if c.strip()]


def parse(text: str) -> list[tuple[Condition, float]] | None:
    """The decision list an explanation states, or None when it is not in this grammar (no
    clause carries a level)."""
    out = [p for p in (parse_clause(c) for c in _clauses(text)) if p is not None]
    return out or None


def render(conds: Sequence[tuple[Condition, float]]) -> str:
    """The decision list in words: positive clauses first (strongest first), then the
    clauses where the unit goes below zero."""
    pos = [f"{c.describe()} ({round(lv)}/10)" for c, lv in conds if lv > 0]
    neg = [f"below zero on {c.describe()} ({round(lv)}/10)" for c, lv in conds if lv < 0]
    text = ("fires on " + "; on ".join(pos)) if pos else ""
    return "; ".join(x for x in (text, "; ".join(neg)) if x) + "."


def simulate(conds: Sequence[tuple[Condition, float]], tokens: Sequence[str]) -> list[float]:
    """Predicted activation (0-10) per token of one record: the strongest matching clause."""
    if not tokens:
        return []
    f = Features.of([list(tokens)])  # position 0 (BOS) is not a feature row: it is predicted 0
    cache: dict = {}
    return [0.0] + _combine(((c.mask(f, cache), lv) for c, lv in conds), len(f)).tolist()


# =========================================================================== fitting


@dataclass
class Refined:
    text: str
    conditions: list[tuple[Condition, float]]
    cv_pearson: float  # cross-fitted on the explainer's own records
    steps: list[str]  # what each accepted step did, with the score after it
    n_tokens: int


class _Fit:
    def __init__(self, f: Features, y: np.ndarray, fold: np.ndarray):
        self.f, self.y, self.fold = f, y, fold
        self.yc = np.clip(y, 0, None)
        self.cache: dict = {}
        self._levels: dict[Condition, tuple[float, float, float]] = {}
        self.ctx_counts: Counter[str] = Counter()  # in how many tokens' contexts each word appears
        for ctx in f.ctx:
            self.ctx_counts.update(ctx)

    def levels(self, c: Condition) -> tuple[float, float, float]:
        """(level fitted on fold 1 for fold 0, on fold 0 for fold 1, on all)."""
        got = self._levels.get(c)
        if got is not None:
            return got
        m = c.mask(self.f, self.cache)
        out = []
        for sel in (self.fold == 1, self.fold == 0, np.ones_like(self.fold, dtype=bool)):
            mm = m & sel
            n = int(mm.sum())
            out.append(float(self.y[mm].sum()) / (n + LEVEL_PRIOR) if n else 0.0)
        self._levels[c] = (out[0], out[1], out[2])
        return self._levels[c]

    def pred_cv(self, conds: Sequence[Condition]) -> np.ndarray:
        parts = []
        for c in conds:
            l0, l1, _ = self.levels(c)
            parts.append((c.mask(self.f, self.cache), np.where(self.fold == 0, l0, l1)))
        return _combine(parts, len(self.y))

    def score(self, conds: Sequence[Condition]) -> float:
        return pearson(self.pred_cv(conds), self.y) if conds else 0.0

    def support(self, c: Condition) -> int:
        m = c.mask(self.f, self.cache)
        return len(set(np.asarray(self.f.record)[m].tolist()))


def _top(mass: dict[Any, float], n: int) -> list[Any]:
    return [k for k, _ in sorted(mass.items(), key=lambda kv: -kv[1])[:n]]


def _combine(parts: Iterable[tuple[np.ndarray, np.ndarray | float]], n: int) -> np.ndarray:
    """The simulation rule: a token gets the strongest positive level of the clauses that
    match it; where no positive clause matches, the most negative one; else 0."""
    pos, neg = np.zeros(n), np.zeros(n)
    for m, lv in parts:
        v = m * lv
        pos = np.maximum(pos, v)
        neg = np.minimum(neg, v)
    return np.where(pos > 0, pos, neg)


def _candidates(fit: _Fit, focus: np.ndarray, limit: int | None = None, sign: float = 1.0) -> list[Condition]:
    """Atomic conditions proposed by the tokens in ``focus`` (weighted by activation;
    ``sign=-1``: by how far below zero they go)."""
    f, w = fit.f, np.clip(sign * fit.y, 0, None)
    limit = limit or CANDIDATES
    idx = np.flatnonzero(focus)
    mass: dict[str, dict[Any, float]] = defaultdict(lambda: defaultdict(float))
    for i in idx:
        wi = float(w[i])
        mass["tok"][f.tok[i]] += wi
        mass["pair"][(f.tok[i], f.prev[i])] += wi
        mass["prev"][f.prev[i]] += wi
        if f.multi[i]:
            mass["word"][f.word[i]] += wi
        for k in f.kinds[i]:
            mass["kind"][k] += wi
    out: list[Condition] = []
    out += [Condition(token=t) for t in _top(mass["tok"], limit)]
    out += [Condition(token=t, prev=p) for t, p in _top(mass["pair"], limit)]
    out += [Condition(prev=p) for p in _top(mass["prev"], limit // 2)]
    out += [Condition(word=x) for x in _top(mass["word"], limit // 2)]
    out += [Condition(kind=k) for k in mass["kind"]]
    out += [Condition(first=n) for n in POSITIONS]
    # context words over-represented before the focus tokens
    n_all = len(f)
    if len(idx):
        ctx_focus: Counter = Counter()
        for i in idx:
            ctx_focus.update(f.ctx[i])
        ctx_all = fit.ctx_counts
        ratio = {k: (v / len(idx)) / ((ctx_all[k] + 1) / (n_all + 1)) for k, v in ctx_focus.items() if v >= 3}
        out += [Condition(context=k) for k, _ in sorted(ratio.items(), key=lambda kv: -kv[1])[: limit // 3]]
    seen: set[Condition] = set()
    uniq: list[Condition] = []
    for c in out:
        if c not in seen and fit.support(c) >= 2:
            seen.add(c)
            uniq.append(c)
    return uniq


def _narrowings(fit: _Fit, c: Condition, pred_owner: np.ndarray, own: int, level: float) -> list[Condition]:
    """Narrower versions of ``c`` aimed at its false positives (matched tokens the unit
    stays quiet on) while keeping its true positives."""
    f = fit.f
    m = c.mask(f, fit.cache) & (pred_owner == own)
    tp = np.flatnonzero(m & (fit.yc >= max(level / 2, 1.0)))
    fp = np.flatnonzero(m & (fit.yc < level / 3))
    if len(fp) < 2:
        return []
    out: list[Condition] = []
    tp_prev = Counter(f.prev[i] for i in tp)
    fp_prev = Counter(f.prev[i] for i in fp)
    if c.prev is None:
        out += [replace(c, prev=p) for p, _ in tp_prev.most_common(3)]
    out += [replace(c, not_prev=c.not_prev + (p,)) for p, n in fp_prev.most_common(3) if n >= 2 and p not in c.not_prev and tp_prev[p] < n]
    if c.word is None:
        tw = Counter(f.word[i] for i in tp if f.multi[i])
        out += [replace(c, word=x) for x, _ in tw.most_common(2)]
    if c.kind is None:
        tk: Counter = Counter()
        for i in tp:
            tk.update(f.kinds[i])
        out += [replace(c, kind=k) for k, _ in tk.most_common(2)]
    if c.context is None:
        tc: Counter = Counter()
        for i in tp:
            tc.update(f.ctx[i])
        out += [replace(c, context=x) for x, _ in tc.most_common(3)]
    if c.first is None:
        out += [replace(c, first=n) for n in POSITIONS]
    return [x for x in out if x != c and fit.support(x) >= 2]


def _owner(fit: _Fit, conds: Sequence[Condition]) -> np.ndarray:
    """Which condition gives each token its (cross-fitted) prediction; -1 for none."""
    best = np.zeros(len(fit.y))
    owner = -np.ones(len(fit.y), dtype=int)
    for j, c in enumerate(conds):
        l0, l1, _ = fit.levels(c)
        v = c.mask(fit.f, fit.cache) * np.where(fit.fold == 0, l0, l1)
        better = (v > best) & (v > 0)
        owner[better] = j
        best = np.maximum(best, v)
    return owner


def refine(records: Sequence[ActivationRecord], random_records: Sequence[ActivationRecord], unit_max: float) -> Refined | None:
    """Fit the decision list for one unit from its explainer records (see the module
    docstring). None when the unit never activates positively in them."""
    recs = [r for r in list(records) + list(random_records) if len(r.tokens) > 1]
    if unit_max <= 0 or not any(r.max_activation > 0 for r in recs):
        return None
    f = Features.of(r.tokens for r in recs)
    y = np.concatenate([np.asarray(r.activations[1:], dtype=float) for r in recs]) * (10.0 / unit_max)
    # two folds by window, alternating within each kind of record so both folds see top, quantile and random text
    fold_of_rec: list[int] = []
    per_kind: Counter[str] = Counter()
    for r in recs:
        fold_of_rec.append(per_kind[r.kind] % 2)
        per_kind[r.kind] += 1
    fold = np.asarray([fold_of_rec[i] for i in f.record])
    fit = _Fit(f, y, fold)
    active = fit.yc >= ACTIVE_LEVEL
    if not active.any():
        active = fit.yc >= 0.5 * fit.yc.max()
    conds: list[Condition] = []
    steps: list[str] = []
    negative = fit.y <= -ACTIVE_LEVEL
    pool = _candidates(fit, active) + (_candidates(fit, negative, limit=10, sign=-1.0) if SIGNED and negative.any() else [])

    def objective(cs: list[Condition]) -> float:  # the score, less MIN_GAIN per clause: a clause must earn its place
        return fit.score(cs) - MIN_GAIN * len(cs)

    current = 0.0
    for _ in range(MAX_STEPS):
        trials: list[tuple[float, list[Condition], str]] = []
        if len(conds) < MAX_CONDITIONS:
            pred = fit.pred_cv(conds)
            misses = active & (pred < 0.5 * fit.yc)
            fresh = _candidates(fit, misses, limit=10) if conds and misses.any() else []
            nmiss = negative & (pred > 0.5 * fit.y)
            if SIGNED and conds and nmiss.any():
                fresh += _candidates(fit, nmiss, limit=5, sign=-1.0)
            for c in dict.fromkeys(pool + fresh):
                if c not in conds:
                    trials.append((objective(conds + [c]), conds + [c], f"add {c.describe()}"))
        owner = _owner(fit, conds)
        for j, c in enumerate(conds):
            rest = conds[:j] + conds[j + 1:]
            for n in (_narrowings(fit, c, owner, j, fit.levels(c)[2]) if fit.levels(c)[2] > 0 else []):
                if n not in conds:
                    trials.append((objective(rest[:j] + [n] + rest[j:]), rest[:j] + [n] + rest[j:], f"narrow {c.describe()} to {n.describe()}"))
            trials.append((objective(rest), rest, f"drop {c.describe()}"))
        if not trials:
            break
        value, new, what = max(trials, key=lambda t: t[0])
        if value <= current + 1e-9:
            break
        current, conds = value, new
        steps.append(f"{what} -> {fit.score(conds):.3f}")
    score = fit.score(conds)
    if not conds:
        return None
    # final levels on all the explainer's records, strongest first; a level that rounds to 0 says nothing
    final = sorted(((c, fit.levels(c)[2]) for c in conds), key=lambda cl: -cl[1])
    final = [(c, float(np.sign(lv) * max(1, round(abs(lv))))) for c, lv in final if abs(lv) >= 0.5]
    if not final:
        return None
    return Refined(text=render(final), conditions=final, cv_pearson=round(score, 4), steps=steps, n_tokens=len(f))
