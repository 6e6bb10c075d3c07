"""The scripting API: ``Assistant(model=..., llm=...).ask(question, thread=...)``.

::

    from gnothi.agents import Assistant
    a = Assistant()                       # bundled model, offline planner and writer
    ans = a.ask("what does neuron 7.340 respond to?")
    print(ans.reply)
    for ev in a.stream("now layer 5", thread=ans.thread):
        print(ev.type, ev.data)

``model`` is a model name (or a ready ``ModelHandle``); ``llm`` is ``None`` (offline, the
default), ``"env"`` (read ``GNOTHI_LLM_BASE_URL`` / ``GNOTHI_LLM_MODEL`` /
``GNOTHI_LLM_API_KEY``), a base URL, an :class:`~gnothi.agents.llm.LLMConfig` or an
``LLMClient``. Conversations persist in SQLite (``db_path``; default
``<gnothi cache>/conversations.sqlite``; ``":memory:"`` keeps nothing) through LangGraph's
``SqliteSaver`` and resume by thread id after a restart.
"""

from __future__ import annotations

import copy
import re
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

from gnothi.tools.errors import SURROGATE_RE, GnothiError, InputError, describe_failure

from .graph import RECURSION_LIMIT, TurnRuntime, build_graph
from .llm import make_llm
from .planner_offline import OfflinePlanner
from gnothi.tools.datasets import dataset_names

from .toolkit import TOOLKIT, ToolAgent
from .toolkit.sae import SAEFeatureSearch
from .types import Answer, Event, Plan, ToolCall


def default_db_path() -> Path:
    from gnothi.tools.config import cache_dir

    return cache_dir() / "conversations.sqlite"


_THREAD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_thread_id(thread: str) -> str:
    """A conversation id is a name (figures are filed under it), never a path."""
    if not isinstance(thread, str) or not _THREAD_ID.fullmatch(thread) or ".." in thread:
        raise InputError(
            f"{str(thread)[:80]!r} is not a conversation id.",
            "Use letters, digits, '-', '_' and '.' (up to 64, no '/' or '..'), e.g. the id an earlier answer printed; "
            "or leave --thread out to start a new conversation.",
        )
    return thread


class Assistant:
    """Ask questions about a model's insides; answers cite what the tools measured."""

    def __init__(
        self,
        model: Any = None,
        llm: Any = None,
        db_path: str | Path | None = None,
        *,
        planner: str | Any = "auto",
        embedder: Any = "auto",
        runners: dict[str, Callable] | None = None,
        sae: str | Path | None = None,
    ):
        """
        ``planner``: "auto" (LLM planner when ``llm`` is set, else offline), "offline", "llm", or an object with ``plan``.
        ``embedder``: for the offline router: "auto" (bundled MiniLM), ``None`` (rules only), or an object with ``encode``.
        ``runners``: replace tool agents' run functions, ``{name: fn(handle, args_model, llm) -> ToolResult}`` (tests, plugins).
        ``sae``: an SAE folder (SAELens layout) or name that feature questions use instead of the model's default SAE.
        """
        from langgraph.checkpoint.sqlite import SqliteSaver

        self._model = model
        self._handle = model if (model is not None and hasattr(model, "hook_name")) else None
        self._handle_lock = threading.Lock()
        self.llm = make_llm(llm)
        self.offline_planner = OfflinePlanner(embedder=embedder)
        self.planner: Any  # the offline or the LLM planner, or one given by the caller (anything with .plan)
        if planner == "auto":
            planner = "llm" if self.llm is not None else "offline"
        if planner == "llm":
            if self.llm is None:
                from gnothi.tools.errors import LLMError

                raise LLMError("The LLM planner needs an LLM endpoint.", "Pass llm=... (or --llm-base-url), or set GNOTHI_LLM_BASE_URL; or use the offline planner.")
            from .planner_llm import LLMPlanner

            self.planner = LLMPlanner(self.llm, fallback=self.offline_planner, shape=self._shape())
        elif planner == "offline":
            self.planner = self.offline_planner
        else:
            self.planner = planner
        self.agents: dict[str, ToolAgent] = dict(TOOLKIT)
        for name, fn in (runners or {}).items():
            base = TOOLKIT.get(name)
            if base is None:
                from gnothi.tools.errors import InputError

                raise InputError(f"There is no tool agent {name!r}.", f"Use one of: {', '.join(TOOLKIT)}.")
            agent = copy.copy(base)
            agent.execute = fn  # type: ignore[method-assign]  # the replacement takes (handle, validated args, llm) like ToolAgent.execute
            self.agents[name] = agent
        self.sae = str(sae) if sae else None
        if self.sae:  # this assistant's feature agent answers with the chosen SAE
            sae_agent = copy.copy(self.agents["sae_feature_search"])
            assert isinstance(sae_agent, SAEFeatureSearch)
            sae_agent.sae = self.sae
            self.agents["sae_feature_search"] = sae_agent

        self.db_path = str(db_path) if db_path is not None else str(default_db_path())
        if self.db_path != ":memory:":
            Path(self.db_path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(self.db_path, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL") if self.db_path != ":memory:" else None
            self.checkpointer = SqliteSaver(self._conn)
            self.checkpointer.setup()
        except sqlite3.DatabaseError as e:
            from gnothi.tools.errors import CacheCorruptError

            raise CacheCorruptError(
                f"The conversation database {self.db_path} cannot be used ({e}).",
                "Move or delete that file (conversations will start afresh), or pass another db_path / --db.",
            ) from None
        self.runtime = TurnRuntime(
            planner=self.planner,
            offline_planner=self.offline_planner,
            agents=self.agents,
            get_handle=self.handle,
            llm=self.llm,
            shape=self._shape,
            datasets=dataset_names,
        )
        self.graph = build_graph(self.runtime, checkpointer=self.checkpointer)
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ model

    def handle(self):
        """The ModelHandle (loaded on first use: questions that need no model never load it)."""
        with self._handle_lock:
            if self._handle is None:
                from gnothi.tools.model import get_handle

                self._handle = get_handle(self._model)
            return self._handle

    def _shape(self) -> dict:
        h = self._handle
        if h is None:
            return {}
        return {"name": h.name, "n_layers": h.n_layers, "d_mlp": h.d_mlp}

    # ------------------------------------------------------------------ asking

    def stream(self, question: str, thread: str | None = None) -> Iterator[Event]:
        """Run one turn, yielding events as they happen; the last one is ``reply`` with the Answer."""
        thread = check_thread_id(thread) if thread else uuid.uuid4().hex[:12]
        turn = uuid.uuid4().hex[:12]
        t0 = time.perf_counter()
        question = "" if question is None else str(question)
        # bytes that were not UTF-8 reach Python as lone surrogates: they cannot be tokenized,
        # stored or printed as JSON, so they become U+FFFD, with a warning
        question, n_bad = SURROGATE_RE.subn("\ufffd", question)
        cfg = {"configurable": {"thread_id": thread}, "recursion_limit": RECURSION_LIMIT}
        inp = {"question": question, "turn": turn, "force_offline": False, "plan": None, "results": [], "reply": "",
               "writer": "offline", "steps": 0, "replans": 0, "warnings": [], "timings": {}}
        with self._lock:
            failed: str | None = None
            if self.llm is not None:
                self.llm.begin_turn()  # a fresh circuit breaker, and the turn's deadline for LLM calls
            try:
                for chunk in self.graph.stream(inp, cfg, stream_mode="custom"):
                    if isinstance(chunk, dict) and chunk.get("type"):
                        yield Event(type=chunk["type"], data=chunk.get("data") or {}, t=chunk.get("t") or time.time())
            except GnothiError as e:
                failed = f"{e.message} {e.fix}".strip()
            except Exception as e:  # never a traceback for the user: say what happened
                failed = f"The assistant hit an internal error ({describe_failure(e)})."
            finally:
                if self.llm is not None:
                    self.llm.end_turn()
            if failed:
                yield Event(type="error", data={"message": failed})
            state = self.graph.get_state(cfg).values if not failed else {}
            results = self.runtime.sink.pop(turn, [])
        answer = self._answer(question, thread, state, results, time.perf_counter() - t0, failed)
        if n_bad:
            answer.warnings.append(f"Replaced {n_bad} character{'s' if n_bad > 1 else ''} that {'are' if n_bad > 1 else 'is'} not valid "
                                   "Unicode (bytes that were not UTF-8) with \ufffd.")
        yield Event(type="reply", data={"answer": answer.model_dump(mode="json")})

    def _answer(self, question: str, thread: str, state: dict, results: list, seconds: float, failed: str | None) -> Answer:
        if failed or state.get("turn") is None:
            return Answer(question=question, reformulated=question, reply=failed or "Something went wrong; please ask again.",
                          thread=thread, warnings=[failed] if failed else [], timings={"total_s": round(seconds, 4)})
        plan = Plan.model_validate(state.get("plan") or {})
        timings = dict(state.get("timings") or {})
        timings["total_s"] = round(seconds, 4)
        figures = [f for r in results for f in r.figures]
        warnings = list(plan.notes) + list(state.get("warnings") or []) + [w for r in results for w in r.warnings]
        return Answer(
            question=question,
            reformulated=plan.reformulated,
            plan=plan.calls,
            results=results,
            reply=state.get("reply", ""),
            figures=figures,
            timings=timings,
            planner=plan.planner + ("" if state.get("writer", "offline") == "offline" else "+llm-writer"),
            thread=thread,
            warnings=list(dict.fromkeys(warnings)),
            clarify=plan.clarify,
            suggestions=list(state.get("suggestions") or []),
        )

    def ask(self, question: str, thread: str | None = None) -> Answer:
        """Run one turn and return the :class:`Answer`."""
        last = None
        for ev in self.stream(question, thread):
            last = ev
        assert last is not None and last.type == "reply"
        return Answer.model_validate(last.data["answer"])

    # ------------------------------------------------------------------ memory

    def history(self, thread: str) -> list[dict]:
        """Earlier turns of ``thread`` (oldest first): question, reformulated, plan, planner, reply, t."""
        check_thread_id(thread)
        st = self.graph.get_state({"configurable": {"thread_id": thread}})
        return list((st.values or {}).get("turns") or [])

    def threads(self) -> list[str]:
        """Thread ids with saved conversations, most recent first."""
        try:
            rows = self._conn.execute("SELECT thread_id, MAX(rowid) FROM checkpoints GROUP BY thread_id ORDER BY MAX(rowid) DESC").fetchall()
        except sqlite3.DatabaseError:
            return []
        return [r[0] for r in rows]

    def close(self) -> None:
        try:
            self._conn.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


__all__ = ["Assistant", "Answer", "Event", "Plan", "ToolCall"]
