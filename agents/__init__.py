"""gnothi.agents: the orchestrator (LangGraph graph, planners, tool agents, writer).

``from gnothi.agents import Assistant``
"""

from __future__ import annotations


def __getattr__(name):
    if name == "Assistant":
        from .assistant import Assistant

        return Assistant
    if name in ("Answer", "Event", "Plan", "ToolCall"):
        from . import types

        return getattr(types, name)
    raise AttributeError(name)


__all__ = ["Assistant", "Answer", "Event", "Plan", "ToolCall"]
