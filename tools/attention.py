"""Attention view: where chosen heads look on a prompt, as supporting evidence.

Patching says *that* a head matters ("head 23.4 moves the subject to the last token");
its attention pattern shows *what it reads*. :func:`attention_view` records the pattern
``[query, key]`` of each chosen head (softmax weights, rows sum to 1 over the keys up to the
query, causal) and returns one heatmap per head with the prompt's tokens on both axes, plus
where the last token attends most.

Heads are named ``layer.head`` as in the patching report ("23.4"); give them as strings
(``["23.4", "29.0"]``) or as head indices at one ``layer``.
"""

from __future__ import annotations

import time
from typing import Sequence

from pydantic import BaseModel, Field

from .errors import InputError, check_range
from .results import Figure, ToolResult, provenance


class AttentionArgs(BaseModel):
    """Arguments of :func:`attention_view` as a tool call."""

    prompt: str
    layer: int | None = Field(None, description="layer of the heads given as integers")
    heads: list[int | str] | None = Field(None, description="head indices at `layer`, or 'L.H' names; default all heads of `layer`")
    top: int = Field(3, ge=1, le=20)


class Attended(BaseModel):
    position: int
    token: str
    weight: float


class HeadPattern(BaseModel):
    layer: int
    head: int
    name: str  # "23.4"
    pattern: list[list[float]]  # [query][key], rows sum to 1 over keys <= query
    last_token_top: list[Attended]  # where the last token looks most
    bos_weight_last: float  # weight the last token puts on position 0 (a common "resting" place)


class AttentionView(BaseModel):
    model: str
    prompt: str
    tokens: list[str]
    heads: list[HeadPattern]
    timings: dict[str, float] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)

    def figures(self) -> list[Figure]:
        labels = [f"{i} {t!r}" for i, t in enumerate(self.tokens)]
        return [
            Figure(
                kind="heatmap",
                title=f"Attention pattern of head {h.name}",
                data={"z": h.pattern, "x": labels, "y": labels, "xlabel": "key (attended-to token)", "ylabel": "query (attending token)"},
                caption=f"Row i: how head {h.name} at token i spreads its attention over tokens 0..i (rows sum to 1).",
            )
            for h in self.heads
        ]

    def summary(self) -> str:
        parts = []
        for h in self.heads[:6]:
            if h.last_token_top:
                t = h.last_token_top[0]
                parts.append(f"head {h.name}: last token attends most to {t.token!r} ({t.weight:.2f})")
        more = f" (+{len(self.heads) - 6} more heads)" if len(self.heads) > 6 else ""
        return "; ".join(parts) + more + "."

    def to_tool_result(self) -> ToolResult:
        headline = {f"head_{h.name}_top": f"{h.last_token_top[0].token!r} ({h.last_token_top[0].weight:.2f})" for h in self.heads if h.last_token_top}
        return ToolResult(
            tool="attention_view",
            summary=self.summary(),
            headline=headline,
            evidence=[{"head": h.name, "last_token_top": [a.model_dump() for a in h.last_token_top], "bos_weight_last": h.bos_weight_last} for h in self.heads],
            figures=self.figures(),
            provenance=provenance(None, model=self.model, prompt=self.prompt),
            timings=self.timings,
            warnings=self.notes,
            data=self.model_dump(mode="json"),
        )


def parse_heads(handle, layer: int | None, heads: Sequence[int | str] | None) -> list[tuple[int, int]]:
    """``(layer, head)`` pairs from head indices at ``layer`` and/or ``"L.H"`` names; checked against the model."""
    out: list[tuple[int, int]] = []
    if heads is None or len(heads) == 0:
        if layer is None:
            raise InputError("No heads or layer given.", "Give --layer L (all its heads) or --heads like 23.4,29.0.")
        check_range("layer", layer, handle.n_layers)
        return [(layer, h) for h in range(handle.n_heads)]
    for h in heads:
        if isinstance(h, str) and "." in h:
            try:
                l_s, h_s = h.strip().split(".")
                l_i, h_i = int(l_s), int(h_s)
            except ValueError:
                raise InputError(f"Cannot read the head name {h!r}.", "Write heads as LAYER.HEAD, e.g. 23.4, or as indices with --layer.") from None
        else:
            try:
                h_i = int(h)
            except (TypeError, ValueError):
                raise InputError(f"Cannot read the head {h!r}.", "Write heads as LAYER.HEAD, e.g. 23.4, or as indices with --layer.") from None
            if layer is None:
                raise InputError(f"Head {h_i} was given without a layer.", "Add --layer L, or name the head as LAYER.HEAD (e.g. 23.4).")
            l_i = layer
        check_range("layer", l_i, handle.n_layers)
        check_range("head", h_i, handle.n_heads)
        if (l_i, h_i) not in out:
            out.append((l_i, h_i))
    return out


def attention_view(handle, prompt: str, layer: int | None = None, heads: Sequence[int | str] | None = None, top: int = 3, max_tokens: int = 128) -> AttentionView:
    """Attention patterns of the chosen heads on ``prompt`` (one heatmap per head, tokens on both axes)."""
    t0 = time.perf_counter()
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError("The prompt is empty.", "Give a prompt to look at, e.g. --prompt 'The capital of France is'.")
    pairs = parse_heads(handle, layer, heads)
    tokens = handle.to_tokens(prompt)
    if tokens.shape[1] > max_tokens:
        raise InputError(
            f"The prompt is {tokens.shape[1]} tokens; an attention heatmap is readable up to {max_tokens}.",
            "Shorten the prompt to the part you want to inspect.",
        )
    layers = sorted({l for l, _ in pairs})
    names = [handle.hook_name("attn_pattern", l) for l in layers]
    _, cache = handle.run_with_cache(tokens, names)
    str_toks = handle.str_tokens(tokens[0])
    out = []
    for l, h in pairs:
        pat = cache[handle.hook_name("attn_pattern", l)][0, h].float()  # [query, key]
        last = pat[-1]
        k = min(top, last.shape[0])
        vals, idx = last.topk(k)
        out.append(
            HeadPattern(
                layer=l,
                head=h,
                name=f"{l}.{h}",
                pattern=[[round(float(v), 4) for v in row] for row in pat],
                last_token_top=[Attended(position=int(i), token=str_toks[int(i)], weight=round(float(v), 4)) for v, i in zip(vals, idx)],
                bos_weight_last=round(float(last[0]), 4),
            )
        )
    return AttentionView(
        model=handle.name,
        prompt=prompt,
        tokens=str_toks,
        heads=out,
        timings={"total_s": round(time.perf_counter() - t0, 4)},
    )
