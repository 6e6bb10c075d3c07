"""The tool-agent contract and its registry.

A tool agent is one module in :mod:`gnothi.agents.toolkit` that owns everything about its
tool: the pydantic argument schema (``Args``), the description and examples routing learns
from, argument extraction from a question (:meth:`ToolAgent.extract`), the reformulation
sentence the user sees before anything runs, the writer's title and next steps, the
entities follow-ups refer to, and the typed call of its functions in ``gnothi.tools``.

The planners, the writer and the UI read :data:`TOOLKIT`; none of them keeps a per-tool list
of its own. Adding a tool is adding one module (a :class:`ToolAgent` subclass decorated with
:func:`register`, imported in ``toolkit/__init__.py``) and its tests.
"""

from __future__ import annotations

import typing

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from gnothi.tools.errors import GnothiError, InputError
from gnothi.tools.results import ToolResult, provenance
from gnothi.tools.tokens import merge_partial

from ..extract import Parsed, strip_quoted

if TYPE_CHECKING:
    from gnothi.tools.model import ModelHandle

MAX_TEXT = 4000  # characters of any one prompt handed to a tool


def check_text(v: Any, what: str) -> str | None:
    """A prompt-like argument: ``None`` for empty, an error above :data:`MAX_TEXT` characters."""
    if v is None:
        return None
    v = str(v)
    if not v.strip():
        return None
    if len(v) > MAX_TEXT:
        raise ValueError(f"{what} is {len(v)} characters long; the limit is {MAX_TEXT}")
    return v


class Args(BaseModel):
    """Base of every argument schema: an argument the tool cannot take is an error, never dropped."""

    model_config = ConfigDict(extra="forbid")


_ADD_UNIT_RE = re.compile(r"\b(?:inject\w*|add\w*|amplif\w*|boost\w*|clamp\w*|steer\w*|push\w*|crank\w*|turn\w*\s+up|set\s+(?:it|its|the|neuron|feature|unit).{0,30}\bto)\b", re.I)
_WHILE_WRITING_RE = re.compile(r"\b(?:decod\w*|generat\w*|writ\w*|continu\w*|sampl\w*|complet\w*|strength|scale|coefficient|alpha|"
                               r"multiplier|times|factor|by\s+[-+]?\d|to\s+[-+]?\d|\d+(?:\.\d+)?\s*x)\b", re.I)


def adds_while_writing(clause: str) -> bool:
    """The clause asks to add a unit's direction while the model writes ("inject L20N101 during decoding, scale 10",
    "amplify feature 1196 by 10 and sample"): a steering request, whichever unit it names."""
    bare = strip_quoted(clause)
    return bool(_ADD_UNIT_RE.search(bare) and _WHILE_WRITING_RE.search(bare))


@dataclass
class Query:
    """What an agent's extractor sees for one clause of a question."""

    clause: str  # the part of the question routed to this agent
    question: str  # the whole question
    parsed: Parsed  # the grammar's reading of the clause
    whole: Parsed  # ... and of the whole question
    followup: bool = False  # the clause leans on an earlier turn
    last_args: dict[str, Any] = field(default_factory=dict)  # the previous call of this tool, for follow-ups
    entities: dict[str, Any] = field(default_factory=dict)  # things earlier turns named ("that feature")
    n_layers: int | None = None
    d_mlp: int | None = None
    n_heads: int | None = None
    datasets: list[str] | None = None
    taggers: dict | None = None  # learned free-text argument readers (None: the ones trained on the dev corpus)
    message_quotes: list[str] = field(default_factory=list)  # every quote of the whole message (for "the same prompt")
    tool: str = ""

    @property
    def quotes(self) -> list[str]:
        return self.parsed.quotes or self.whole.quotes

    def bare_number(self) -> int | None:
        """The one number of an elliptical follow-up ("and 341?"), when the clause names nothing else."""
        e = self.parsed
        if (e.layer is None and e.neuron is None and e.head is None and not e.features and len(e.numbers) == 1
                and len(self.clause.split()) <= 4 and re.search(r"\d", self.clause)):  # "and 341?", not "that one"
            return e.numbers[0]
        return None

    def referred_prompt(self) -> str | None:
        """The prompt "that prompt" / "the same sentence" refers to: one quoted elsewhere in the message, or an earlier turn's."""
        if not re.search(r"\b(?:that|this|the|same|previous|last|its)\s+(?:same\s+|clean\s+|previous\s+)?(?:prompt|sentence|text|input|question|example|one)\b|\bon it\b|\bon that\b", self.clause, re.I):
            return None
        own = set(self.parsed.quotes)
        others = [x for x in self.message_quotes if x not in own]
        role = re.search(r"\b(?P<r>clean|first|original|corrupted|corrupt|second|other)\s+(?:prompt|sentence|one|text)\b", self.clause, re.I)
        if role and len(others) >= 2:  # "... on the clean prompt": the message's prompts in the order given
            return others[0] if role.group("r").lower() in ("clean", "first", "original") else others[1]
        if others:
            return max(others, key=len)
        return self.entities.get("prompt")

    def span(self, key: str) -> tuple[str, bool] | None:
        """The learned reading of this tool's free-text argument ``key`` in the clause: (text, was it quoted)."""
        from ..spans import find_span

        hit = find_span(self.tool, key, self.clause, self.taggers)
        return (hit[0], hit[1]) if hit else None


def error_result(tool: str, err: GnothiError, handle=None) -> ToolResult:
    return ToolResult(tool=tool, ok=False, summary=err.message, error=err.to_dict(),
                      provenance=provenance(handle) if handle is not None else {})


def adopt(tr: ToolResult, tool: str) -> ToolResult:
    """A tool's ToolResult as this agent's (the tool's own name is kept in ``data.tool_name``)."""
    if tr.tool != tool:
        tr = tr.model_copy(update={"data": {**tr.data, "tool_name": tr.tool}, "tool": tool})
    return tr


# ---------------------------------------------------------------------------- reading numbers

def num(v: Any, digits: int = 2) -> str:
    """A measured value rounded for reading ("0.93", "3.9", "1,204", "12%"); the answer JSON keeps full precision."""
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            return str(v)
        a = abs(v)
        if a >= 1000:
            return f"{v:,.0f}"
        if a >= 100:
            return f"{v:.0f}"
        if a >= 10:
            return f"{v:.1f}"
        if a != 0 and a < 0.001:
            return f"{v:.1e}"
        if a != 0 and a < 0.01:
            return f"{v:.3f}"
        return f"{v:.{digits}f}"
    if isinstance(v, (list, tuple)):
        return ", ".join(num(x, digits) for x in v[:6]) + (" ..." if len(v) > 6 else "")
    return str(v)


def pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.0f}%" if abs(v) >= 0.01 else f"{100 * v:.1f}%"


def context_lines(result: ToolResult, n: int = 3) -> list[str]:
    """The top activating contexts of a result's token spans, the strongest token in bold: «... the **cat** sat ...» (3.9)."""
    out = []
    for sp in result.spans[:n]:
        if not sp.tokens or not sp.values:
            continue
        toks, vals = merge_partial(sp.tokens, sp.values)  # a character split over tokens is shown once
        i = max(range(len(vals)), key=lambda j: vals[j])
        lo, hi = max(0, i - 8), min(len(toks), i + 4)
        tok = toks[i]
        lead, core = tok[: len(tok) - len(tok.lstrip())], tok.strip() or tok
        text = "".join(toks[lo:i]) + lead + "**" + core + "**" + ("" if not tok.endswith(" ") else " ") + "".join(toks[i + 1:hi])
        text = " ".join(text.split())
        out.append(f"«{'…' if lo else ''}{text}{'…' if hi < len(toks) else ''}» ({num(vals[i])})")
    return out


def described(explanation: Any) -> str:
    """An explanation as the rest of a sentence about a unit: "fires on 'of' ..." or "responds to dates"."""
    e = str(explanation or "no clear pattern").strip().rstrip(".")
    if re.match(r"^(?:fires|responds|activates|detects|tracks|is|marks|encodes|predicts|promotes)\b", e, re.I):
        return e[0].lower() + e[1:]
    return "responds to " + e  # as written: "French words" keeps its capital


@dataclass
class Row:
    """One line of a reply's table: what was measured, its value, and what it is compared with."""

    what: str
    value: str
    control: str = ""


def _label(key: str) -> str:
    return key.replace("_", " ").strip().capitalize()


A = TypeVar("A", bound=BaseModel)


class ToolAgent(Generic[A]):
    """One tool agent. Subclasses set the class attributes and implement ``extract`` and ``execute``."""

    name: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str]  # routing and LLM planners read it
    examples: ClassVar[list[str]] = []  # seed questions for routing (the dev corpus has many more)
    Args: ClassVar[type[BaseModel]]  # the schema of A
    needs_model: ClassVar[bool] = True
    next_steps_text: ClassVar[list[str]] = []

    # ------------------------------------------------------------------ planning

    def extract(self, q: Query) -> tuple[dict[str, Any], str | None]:
        """Arguments for this tool from ``q``, and a clarifying question when one is needed."""
        raise NotImplementedError

    def extract_all(self, q: Query) -> list[tuple[dict[str, Any], str | None]]:
        """One or more calls from one clause (e.g. "what do L3N5 and L4N9 do?"): by default one."""
        return [self.extract(q)]

    def canonical(self, args: dict[str, Any]) -> dict[str, Any]:
        """Arguments in this tool's conventions, whoever planned them (an LLM planner's too)."""
        return args

    @classmethod
    def scalar_fields(cls) -> dict[str, type]:
        """The arguments a user can type as ``key=value``: name -> int, float or str (lists and the rest left out)."""
        out: dict[str, type] = {}
        for name, f in cls.Args.model_fields.items():
            kinds = [k for k in (int, float, str) if k in typing.get_args(f.annotation) or f.annotation is k]
            if kinds and "list" not in str(f.annotation) and "Literal" not in str(f.annotation):
                out[name] = kinds[0]
        return out

    def hand_over(self, q: Query) -> str | None:
        """Another agent that measures what ``q`` asks better than this one (its name), or None."""
        return None

    def asks_on_its_own(self, clause: str) -> bool:
        """Whether ``clause``, one part of a longer message, is a request to this agent by itself (and not the
        message's other request going on: "..., report per-layer accuracy")."""
        return True

    def missing(self, args: dict[str, Any]) -> str | None:
        """The one argument a half-built call lacks, when a short answer can supply it."""
        return None

    def reformulate(self, args: dict[str, Any]) -> str:
        """One plain sentence: what will be measured."""
        raise NotImplementedError

    # ------------------------------------------------------------------ running

    def execute(self, handle: ModelHandle, a: A, llm: Any = None) -> ToolResult:
        raise NotImplementedError

    def notice(self, handle: ModelHandle, args: dict[str, Any]) -> str | None:
        """Said before the run when it will take long (a first-use build), with an estimate."""
        return None

    def validate(self, args: dict[str, Any]) -> A:
        return self.Args.model_validate(args or {})  # type: ignore[return-value]  # Args is the class of A (a ClassVar cannot say so)

    def run(self, handle: ModelHandle, args: dict[str, Any], llm: Any = None) -> ToolResult:
        """Validate ``args``, run, and return a ToolResult (``ok=False`` with an error on failure)."""
        t0 = time.perf_counter()
        try:
            a = self.validate(args)
        except ValidationError as e:
            msgs = "; ".join(f"{'.'.join(str(x) for x in err['loc']) or 'args'}: {err['msg']}" for err in e.errors()[:3])
            return error_result(self.name, InputError(f"Bad arguments for {self.name}: {msgs}.", "Rephrase the question with valid values."), handle)
        try:
            tr = self.execute(handle, a, llm)
        except GnothiError as e:
            tr = error_result(self.name, e, handle)
        tr.timings.setdefault("total_s", round(time.perf_counter() - t0, 4))
        return tr

    # ------------------------------------------------------------------ replying and memory

    def next_steps(self, result: ToolResult) -> list[str]:
        return list(self.next_steps_text)

    def answer(self, result: ToolResult) -> str:
        """The direct answer to the question, in one or two plain sentences (the numbers go in :meth:`table`)."""
        return result.summary

    def table(self, result: ToolResult) -> list[Row]:
        """The numbers that carry the answer, each beside its control or baseline."""
        rows = []
        for k, v in result.headline.items():
            if v is None or isinstance(v, (dict, list)) and not v:
                continue
            rows.append(Row(_label(k), num(v)))
        return rows[:8]

    def sure(self, result: ToolResult) -> str | None:
        """How sure the answer is, in words, from the result's own numbers and controls (None: the writer's generic reading)."""
        return None

    def evidence(self, result: ToolResult) -> list[str]:
        """A few lines of evidence a reader can check (contexts, tokens, signals), in words."""
        out = []
        for ev in result.evidence[:3]:
            parts = [f"{_label(k).lower()} {num(v) if not isinstance(v, str) else repr(v[:100])}" for k, v in list(ev.items())[:4]
                     if v is not None and not isinstance(v, (dict, list)) and k != "kind"]
            if parts:
                out.append(", ".join(parts))
        return out

    def suggestions(self, result: ToolResult, args: dict[str, Any], n_layers: int | None = None) -> list[str]:
        """Two or three follow-up questions the chat offers as buttons, written the way a user would ask them
        (``n_layers``: the model's, so that no suggestion names a layer it lacks)."""
        return []

    def entities(self, args: dict[str, Any], result: dict | None) -> dict[str, Any]:
        """What a follow-up may point back to ("that neuron"), from the call and its compact result."""
        return {}

    def openai_tool(self) -> dict:
        schema = self.Args.model_json_schema()
        schema.pop("title", None)
        return {"type": "function", "function": {"name": self.name, "description": self.description, "parameters": schema}}


TOOLKIT: dict[str, ToolAgent[Any]] = {}


def register(cls: type[ToolAgent]) -> type[ToolAgent]:
    """Class decorator: add one agent to :data:`TOOLKIT`; a second agent of the same name is refused."""
    if cls.name in TOOLKIT:
        raise ValueError(f"tool agent {cls.name!r} is registered twice")
    TOOLKIT[cls.name] = cls()
    return cls
