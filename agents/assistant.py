"""The scripting API: ``Assistant(model=..., llm=...).ask(question, thread=...)``.

::

    from gnothi.agents import Assistant
    a = Assistant()                       # bundled model, offline planner and writer
    ans = a.ask("what does neuron 7.340 respond to?")
    print(ans.reply)
    for ev in a.stream("now layer 5", thread=ans.thread):
        print(ev.type, ev.data)

``model`` is a model name (or a ready ``ModelHandle``); ``llm`` is ``None`` (offline, the
default), an :class:`~gnothi.agents.llm.LLMConfig`, an ``LLMClient``, a base URL string, or
``"env"`` to read ``GNOTHI_LLM_BASE_URL`` / ``GNOTHI_LLM_MODEL`` / ``GNOTHI_LLM_API_KEY``.
Conversations persist in SQLite (``db_path``, default under gnothi's cache dir) and resume
by thread id after a restart.
"""

from __future__ import annotations

from typing import Any, Iterator

from .types import Answer, Event


class Assistant:
    def __init__(self, model: Any = None, llm: Any = None, db_path: str | None = None, **kw):
        raise NotImplementedError("the assistant is being wired; see gnothi.agents.graph")

    def ask(self, question: str, thread: str | None = None) -> Answer:
        raise NotImplementedError

    def stream(self, question: str, thread: str | None = None) -> Iterator[Event]:
        raise NotImplementedError

    def history(self, thread: str) -> list[dict]:
        raise NotImplementedError

    def threads(self) -> list[str]:
        raise NotImplementedError
