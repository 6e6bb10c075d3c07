"""The orchestrator's data types: small, pydantic, JSON-serializable.

These are the contract between the agents, the UI, the CLI and the evals:

* :class:`ToolCall` -- one planned call: a tool agent's name and its (validated) arguments.
* :class:`Plan` -- what the understand step produced: a reformulated question, the calls,
  or a clarifying question when something needed is missing.
* :class:`Event` -- one streamed step (planned, tool_started, tool_finished, reply, error, clarify).
* :class:`Answer` -- the whole answer to one question.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, Field

from gnothi.tools.results import Figure, ToolResult

EventType = Literal["planned", "tool_started", "notice", "tool_finished", "reply", "error", "clarify"]


class ToolCall(BaseModel):
    """One call of a tool agent: ``tool`` is an agent name (e.g. ``neuron_explainer``)."""

    tool: str
    args: dict[str, Any] = Field(default_factory=dict)


class Plan(BaseModel):
    """The understand step's output."""

    reformulated: str = ""
    calls: list[ToolCall] = Field(default_factory=list)
    clarify: str | None = None  # a question back to the user when something needed is missing
    planner: str = "offline"  # "offline", "llm", or "llm->offline" after a fallback
    notes: list[str] = Field(default_factory=list)  # planner remarks shown to the user (fallbacks, refusals)
    pending: dict[str, Any] | None = None  # with clarify: the half-built call ({tool, args, missing}) the answer completes


class Event(BaseModel):
    """One streamed step. The last event of a turn is ``reply`` with ``{"answer": Answer-json}``."""

    type: EventType
    data: dict[str, Any] = Field(default_factory=dict)
    t: float = Field(default_factory=time.time)


class Answer(BaseModel):
    """The answer to one question: plan, measured results, and the reply that cites them."""

    question: str
    reformulated: str = ""
    plan: list[ToolCall] = Field(default_factory=list)
    results: list[ToolResult] = Field(default_factory=list)
    reply: str = ""
    figures: list[Figure] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    planner: str = "offline"
    thread: str = ""
    warnings: list[str] = Field(default_factory=list)
    clarify: str | None = None
    suggestions: list[str] = Field(default_factory=list)  # follow-up questions the chat offers as buttons
