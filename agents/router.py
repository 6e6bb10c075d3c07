"""Routing learned from data: which tool agent (or help reason) a clause of a question is for.

A multinomial logistic regression over two views of the clause, trained on the development
corpus of questions (``evals/data/routing/dev.jsonl``) plus each agent's own examples:

* the bundled MiniLM sentence embedding (meaning: "is it lying to me" ~ "hallucination");
* TF-IDF of character n-grams (notation and misspellings: "L7N340", "halucinate").

Quoted text is masked before either view (a quoted prompt about Paris does not make a
question off-topic) and digits are folded to 0 (the numbers are the grammar's business).

Labels are tool names, ``help:<reason>`` and ``followup`` ("carry on
with the previous analysis": "now layer 5", "and for sentiment?"), which the planner maps to
the previous turn's tool. Training takes a few seconds the first time (the embeddings of the
corpus are cached in ``<gnothi cache>/router/``, as ``.npy`` without pickle); a question
then costs one embedding and a dot product.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .extract import fix_typos, strip_quoted, words_to_digits
from .toolkit.probing import user_examples

ROUTING = Path(__file__).resolve().parent.parent / "evals" / "data" / "routing"
DEV = ROUTING / "dev.jsonl"
# what the router and the taggers learn from (never heldout.jsonl): the dev corpus and earlier held-out sets, each
# studied after its one measurement
TUNING = tuple(ROUTING / f"tuning{i}.jsonl" for i in range(1, 11))
TRAIN = (DEV, *TUNING)
FOLLOWUP = "followup"
C = 8.0  # inverse regularization; chosen by family-grouped cross-validation on the dev corpus (see evals/suite_routing.py)
EMB_WEIGHT = 1.0


def normalise(text: str) -> str:
    """What the router reads: quotes masked, the grammar's notations named (``L3N45`` -> ``neuron-unit``,
    ``f123`` -> ``feature-id``, ``L5H3`` -> ``head-unit``, labelled examples typed in -> ``labelled-examples``), digits
    folded, whitespace collapsed."""
    from .extract import _FEATURE_RE, _HEAD_PATTERNS, _UNIT_PATTERNS

    t = words_to_digits(fix_typos(strip_quoted(text)))
    for pat in _HEAD_PATTERNS:
        t = pat.sub(" head-unit ", t)
    for pat in _UNIT_PATTERNS:
        t = pat.sub(" neuron-unit ", t)
    t = _FEATURE_RE.sub(" feature-id ", t)
    if user_examples(text):
        t = "labelled-examples " + t  # the quotes are masked, so the labels beside them are named ("'a' (europe), 'b' (asia)")
    t = re.sub(r"\d", "0", t)
    return re.sub(r"\s+", " ", t).strip()[:1000]


_CTX = re.compile(r"^\[after (\w+)\] ")
CONTEXT_WEIGHT = 1.0


def in_context(text: str, last_tool: str | None) -> str:
    """A question with the previous turn's tool attached (``[after probing] try sentiment``): the router reads
    the tool as a feature of its own, so "only the heads" after a patching turn and out of the blue can differ."""
    return f"[after {last_tool}] {text}" if last_tool else text


def split_context(text: str) -> tuple[str | None, str]:
    m = _CTX.match(text)
    return (m.group(1), text[m.end():]) if m else (None, text)


def label_of(row: dict) -> list[tuple[str, str]]:
    """(text, label) training pairs from one corpus row; [] when the row teaches no route."""
    from .planner_offline import split_clauses

    exp = row["expect"]
    tools, args = exp.get("tools") or [], exp.get("args") or []
    if not tools and exp.get("route"):  # a clarifying question is asked by the tool it is for
        tools, args = [exp["route"]], [{}]
    q = row.get("question") or ""
    if not tools or not q.strip() or len(q) > 8000:
        return []
    hist = row.get("history") or []
    last = hist[-1] if hist else None
    last_tools = [c.get("tool") for c in (last or {}).get("plan") or []] + ([last["pending"]["tool"]] if last and last.get("pending") else [])
    prev = last_tools[-1] if last_tools else None

    def lab(tool: str, a: dict) -> str:
        if tool == "help":
            return f"help:{a.get('reason', 'capabilities')}"
        if row.get("category") in ("followup", "clarify_answer") and tool in last_tools:
            return FOLLOWUP
        return tool

    if len(tools) == 1:
        return [(in_context(q, prev), lab(tools[0], args[0] if args else {}))]
    clauses = split_clauses(q)
    if len(clauses) == len(tools):
        return [(in_context(c, prev), lab(t, a)) for c, t, a in zip(clauses, tools, args + [{}] * (len(tools) - len(args)))]
    return []


def training_pairs(rows: Iterable[dict], seeds: bool = True) -> tuple[list[str], list[str]]:
    """Texts and labels to train on. Each question asked with no history is also taught once more after a turn
    of another tool: a complete new question is not a follow-up because something came before it."""
    from .toolkit import TOOLKIT

    tools = [n for n in TOOLKIT if n != "help"]
    texts, labels = [], []
    for r in rows:
        for t, l in label_of(r):
            texts.append(t)
            labels.append(l)
            if not r.get("history") and l in tools:
                others = [x for x in tools if x != l]
                prev = others[int(hashlib.sha256(r["id"].encode()).hexdigest(), 16) % len(others)]
                texts.append(in_context(t, prev))
                labels.append(l)
    if seeds:
        for ag in TOOLKIT.values():
            if ag.name == "help":
                continue
            for e in [ag.description, *ag.examples]:
                texts.append(e)
                labels.append(ag.name)
    return texts, labels


HELDOUT = ROUTING / "heldout.jsonl"


# analyses that had no tool when the older routing files were written (labelled help / not_yet / topic there),
# and the agent that answers them now; the frozen files stay as written and are read through this map
NOW_BUILT = {"steering": "steering", "bias": "bias", "methods": "methods", "head_finder": "heads"}


def _now_built(calls: list[tuple[str, dict]]) -> tuple[list[tuple[str, dict]], bool]:
    out: list[tuple[str, dict]] = []
    changed = False
    for t, a in calls:
        if t == "help" and (a or {}).get("reason") == "not_yet" and (a.get("topic") or "methods") in NOW_BUILT:
            out.append((NOW_BUILT[a.get("topic") or "methods"], {}))
            changed = True
        else:
            out.append((t, a))
    return out, changed


def read_row(line: str) -> dict:
    """One routing row, with "not yet" labels of analyses that now have an agent read as calls of that agent. Such a
    row's arguments were never labelled, so only the tool is checked (``expect.args`` empty), and a clarifying
    question asked by that agent also counts as right (``expect.or_clarify``)."""
    row = json.loads(line)
    exp = row["expect"]
    tools, args = exp.get("tools") or [], exp.get("args") or []
    calls, changed = _now_built(list(zip(tools, args + [{}] * (len(tools) - len(args)))))
    if changed:
        row["expect"] = {**exp, "tools": [t for t, _ in calls], "args": [a for _, a in calls], "or_clarify": len(calls) == 1}
        row["category"] = calls[0][0] if len(calls) == 1 and row.get("category") == "not_yet" else row.get("category")
    for turn in row.get("history") or []:
        plan = turn.get("plan") or []
        new, ch = _now_built([(c.get("tool"), c.get("args") or {}) for c in plan])
        if ch:
            turn["plan"] = [{"tool": t, "args": a} for t, a in new]
    return row


def load_rows(paths: Path | Iterable[Path] = TRAIN) -> list[dict]:
    """Rows of the routing files; training files never contribute a question the held-out set asks verbatim."""
    paths = [paths] if isinstance(paths, Path) else list(paths)
    rows = [read_row(x) for p in paths for x in p.read_text(encoding="utf-8").splitlines() if x.strip()]
    if HELDOUT not in paths and HELDOUT.exists():
        held = {_key(json.loads(x)["question"]) for x in HELDOUT.read_text(encoding="utf-8").splitlines() if x.strip()}
        rows = [r for r in rows if _key(r["question"]) not in held]
    return rows


def _key(q: str) -> str:
    return re.sub(r"\s+", " ", q.strip().lower()).rstrip("?.! ")


class Router:
    """``Router(embedder).fit(texts, labels)``; ``predict(text)`` -> [(label, probability)], best first."""

    def __init__(self, embedder: Any = None, C: float = C):
        self.embedder = embedder
        self.C = C
        self._clf: Any = None  # a fitted LogisticRegression
        self._tfidf: Any = None  # a fitted TfidfVectorizer

    def _dense(self, texts: list[str], cache: Path | None = None) -> np.ndarray | None:
        if self.embedder is None:
            return None
        if cache is not None and cache.exists():
            try:
                arr = np.load(cache, allow_pickle=False)
                if arr.shape[0] == len(texts):
                    return arr
            except (OSError, ValueError):
                pass
        arr = np.asarray(self.embedder.encode(texts), dtype=np.float32) * EMB_WEIGHT
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f"{cache.stem}.{os.getpid()}.tmp.npy")
            np.save(tmp, arr, allow_pickle=False)
            tmp.replace(cache)
        return arr

    def _features(self, norm: list[str], dense: np.ndarray | None, prevs: list[str | None]):
        from scipy import sparse

        ctx = np.zeros((len(prevs), len(self._tools) + 1), dtype=np.float32)
        for i, t in enumerate(prevs):
            if t is not None:
                ctx[i, 0] = CONTEXT_WEIGHT  # there is a previous turn
                if t in self._tools:
                    ctx[i, 1 + self._tools.index(t)] = CONTEXT_WEIGHT
        blocks = [self._tfidf.transform(norm), sparse.csr_matrix(ctx)]
        if dense is not None:
            blocks.append(sparse.csr_matrix(dense))
        return sparse.hstack(blocks).tocsr()

    def fit(self, texts: list[str], labels: list[str], cache: Path | None = None) -> "Router":
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        from .toolkit import TOOLKIT

        self._tools = list(TOOLKIT)
        split = [split_context(t) for t in texts]
        prevs, norm = [p for p, _ in split], [normalise(t) for _, t in split]
        self._tfidf = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True, lowercase=True)
        self._tfidf.fit(norm)
        X = self._features(norm, self._dense(norm, cache), prevs)
        self._clf = LogisticRegression(C=self.C, max_iter=3000)
        self._clf.fit(X, labels)
        return self

    def decide(self, text: str, last_tool: str | None) -> tuple[str, float]:
        """The route for ``text``: "carry on with the previous tool" and "that tool" are one choice.

        With a previous turn, the follow-up probability is added to the previous tool's; with
        none, a follow-up is not possible and the best other label wins."""
        p = self.folded(text, last_tool)
        best = max(p, key=lambda k: p[k])
        return best, p[best]

    def folded(self, text: str, last_tool: str | None) -> dict[str, float]:
        """Label probabilities with the follow-up class added to the previous tool's (dropped when there is none)."""
        p = dict(self.predict(text, last_tool))
        fu = p.pop(FOLLOWUP, 0.0)
        if last_tool is not None:
            p[last_tool] = p.get(last_tool, 0.0) + fu
        return p

    def predict(self, text: str, last_tool: str | None = None) -> list[tuple[str, float]]:
        norm = [normalise(text)]
        p = self._clf.predict_proba(self._features(norm, self._dense(norm), [last_tool]))[0]
        order = np.argsort(-p)
        return [(str(self._clf.classes_[i]), float(p[i])) for i in order]


_LOCK = threading.Lock()
_CACHE: dict[tuple, Router] = {}


def corpus_hash(paths: Iterable[Path] = TRAIN) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in paths)).hexdigest()[:16]


def get_router(embedder: Any = None, paths: tuple[Path, ...] = TRAIN) -> Router:
    """The router trained on the training questions (once per process and embedder)."""
    key = (id(embedder) if embedder is not None else None, tuple(str(p) for p in paths))
    with _LOCK:
        r = _CACHE.get(key)
        if r is None:
            from gnothi.tools.config import cache_dir

            texts, labels = training_pairs(load_rows(paths))
            who = f"{type(embedder).__module__}.{type(embedder).__qualname__}:{getattr(getattr(embedder, 'model', None), 'model_card_data', '')}"
            # the embeddings are of the normalised texts: a change to normalise() is a new cache
            h = hashlib.sha256((who + corpus_hash(paths) + "\n".join(normalise(split_context(t)[1]) for t in texts)).encode()).hexdigest()[:16]
            cache = cache_dir() / "router" / f"minilm-{h}.npy" if embedder is not None else None
            r = _CACHE[key] = Router(embedder).fit(texts, labels, cache=cache)
        return r
