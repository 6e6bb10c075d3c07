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

import re
import time
from collections import Counter, defaultdict
from typing import Any, Callable, Sequence

import numpy as np
from pydantic import BaseModel, Field

from . import explain_refine
from .stats import pearson
from .errors import InputError, describe_failure
from .store import ActivationRecord, ActivationStore, UnitStats
from .units import unit_label

LLM = Callable[[str], str]

ACTIVE_FRACTION = 0.5  # a token is "active" in a record at >= this share of the record's max
CONTEXT_SPAN = 8  # preceding tokens looked at for context words
MAX_TOKENS_NAMED = 5


# =========================================================================== types


OFFLINE_EXPLAINERS = ("offline", "single-pass")


class Explanation(BaseModel):
    text: str
    explainer: str  # refined | single-pass | llm | refined (llm fallback) | single-pass (llm fallback)
    tokens: list[tuple[str, float]] = Field(default_factory=list)  # (token, share of activation mass)
    after: list[tuple[str, float]] = Field(default_factory=list)  # preceding tokens and their share
    context_words: list[str] = Field(default_factory=list)
    sources: list[tuple[str, float]] = Field(default_factory=list)
    steps: list[str] = Field(default_factory=list)  # the refining explainer's accepted steps, each with its score
    cv_pearson: float | None = None  # the refining explainer's cross-fitted score on its own records
    warnings: list[str] = Field(default_factory=list)


class ScoreResult(BaseModel):
    pearson: float  # simulated vs true activations on held-out top + random records
    shuffled_pearson: float  # the same with another unit's explanation (control)
    top_pearson: float | None = None  # held-out top records only
    random_pearson: float | None = None  # held-out random records only
    control_unit: int
    control_explanation: str
    simulator: str
    n_records: int
    n_tokens: int
    warnings: list[str] = Field(default_factory=list)


class Mode(BaseModel):
    index: int
    n_records: int
    share: float  # share of the activating records in this mode
    explanation: str
    pearson: float  # on held-out top records of this mode + held-out random records
    mean_max_activation: float
    examples: list[str] = Field(default_factory=list)  # the top token in context


class ModesResult(BaseModel):
    k: int
    method: str  # minilm | tokens
    silhouette: float
    modes: list[Mode]
    single_pearson: float
    union_pearson: float
    modes_beat_single: bool


class HeldoutRecord(BaseModel):
    """A record the explanation was scored on (never shown to the explainer), with the
    simulator's activations beside the true ones: the score is their Pearson over all such
    records, position 0 (BOS) left out."""

    window: int
    kind: str  # top | random
    rank: int
    tokens: list[str]
    activations: list[float]
    simulated: list[float]


class UnitReport(BaseModel):
    """Everything measured about one unit, read from the store (the model is not re-run)."""

    units_id: str
    kind: str
    layer: int
    unit: int
    label: str
    explanation: str
    explanation_detail: Explanation
    score: ScoreResult
    top_contexts: list[ActivationRecord]
    histogram: dict[str, Any]
    stats: UnitStats
    modes: ModesResult | None = None
    heldout: list[HeldoutRecord] = Field(default_factory=list)  # what the score was computed on
    explained_windows: list[int] = Field(default_factory=list)  # store windows the explainer read
    store: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    cached_at: str | None = None  # when read from the explanation cache: when it was written (UTC)

    # ------------------------------------------------------------------ tool result
    def _figures(self):
        from .results import Figure

        figs = [
            Figure(
                kind="tokens",
                title=f"{self.label}: top contexts",
                data={"rows": [{"tokens": r.tokens, "values": r.activations} for r in self.top_contexts[:8]],
                      "vmax": max([r.max_activation for r in self.top_contexts] or [1.0]) or 1.0},
                caption="Token colour = activation (red positive, blue negative).",
            ),
            Figure(
                kind="histogram",
                title=f"{self.label}: activations on random text",
                data={**{k: self.histogram[k] for k in ("edges", "counts")}, "xlabel": "activation", "log": True},
                caption=f"{self.histogram.get('n', 0)} tokens of the store's random windows; max over the corpus {self.stats.max:.3g}.",
            ),
        ]
        return figs

    def _summary(self) -> str:
        s = self.score
        out = (f"{self.label}: {self.explanation} Explanation score {s.pearson:.2f} (Pearson, simulated vs true "
               f"activations on {s.n_records} held-out records) vs {s.shuffled_pearson:.2f} for a shuffled explanation.")
        if self.modes is not None:
            m = self.modes
            out += (f" {m.k} modes: together {m.union_pearson:.2f} vs single {m.single_pearson:.2f}"
                    f" ({'modes fit better' if m.modes_beat_single else 'one explanation suffices'}).")
        return out

    def _headline(self) -> dict:
        h = {
            "explanation": self.explanation,
            "pearson": self.score.pearson,
            "shuffled_pearson": self.score.shuffled_pearson,
            "max_activation": self.stats.max,
            "frequency": self.stats.frequency,
        }
        if self.modes is not None:
            h.update({"n_modes": self.modes.k, "modes_beat_single": self.modes.modes_beat_single, "modes_pearson": self.modes.union_pearson})
        return h

    def to_tool_result(self, tool: str = "explain_unit", handle=None, extra_evidence: Sequence[dict] = ()):
        from .results import TokenSpan, ToolResult, provenance

        ev: list[dict] = [
            {"kind": "explanation", "text": self.explanation, "explainer": self.explanation_detail.explainer,
             "tokens": self.explanation_detail.tokens, "after": self.explanation_detail.after, "sources": self.explanation_detail.sources},
            {"kind": "score", **self.score.model_dump()},
            {"kind": "stats", **self.stats.model_dump()},
        ]
        if self.modes is not None:
            ev.append({"kind": "modes", **self.modes.model_dump()})
        ev.extend(extra_evidence)
        spans = [TokenSpan(tokens=r.tokens, values=r.activations, note=f"top #{r.rank} ({r.source}), max {r.max_activation:.3g}")
                 for r in self.top_contexts[:10]]
        c = self.store.get("config", {})
        return ToolResult(
            tool=tool,
            summary=self._summary(),
            headline=self._headline(),
            evidence=ev,
            spans=spans,
            figures=self._figures(),
            provenance=provenance(handle, store=self.store.get("path"), units=self.units_id, layer=self.layer, unit=self.unit,
                                  corpus=c.get("corpus"), n_tokens=self.store.get("n_tokens"), seed=c.get("seed"),
                                  explainer=self.explanation_detail.explainer, simulator=self.score.simulator,
                                  **({"cached_at": self.cached_at} if self.cached_at else {})),
            timings=self.timings,
            warnings=self.warnings,
            data=self.model_dump(mode="json"),
        )


# =========================================================================== token keys


token_key = explain_refine.key  # normalised token for matching: stripped, lower-case; whitespace spelled out


def _quote(key: str) -> str:
    return f"“{key}”" if '"' in key else f'"{key}"'


_STOP = set(
    "the a an of to in on at and or but is was are were be been it this that with for as by from its their his her "
    "fires fire firing activates activation token tokens word words often right after before contexts context mostly "
    "text texts neuron feature unit also about on when which".split()
)


# =========================================================================== offline explainer


def _active_tokens(rec: ActivationRecord, unit_max: float) -> list[tuple[int, float]]:
    mx = rec.max_activation
    if mx <= 0:
        return []
    return [(i, a / unit_max) for i, a in enumerate(rec.activations) if a > 0 and a >= ACTIVE_FRACTION * mx]


_DEAD = "never clearly activates positively on this corpus."


def offline_explain(records: Sequence[ActivationRecord], random_records: Sequence[ActivationRecord] = (), unit_max: float | None = None) -> Explanation:
    """The single-pass explainer: a readable explanation from token and context statistics of
    activating records."""
    recs = [r for r in records if r.max_activation > 0]
    if not recs:
        return Explanation(text=_DEAD, explainer="single-pass")
    unit_max = unit_max or max(r.max_activation for r in recs)
    mass: Counter = Counter()
    raw_forms: dict[str, Counter] = defaultdict(Counter)
    prev_mass: Counter = Counter()
    ctx_docs: Counter = Counter()
    for r in recs:
        seen_ctx = set()
        for i, w in _active_tokens(r, unit_max):
            k = token_key(r.tokens[i])
            mass[k] += w
            raw_forms[k][r.tokens[i]] += 1
            if i > 0:
                prev_mass[token_key(r.tokens[i - 1])] += w
            for j in range(max(1, i - CONTEXT_SPAN), i):
                seen_ctx.add(token_key(r.tokens[j]))
        for k in seen_ctx:
            ctx_docs[k] += 1
    total = sum(mass.values()) or 1.0
    named = [(k, v / total) for k, v in mass.most_common(MAX_TOKENS_NAMED) if v / total >= 0.05]
    if not named:
        named = [(k, v / total) for k, v in mass.most_common(1)]
    cum = sum(s for _, s in named)
    # base rates from random text
    base: Counter = Counter()
    n_base = 0
    for r in random_records:
        for i, t in enumerate(r.tokens):
            if i == 0:
                continue
            base[token_key(t)] += 1
            n_base += 1
    after = [(k, v / total) for k, v in prev_mass.most_common(3) if v / total >= 0.3]
    named_keys = {k for k, _ in named}
    ctx = []
    for k, c in ctx_docs.most_common(50):
        if k in named_keys or k in {a for a, _ in after} or c < max(3, 0.25 * len(recs)):
            continue
        rate = (base[k] + 1) / (n_base + 1) if n_base else 0.01
        expected = 1 - (1 - rate) ** CONTEXT_SPAN
        if c / len(recs) > 2.0 * expected and re.search(r"\w", k):
            ctx.append(k)
        if len(ctx) >= 4:
            break
    src = Counter(r.source for r in recs if r.source)
    sources = [(s, c / len(recs)) for s, c in src.most_common(2)]
    base_src = Counter(r.source for r in random_records if r.source)
    n_bsrc = sum(base_src.values())
    parts = ["fires on " + ", ".join(f"{_quote(k)} ({round(100 * s)}%)" for k, s in named)]
    if cum < 0.6:
        parts[0] += f" and many other tokens (the named ones carry {round(100 * cum)}% of its top activation)"
    if after:
        parts.append("often right after " + ", ".join(f"{_quote(k)} ({round(100 * s)}%)" for k, s in after))
    if ctx:
        parts.append("in contexts with " + ", ".join(_quote(k) for k in ctx))
    if sources:
        s0, f0 = sources[0]
        b0 = base_src[s0] / n_bsrc if n_bsrc else 0.0
        if f0 >= 0.5 and f0 >= 1.5 * b0:  # only when the source mix differs from random text
            parts.append(f"mostly in {s0} text ({round(100 * f0)}% of top records vs {round(100 * b0)}% of random ones)")
    text = "; ".join(parts) + "."
    return Explanation(text=text, explainer="single-pass", tokens=[(k, round(s, 4)) for k, s in named],
                       after=[(k, round(s, 4)) for k, s in after], context_words=ctx, sources=[(s, round(f, 4)) for s, f in sources])


def refined_explain(records: Sequence[ActivationRecord], random_records: Sequence[ActivationRecord] = (), unit_max: float | None = None) -> Explanation:
    """The refining explainer (:func:`gnothi.tools.explain_refine.refine`) over the same
    records; the single-pass explanation where it finds nothing to say."""
    recs = [r for r in records if r.max_activation > 0]
    if not recs:
        return Explanation(text=_DEAD, explainer="refined")
    mx = unit_max or max(r.max_activation for r in recs)
    rf = explain_refine.refine(records, random_records, mx)
    if rf is None:
        single = offline_explain(records, random_records, unit_max)
        return single.model_copy(update={"warnings": single.warnings + ["The refining explainer found no condition that predicts this unit on "
                                                                         "held-out records of its own; this is the single-pass explanation."]})
    pos = [(c, lv) for c, lv in rf.conditions if lv > 0]
    return Explanation(text=rf.text, explainer="refined", steps=rf.steps, cv_pearson=rf.cv_pearson,
                       tokens=[(c.token, lv / 10) for c, lv in pos if c.token is not None][:MAX_TOKENS_NAMED],
                       after=[(c.prev, lv / 10) for c, lv in pos if c.prev is not None][:3],
                       context_words=[c.context for c, _ in pos if c.context is not None][:4])


def explain_offline(explainer: str, records: Sequence[ActivationRecord], random_records: Sequence[ActivationRecord] = (),
                    unit_max: float | None = None) -> Explanation:
    """The offline explainer named ``explainer`` (``"offline"``: refined; ``"single-pass"``)."""
    return (offline_explain if explainer == "single-pass" else refined_explain)(records, random_records, unit_max)


# =========================================================================== offline simulator


_PCT = re.compile(r'(?:"([^"]+)"|“([^”]+)”)\s*(?:\((\d+(?:\.\d+)?)%\))?')


def _clauses(text: str) -> list[str]:
    return [c.strip() for c in re.split(r";|\.\s", text) if c.strip()]


class ParsedExplanation(BaseModel):
    tokens: dict[str, float] = Field(default_factory=dict)
    after: dict[str, float] = Field(default_factory=dict)
    context: list[str] = Field(default_factory=list)


def parse_explanation(text: str) -> ParsedExplanation:
    """Read the tokens, preceding tokens and context words an explanation names.

    Quoted strings are tokens; a percentage after one is its weight (else equal weights).
    A clause starting "after"/"right after"/"following" names preceding tokens; one with
    "context" names context words. With nothing quoted, the explanation's content words
    are taken as tokens (so free-form LLM explanations simulate too).
    """
    p = ParsedExplanation()
    if text.startswith("never clearly activates"):  # the offline explainer's "dead unit" text predicts nothing
        return p
    found_any = False
    for clause in _clauses(text):
        items = [(a or b, float(c) if c else None) for a, b, c in _PCT.findall(clause)]
        if not items:
            continue
        found_any = True
        low = clause.lower()
        if re.match(r"^(often |usually |mostly )?(right |just |directly )?(after|following|preceded by)\b", low):
            target = p.after
        elif "context" in low or "near" in low or "around" in low:
            p.context.extend(token_key(k) for k, _ in items)
            continue
        else:
            target = p.tokens
        for k, w in items:
            key = token_key(k)
            target[key] = target.get(key, 0.0) + (w / 100.0 if w is not None else 1.0 / len(items))
    if not found_any:
        words = [w.lower() for w in re.findall(r"[A-Za-z][A-Za-z'\-]*|\d+|[^\sA-Za-z\d]", text) if w.lower() not in _STOP]
        words = [w for w in words if len(w) > 1 or not w.isalpha()][:8]
        if words:
            for w in words:
                p.tokens[token_key(w)] = 1.0 / len(words)
    return p


def offline_simulate(explanation: str | ParsedExplanation, tokens: Sequence[str]) -> list[float]:
    """Predicted activation per token from the explanation alone (0 where nothing matches): a
    refined explanation's clauses as stated, else the tokens and contexts it names."""
    if isinstance(explanation, str):
        clauses = explain_refine.parse(explanation)
        if clauses is not None:
            return explain_refine.simulate(clauses, tokens)
    p = explanation if isinstance(explanation, ParsedExplanation) else parse_explanation(explanation)
    keys = [token_key(t) for t in tokens]
    top_w = max(p.tokens.values(), default=1.0)
    out = []
    for i, k in enumerate(keys):
        v = p.tokens.get(k, 0.0)
        if p.after and i > 0 and keys[i - 1] in p.after:
            v = v * 1.5 + 0.1 * top_w * p.after[keys[i - 1]]
        if p.context and v == 0.0:
            if any(keys[j] in p.context for j in range(max(0, i - CONTEXT_SPAN), i)):
                v = 0.02 * top_w
        out.append(v)
    return out


# =========================================================================== LLM explainer / simulator


LLM_EXPLAIN_RECORDS = 6  # records shown to an LLM explainer ...
LLM_EXPLAIN_SPAN = 24  # ... each cut to this many tokens around its peak (a prompt that fits a 2,048-token context)


def _fmt_record_for_llm(rec: ActivationRecord, unit_max: float) -> str:
    lines = []
    start = max(1, min(rec.argmax - LLM_EXPLAIN_SPAN * 2 // 3, len(rec.tokens) - LLM_EXPLAIN_SPAN))
    for t, a in list(zip(rec.tokens, rec.activations))[start: start + LLM_EXPLAIN_SPAN]:
        v = 0 if unit_max <= 0 else max(0, min(10, round(10 * a / unit_max)))
        lines.append(f"{t!r}\t{v}")
    return "<start>\n" + "\n".join(lines) + "\n<end>"


def llm_explain(llm: LLM, records: Sequence[ActivationRecord], unit_max: float, fallback: Explanation, label: str) -> Explanation:
    """Ask ``llm`` for an explanation (prompt ``explain_unit``); garbage -> ``fallback`` + warning."""
    from gnothi import prompts

    shown = [r for r in records if r.max_activation > 0][:LLM_EXPLAIN_RECORDS]
    measured = fallback.text if fallback.explainer == "refined" else "(none)"
    prompt = prompts.load("explain_unit", unit=label, records="\n\n".join(_fmt_record_for_llm(r, unit_max) for r in shown), measured=measured)
    try:
        raw = llm(prompt)
    except Exception as e:  # a dead endpoint must not sink the report
        fb = fallback.model_copy()
        fb.explainer = f"{fallback.explainer} (llm fallback)"
        fb.warnings = fb.warnings + [f"The LLM explainer failed ({describe_failure(e)}); used the offline explanation."]
        return fb
    text = _parse_llm_explanation(raw)
    if text is None:
        fb = fallback.model_copy()
        fb.explainer = f"{fallback.explainer} (llm fallback)"
        fb.warnings = fb.warnings + [f"The LLM's explanation was unusable ({str(raw)[:80]!r}); used the offline explanation."]
        return fb
    return Explanation(text=text, explainer="llm")


def _parse_llm_explanation(raw: Any) -> str | None:
    if not isinstance(raw, str):
        return None
    s = raw.strip()
    m = re.search(r"explanation\s*:\s*(.+)", s, flags=re.I)
    if m:
        s = m.group(1)
    s = s.strip().splitlines()[0].strip() if s.strip() else ""
    s = s.strip(" \"'`*")
    if len(s) < 3 or len(s) > 400 or len(re.findall(r"[A-Za-z]", s)) < 3:
        return None
    if not s.endswith("."):
        s += "."
    return s


def llm_simulate(llm: LLM, explanation: str, tokens: Sequence[str]) -> list[float] | None:
    """Ask ``llm`` to predict 0-10 per token of one record; None if unreadable."""
    return llm_simulate_batch(llm, explanation, [tokens])[0]


# =========================================================================== scoring


LLM_TOKENS_PER_CALL = 128  # record tokens simulated in one LLM call (two 64-token windows; fits a 2,048-token context)
LLM_CALL_BUDGET = 40  # LLM simulation calls one unit report may make (GNOTHI_LLM_CALL_BUDGET); the rest are simulated offline


def llm_call_budget() -> int:
    from .config import env_int

    return env_int("GNOTHI_LLM_CALL_BUDGET", LLM_CALL_BUDGET, minimum=0)


def llm_simulate_batch(llm: LLM, explanation: str, token_lists: Sequence[Sequence[str]]) -> list[list[float] | None]:
    """Simulate several records in one call (prompt ``simulate_units``: tokens numbered
    ``text.index``; the answer lists only the active tokens, or says "none"). None for every
    record when the answer holds neither a readable line nor "none"."""
    from gnothi import prompts

    listing = "\n\n".join("\n".join(f"{r}.{i}\t{t!r}" for i, t in enumerate(toks)) for r, toks in enumerate(token_lists))
    try:
        raw = llm(prompts.load("simulate_units", explanation=explanation, tokens=listing, n_records=len(token_lists)))
    except Exception:
        return [None] * len(token_lists)
    if not isinstance(raw, str):
        return [None] * len(token_lists)
    vals: dict[tuple[int, int], float] = {}
    # "text.index<TAB>value" or "text.index<TAB>token<TAB>value"; with one text, a bare "index<TAB>value" too
    bare = re.compile(r"^\s*(\d+)\s*[\t:,|=\-]+\s*(?:('[^']*'|\"[^\"]*\"|\S+)\s*[\t:,|=\-]+\s*)?(\d+(?:\.\d+)?)\s*$")
    line_re = re.compile(r"^\s*(\d+)\.(\d+)\s*[\t:,|=\-]+\s*(?:('[^']*'|\"[^\"]*\"|\S+)\s*[\t:,|=\-]+\s*)?(\d+(?:\.\d+)?)\s*$")
    for line in raw.splitlines():
        m = line_re.match(line)
        if m:
            r, i, v = int(m.group(1)), int(m.group(2)), float(m.group(4))
        elif len(token_lists) == 1 and (b := bare.match(line)):
            r, i, v = 0, int(b.group(1)), float(b.group(3))
        else:
            continue
        if 0 <= r < len(token_lists) and 0 <= i < len(token_lists[r]) and 0 <= v <= 10:
            vals[(r, i)] = v
    if not vals and not re.search(r"\bnone\b", raw, flags=re.I):
        return [None] * len(token_lists)
    return [[vals.get((r, k), 0.0) for k in range(len(toks))] for r, toks in enumerate(token_lists)]


def llm_batches(lengths: Sequence[int], per_call: int | None = None) -> list[list[int]]:
    """Record indices grouped into LLM calls of at most ``per_call`` tokens (a longer record alone)."""
    per_call = per_call or LLM_TOKENS_PER_CALL
    groups: list[list[int]] = []
    used = 0
    for i, n in enumerate(lengths):
        if groups and used + n <= per_call:
            groups[-1].append(i)
            used += n
        else:
            groups.append([i])
            used = n
    return groups


class _Simulator:
    """Simulates records offline, or with an LLM in calls of about :data:`LLM_TOKENS_PER_CALL`
    record tokens (at least one record a call) and at most ``budget`` calls; a request the remaining budget cannot
    cover whole is simulated offline (counted in ``over_budget``).
    One instance serves a whole unit report, so its own score, the control and the modes
    share the budget."""

    def __init__(self, simulator: "str | LLM | _Simulator", budget: int | None = None):
        if isinstance(simulator, _Simulator):
            simulator = simulator.simulator
        self.simulator = simulator
        self.name = "offline" if simulator == "offline" else "llm"
        self.fallbacks = 0  # records the LLM gave no usable answer for
        self.over_budget = 0  # records simulated offline because the call budget was spent
        self.calls = 0
        self.budget = llm_call_budget() if budget is None else budget

    def many(self, explanation: str, token_lists: Sequence[Sequence[str]]) -> list[list[float]]:
        if self.simulator == "offline" or isinstance(self.simulator, str):
            return [offline_simulate(explanation, t) for t in token_lists]
        out: list[list[float] | None] = [None] * len(token_lists)
        groups = llm_batches([len(t) for t in token_lists])
        if self.calls + len(groups) > self.budget:  # a score is simulated one way throughout: never half LLM, half offline
            self.over_budget += len(token_lists)
            return [offline_simulate(explanation, t) for t in token_lists]
        for idx in groups:
            self.calls += 1
            for i, got in zip(idx, llm_simulate_batch(self.simulator, explanation, [token_lists[i] for i in idx])):
                if got is None:
                    self.fallbacks += 1
                out[i] = got
        return [o if o is not None else offline_simulate(explanation, t) for o, t in zip(out, token_lists)]

    def __call__(self, explanation: str, tokens: Sequence[str]) -> list[float]:
        return self.many(explanation, [tokens])[0]

    def warnings(self) -> list[str]:
        out = []
        if self.fallbacks:
            out.append(f"The LLM simulator gave no usable answer for {self.fallbacks} record(s) (unreachable or unreadable); "
                       "the offline simulator filled in.")
        if self.over_budget:
            out.append(f"The LLM call budget ({self.budget} simulation calls per unit; GNOTHI_LLM_CALL_BUDGET) was spent: "
                       f"{self.over_budget} record(s) were simulated offline.")
        return out


def _score_on(sim: _Simulator, explanation: str, records: Sequence[ActivationRecord]) -> tuple[float, list[float], list[float]]:
    pred: list[float] = []
    true: list[float] = []
    for r, p in zip(records, sim.many(explanation, [r.tokens for r in records])):
        # position 0 (BOS) is not evidence
        pred.extend(p[1:])
        true.extend(r.activations[1:])
    return pearson(pred, true), pred, true


def score_explanation(explanation: str, holdout_top: Sequence[ActivationRecord], holdout_random: Sequence[ActivationRecord],
                      simulator: "str | LLM | _Simulator" = "offline") -> dict:
    """Simulate each held-out record once from the explanation and correlate with the true
    activations (BOS excluded): over all records, the top ones and the random ones.
    ``simulated`` holds the simulation per record (top records first), so the score can be
    recomputed from the report. ``simulator`` may be a shared :class:`_Simulator` (its LLM
    call budget then spans every score made with it)."""
    sim = simulator if isinstance(simulator, _Simulator) else _Simulator(simulator)
    top, rand = list(holdout_top), list(holdout_random)
    sims = [list(p) for p in sim.many(explanation, [r.tokens for r in top + rand])]

    def corr(recs, ps):
        pred = [x for p in ps for x in p[1:]]
        true = [x for r in recs for x in r.activations[1:]]
        return pearson(pred, true)

    return {
        "pearson": corr(top + rand, sims),
        "top": corr(top, sims[: len(top)]) if top else None,
        "random": corr(rand, sims[len(top):]) if rand else None,
        "simulated": sims,
        "fallbacks": sim.fallbacks,
        "simulator": sim.name,
    }


# =========================================================================== modes


def _context_text(r: ActivationRecord, span: int = 12) -> tuple[str, str]:
    i = r.argmax
    ctx = "".join(r.tokens[max(1, i - span): i]).strip()
    tok = r.tokens[i]
    return f"{ctx} [{tok.strip()}]", tok


def _embed_contexts(records: Sequence[ActivationRecord], method: str) -> tuple[np.ndarray, str]:
    texts = [_context_text(r)[0] for r in records]
    if method in ("auto", "minilm"):
        try:
            from .embeddings import embed

            e = embed(texts, batch_size=32)
            # the top token itself matters most: append a one-hot of its key
            return np.asarray(e, dtype=np.float64), "minilm"
        except Exception:
            if method == "minilm":
                raise
    vocab: dict[str, int] = {}
    rows = []
    for r in records:
        i = r.argmax
        feats = Counter()
        feats["T:" + token_key(r.tokens[i])] += 3.0
        if i > 0:
            feats["P:" + token_key(r.tokens[i - 1])] += 1.0
        for j in range(max(1, i - CONTEXT_SPAN), i):
            feats["C:" + token_key(r.tokens[j])] += 0.3
        rows.append(feats)
        for k in feats:
            vocab.setdefault(k, len(vocab))
    X = np.zeros((len(records), max(1, len(vocab))))
    for n, feats in enumerate(rows):
        for k, v in feats.items():
            X[n, vocab[k]] = v
    X /= np.linalg.norm(X, axis=1, keepdims=True) + 1e-9
    return X, "tokens"


def find_modes(store_records: Sequence[ActivationRecord], holdout_top: Sequence[ActivationRecord], holdout_random: Sequence[ActivationRecord],
               random_train: Sequence[ActivationRecord], unit_max: float, single_pearson: float, method: str = "auto",
               explainer: str | LLM = "offline", simulator: "str | LLM | _Simulator" = "offline", label: str = "unit", max_k: int = 3,
               seed: int = 0) -> ModesResult | None:
    """Cluster activating contexts into 2..max_k modes; explain and score each; compare with one explanation."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    recs = [r for r in store_records if r.max_activation > 0]
    if len(recs) < 6:
        return None
    X, used = _embed_contexts(recs + list(holdout_top), method)
    Xtr, Xho = X[: len(recs)], X[len(recs):]
    best = None
    for k in range(2, max_k + 1):
        if len(recs) < 3 * k:
            break
        km = KMeans(n_clusters=k, n_init=5, random_state=seed).fit(Xtr)
        if len(set(km.labels_)) < 2:
            continue
        sil = float(silhouette_score(Xtr, km.labels_))
        if best is None or sil > best[0] + 1e-9:
            best = (sil, k, km)
    if best is None:
        return None
    sil, k, km = best
    ho_labels = km.predict(Xho) if len(holdout_top) else np.zeros(0, dtype=int)
    sim = simulator if isinstance(simulator, _Simulator) else _Simulator(simulator)
    modes: list[Mode] = []
    mode_expl: list[tuple[str, float]] = []
    for m in range(k):
        mrecs = [r for r, lab in zip(recs, km.labels_) if lab == m]
        if not mrecs:
            continue
        off = explain_offline(explainer if isinstance(explainer, str) else "offline", mrecs, random_train, unit_max)
        expl = off if isinstance(explainer, str) else llm_explain(explainer, mrecs, unit_max, off, label)
        mho = [r for r, lab in zip(holdout_top, ho_labels) if lab == m]
        mp, _, _ = _score_on(sim, expl.text, mho + list(holdout_random))
        mm = float(np.mean([r.max_activation for r in mrecs]))
        modes.append(Mode(index=m, n_records=len(mrecs), share=round(len(mrecs) / len(recs), 4), explanation=expl.text,
                          pearson=round(mp, 4), mean_max_activation=round(mm, 4),
                          examples=[_context_text(r)[0][-60:] for r in mrecs[:3]]))
        # a refined explanation states its levels on the unit's scale; other texts are scaled by the mode's typical strength
        strength = 1.0 if explain_refine.parse(expl.text) else (mm / unit_max if unit_max > 0 else 1.0)
        mode_expl.append((expl.text, strength))
    # union of the modes' simulations, each scaled by its typical strength
    held = list(holdout_top) + list(holdout_random)
    per_mode = [[np.asarray(p) * w for p in sim.many(t, [r.tokens for r in held])] for t, w in mode_expl]
    pred: list[float] = []
    true: list[float] = []
    for n, r in enumerate(held):
        sims = [pm[n] for pm in per_mode]
        u = np.max(np.stack(sims), axis=0) if sims else np.zeros(len(r.tokens))
        pred.extend(u[1:].tolist())
        true.extend(r.activations[1:])
    union = pearson(pred, true)
    return ModesResult(k=len(modes), method=used, silhouette=round(sil, 4), modes=modes, single_pearson=round(single_pearson, 4),
                       union_pearson=round(union, 4), modes_beat_single=bool(union > single_pearson + 0.01))


# =========================================================================== the whole loop


def _explain_records(store: ActivationStore, layer: int, unit: int):
    sp = store.unit_split(layer, unit)
    return sp.explain, sp.explain_random


def _control_unit(store: ActivationStore, layer: int, unit: int, own: Explanation, explainer, seed: int = 0) -> tuple[int, Explanation]:
    """Another unit's explanation by the same explainer (the first unit after ``n/2`` away
    whose explanation differs)."""
    offline = explainer if isinstance(explainer, str) else "offline"
    n = store.n_units(layer)
    if n < 2:
        return unit, Explanation(text="", explainer="none")
    start = (unit + n // 2 + seed) % n
    own_keys = {k for k, _ in own.tokens}
    last = None
    for step in range(min(n - 1, 16)):
        c = (start + step) % n
        if c == unit:
            continue
        train, rtrain = _explain_records(store, layer, c)
        st = store.stats(layer, c)
        e = explain_offline(offline, train, rtrain, st.max if st.max > 0 else None)
        last = (c, e)
        if {k for k, _ in e.tokens} != own_keys and e.text != own.text:
            break
    c, e = last
    if not isinstance(explainer, str):
        e = llm_explain(explainer, _explain_records(store, layer, c)[0], store.stats(layer, c).max, e, f"unit {layer}.{c}")
    return c, e


def explain_unit(
    store: ActivationStore,
    layer: int,
    unit: int,
    explainer: str | LLM = "offline",
    simulator: str | LLM = "offline",
    modes: bool = True,
    mode_method: str = "auto",
    n_contexts: int = 10,
) -> UnitReport:
    """Explain, simulate and score one unit (neuron or SAE feature) from the store.

    ``explainer``: ``"offline"`` (the refining explainer), ``"single-pass"`` or a callable
    ``llm(prompt) -> str``; ``simulator``: ``"offline"`` or such a callable.
    ``modes``: also cluster the activating contexts and score per-mode explanations.
    """
    t0 = time.perf_counter()
    for name, v, ok in (("explainer", explainer, OFFLINE_EXPLAINERS), ("simulator", simulator, ("offline",))):
        if not (v in ok or callable(v)):
            raise InputError(f"{name} must be {' or '.join(map(repr, ok))} or a callable llm(prompt) -> str, got {v!r}.",
                             f"Pass {name}='offline' or a function.")
    store.check_unit(layer, unit)
    label = unit_label(store.kind, layer, unit)
    st = store.stats(layer, unit)
    split = store.unit_split(layer, unit)
    train, rtrain = split.explain, split.explain_random
    ho_top, ho_rand = split.heldout_top, split.heldout_random
    t_read = time.perf_counter()
    unit_max = st.max if st.max > 0 else None
    off = explain_offline(explainer if isinstance(explainer, str) else "offline", train, rtrain, unit_max)
    expl = off if isinstance(explainer, str) else llm_explain(explainer, train, st.max, off, label)
    t_expl = time.perf_counter()
    sim = _Simulator(simulator)  # one LLM call budget for the score, the control and the modes
    s = score_explanation(expl.text, ho_top, ho_rand, sim)
    cu, ce = _control_unit(store, layer, unit, expl, explainer)
    sc = score_explanation(ce.text, ho_top, ho_rand, sim) if ce.text else {"pearson": 0.0}
    warnings = list(expl.warnings)
    if ce.warnings:
        warnings.extend(w.replace("explanation", "control explanation", 1) for w in ce.warnings)
    score = ScoreResult(
        pearson=round(s["pearson"], 4), shuffled_pearson=round(sc["pearson"], 4),
        top_pearson=None if s["top"] is None else round(s["top"], 4), random_pearson=None if s["random"] is None else round(s["random"], 4),
        control_unit=cu, control_explanation=ce.text, simulator=s["simulator"], n_records=len(ho_top) + len(ho_rand),
        n_tokens=sum(len(r.tokens) - 1 for r in ho_top + ho_rand),
    )
    t_score = time.perf_counter()
    if st.max <= 0:
        warnings.append("This unit never activates above 0 on the store's corpus; its explanation and score say little.")
    mres = None
    if modes:
        try:
            mres = find_modes(train, ho_top, ho_rand, rtrain, st.max if st.max > 0 else 1.0, score.pearson, method=mode_method,
                              explainer=explainer, simulator=sim, label=label)
        except Exception as e:  # clustering must not sink the report
            warnings.append(f"Mode analysis failed ({describe_failure(e)}).")
    warnings.extend(sim.warnings())
    t_modes = time.perf_counter()
    top = store.top_records(layer, unit)[:n_contexts]
    return UnitReport(
        units_id=store.units_id, kind=store.kind, layer=layer, unit=unit, label=label, explanation=expl.text,
        explanation_detail=expl, score=score,
        top_contexts=top, histogram=store.histogram(layer, unit), stats=st, modes=mres,
        heldout=[HeldoutRecord(window=r.window, kind=r.kind, rank=r.rank, tokens=r.tokens, activations=r.activations, simulated=[round(float(x), 4) for x in p])
                 for r, p in zip(ho_top + ho_rand, s["simulated"])],
        explained_windows=sorted(split.explain_windows()),
        store={"path": str(store.path), "n_tokens": store.n_tokens, "config": {"corpus": store.config.corpus, "seed": store.config.seed}},
        warnings=warnings,
        timings={"read_s": round(t_read - t0, 4), "explain_s": round(t_expl - t_read, 4), "score_s": round(t_score - t_expl, 4),
                 "modes_s": round(t_modes - t_score, 4), "total_s": round(time.perf_counter() - t0, 4)},
    )
