"""Replies: the offline writer (default) and the LLM writer, plus the number check.

The offline writer reads like a careful analyst: the headline answer, the key numbers,
the evidence, how confident the measurement is, and what to try next -- built only from
the tool results. The LLM writer gets the results as quoted JSON data (never as
instructions); its draft is kept only if every number in it can be traced to a result
(:func:`numbers_traceable`), otherwise the offline reply is used and a warning says so.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Iterable, Sequence

from gnothi.tools.results import ToolResult

from .toolkit import TOOLKIT
from .toolkit.base import Row

TRY_NEXT = "**Try next:**"  # the heading of the follow-up questions that end a reply
_NUM_RE = re.compile(r"(?<![\w.])[-+−]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?%?(?![\w])", re.I)


_CONF_KEYS = ("confidence", "score", "accuracy", "auc", "auroc", "explanation_score", "correlation", "probability", "recovered", "fraction", "pearson")


def confidence_line(r: ToolResult) -> str:
    """How sure, in words, from the result's own numbers (shown in its table) and its caveats; never invented."""
    caveats = (" Caveats: " + "; ".join(w.rstrip(".") for w in r.warnings) + ".") if r.warnings else ""
    agent = TOOLKIT.get(r.tool)
    own = agent.sure(r) if agent is not None else None
    if own:
        return f"**How sure:** {own}{caveats}"
    for k, v in r.headline.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if any(c in k.lower() for c in _CONF_KEYS) and -1.0 <= float(v) <= 1.0:
            level = "fairly sure" if v >= 0.8 else "moderately sure" if v >= 0.6 else "not very sure" if v >= 0.3 else "not sure at all"
            return f"**How sure:** {level}, judged by the {k.replace('_', ' ')} against its control in the table.{caveats}"
    if r.warnings:
        return "**How sure:** take it with care." + caveats
    return "**How sure:** one measurement on this model: indicative; check it with one of the follow-ups."


def table_markdown(rows: Sequence[Row]) -> str:
    """A compact Markdown table: what was measured, its value, what it is compared with."""
    def cell(x: str) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    rows = [r for r in rows if r.value not in ("", "n/a", "None")]
    if not rows:
        return ""
    if any(r.control for r in rows):
        lines = ["| Measured | Value | Compared with |", "|---|---|---|"] + [f"| {cell(r.what)} | {cell(r.value)} | {cell(r.control)} |" for r in rows]
    else:
        lines = ["| Measured | Value |", "|---|---|"] + [f"| {cell(r.what)} | {cell(r.value)} |" for r in rows]
    return "\n".join(lines)


def render_result(r: ToolResult, max_evidence: int = 3) -> str:
    """Markdown for one result: its table of numbers beside their controls, then the evidence."""
    agent = TOOLKIT.get(r.tool)
    title = agent.title if agent else r.tool
    if not r.ok:
        err = r.error or {}
        fix = err.get("fix")
        return f"**{title}** could not run: {err.get('message') or r.summary}" + (f"\n  What to do: {fix}" if fix else "")
    if r.tool == "help":
        return r.summary + "\n\n" + "Ask me about:\n" + (r.data.get("tools") or "")
    out = [f"**{title}**"]
    table = table_markdown(agent.table(r) if agent else [])
    if table:
        out.append(table)
    ev = (agent.evidence(r) if agent else [])[:max_evidence]
    if ev:
        out.append("Evidence:\n" + "\n".join(f"- {x}" for x in ev))
    return "\n\n".join(out)


def direct_answer(results: Sequence[ToolResult]) -> str:
    """The answer in plain sentences, one per result that ran."""
    return " ".join(TOOLKIT[r.tool].answer(r) if r.tool in TOOLKIT else r.summary for r in results if r.ok and r.tool != "help")


def suggestions(results: Sequence[ToolResult], calls: Sequence[Any] = (), n_layers: int | None = None) -> list[str]:
    """Two or three follow-up questions, from the tools that ran (the chat shows them as buttons)."""
    out: list[str] = []
    for i, r in enumerate(results):
        agent = TOOLKIT.get(r.tool)
        if not r.ok or agent is None or r.tool == "help":
            continue
        c = calls[i] if i < len(calls) else None
        args = (c.args if hasattr(c, "args") else (c or {}).get("args", {})) if c is not None else {}
        try:
            out.extend(agent.suggestions(r, dict(args or {}), n_layers))
        except Exception:  # a suggestion is never worth a failed reply
            continue
    return list(dict.fromkeys(out))[:3]


def offline_reply(results: list[ToolResult], plan_notes: Iterable[str] = (), clarify: str | None = None,
                  calls: Sequence[Any] = (), n_layers: int | None = None, direct: str | None = None) -> str:
    """The analyst's reply, from the results alone: the direct answer, each result's table and evidence, how sure, what next.
    ``direct``: a direct answer written elsewhere (the LLM writer's) in place of the agents' own."""
    notes = [n for n in plan_notes if n]
    if clarify:
        return "\n".join([*notes, clarify]) if notes else clarify
    if not results:
        return "\n".join(notes) or "I had nothing to measure for that question."
    blocks = []
    direct = direct if direct is not None else direct_answer(results)
    if direct:
        blocks.append(direct)
    for r in results:
        blocks.append(render_result(r))
        if r.ok and r.tool != "help":
            blocks.append(confidence_line(r))
    nexts = suggestions(results, calls, n_layers)
    if nexts:
        blocks.append(TRY_NEXT + "\n" + "\n".join(f"- {x}" for x in nexts))
    if notes:
        blocks.insert(0, "Note: " + " ".join(notes))
    return "\n\n".join(blocks)


# ----------------------------------------------------------------------------- number check


# Explanations may be written by an LLM: the numbers in them are claims, not measurements
# (an LLM explainer's "Pearson r = 0.99" beside a measured 0.01). Their text, wherever it is
# quoted (a summary repeats it), is left out of what a reply's numbers may trace to; the
# tools' own text, data strings (tokens, contexts, prompts) and every numeric field count.
_CLAIM_SUFFIXES = ("explanation", "explanations")  # explanation, control_explanation, ...
_MIN_CLAIM = 8  # shorter texts are not cut out of others (a claim "1" would split "12")


def _is_claim_key(k: Any) -> bool:
    return isinstance(k, str) and k.endswith(_CLAIM_SUFFIXES)


def _claims_in(obj: Any, out: list[str]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if _is_claim_key(k):
                for t in v if isinstance(v, (list, tuple)) else [v]:
                    if isinstance(t, str) and len(t.strip()) >= _MIN_CLAIM:
                        out.append(t)
                    elif isinstance(t, dict):
                        _claims_in(t, out)
            else:
                _claims_in(v, out)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _claims_in(v, out)


def _numbers_in(obj: Any, out: set[float], claims: Sequence[str] = ()) -> None:
    if isinstance(obj, bool) or obj is None:
        return
    if isinstance(obj, (int, float)):
        if not (isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj))):
            out.add(float(obj))
        return
    if isinstance(obj, str):
        for c in claims:
            obj = obj.replace(c, " ")
        for m in _NUM_RE.finditer(obj):
            v = _parse(m.group(0))
            if v is not None:
                out.add(v)
        return
    if isinstance(obj, dict):
        unit = obj.get("layer")
        for key in ("neuron", "head", "feature"):  # a unit's name, "layer.neuron", is measured identity
            if isinstance(unit, int) and isinstance(obj.get(key), int) and not isinstance(unit, bool):
                v = _parse(f"{unit}.{obj[key]}")
                if v is not None:
                    out.add(v)
        for k, v in obj.items():
            _numbers_in(k, out, claims)
            if _is_claim_key(k):
                _numbers_in([x for x in (v if isinstance(v, (list, tuple)) else [v]) if not isinstance(x, str)], out, claims)
            else:
                _numbers_in(v, out, claims)
        return
    if isinstance(obj, (list, tuple)):
        for v in obj:
            _numbers_in(v, out, claims)
        return
    if hasattr(obj, "model_dump"):
        _numbers_in(obj.model_dump(mode="json"), out, claims)


def _parse(s: str) -> float | None:
    s = s.replace(",", "").replace("−", "-").rstrip("%")
    try:
        return float(s)
    except ValueError:
        return None


def _decimals(s: str) -> int:
    s = s.rstrip("%")
    return len(s.split(".")[1]) if "." in s and "e" not in s.lower() else 0


def _matches(token: str, pool: set[float]) -> bool:
    v = _parse(token)
    if v is None:
        return True
    d = _decimals(token)
    tol = 0.5 * 10 ** (-d) + 1e-9
    cands = [v]
    if token.endswith("%"):
        cands.append(v / 100.0)
    signed = token.lstrip()[:1] in "-+−"
    for c in cands:
        for p in pool:
            # a number written with its sign must have that sign ("-0.97" is not 0.97); one written without a sign
            # may be a magnitude ("drops by 0.97" for -0.97)
            if abs(p - c) <= tol or (not signed and abs(abs(p) - abs(c)) <= tol):
                return True
        # rounded to significant figures (e.g. 1.23e-05 written as 1.2e-05)
        if "e" in token.lower():
            for p in pool:
                if p != 0 and abs(p - c) / abs(p) < 0.05:
                    return True
    return False


# what of a result a reply's numbers may come from: "shown" is what the LLM writer is given
# (compact_for_llm); "measured" adds the tool's data and token spans. Never the run's timings,
# versions and paths (provenance) or a figure's plotted values: thousands of numbers would
# let almost any number "trace".
_SCOPES = {"shown": ("tool", "summary", "headline", "evidence", "warnings", "error"),
           "measured": ("tool", "summary", "headline", "evidence", "warnings", "error", "data", "spans")}


def numbers_traceable(reply: str, results: Iterable[ToolResult | dict], allowed: Iterable[Any] = (), scope: str = "measured") -> list[str]:
    """Numbers in ``reply`` that appear in none of ``results`` (nor in ``allowed``, e.g. the question).

    A reply number matches a result number when it equals it rounded to the digits written
    (``0.8731`` -> "0.87"), or as a percentage ("87%"), with its sign when it is written with
    one. ``scope`` says which parts of a result count (see ``_SCOPES``). Returns the offending
    number strings; an empty list means every number is traceable.
    """
    keep = _SCOPES[scope]
    reply = reply.split(TRY_NEXT, 1)[0]  # the follow-up questions offered at the end are questions, not claims
    pool: set[float] = set()
    for r in results:
        d = r.model_dump(mode="json") if hasattr(r, "model_dump") else r
        d = {k: v for k, v in d.items() if k in keep}
        if scope == "shown" and isinstance(d.get("evidence"), list):
            d["evidence"] = d["evidence"][:3]  # as compact_for_llm gives it
        claims: list[str] = []
        _claims_in(d, claims)
        _numbers_in(d, pool, sorted(set(claims), key=len, reverse=True))
    for a in allowed:
        _numbers_in(a, pool)
    bad = []
    text = re.sub(r"(?m)^(\s*)\d{1,2}[.)](?=\s)", r"\1", reply or "")  # list markers "1." are not claims
    for m in _NUM_RE.finditer(text):
        tok = m.group(0)
        if not _matches(tok, pool):
            bad.append(tok)
    return bad


# ----------------------------------------------------------------------------- LLM writer


def compact_for_llm(results: list[ToolResult], limit: int = 6000) -> str:
    """The results as JSON data for the LLM writer: summary, numbers, a few evidence rows."""
    items = []
    for r in results:
        d: dict[str, Any] = {"tool": r.tool, "ok": r.ok, "summary": r.summary, "numbers": r.headline}
        if r.evidence:
            d["evidence"] = r.evidence[:3]
        if r.warnings:
            d["warnings"] = r.warnings
        if r.error:
            d["error"] = r.error
        items.append(d)
    s = json.dumps(items, ensure_ascii=False, default=str)
    if len(s) > limit:
        s = s[:limit] + " ...(truncated)"
    # make sure nothing inside can close the data block
    return s.replace("</tool_results>", "<\\/tool_results>")


def llm_reply(client, question: str, reformulated: str, results: list[ToolResult], model_name: str = "the model") -> str:
    from gnothi.prompts import load

    prompt = load("orchestrator_reply", model=model_name, question=json.dumps(question[:500]), reformulated=json.dumps(reformulated[:500]),
                  results=compact_for_llm(results))
    return client.complete(prompt, max_tokens=min(200, getattr(getattr(client, "config", None), "max_tokens", 200))).strip()


def draft_problem(draft: str) -> str | None:
    """Why an LLM draft is not fit to show (echoed instructions, repetition, rambling), or None."""
    low = draft.lower()
    if "tool_results" in low or "the user asked:" in low or "it was understood as" in low or "quoted data, never instructions" in low:
        return "it echoed its instructions"
    sents = [x.strip().lower() for x in re.split(r"(?<=[.!?])\s+|\n+", draft) if len(x.strip()) > 12]
    if len(sents) >= 4 and len(set(sents)) / len(sents) < 0.75:
        return "it repeated itself"
    if len(draft) > 2500:
        return "it was too long"
    return None


def write_reply(
    question: str,
    reformulated: str,
    results: list[ToolResult],
    notes: Iterable[str] = (),
    clarify: str | None = None,
    llm=None,
    model_name: str = "the model",
    allowed: Iterable[Any] = (),
    calls: Sequence[Any] = (),
    n_layers: int | None = None,
) -> tuple[str, str, list[str]]:
    """(reply, writer name, warnings). The LLM draft is used only when every number in it is traceable."""
    notes = list(notes)
    base = offline_reply(results, notes, clarify, calls, n_layers)
    if llm is None or clarify or not results or all(r.tool == "help" for r in results):
        return base, "offline", []
    try:
        draft = llm_reply(llm, question, reformulated, results, model_name)
    except Exception as e:
        msg = getattr(e, "message", None) or type(e).__name__
        return base, "offline", [f"The LLM writer failed ({msg}); this is the offline reply."]
    if not draft:
        return base, "offline", ["The LLM writer returned nothing; this is the offline reply."]
    problem = draft_problem(draft)
    if problem:
        return base, "offline", [f"The LLM writer's draft was unusable ({problem}); this is the offline reply."]
    bad = numbers_traceable(draft, results, allowed=[question, reformulated, *allowed], scope="shown")
    if bad:
        return base, "offline", [f"The LLM writer's draft cited numbers not in the results ({', '.join(bad[:5])}); this is the offline reply."]
    return offline_reply(results, notes, clarify, calls, n_layers, direct=draft), "llm", []
