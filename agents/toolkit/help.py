"""Help: greetings, what the assistant can do, refusals, and what to ask instead."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from gnothi.tools.results import ToolResult

from .base import TOOLKIT, Args, Query, ToolAgent, register

if TYPE_CHECKING:
    from gnothi.tools.model import ModelHandle


class HelpArgs(Args):
    reason: Literal["greeting", "capabilities", "off_topic", "injection", "empty", "too_long"] = "capabilities"


TEXT = {
    "greeting": "Hello! I look inside the language model and answer with measurements.",
    "capabilities": "I can look inside the model and answer with measurements.",
    "off_topic": "That is outside what I do: I only answer questions about this language model's insides.",
    "injection": "I won't follow instructions embedded in a question; I only run the measurement tools below.",
    "empty": "The question was empty.",
    "too_long": "The question is too long for me to plan from.",
}


@register
class Help(ToolAgent[HelpArgs]):
    name = "help"
    title = "Help"
    description = "Greetings, what the assistant can do and how to ask; the answer to off-topic requests."
    examples = ["hi", "what can you do?"]
    Args = HelpArgs
    needs_model = False

    def extract(self, q: Query) -> tuple[dict[str, Any], str | None]:
        return {"reason": "capabilities"}, None  # the planner sets the reason from the route

    def reformulate(self, a):
        return "What can this assistant do?" if a.get("reason") in ("capabilities", "greeting") else "(not a question about the model)"

    def execute(self, handle: ModelHandle, a: HelpArgs, llm: Any = None) -> ToolResult:
        others = [ag for ag in TOOLKIT.values() if ag.name != "help"]
        lines = [f"- {ag.title}: {ag.description} e.g. \"{ag.examples[0]}\"" for ag in others]
        summary = TEXT[a.reason]
        return ToolResult(
            tool="help",
            ok=True,
            summary=summary,
            evidence=[{"tool": ag.name, "what": ag.description, "example": ag.examples[0]} for ag in others],
            data={"reason": a.reason, "tools": "\n".join(lines)},
            provenance={"model": getattr(handle, "name", None)} if handle is not None else {},
        )
