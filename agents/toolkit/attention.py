"""Attention: one head's (or one layer's heads') attention pattern on a prompt."""

from __future__ import annotations

import re

from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from gnothi.tools import attention
from gnothi.tools.errors import InputError
from gnothi.tools.results import ToolResult

from .base import Args, Query, Row, ToolAgent, adopt, check_text, num, register

if TYPE_CHECKING:
    from gnothi.tools.model import ModelHandle


class AttentionArgs(Args):
    """Attention pattern of one head (or all heads of a layer) on a prompt."""

    prompt: str | None = Field(None, description="the prompt to look at")
    layer: int | None = Field(None, description="layer of the head (0-based)")
    head: int | None = Field(None, description="head index within the layer (default: every head of the layer)")

    @field_validator("prompt")
    @classmethod
    def _t(cls, v, info):
        return check_text(v, info.field_name)


_UNIT_WORDS = re.compile(r"\b(?:layers?|heads?|lyr|hd|l\d+|h\d+|attention|attn|pattern|map|weights?)\b|\d", re.I)


def _trailing_text(clause: str) -> str | None:
    """An unquoted prompt typed last, as on a phone: "show me layer 3 head 6 attention for the boy and his dog"."""
    m = re.search(r"\b(?:for|on|of|in)\s+(?P<p>[^?!\n]{6,}?)\s*[?.!]?\s*$", clause, re.I)
    if m and len(m.group("p").split()) >= 3 and not _UNIT_WORDS.search(m.group("p")):
        return m.group("p").strip()
    return None


@register
class Attention(ToolAgent[AttentionArgs]):
    name = "attention"
    title = "Attention pattern"
    description = "Show where an attention head looks: one head's (or a layer's heads') attention pattern on a prompt, as a heatmap with the tokens on both axes."
    examples = [
        "show me the attention pattern of head 3 in layer 5 for 'The cat sat on the mat'",
        "where does L2H4 attend on 'When Mary and John went to the store'?",
    ]
    Args = AttentionArgs
    next_steps_text = [
        "look at another head of the same layer ('now head N')",
        "patch the heads to see which ones cause the answer ('which heads matter for ...?')",
    ]

    def asks_on_its_own(self, clause: str) -> bool:
        # one head's pattern is asked for by naming the head or the pattern; "... and look at attention only" sets how
        # another request measures
        return bool(re.search(r"\b(?:heads?|h)\s*#?\d|\bL\d+H\d|\d+\.\d+\b|\bpatterns?\b|\battend\w*|\bheat\s*maps?\b|\blooks?\s+(?:at|to)\s+(?:which|what)\b", clause, re.I))

    def extract(self, q: Query) -> tuple[dict[str, Any], str | None]:
        e = q.parsed
        args = {k: v for k, v in q.last_args.items() if k in ("prompt", "layer", "head")} if q.followup else {}
        if e.layer is not None:
            args["layer"] = e.layer
        if e.head is not None:
            args["head"] = e.head
        if q.followup and e.head is None and e.layer is None and q.bare_number() is not None:
            args["head"] = q.bare_number()  # "and 7?" after head 3
        noted = e.noted.get("prompt") or e.noted.get("text")
        prompt = max(q.parsed.quotes, key=len) if q.parsed.quotes else (
            (noted[0] if noted else None) or q.parsed.prompt or q.referred_prompt() or q.whole.prompt
            or (max(q.whole.quotes, key=len) if q.whole.quotes else None) or _trailing_text(q.clause))
        if prompt:
            args["prompt"] = prompt
        if args.get("layer") is None:
            return args, "Which head? Name it like 'head 3 in layer 5' or 'L5H3'" + (f" (layers 0 to {q.n_layers - 1})." if q.n_layers else ".")
        if not args.get("prompt"):
            return args, "On which prompt? Quote it: show head 3 in layer 5 on \"The capital of France is\"."
        return args, None

    def missing(self, args):
        return "prompt" if args.get("layer") is not None and not args.get("prompt") else None

    def reformulate(self, a):
        who = f"head {a['head']} of layer {a.get('layer')}" if a.get("head") is not None else f"every head of layer {a.get('layer')}"
        return f"Show the attention pattern of {who} on {a.get('prompt')!r}, and where its last token looks."

    def execute(self, handle: ModelHandle, a: AttentionArgs, llm: Any = None) -> ToolResult:
        if not a.prompt:
            raise InputError("The prompt is empty.", "Quote a prompt to look at.")
        rep = attention.attention_view(handle, a.prompt, layer=a.layer, heads=[a.head] if a.head is not None else None)
        return adopt(rep.to_tool_result(), self.name)


    def answer(self, r):
        tops = [(e.get("head"), (e.get("last_token_top") or [{}])[0]) for e in r.evidence if e.get("last_token_top")]
        if not tops:
            return super().answer(r)
        head, t = tops[0]
        more = f" ({len(tops) - 1} more heads in the table)" if len(tops) > 1 else ""
        return f"Head {head}: the last token attends most to {t.get('token')!r}{more}."

    def table(self, r):
        rows = []
        for e in r.evidence[:9]:
            top = e.get("last_token_top") or []
            if top:
                rows.append(Row(f"Head {e.get('head')}: attention of the last token on {top[0].get('token')!r}", num(top[0].get("weight")),
                                f"{num(e.get('bos_weight_last'))} on the first token (a resting place)" if e.get("bos_weight_last") is not None else ""))
        return rows or super().table(r)

    def evidence(self, r):
        out = []
        for e in r.evidence[:1]:
            top = e.get("last_token_top") or []
            if len(top) > 1:
                out.append("next most attended: " + ", ".join(f"{t.get('token')!r} ({num(t.get('weight'))})" for t in top[1:4]))
        return out

    def suggestions(self, r, args, n_layers=None):
        l, h = args.get("layer"), args.get("head")
        if not isinstance(l, int) or not args.get("prompt"):
            return []
        out = [f"head {(h or 0) + 1} of layer {l} on '{args['prompt']}'"]
        if l > 0:
            out.append(f"head {h or 0} of layer {l - 1} on '{args['prompt']}'")
        return out

    def entities(self, args, result):
        return {"head": args.get("head"), "layer": args.get("layer"), "prompt": args.get("prompt")} if args.get("layer") is not None else {}
