"""Hallucination detector: is the model making its answer up?"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from gnothi.tools import hallucination
from gnothi.tools.errors import InputError
from gnothi.tools.results import ToolResult

from .base import Args, Query, ToolAgent, adopt, check_text, register


class HalluArgs(Args):
    """Is the model making it up? Score a question (and optionally an answer and a context)."""

    question: str | None = Field(None, description="the question put to the model")
    answer: str | None = Field(None, description="an answer to check (default: the model's own answer)")
    context: str | None = Field(None, description="a passage the answer should be grounded in")

    @field_validator("question", "answer", "context")
    @classmethod
    def _t(cls, v, info):
        return check_text(v, info.field_name)


_QA_RE = re.compile(r"\bq(?:uestion)?\s*[:=]\s*(.+?)\s*\b(?:a|answer)\s*[:=]\s*(.+?)\s*$", re.I | re.S)
_CTX_RE = re.compile(r"\b(?:context|passage|source|document)\s*[:=]\s*(\"[^\"]+\"|“[^”]+”|.+)$", re.I | re.S)
_ANSWER_CUE = re.compile(r"\b(?:answer(?:ed|s)?|says?|said|claims?|claimed|replie[sd]|reply|respond(?:s|ed)?|tells? me|told me|output(?:s|ted)?)\b\s*(?:is|was|with|that)?\s*[:=]?\s*$", re.I)


@register
class HallucinationDetector(ToolAgent):
    name = "hallucination_detector"
    title = "Hallucination detector"
    description = "Detect whether the model is making an answer up (hallucinating) from its internal signals: confidence, consistency and a probe score."
    examples = [
        "is the model making this up?",
        'Who wrote Hamlet? Is the model likely to hallucinate on that?',
        'is it making it up on "Who wrote Hamlet?" answer "Dickens"',
    ]
    Args = HalluArgs
    next_steps_text = [
        "give a context passage to check grounding",
        "compare with a question the model surely knows",
    ]

    def extract(self, q: Query) -> tuple[dict[str, Any], str | None]:
        args = {k: v for k, v in q.last_args.items() if k in ("question", "answer", "context")} if q.followup else {}
        text = q.question
        quotes = list(q.whole.quotes)
        m_ctx = _CTX_RE.search(text)
        if m_ctx:
            c = m_ctx.group(1).strip()
            c = c[1:-1] if c[:1] in "\"“" else c
            args["context"] = c
            quotes = [x for x in quotes if x != c]
        m_q = _QA_RE.search(text)
        if m_q:
            args["question"], args["answer"] = m_q.group(1).strip(" \"'“”"), m_q.group(2).strip(" \"'“”")
        elif quotes:
            qs = [x for x in quotes if x.rstrip().endswith("?")] or quotes[:1]
            args["question"] = qs[0]
            rest = [x for x in quotes if x != qs[0]]
            if rest:
                args["answer"] = rest[0]
        elif q.whole.embedded_question:
            args["question"] = q.whole.embedded_question
            hit = q.span("answer")
            if hit and hit[0].lower() not in args["question"].lower():
                args["answer"] = hit[0]
        if not args.get("question"):
            return args, ('Which question (and answer) should I check? Ask it in your message: "Who wrote Hamlet? Is the model making '
                          'that up?", or quote them: is it making it up on "Who wrote Hamlet?" answer "Dickens"?')
        return args, None

    def reformulate(self, a):
        ans = f" when it answers {a['answer']!r}" if a.get("answer") else " (generating its own answer first)"
        ctx = " given your context passage" if a.get("context") else ""
        return (f"Put {a.get('question')!r} to the model{ctx} and score whether it is making up its answer{ans}, from its confidence, "
                "the consistency of resampled answers and a probe on its activations.")

    def execute(self, handle, a: HalluArgs, llm=None) -> ToolResult:
        if not a.question:
            raise InputError("Which question and answer should I check?", 'Quote them: is the model making it up on "Who wrote Hamlet?" answer "Dickens"?')
        rep = hallucination.detect(handle, question=a.question, answer=a.answer, context=a.context)
        return adopt(rep.to_tool_result(), self.name)
