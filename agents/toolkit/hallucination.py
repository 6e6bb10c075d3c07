"""Hallucination detector: is the model making its answer up?"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from gnothi.tools import hallucination, jobs
from gnothi.tools.errors import GnothiError, InputError
from gnothi.tools.results import ToolResult

from ..extract import claimed_answer, labelled_fields, strip_quoted
from .base import Args, Query, Row, ToolAgent, adopt, check_text, num, register

if TYPE_CHECKING:
    from gnothi.tools.model import ModelHandle


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


# a passage typed in before the request: "Here's a paragraph: <passage>. Now ask it '...'", "Given this text: <passage>. Is ..."
_PASSAGE_RE = re.compile(r"\b(?:here(?:'s|\s+is)|given|take|using|with|read|consider|based\s+on)\s+(?:a|an|the|this|my|some|following)?\s*(?:short\s+|little\s+)?"
                         r"(?:paragraph|passage|text|context|snippet|article|excerpt|document|note|background|source)\s*[:\-–—]\s*(?P<c>.+?[.!?])"
                         r"(?=\s+(?:now|then|so|ok(?:ay)?|and|ask|is|are|does|did|can|could|would|will|please|check|tell|see|based|given|using|according|"
                         r"with\s+that|against\s+(?:that|this))\b|\s*$)", re.I | re.S)
_QSTART = re.compile(r"^(?:who|whom|whose|what|when|where|which|how|why|is|are|was|were|did|does|do|in|on|at|can|has|have|name)\b", re.I)


def as_question(text: str, quoted: bool = False) -> str:
    """A question to put to the model from the words the user used ("who painted the Mona Lisa" -> "Who painted the Mona Lisa?")."""
    if quoted:
        return text.strip()
    t = text.strip().rstrip(",.;:!?").strip()
    if _QSTART.match(t):
        return t[0].upper() + t[1:] + "?"
    if re.match(r"^the\b", t, re.I):
        return "What is " + t + "?"
    return t[0].upper() + t[1:] + "?" if t else t


def _question_like(text: str) -> bool:
    """A quoted text that can be put to the model as a question (not a one- or two-word answer)."""
    t = text.strip()
    return t.endswith("?") or bool(_QSTART.match(t)) or len(t.split()) >= 4


@register
class HallucinationDetector(ToolAgent[HalluArgs]):
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
        fields = labelled_fields(q.question)
        m_q = _QA_RE.search(q.question)
        if fields.get("question"):  # "Context: ... Question: ... Answer: ..."
            args.update({k: v for k, v in fields.items() if k in ("question", "answer", "context")})
            claim = None if args.get("answer") else claimed_answer(q.question)
            if claim and "QUOTED" not in claim and claim.lower() not in args["question"].lower():
                args["answer"] = claim  # "Q: What is the capital of Canada? It answered Toronto."
            for k in ("context", "answer"):  # 'is "A" a hallucination for the question "Q"', 'grounded in the note "C"': the learned reading of the other quotes
                hit = None if args.get(k) else q.span(k)
                if hit and hit[1] and hit[0].strip().lower() not in {str(v).strip().lower() for v in args.values()}:
                    args[k] = hit[0].strip()
            rest = [x for x in q.quotes if x not in (args.get("question"), args.get("context")) and not _question_like(x)]
            if not args.get("answer") and rest:
                args["answer"] = rest[0]  # "is 'Dr. Patel' supported by the context '...' for the question '...'"
        elif m_q:  # "q: ... a: ..."
            args["question"], args["answer"] = m_q.group(1).strip(" \"'“”"), m_q.group(2).strip(" \"'“”")
        else:
            found = {k: q.span(k) for k in ("question", "context", "answer")}
            quoted_qs = [x for x in q.quotes if x.rstrip().endswith("?")]
            if quoted_qs:  # a quoted question is the question; another quote, the answer to check
                args["question"] = quoted_qs[0]
                rest = [x for x in q.quotes if x != quoted_qs[0] and (not found["context"] or x != found["context"][0]) and x != fields.get("context")]
                if rest:
                    found["answer"] = (rest[0], True)
            elif q.whole.embedded_question:  # the grammar's reading of an unquoted one
                args["question"] = q.whole.embedded_question
            elif found["question"] and len(found["question"][0].split()) >= 3:  # a learned reading, when it is a real question
                args["question"] = as_question(*found["question"])
            elif any(_question_like(x) for x in q.quotes):
                args["question"] = next(x for x in q.quotes if _question_like(x))
            elif q.quotes and not found["answer"]:  # "is the answer 'Canberra' made up?": a quoted word is an answer, not a question
                found["answer"] = (q.quotes[0], True)
            elif q.referred_prompt():
                args["question"] = q.referred_prompt()
            claim = None if (quoted_qs and found["answer"] and found["answer"][1]) else claimed_answer(q.question)
            if claim and "QUOTED" not in claim and not re.search(rf"\b{re.escape(claim)}\b", args.get("question", ""), re.I):
                found["answer"] = (claim, False)
            if fields.get("context"):
                args["context"] = fields["context"]
                found["context"] = None
            elif (m := _PASSAGE_RE.search(q.question)) and "QUOTED" not in strip_quoted(m.group("c")):
                args["context"] = m.group("c").strip()
                found["context"] = None
            if args.get("context") and found["answer"] and not found["answer"][1] and found["answer"][0].strip().lower() in args["context"].lower():
                found["answer"] = None  # a word of the passage is no answer the user gave
            noted = [fields["answer"]] if fields.get("answer") else q.parsed.noted.get("answer")
            if noted and not (found["answer"] and found["answer"][1]):
                found["answer"] = (noted[0], True)  # "ans Room C", "the answer 1889"
            if not found["answer"] and q.parsed.answer and q.parsed.answer.strip().lower() not in str(args.get("question", "")).lower():
                found["answer"] = (q.parsed.answer.strip(), False)  # "what if it had said Istanbul?"
            for k in ("context", "answer"):
                hit = found[k]
                if hit and hit[0].strip() and hit[0].strip().lower() not in {str(v).strip().lower() for v in args.values()}:
                    args[k] = hit[0].strip()
        for k in ("question", "context"):  # "context = The meeting was moved ... question = what day is it"
            said = q.parsed.noted.get(k)
            have = str(args.get(k) or "").strip(" .?!").lower()
            # an explicit label's reading wins where the learned one is missing, one word, or a piece of it
            if said and len(said[0].split()) >= 2 and (len(have.split()) < 2 or have in said[0].lower()):
                args[k] = as_question(q.parsed.noted[k][0]) if k == "question" else q.parsed.noted[k][0]
        if isinstance(args.get("answer"), str) and len(args["answer"]) > 1 and args["answer"][-1] in ".;,":
            args["answer"] = args["answer"][:-1].rstrip()  # "Candidate completion: helicase."
        noted = q.parsed.noted.get("answer")
        if noted and not args.get("answer") and noted[0].strip().lower() not in str(args.get("question", "")).lower():
            args["answer"] = noted[0].strip()  # "verify the answer 1889 to the question '...'"
        if not args.get("question"):
            return args, ('Which question (and answer) should I check? Ask it in your message: "Who wrote Hamlet? Is the model making '
                          'that up?", or quote them: is it making it up on "Who wrote Hamlet?" answer "Dickens"?')
        return args, None

    def missing(self, args):
        return "question" if not args.get("question") else None

    def reformulate(self, a):
        ans = f" when it answers {a['answer']!r}" if a.get("answer") else " (generating its own answer first)"
        ctx = " given your context passage" if a.get("context") else ""
        return (f"Put {a.get('question')!r} to the model{ctx} and score whether it is making up its answer{ans}, from its confidence, "
                "the consistency of resampled answers and a probe on its activations.")

    TRAIN_ESTIMATE_S = 240.0  # measured: about 4 minutes on two CPU cores for the bundled models

    def _job_key(self, handle) -> str:
        return f"hallucination-detector:{handle.name}"

    def _has_detector(self, handle) -> bool:
        try:
            return hallucination.load_detector(handle.name) is not None
        except GnothiError:  # a damaged detector is retrained
            return False

    def notice(self, handle: ModelHandle, args: dict[str, Any]) -> str | None:
        if handle is None or self._has_detector(handle):
            return None
        if jobs.background_enabled():
            job = jobs.get(self._job_key(handle))
            if job is not None and job.running:
                return job.status()
            return (f"No hallucination detector for {handle.name} yet: I start training it in the background now, once for this "
                    "model (about 4 minutes on two CPU cores for the bundled models). Until it is ready, answers use the "
                    "uncalibrated fallback (the answer's token probabilities); ask again then for a calibrated risk.")
        return (f"No hallucination detector for {handle.name} yet: I train it first on the built-in fact table, once for this "
                "model (about 4 minutes on two CPU cores for the bundled models; later questions take seconds). "
                "`gnothi hallucination --retrain` does this ahead of time; in `gnothi serve` it runs in the background.")

    def execute(self, handle: ModelHandle, a: HalluArgs, llm: Any = None) -> ToolResult:
        if not a.question:
            raise InputError("Which question and answer should I check?", 'Quote them: is the model making it up on "Who wrote Hamlet?" answer "Dickens"?')
        if not jobs.background_enabled() or self._has_detector(handle):
            rep = hallucination.detect(handle, question=a.question, answer=a.answer, context=a.context)
            return adopt(rep.to_tool_result(), self.name)
        # first use in a long-lived server: train in the background, answer now with the fallback
        key = self._job_key(handle)
        before = jobs.get(key)
        job = jobs.start(key, f"training the hallucination detector for {handle.name}", lambda: hallucination.get_detector(handle, train=True),
                         self.TRAIN_ESTIMATE_S)
        rep = hallucination.detect(handle, question=a.question, answer=a.answer, context=a.context, train=False)
        tr = adopt(rep.to_tool_result(), self.name)
        if rep.detector == "trained":  # the training finished during this turn: the answer is already calibrated
            return tr
        if before is not None and before.error is not None:
            tr.warnings.append(before.status() + " It was started again.")
        tr.warnings.append(job.status() + " Until it is ready the risk is the uncalibrated fallback; ask again then for a calibrated one.")
        tr.data["background_job"] = {"what": job.what, "started": job.started, "estimate_s": job.estimate_s}
        return tr

    def answer(self, r):
        h = r.headline
        if "risk" not in h:
            return super().answer(r)
        level = str(h.get("level") or "")
        verdict = {"high": "is probably making it up", "medium": "may be making it up", "low": "is probably not making it up"}.get(level, "cannot be judged")
        calib = "" if h.get("detector") == "trained" else " (an uncalibrated fallback judged this; take it as a hint)"
        said = str(r.data.get("scored_text") or h.get("answer") or "").strip()  # the first sentence: what is scored
        said = said if len(said) <= 90 else said[:87].rstrip() + "…"
        return f"For the answer {said!r}, the model {verdict}{calib}."

    def table(self, r):
        h = r.headline
        if "risk" not in h:
            return super().table(r)
        rows = [Row("Risk that the answer is wrong or made up", num(h.get("risk")), f"{h.get('level')}; 0.5 would be a coin toss")]
        if h.get("heldout_auroc") is not None:
            rows.append(Row("Detector's AUROC on held-out questions", num(h.get("heldout_auroc")), "0.5 = chance"))
        for e in r.evidence[:4]:
            if e.get("signal") and e.get("value") is not None:
                rows.append(Row(f"Signal: {str(e['signal']).replace('_', ' ')}", num(e.get("value")),
                                f"alone separates held-out answers at AUROC {num(e['heldout_auroc'])}" if e.get("heldout_auroc") is not None else ""))
        return rows

    def evidence(self, r):
        return [str(e["meaning"]) for e in r.evidence if e.get("meaning")][:3]

    def suggestions(self, r, args, n_layers=None):
        out = []
        if args.get("question") and not args.get("context"):
            out.append(f"check '{args['question']}' again with a context passage")
        other = next(x for x in ("Who wrote Hamlet?", "What is the capital of Australia?") if x != args.get("question"))
        out.append(f"is it making up the answer to '{other}'")  # a question it surely knows, or a harder one, to compare
        return out[:3]
