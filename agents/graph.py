"""The LangGraph graph of one turn: understand -> act -> reply.

* ``understand`` plans (reformulated question + tool calls, or a clarifying question);
* ``act`` runs the planned tool agents on the ModelHandle, streaming tool_started /
  tool_finished events;
* ``reply`` writes the answer and appends the turn to the conversation memory.

If every call of an LLM plan failed on its arguments, ``act`` goes back once to
``understand`` with the offline planner. A step counter (``MAX_STEPS``, the last-step
guard) and LangGraph's recursion limit (``RECURSION_LIMIT``) make every turn end.

The state holds only small JSON data: the question, the plan, compact results (summary,
headline numbers, a few evidence rows, errors) and the turn history. Full results with
figures stay outside the state, in the runtime's per-turn sink.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Callable, TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph

from gnothi.tools.errors import GnothiError, InputError, describe_failure
from gnothi.tools.results import ToolResult

from .planner_offline import PlanContext
from .toolkit import TOOLKIT, error_result
from .types import Plan

MAX_STEPS = 4  # understand runs at most this often in one turn
RECURSION_LIMIT = 12
MAX_TURNS_KEPT = 40  # turns of memory kept in the state


def keep_last_turns(old: list | None, new: list | None) -> list:
    return ((old or []) + (new or []))[-MAX_TURNS_KEPT:]


class TurnState(TypedDict, total=False):
    question: str
    turn: str
    force_offline: bool
    plan: dict | None
    results: list[dict]
    reply: str
    writer: str
    steps: int
    replans: int
    warnings: list[str]
    timings: dict[str, float]
    suggestions: list[str]
    turns: Annotated[list[dict], keep_last_turns]


def compact(r: ToolResult) -> dict:
    """The part of a result the state and the memory keep."""
    return {
        "tool": r.tool,
        "ok": r.ok,
        "summary": r.summary[:500],
        "headline": {k: v for k, v in list(r.headline.items())[:12] if isinstance(v, (int, float, str, bool)) or v is None},
        "evidence": r.evidence[:3],
        "warnings": r.warnings[:5],
        "error": r.error,
    }


def entities_of(calls: list[dict], results: list[dict]) -> dict[str, Any]:
    """Things a follow-up can point back to ("that feature", "that neuron"), as each agent names them."""
    ent: dict[str, Any] = {}
    for i, c in enumerate(calls):
        agent = TOOLKIT.get(str(c.get("tool")))
        r = results[i] if i < len(results) and results[i].get("ok") else None
        if agent is not None:
            ent.update({k: v for k, v in agent.entities(c.get("args") or {}, r).items() if v is not None})
    return ent


class TurnRuntime:
    """What the nodes need beyond the state (built by the Assistant)."""

    def __init__(self, planner, offline_planner, agents: dict, get_handle: Callable[[], Any], llm=None, shape: Callable[[], dict] | None = None, datasets: Callable[[], list[str]] | None = None):
        self.planner = planner
        self.offline_planner = offline_planner
        self.agents = agents
        self.get_handle = get_handle
        self.llm = llm
        self.shape = shape or (lambda: {})
        self.datasets = datasets or (lambda: [])
        self.sink: dict[str, list[ToolResult]] = {}
        self.meta: dict[str, dict] = {}  # per turn: writer warnings etc.


def _emit(kind: str, **data) -> None:
    try:
        w = get_stream_writer()
    except Exception:  # pragma: no cover - outside a graph run
        return
    w({"type": kind, "data": data, "t": time.time()})


def build_graph(rt: TurnRuntime, checkpointer=None):
    def understand(state: TurnState) -> dict:
        t0 = time.perf_counter()
        steps = int(state.get("steps") or 0) + 1
        shape = rt.shape()
        ctx = PlanContext(history=list(state.get("turns") or []), n_layers=shape.get("n_layers"), d_mlp=shape.get("d_mlp"), datasets=rt.datasets() or None)
        planner = rt.offline_planner if state.get("force_offline") else rt.planner
        try:
            plan = planner.plan(state.get("question", ""), ctx)
        except Exception as e:  # a planner bug must not end the conversation with a traceback
            plan = rt.offline_planner.plan(state.get("question", ""), ctx)
            plan.notes.append(f"The planner failed ({type(e).__name__}); I used the offline planner.")
        if state.get("force_offline"):
            plan.planner = "llm->offline"
            plan.notes.insert(0, "The LLM planner's calls had unusable arguments; I re-planned with the offline planner.")
        if plan.clarify:
            _emit("clarify", question=plan.clarify, reformulated=plan.reformulated)
        _emit("planned", plan=plan.model_dump(mode="json"))
        tm = dict(state.get("timings") or {})
        tm["plan_s"] = round(tm.get("plan_s", 0.0) + time.perf_counter() - t0, 4)
        return {"plan": plan.model_dump(mode="json"), "steps": steps, "timings": tm}

    def after_understand(state: TurnState) -> str:
        plan = state.get("plan") or {}
        if int(state.get("steps") or 0) >= MAX_STEPS + 1:
            return "reply"
        if plan.get("clarify") or not plan.get("calls"):
            return "reply"
        return "act"

    def act(state: TurnState) -> dict:
        t0 = time.perf_counter()
        turn = state.get("turn", "")
        plan = Plan.model_validate(state.get("plan") or {})
        out: list[ToolResult] = []
        tm = dict(state.get("timings") or {})
        handle = None
        handle_error: GnothiError | None = None
        for i, call in enumerate(plan.calls):
            agent = rt.agents.get(call.tool)
            _emit("tool_started", index=i, tool=call.tool, args=call.args)
            t1 = time.perf_counter()
            if agent is None:
                tr = error_result(call.tool, InputError(f"There is no tool called {call.tool!r}.", "Ask 'what can you do?' for the list of tools."))
            else:
                if agent.needs_model and handle is None and handle_error is None:
                    try:
                        handle = rt.get_handle()
                    except GnothiError as e:
                        handle_error = e
                if agent.needs_model and handle_error is not None:
                    tr = error_result(call.tool, handle_error)
                else:
                    try:
                        note = agent.notice(handle, call.args)
                    except Exception:  # a notice never stops the run
                        note = None
                    if note:
                        _emit("notice", index=i, tool=call.tool, message=note)
                    try:
                        tr = agent.run(handle if agent.needs_model else (handle or None), call.args, llm=rt.llm)
                    except Exception as e:  # a tool bug: report it, do not crash the turn
                        tr = error_result(call.tool, GnothiError(f"The {call.tool} tool failed unexpectedly ({describe_failure(e)}).",
                                                                 "Try other arguments; if it persists, report it with the question you asked."))
            dt = time.perf_counter() - t1
            tm[f"tool:{call.tool}_s"] = round(tm.get(f"tool:{call.tool}_s", 0.0) + dt, 4)
            out.append(tr)
            _emit("tool_finished", index=i, tool=call.tool, ok=tr.ok, summary=tr.summary, seconds=round(dt, 4), result=tr.model_dump(mode="json"))
            if not tr.ok:
                _emit("error", tool=call.tool, error=tr.error or {"message": tr.summary})
        rt.sink[turn] = out
        tm["tools_s"] = round(tm.get("tools_s", 0.0) + time.perf_counter() - t0, 4)
        return {"results": [compact(r) for r in out], "timings": tm}

    def after_act(state: TurnState) -> str:
        plan = state.get("plan") or {}
        res = state.get("results") or []
        llm_plan = str(plan.get("planner", "")).startswith("llm") and not state.get("force_offline")
        all_bad_args = res and all((not r.get("ok")) and (r.get("error") or {}).get("error") in ("bad_input", "out_of_range") for r in res)
        if llm_plan and all_bad_args and int(state.get("replans") or 0) < 1 and int(state.get("steps") or 0) < MAX_STEPS:
            return "replan"
        return "reply"

    def replan(state: TurnState) -> dict:
        return {"force_offline": True, "replans": int(state.get("replans") or 0) + 1}

    def reply(state: TurnState) -> dict:
        from .writer import suggestions, write_reply

        t0 = time.perf_counter()
        turn = state.get("turn", "")
        plan = Plan.model_validate(state.get("plan") or {"reformulated": state.get("question", "")})
        results = rt.sink.get(turn, []) if plan.calls and not plan.clarify else []
        if plan.clarify:
            # the clarifying question is the help agent's answer: its numbers (the model's shape, the
            # question's own units) are carried by this result, so every number in a reply has a source
            shape = rt.shape()
            results = [ToolResult(tool="help", ok=True, summary=plan.clarify,
                                  headline={k: shape[k] for k in ("n_layers", "d_mlp") if shape.get(k) is not None},
                                  data={"reason": "clarify"}, provenance={"model": shape.get("name")} if shape.get("name") else {})]
            rt.sink[turn] = results
        warnings = list(state.get("warnings") or [])
        if int(state.get("steps") or 0) > MAX_STEPS:
            warnings.append("Stopped planning after the step limit.")
        text, writer, wwarn = write_reply(
            state.get("question", ""), plan.reformulated, results, notes=plan.notes, clarify=plan.clarify,
            llm=rt.llm, model_name=rt.shape().get("name", "the model"), allowed=[c.args for c in plan.calls], calls=plan.calls,
            n_layers=rt.shape().get("n_layers"),
        )
        nexts = suggestions(results, plan.calls, rt.shape().get("n_layers")) if not plan.clarify else []
        warnings.extend(wwarn)
        calls = [c.model_dump(mode="json") for c in plan.calls]
        comp = state.get("results") or []
        turn_rec = {
            "turn": turn,
            "question": state.get("question", "")[:2000],
            "reformulated": plan.reformulated[:1000],
            "plan": calls,
            "planner": plan.planner,
            "clarify": plan.clarify,
            "pending": plan.pending if plan.clarify else None,
            "summaries": [r.get("summary", "")[:300] for r in comp],
            "entities": entities_of(calls, comp),
            "reply": text[:2000],
            "t": time.time(),
        }
        tm = dict(state.get("timings") or {})
        tm["reply_s"] = round(time.perf_counter() - t0, 4)
        return {"reply": text, "writer": writer, "warnings": warnings, "timings": tm, "turns": [turn_rec], "suggestions": nexts}

    g = StateGraph(TurnState)
    g.add_node("understand", understand)
    g.add_node("act", act)
    g.add_node("replan", replan)
    g.add_node("reply", reply)
    g.add_edge(START, "understand")
    g.add_conditional_edges("understand", after_understand, {"act": "act", "reply": "reply"})
    g.add_conditional_edges("act", after_act, {"replan": "replan", "reply": "reply"})
    g.add_edge("replan", "understand")
    g.add_edge("reply", END)
    return g.compile(checkpointer=checkpointer)
