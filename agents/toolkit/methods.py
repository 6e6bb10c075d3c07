"""Methods: how an analysis works and how to read its numbers, answered from the project's method cards with citations."""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from gnothi.tools import methods
from gnothi.tools.results import ToolResult

from ..extract import strip_quoted
from .base import Args, Query, Row, ToolAgent, adopt, check_text, num, register

if TYPE_CHECKING:
    from gnothi.tools.model import ModelHandle

_REFERS_BACK = re.compile(r"\b(?:that|this|these|those|the|your|its|my)\s+(?:number|score|value|figure|result|effect|pearson|auroc|accuracy|"
                          r"selectivity|gap|similarity|0?\.\d+)\b|\bwhat does (?:that|this|it) mean\b|\bis (?:that|this) (?:good|bad|high|low)\b"
                          r"|\b(?:why|how come)\s+(?:is\s+it\s+|was\s+it\s+)?(?:that|this|those|these)\b", re.I)


_GENERIC = re.compile(r"\b(?:method\w*|metric\w*|scor\w+|measur\w*|comput\w*|calculat\w*|normali[sz]\w*|baseline|control|interpret\w*|"
                      r"pearson|auroc|accuracy|selectivity|l0|loss|entropy|log-?prob\w*|logit\w*|technique|algorithm|paper|cite|citation)\b|\d*\.\d+", re.I)


_UNIT_WORDS = {"feature", "features", "neuron", "neurons", "layer", "layers", "head", "heads", "token", "tokens", "prompt", "prompts",
               "model", "models", "which", "about", "there", "their", "other", "these", "those", "where", "would", "could"}


@functools.lru_cache(maxsize=1)
def _terms() -> re.Pattern:
    """Words that name a method: every card's keywords, and their words of five letters or more, and its tools' names
    (not the unit words follow-ups use: "that feature", "the next layer")."""
    words = set()
    for c in methods.load_cards():
        for k in c.keywords + [c.title] + [t.replace("_", " ") for t in c.tools]:
            k = k.lower().strip()
            if len(k) > 2 and k not in _UNIT_WORDS:
                words.add(k)
            words.update(w for w in re.findall(r"[a-z][a-z-]{4,}", k) if w not in _UNIT_WORDS)
    return re.compile(r"\b(?:" + "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True)) + r")", re.I)


_ASKS_RE = re.compile(r"\?|\b(?:what|why|how|when|which|whether|explain\w*|defin\w*|meaning|means?|difference|tell\s+me\s+about|is\s+it|are\s+they"
                      r"|does|do\s+(?:you|they|i)|should|can\s+(?:i|you|we))\b", re.I)


def names_a_method(text: str) -> bool:
    return bool(_terms().search(text) or _GENERIC.search(text))


# a question that asks what a method or a concept is, whichever tool's words it uses ("What's an induction head?",
# "what are SAE features?", "Are SAE features really monosemantic?"): not a request to run that tool
_DEFINES_RE = re.compile(
    r"^\s*(?:(?:so|ok(?:ay)?|um+|hey|quick question)\b[,:]?\s*)*(?:what(?:'s|\s+is)\s+(?:an?|the\s+(?:idea|point)\s+(?:of|behind))\s+"
    r"|what\s+(?:is|are)\s+(?!the\b|this\b|that\b|these\b|those\b|my\b|your\b|its\b|some\b|any\b)[\w -]{3,40}\?"
    r"|what\s+does\s+[\w -]{3,40}\s+mean\b|how\s+(?:does|do)\s+[\w -]{3,40}\s+work\b|(?:is|are)\s+[\w -]{3,40}\s+really\b|define\s+"
    r"|(?:explain|describe|tell\s+me)\s+(?:to\s+me\s+)?(?:what|how)\s+(?:an?\s+|the\s+)?[\w -]{3,40}\s+(?:is|are|works?|does|means?)\b)", re.I)


def defines(clause: str) -> bool:
    """``clause`` asks what a method or concept is (no unit, number or prompt of its own)."""
    return bool(_DEFINES_RE.match(clause)) and not re.search(r"\d|QUOTED", strip_quoted(clause)) and names_a_method(clause)


# a question about whether a method can be trusted ("Is it misleading to call it a cat neuron from its top examples?",
# "what are the caveats of probing?"): about the method, not a request to run it
_JUDGES_RE = re.compile(r"\b(?:misleading|pitfalls?|caveats?|limitations?|assumptions?|trust(?:worthy)?|reliable|reliably|valid(?:ity)?|legit(?:imate)?|"
                        r"fair\s+to|wrong\s+to|safe\s+to|mistake\s+to|fool(?:ed|s)?\s+(?:me|us|you)|gotchas?|overinterpret\w*|over-interpret\w*)\b", re.I)


def judges(clause: str) -> bool:
    """``clause`` asks whether a method can be trusted, with no unit, number or prompt of its own."""
    return (bool(_JUDGES_RE.search(clause)) and bool(_ASKS_RE.search(clause)) and not re.search(r"\d|QUOTED", strip_quoted(clause))
            and names_a_method(clause) and not _ABOUT_AN_ANSWER_RE.search(clause))


# ... unless it is the model's answer that is doubted ("is its answer to ... reliable or invented?")
_ABOUT_AN_ANSWER_RE = re.compile(r"\b(?:invent\w*|made[- ]up|mak\w*\s+(?:it|this|that|things|stuff)\s+up|hallucinat\w*|fabricat\w*|confabulat\w*|"
                                 r"(?:its|the|model'?s|this|that)\s+(?:answer|reply|response|output|claim)s?)\b", re.I)


class MethodsArgs(Args):
    """Explain a method or one of its numbers from the method cards."""

    question: str | None = Field(None, description="the question about a method, as asked")
    about: str | None = Field(None, description="the tool whose number the question refers to (set from the previous turn)")

    @field_validator("question")
    @classmethod
    def _t(cls, v, info):
        return check_text(v, info.field_name)


@register
class Methods(ToolAgent[MethodsArgs]):
    name = "methods"
    title = "Methods"
    description = ("Explain how an interpretability method works and how to read its numbers (activation patching, causal tracing, probes "
                   "and control tasks, SAEs, neuron explanation scores, hallucination signals, attention heads, steering, bias tests), "
                   "from the project's method cards, citing the papers.")
    examples = ["what is activation patching?", "how do I read a normalized effect of 0.8?", "what does probe selectivity mean?"]
    Args = MethodsArgs
    needs_model = False
    next_steps_text = ["run the method on your own prompt and read its numbers with this card"]

    def extract(self, q: Query) -> tuple[dict[str, Any], str | None]:
        args: dict[str, Any] = {"question": q.clause.strip() or q.question.strip()}
        last = q.entities.get("last_tool")
        if last and last not in ("methods", "help") and (_REFERS_BACK.search(q.clause) or re.search(r"\d*\.\d+|\d+(?:\.\d+)?\s*%", q.clause)):
            args["about"] = last
        if not args.get("about") and not names_a_method(q.clause):
            return args, "Which method should I explain? For example: activation patching, probes, SAEs, neuron explanation scores or steering."
        return args, None

    def asks_on_its_own(self, clause: str) -> bool:
        # a question about a method is asked as one ("how are labels made?", "explain what a probe is"), not as an order
        return bool(_ASKS_RE.search(clause))

    def reformulate(self, a):
        about = f" (about the {a['about'].replace('_', ' ')} result above)" if a.get("about") else ""
        return f"Answer {a.get('question')!r}{about} from the method cards, citing the papers."

    def execute(self, handle: ModelHandle, a: MethodsArgs, llm: Any = None) -> ToolResult:
        ans = methods.explain_method(a.question or "", tool_hint=a.about)
        return adopt(ans.to_tool_result(), self.name)

    def answer(self, r):
        d = r.data
        lead = f"From the card *{d.get('title')}*"
        if d.get("value") is not None:
            lead += f", on reading a value of {num(d['value'])}"
        return lead + ": " + " ".join(d.get("quote") or [])

    def table(self, r):
        return [Row(f"Card {h['card']} ({h['section']})", num(h["score"]), "retrieval similarity") for h in r.evidence[:3]]

    def evidence(self, r):
        d = r.data
        refs = "; ".join(methods.short_reference(x) for x in d.get("references") or [])
        return [f"cites {refs}", f"card (with the papers' titles): {d.get('path')}"]

    def sure(self, r):
        top = r.evidence[:2]
        margin = top[0]["score"] - top[1]["score"] if len(top) > 1 else None
        clear = margin is not None and margin >= 0.1
        return ("this is the method card's text (written for this project, citing the papers below), not a measurement of this model; "
                f"retrieval {'clearly' if clear else 'only narrowly'} preferred this card over the next one.")

    def suggestions(self, r, args, n_layers=None):
        card = r.data.get("card")
        sec = r.data.get("section")
        out = []
        if sec != "pitfalls":
            out.append(f"what are the pitfalls of {r.data.get('title', '').lower()}?")
        if sec != "read":
            out.append(f"how do I read the numbers of {r.data.get('title', '').lower()}?")
        return out[:2] if card else []
