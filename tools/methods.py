"""Methods explained from cards: retrieval over the project's method cards, with their citations.

The cards (``tools/cards/*.md``, shipped with the package) are written for this project, one
per method, each with four sections: *What it measures*, *How to read the numbers*,
*Pitfalls* and *References* (authors, year, title, arXiv id). A question is answered by
retrieval: every section is embedded with the bundled MiniLM, the question is matched
against them, and the answer quotes the best card's most relevant passages with the card's
references. Cards are data: they are quoted, never followed as instructions.

When a question asks what a number means ("how do I read a normalized effect of 0.8?", or
"what does that 0.84 mean?" after a reply), the *How to read* section is preferred and the
number is named in the answer; a hint of the tool the number came from (the previous
turn's) favours that tool's card.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from .embeddings import embed
from .errors import CardError, InputError
from .results import ToolResult

CARDS_DIR = Path(__file__).resolve().parent / "cards"
SECTIONS = {"what it measures": "what", "how to read the numbers": "read", "pitfalls": "pitfalls", "references": "references"}
_ARXIV = re.compile(r"arXiv:\s*(\d{4}\.\d{4,5})", re.I)
_READ_INTENT = re.compile(r"\b(?:read|interpret|mean|means|meaning|good|bad|high|low|trust|significant|normal|typical|expect\w*|score[sd]?|value|"
                          r"number|figure|is that)\b|\d*\.\d+|\b\d+\b", re.I)
_PITFALL_INTENT = re.compile(r"\b(?:pitfalls?|limitations?|caveats?|wrong|fail\w*|mislead\w*|fool\w*|trust|wary|careful|gotchas?|problems?|"
                             r"issues?|weakness\w*|downsides?|catch|break|when not)\b", re.I)
_WHAT_INTENT = re.compile(r"\b(?:what is|what's|what are|how does|how do(?:es)? .* work|explain|define|definition|intuition|idea|basics)\b", re.I)
_LOCK = threading.Lock()
_CACHE: dict[str, "Library"] = {}


@dataclass
class Card:
    name: str
    title: str
    keywords: list[str]
    tools: list[str]
    sections: dict[str, str]  # "what" / "read" / "pitfalls" -> text
    references: list[str]
    path: str = ""

    def arxiv_ids(self) -> list[str]:
        return [m.group(1) for r in self.references for m in [_ARXIV.search(r)] if m]


def short_reference(ref: str) -> str:
    """'Zhang, F., Nanda, N. (2023). Title. arXiv:2309.16042' -> 'Zhang & Nanda 2023, arXiv:2309.16042'."""
    m = re.match(r"^(?P<a>.+?)\s*\((?P<y>\d{4})\)", ref)
    ax = _ARXIV.search(ref)
    if not m:
        return ref
    names = [x.strip() for x in re.split(r",\s*(?:&\s*|and\s+)?|\s+&\s+|\s+and\s+", m.group("a")) if x.strip()]
    surnames = [n for n in names if not re.fullmatch(r"(?:[A-Z]\.\s*)+|[A-Z]\.-[A-Z]\.|et al\.?", n)]
    who = surnames[0] if surnames else m.group("a")
    if "et al" in m.group("a") or len(surnames) > 2:
        who += " et al."
    elif len(surnames) == 2:
        who += f" & {surnames[1]}"
    return f"{who} {m.group('y')}" + (f", arXiv:{ax.group(1)}" if ax else "")


def parse_card(text: str, name: str) -> Card:
    """A card from its markdown; a card that breaks the format is refused with what is wrong."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        raise CardError(f"Method card {name!r} does not start with '# Title'.", "Start the card with a '# Title' line.")
    title = lines[0][2:].strip()
    meta: dict[str, str] = {}
    sections: dict[str, list[str]] = {}
    cur = None
    for ln in lines[1:]:
        if ln.startswith("## "):
            key = SECTIONS.get(ln[3:].strip().lower())
            if key is None:
                raise CardError(f"Method card {name!r} has an unknown section {ln[3:].strip()!r}.", f"Use only: {', '.join(s.capitalize() for s in SECTIONS)}.")
            cur = key
            sections[cur] = []
        elif cur is None:
            m = re.match(r"^(keywords|tools):\s*(.*)$", ln.strip(), re.I)
            if m:
                meta[m.group(1).lower()] = m.group(2)
        else:
            sections[cur].append(ln)
    missing = [k for k in ("what", "read", "pitfalls", "references") if k not in sections]
    if missing:
        raise CardError(f"Method card {name!r} lacks the section(s) {', '.join(missing)}.", "Give every card all four sections.")
    refs = [ln.strip()[2:].strip() for ln in sections.pop("references") if ln.strip().startswith("- ")]
    if not refs:
        raise CardError(f"Method card {name!r} cites nothing.", "List its papers under '## References' as '- Authors (year). Title. arXiv:ID'.")
    return Card(name=name, title=title, keywords=[k.strip() for k in meta.get("keywords", "").split(",") if k.strip()],
                tools=[t.strip() for t in meta.get("tools", "").split(",") if t.strip()],
                sections={k: "\n".join(v).strip() for k, v in sections.items()}, references=refs)


@dataclass
class Library:
    cards: list[Card]
    chunks: list[tuple[int, str, str]] = field(default_factory=list)  # (card index, section, text)
    vectors: np.ndarray | None = None


def load_cards(folder: Path | None = None) -> list[Card]:
    folder = Path(folder or CARDS_DIR)
    files = sorted(folder.glob("*.md"))
    if not files:
        raise CardError(f"No method cards in {folder}.", "Reinstall the package (the cards ship with it).")
    cards = []
    for f in files:
        c = parse_card(f.read_text(encoding="utf-8"), f.stem)
        c.path = str(f)
        cards.append(c)
    return cards


def _passages(text: str) -> list[str]:
    """A section's self-contained passages: its paragraphs and list items (a bullet is read whole)."""
    out = []
    for block in re.split(r"\n\s*\n|\n(?=\s*[-*] )", text):
        block = " ".join(block.split())
        if block:
            out.append(re.sub(r"^[-*]\s+", "", block))
    return out


def library(folder: Path | None = None) -> Library:
    key = str(folder or CARDS_DIR)
    with _LOCK:
        if key not in _CACHE:
            cards = load_cards(folder)
            chunks = []
            for i, c in enumerate(cards):
                head = f"{c.title} ({', '.join(c.keywords[:8])})"
                for sec in ("what", "read", "pitfalls"):
                    chunks.append((i, sec, f"{head}. {c.sections[sec]}"))
            lib = Library(cards=cards, chunks=chunks)
            lib.vectors = embed([t for _, _, t in chunks])
            _CACHE[key] = lib
        return _CACHE[key]


class MethodHit(BaseModel):
    card: str
    title: str
    section: str
    score: float


class MethodAnswer(BaseModel):
    question: str
    card: str
    title: str
    section: str
    quote: list[str]  # the card's passages that answer the question
    references: list[str]
    arxiv: list[str]
    value: float | None = None  # a number the question asks about
    about_tool: str | None = None  # the tool that number came from (the previous turn's)
    ranked: list[MethodHit] = Field(default_factory=list)
    path: str = ""

    def to_tool_result(self) -> ToolResult:
        return ToolResult(
            tool="methods",
            summary=f"{self.title}: " + " ".join(self.quote),
            headline={"card": self.card, "section": self.section, "retrieval_score": self.ranked[0].score if self.ranked else None},
            evidence=[h.model_dump() for h in self.ranked[:3]],
            provenance={"card": self.path, "references": self.references},
            data=self.model_dump(mode="json"),
        )


def intent(question: str) -> str | None:
    """Which section a question asks for: 'read' (a number), 'pitfalls', 'what', or None (let retrieval decide)."""
    if _PITFALL_INTENT.search(question):
        return "pitfalls"
    if re.search(r"\d*\.\d+|\b(?:how (?:do|should|to) (?:i |we |you )?(?:read|interpret)|what does (?:a|an|that|this|the|my)\b.*\bmean)", question, re.I):
        return "read"
    if _WHAT_INTENT.search(question):
        return "what"
    return "read" if _READ_INTENT.search(question) else None


def _value(question: str) -> float | None:
    """The number a question asks about: a decimal first ("at layer 12, ... an effect of 0.8" -> 0.8), else a number after
    of / is / = / that; never a layer, head or neuron index."""
    cands = [m for m in re.finditer(r"(?<![\w.])([-+]?\d*\.\d+|[-+]?\d+)(?![\w.])", question)
             if not re.search(r"\b(?:layers?|heads?|neurons?|features?|top|gpt|l|n|k)[- ]?$", question[:m.start()], re.I)]
    dec = [m for m in cands if "." in m.group(1)]
    after = [m for m in cands if re.search(r"\b(?:of|is|was|=|that|at|score|effect|value)\s*$", question[:m.start()], re.I)]
    pick = (dec or after or cands)[:1]
    return float(pick[0].group(1)) if pick else None


def retrieve(question: str, tool_hint: str | None = None, folder: Path | None = None) -> list[MethodHit]:
    """Cards ranked for ``question``: the best section's similarity, plus a small bonus for the hinted tool's card."""
    lib = library(folder)
    q = embed([question])[0]
    sims = lib.vectors @ q
    best: dict[int, tuple[float, str]] = {}
    for (i, sec, _), s in zip(lib.chunks, sims):
        if i not in best or s > best[i][0]:
            best[i] = (float(s), sec)
    hits = []
    for i, (s, sec) in best.items():
        c = lib.cards[i]
        bonus = 0.08 if tool_hint and tool_hint in c.tools else 0.0
        bonus += 0.05 * sum(1 for k in c.keywords if len(k) > 3 and re.search(r"\b" + re.escape(k.lower()) + r"\b", question.lower()))
        hits.append(MethodHit(card=c.name, title=c.title, section=sec, score=round(s + min(bonus, 0.15), 4)))
    return sorted(hits, key=lambda h: -h.score)


def explain_method(question: str, tool_hint: str | None = None, n_passages: int = 2, folder: Path | None = None) -> MethodAnswer:
    """Answer a question about a method from the cards, quoting the card and citing its papers."""
    if not isinstance(question, str) or not question.strip():
        raise InputError("The question is empty.", "Ask about a method, e.g. 'what is activation patching?'.")
    lib = library(folder)
    ranked = retrieve(question, tool_hint, folder)
    top = ranked[0]
    card = next(c for c in lib.cards if c.name == top.card)
    sec = intent(question) or top.section
    passages = _passages(card.sections[sec]) or _passages(card.sections["what"])
    v = embed(passages) @ embed([question])[0]
    order = sorted(range(len(passages)), key=lambda i: -v[i])[:n_passages]
    if sec == "what" and 0 not in order:
        order = [0] + order[:n_passages - 1]  # a definition starts at the beginning
    quote = [passages[i] for i in sorted(order)]
    return MethodAnswer(question=question, card=card.name, title=card.title, section=sec, quote=quote, references=card.references,
                        arxiv=card.arxiv_ids(), value=_value(question) if sec == "read" else None, about_tool=tool_hint, ranked=ranked,
                        path=f"tools/cards/{Path(card.path).name}")
