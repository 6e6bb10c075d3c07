"""Activation patching and causal tracing: which layers, positions, heads or MLPs cause an answer."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from gnothi.tools import patching
from gnothi.tools.errors import InputError
from gnothi.tools.results import ToolResult

from ..extract import _SAID_RE, as_continuation, labelled_fields, strip_quoted
from .base import Args, Query, ToolAgent, adopt, check_text, register


class PatchArgs(Args):
    """Activation patching / causal tracing between a clean and a corrupted prompt."""

    clean: str | None = Field(None, description="the clean prompt")
    corrupted: str | None = Field(None, description="the corrupted prompt (None: built automatically by swapping the subject)")
    answer: str | None = Field(None, description="the answer token the clean prompt should produce, with its leading space (' Paris')")
    alternative: str | None = Field(None, description="the competing answer, with its leading space")
    mode: Literal["all", "resid", "attn", "mlp", "heads", "trace"] = Field(
        "all", description="components to patch (all, resid, attn, mlp, heads), or trace: causal tracing with a noised subject"
    )

    @field_validator("clean", "corrupted", "answer", "alternative")
    @classmethod
    def _t(cls, v, info):
        return check_text(v, info.field_name)


_MODE_WORDS = [
    ("heads", r"\bheads?\b"),
    ("mlp", r"\bmlps?\b|\bfeed[- ]?forward\b"),
    ("attn", r"\battention[- ](?:layers?|outputs?|blocks?|sublayers?)\b|\battn\b"),
    ("resid", r"\bresid(?:ual)?(?:[- ]stream)?\b|\bpositions?\b|\blayer (?:by|x|×) position\b"),
    ("trace", r"\bcausal(?:ly)?\s+trac\w*|\btrac(?:e|ing)\b|\bnois(?:e|ing)\b|\brome\b"),
]


def _prompt_like(s: str) -> bool:
    return len(s.split()) >= 2


@register
class ActivationPatching(ToolAgent):
    name = "activation_patching"
    title = "Activation patching"
    description = ("Activation patching and causal tracing: find which layers, positions, heads or MLPs cause the model's answer "
                   "by patching between a clean and a corrupted prompt (or noising the subject).")
    examples = [
        "why does the model answer ' Paris' after 'The capital of France is'?",
        "'The Eiffel Tower is in the city of' versus 'The Colosseum is in the city of': which heads move the answer?",
        "causal tracing on 'The Space Needle is in the city of'",
    ]
    Args = PatchArgs
    next_steps_text = [
        "patch attention heads or MLPs only ('which heads matter?')",
        "try a different corrupted prompt to check the effect is about the fact, not the wording",
    ]

    def extract(self, q: Query) -> tuple[dict[str, Any], str | None]:
        e, w = q.parsed, q.whole
        args = {k: v for k, v in q.last_args.items() if k in ("clean", "corrupted", "answer", "alternative", "mode")} if q.followup else {}
        ans, alt = (e.answer, e.alternative) if e.answer else (w.answer, w.alternative)
        fields = labelled_fields(q.clause)
        if fields.get("clean"):  # "clean: `...`  corrupted: `...`  answer: `" China"`"
            args["clean"] = fields["clean"]
            if fields.get("corrupted"):
                args["corrupted"] = fields["corrupted"]
            ans = as_continuation(fields["answer"]) if fields.get("answer") else ans
            alt = as_continuation(fields["alternative"]) if fields.get("alternative") else alt
        pair = ans is not None and alt is not None  # "X rather than Y": the grammar's pair is the stronger reading
        learned = {} if pair else {k: q.span(k) for k in ("answer", "alternative")}
        for k, hit in learned.items():
            if hit is None:
                continue
            text, was_quoted = hit
            if was_quoted and _prompt_like(text) and len(text.split()) > 3:
                continue  # a quoted prompt is never the answer
            v = text if was_quoted else as_continuation(text)
            if k == "answer":
                ans = v
            else:
                alt = v
        if alt == ans:
            alt = None
        if ans is None and (e.pair or w.pair):  # "... - yen vs rupee"
            a, b = e.pair or w.pair
            ans, alt = as_continuation(a), as_continuation(b)
        said = [m.group("a") for m in _SAID_RE.finditer(strip_quoted(q.clause))]
        if ans is None and len(said) >= 1 and len(said[0].split()) <= 2:
            ans = as_continuation(said[0])
        if alt is None and len(said) >= 2 and len(said[1].split()) <= 2 and as_continuation(said[1]) != ans:
            alt = as_continuation(said[1])  # "with 'A' it says sugar. With 'B' it says honey"
        if fields.get("clean"):
            pass  # the labelled fields said it
        elif e.clean or w.clean:
            src = e if e.clean else w
            args["clean"], args["corrupted"] = src.clean, src.corrupted
        else:
            prompts = [x for x in q.quotes if as_continuation(x) not in (ans, alt) and x not in (ans, alt)]
            prompts = [x for x in prompts if _prompt_like(x)] or prompts
            if prompts:
                args["clean"] = prompts[0]
                if len(prompts) > 1:
                    args["corrupted"] = prompts[1]
                elif not q.followup:
                    args.pop("corrupted", None)
            elif e.prompt or w.prompt:
                args["clean"] = e.prompt or w.prompt
            elif q.referred_prompt():
                args["clean"] = q.referred_prompt()
        if ans:
            args["answer"] = ans
            tail = ans.strip()
            if args.get("clean", "").endswith(" " + tail) and not (e.clean or w.clean) and not q.quotes:  # "... is Paris" unquoted
                args["clean"] = args["clean"][: -len(ans.strip())].rstrip()
        if alt:
            args["alternative"] = alt
        low = q.clause
        if re.search(r"\ball components\b|\bfull patching\b|\beverything\b", low, re.I):
            args["mode"] = "all"
        for mode, pat in _MODE_WORDS:
            if re.search(pat, low, re.I):
                args["mode"] = mode
                break
        args = {k: v for k, v in args.items() if v is not None}
        if not args.get("clean"):
            return args, ('Which prompt should I explain? Quote it, and a second prompt to compare if you have one: why does the model '
                          'answer " Paris" after "The capital of France is"?')
        return args, None

    def missing(self, args):
        return "clean" if not args.get("clean") else None

    def canonical(self, args):
        """An answer or alternative is the token the model writes next: a bare word gets its leading space,
        unless the prompt itself ends in a space."""
        out = dict(args)
        if not str(out.get("clean") or "").endswith(" "):
            for k in ("answer", "alternative"):
                if isinstance(out.get(k), str):
                    out[k] = as_continuation(out[k])
        return out

    def reformulate(self, a):
        ans = f" (answer {a['answer']!r}" + (f" against {a['alternative']!r})" if a.get("alternative") else ")") if a.get("answer") else " (answer: its own top prediction)"
        if a.get("mode") == "trace":
            return f"Causal tracing on {a.get('clean')!r}{ans}: noise the subject, restore one clean state at a time, by layer and position."
        what = {"all": "by layer and position, and per attention head and MLP", "resid": "in the residual stream by layer and position",
                "attn": "per attention layer", "mlp": "per MLP layer", "heads": "per attention head"}[a.get("mode", "all")]
        vs = f"against {a['corrupted']!r}" if a.get("corrupted") else "against an automatically corrupted prompt (the subject swapped)"
        return f"Patch {a.get('clean')!r}{ans} {vs}, {what}; causal tracing if the prompts cannot be lined up."

    def execute(self, handle, a: PatchArgs, llm=None) -> ToolResult:
        if not a.clean:
            raise InputError("Patching needs a prompt to explain.",
                             'Quote the prompt and, if you can, a second one: patch "The capital of France is" vs "The capital of Italy is".')
        if a.mode == "trace":
            rep = patching.causal_trace(handle, a.clean, answer=a.answer)
        else:
            kinds = patching.KINDS if a.mode == "all" else [a.mode]
            rep = patching.patch_or_trace(handle, a.clean, corrupted=a.corrupted, answer=a.answer, alternative=a.alternative, kinds=kinds)
        return adopt(rep.to_tool_result(), self.name)

    def entities(self, args, result):
        return {"prompt": args.get("clean")} if args.get("clean") else {}
