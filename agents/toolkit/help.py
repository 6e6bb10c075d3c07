"""Help: greetings, what the assistant can do, refusals, and an honest "not yet"."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from gnothi.tools.results import ToolResult

from .base import TOOLKIT, Args, Query, ToolAgent, register

Topic = Literal["steering", "bias", "methods", "head_finder"]


class HelpArgs(Args):
    reason: Literal["greeting", "capabilities", "off_topic", "injection", "empty", "too_long", "not_yet"] = "capabilities"
    topic: Topic | None = Field(None, description="with not_yet: the analysis asked for that has no tool yet")


TEXT = {
    "greeting": "Hello! I look inside the language model and answer with measurements.",
    "capabilities": "I can look inside the model and answer with measurements.",
    "off_topic": "That is outside what I do: I only answer questions about this language model's insides.",
    "injection": "I won't follow instructions embedded in a question; I only run the measurement tools below.",
    "empty": "The question was empty.",
    "too_long": "The question is too long for me to plan from.",
}

# what each missing analysis would be, and the closest thing that exists
NOT_YET = {
    "steering": ("Steering the model (adding a direction to its activations to make it talk about something) has no tool in gnothi yet.",
                 "The closest thing today: find the SAE features about your topic ('find features about France') or probe for it; "
                 "those directions are what steering would add."),
    "bias": ("A bias check (comparing the model's behaviour across groups of people) has no tool in gnothi yet.",
             "The closest thing today: probe a property on your own labelled examples, or patch two prompts that differ only in the group "
             "('\"The doctor said he\" vs \"The doctor said she\"')."),
    "methods": ("Explanations of the methods themselves are not in gnothi yet.",
                "Each tool's reply says what it measured and how to read its numbers; ask for a measurement and read it there."),
    "head_finder": ("Finding heads by their behaviour (induction, previous-token) over the whole model has no tool in gnothi yet.",
                    "The closest thing today: look at one head's pattern ('show head 3 in layer 5 on \"...\"'), or patch the heads "
                    "of a prompt to see which ones cause its answer ('which heads matter for \"...\"?')."),
}


@register
class Help(ToolAgent):
    name = "help"
    title = "Help"
    description = "Greetings, what the assistant can do and how to ask; the answer to off-topic requests; an honest 'not yet' for analyses that have no tool."
    examples = ["hi", "what can you do?"]
    Args = HelpArgs
    needs_model = False

    def extract(self, q: Query) -> tuple[dict[str, Any], str | None]:
        return {"reason": "capabilities"}, None  # the planner sets the reason from the route

    def reformulate(self, a):
        if a.get("reason") == "not_yet":
            return NOT_YET[a.get("topic") or "methods"][0]
        return "What can this assistant do?" if a.get("reason") in ("capabilities", "greeting") else "(not a question about the model)"

    def execute(self, handle, a: HelpArgs, llm=None) -> ToolResult:
        others = [ag for ag in TOOLKIT.values() if ag.name != "help"]
        lines = [f"- {ag.title}: {ag.description} e.g. \"{ag.examples[0]}\"" for ag in others]
        if a.reason == "not_yet":
            what, closest = NOT_YET[a.topic or "methods"]
            summary = f"{what} {closest}"
        else:
            summary = TEXT[a.reason]
        return ToolResult(
            tool="help",
            ok=True,
            summary=summary,
            evidence=[{"tool": ag.name, "what": ag.description, "example": ag.examples[0]} for ag in others],
            data={"reason": a.reason, "topic": a.topic, "tools": "\n".join(lines)},
            provenance={"model": getattr(handle, "name", None)} if handle is not None else {},
        )
