"""The toolkit: one module per tool agent (see :mod:`.base` for the contract).

Importing this package registers every agent in :data:`TOOLKIT`, in routing order.
"""

from .base import TOOLKIT, Args, Query, ToolAgent, adopt, check_text, error_result, register
from . import neuron, sae, probing, patching, hallucination, attention, heads, bias, steering, methods, help  # noqa: E402,F401  (registers the agents)

TOOL_NAMES = list(TOOLKIT)


def get_agent(name: str) -> ToolAgent | None:
    return TOOLKIT.get(name)


__all__ = ["TOOLKIT", "TOOL_NAMES", "Args", "Query", "ToolAgent", "adopt", "check_text", "error_result", "get_agent", "register"]
