"""The LLM planner: an OpenAI-compatible model turns the question into tool calls.

Two ways to ask (``LLMConfig.planner_mode``):

* ``"json"`` (default): a JSON-schema ``response_format`` whose ``calls`` items are one of
  the tool agents, each with its own argument schema (llama.cpp turns this into a grammar,
  so even a small local model returns well-formed plans);
* ``"tools"``: OpenAI tool calling with ``tool_choice="required"``.

Whatever comes back is validated (known tool names, arguments through each agent's
pydantic schema). Anything unusable -- endpoint down or slow, garbage, wrong schema,
unknown tools -- falls back to the offline planner, and the plan's notes say so.
The offline guards (empty, enormous, prompt injection) run first: such input never
reaches the LLM.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from gnothi.tools.errors import GnothiError, LLMError

from .extract import looks_like_injection
from .llm import LLMClient
from .planner_offline import MAX_CALLS, MAX_QUESTION, OfflinePlanner, PlanContext
from .toolkit import TOOLKIT
from .types import Plan, ToolCall


class PlanInvalid(Exception):
    pass


def plan_schema() -> dict:
    """JSON schema of a plan whose calls are one of the tool agents with their own args."""
    items = []
    for ag in TOOLKIT.values():
        s = _inline_refs(ag.Args.model_json_schema())  # nested models (a probe's examples) written out in place
        args = {"type": "object", "properties": s.get("properties", {})}
        for v in args["properties"].values():
            v.pop("title", None)
        items.append({
            "type": "object",
            "properties": {"tool": {"type": "string", "const": ag.name}, "args": args},
            "required": ["tool", "args"],
        })
    out = {
        "type": "object",
        "properties": {
            "reformulated": {"type": "string"},
            "calls": {"type": "array", "items": {"anyOf": items}, "minItems": 1, "maxItems": MAX_CALLS},
        },
        "required": ["reformulated", "calls"],
    }
    return out


def _inline_refs(schema: dict) -> dict:
    """``schema`` with every ``{"$ref": "#/$defs/X"}`` replaced by X itself (grammar builders handle no refs)."""
    defs = schema.get("$defs", {})

    def walk(node):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(defs[ref.split("/")[-1]])
            return {k: walk(v) for k, v in node.items() if k not in ("$defs", "title")}
        if isinstance(node, list):
            return [walk(x) for x in node]
        return node

    return walk(schema)


def _history_text(ctx: PlanContext) -> str:
    lines = []
    for t in ctx.history[-4:]:
        calls = json.dumps(t.get("plan") or [], ensure_ascii=False)[:400]
        lines.append(f"- user: {str(t.get('question', ''))[:200]!r} -> calls: {calls}")
    return "\n".join(lines) or "(none)"


def validate_calls(raw: Any) -> list[ToolCall]:
    """Turn an LLM's calls into validated ToolCalls, or raise PlanInvalid saying why."""
    if not isinstance(raw, list) or not raw:
        raise PlanInvalid("it planned no tool calls")
    calls = []
    for c in raw[:MAX_CALLS]:
        if not isinstance(c, dict):
            raise PlanInvalid(f"a call was {type(c).__name__}, not an object")
        name = c.get("tool") or c.get("name")
        args = c.get("args", c.get("arguments", {}))
        if isinstance(args, str):
            try:
                args = json.loads(args or "{}")
            except json.JSONDecodeError:
                raise PlanInvalid(f"the arguments of {name!r} were not JSON") from None
        if name not in TOOLKIT:
            raise PlanInvalid(f"it named an unknown tool {str(name)[:40]!r}")
        if not isinstance(args, dict):
            raise PlanInvalid(f"the arguments of {name!r} were not an object")
        try:
            a = TOOLKIT[name].validate(args)
        except ValidationError as e:
            err = e.errors()[0]
            raise PlanInvalid(f"bad arguments for {name}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
        call = ToolCall(tool=name, args=TOOLKIT[name].canonical(a.model_dump(exclude_none=True, exclude_defaults=True)))
        if call not in calls:
            calls.append(call)
    return calls


class LLMPlanner:
    name = "llm"

    def __init__(self, client: LLMClient, fallback: OfflinePlanner | None = None, shape: dict | None = None):
        self.client = client
        self._fallback = fallback
        self.shape = shape or {}

    @property
    def fallback(self) -> OfflinePlanner:
        if self._fallback is None:
            self._fallback = OfflinePlanner()
        return self._fallback

    def _messages(self, question: str, ctx: PlanContext) -> list[dict]:
        from gnothi.prompts import load

        tools = "\n".join(f"- {a.name}: {a.description}" for a in TOOLKIT.values())
        n_layers = ctx.n_layers or self.shape.get("n_layers") or 0
        d_mlp = ctx.d_mlp or self.shape.get("d_mlp") or 0
        system = load(
            "orchestrator_plan",
            model=self.shape.get("name", "the model"),
            n_layers=n_layers or "?",
            d_mlp=d_mlp or "?",
            last_layer=(n_layers - 1) if n_layers else "?",
            last_neuron=(d_mlp - 1) if d_mlp else "?",
            tools=tools,
            history=_history_text(ctx),
        )
        return [{"role": "system", "content": system}, {"role": "user", "content": question}]

    def _ask(self, question: str, ctx: PlanContext) -> tuple[str, list[ToolCall]]:
        msgs = self._messages(question, ctx)
        if self.client.config.planner_mode == "tools":
            r = self.client.chat(msgs, tools=[a.openai_tool() for a in TOOLKIT.values()], tool_choice="required", max_tokens=min(256, self.client.config.max_tokens))
            m = r.choices[0].message
            raw = []
            for tc in m.tool_calls or []:
                fn = getattr(tc, "function", None)
                raw.append({"tool": getattr(fn, "name", None), "args": getattr(fn, "arguments", "{}")})
            return (m.content or "").strip(), validate_calls(raw)
        obj = self.client.complete_json(msgs, plan_schema(), name="plan", max_tokens=min(256, self.client.config.max_tokens))
        reform = obj.get("reformulated")
        if not isinstance(reform, str):
            raise PlanInvalid("its plan had no reformulated question")
        return reform.strip(), validate_calls(obj.get("calls"))

    def plan(self, question: str, ctx: PlanContext | None = None) -> Plan:
        ctx = ctx or PlanContext()
        q = (question or "").strip()
        if not q or len(q) > MAX_QUESTION or looks_like_injection(q):
            return self.fallback.plan(q, ctx)  # the guards answer these; never sent to the LLM
        try:
            reform, calls = self._ask(q, ctx)
        except (PlanInvalid, LLMError, GnothiError) as e:
            why = e.message if isinstance(e, GnothiError) else f"the LLM's plan was invalid: {e}"
            p = self.fallback.plan(q, ctx)
            p.planner = "llm->offline"
            p.notes.insert(0, f"The LLM planner failed ({why}); I used the offline planner instead.")
            return p
        except Exception as e:  # anything else from a misbehaving endpoint: never a traceback
            p = self.fallback.plan(q, ctx)
            p.planner = "llm->offline"
            p.notes.insert(0, f"The LLM planner failed ({type(e).__name__}); I used the offline planner instead.")
            return p
        if len(calls) > 1:
            calls = [c for c in calls if c.tool != "help"] or calls[:1]
        from .planner_offline import reformulate

        if all(c.tool == "help" for c in calls):
            # second opinion: the LLM may not wave away a question the rules route to a tool with complete arguments
            off = self.fallback.plan(q, ctx)
            if off.calls and any(c.tool != "help" for c in off.calls) and not off.clarify:
                off.planner = "llm->offline"
                off.notes.insert(0, "The LLM planner answered with help for a question about the model; I used the offline planner's plan instead.")
                return off
        if len(re.findall(r"[A-Za-z]{3,}", reform or "")) < 3 or len(reform) > 600:
            reform = reformulate(calls, q)  # an empty or rambling restatement is replaced by the agents' own sentences
        return Plan(reformulated=reform, calls=calls, planner=self.name)
