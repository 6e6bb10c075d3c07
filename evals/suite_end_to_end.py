"""End-to-end suite: questions through the whole assistant, every reply's numbers traced.

Each question in ``evals/data/end_to_end.jsonl`` goes through ``Assistant.ask`` (planner,
tool agents on the model, writer). For each answer the suite records the tools planned,
whether they ran, and -- with the writer's ``numbers_traceable`` -- every number in the
reply that appears in no tool result (nor in the question). Controls:

* **traceable replies** beside the same check on the same replies with every number
  perturbed (a fabricated-numbers control: the checker must flag those);
* **numbers caught when fabricated** beside the share of *real* numbers it flags (its
  false-alarm rate);
* **routed as expected** beside chance (one tool agent picked at random);
* no reply may be empty or carry a traceback.

Quick tier: the questions marked ``quick``; full tier: all of them.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from .metrics import mean
from gnothi.agents import assistant as asst_mod
from gnothi.agents import writer

from .registry import SuiteContext, SuiteResult, SuiteSkipped, suite

DATA = Path(__file__).parent / "data" / "end_to_end.jsonl"
_NUM = re.compile(r"(?<![\w.])-?\d+(?:[.,]\d+)*(?:\.\d+)?%?")


def load_questions(path: Path = DATA, quick: bool = True) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if r.get("quick") or not quick]


def perturb_number(tok: str) -> str:
    """A different number written the same way (same decimals, same % sign)."""
    pct = tok.endswith("%")
    core = tok[:-1] if pct else tok
    plain = core.replace(",", "")
    try:
        v = float(plain)
    except ValueError:
        return tok
    if "." in plain:
        d = len(plain.split(".")[1])
        nv = round(v * 1.37 + 0.13 + 10 ** -d * 3, d)
        s = f"{nv:.{d}f}"
    else:
        s = str(int(v * 3 + 7))
    return s + ("%" if pct else "")


def perturb_reply(reply: str) -> tuple[str, int]:
    n = 0

    def sub(m):
        nonlocal n
        n += 1
        return perturb_number(m.group(0))

    return _NUM.sub(sub, reply), n


@suite("end_to_end")
def run(ctx: SuiteContext) -> SuiteResult:
    """Questions through the whole assistant; every number in each reply must trace to a tool result."""
    from gnothi.agents.toolkit import TOOLKIT

    handle = ctx.handle()
    llm = ctx.options.get("llm_base_url") if ctx.llm is not None else None
    assistant = asst_mod.Assistant(model=handle, llm=llm or ctx.llm, db_path=":memory:")
    qs = load_questions(quick=ctx.quick)
    limit = ctx.options.get("e2e_questions")
    if limit:
        qs = qs[: int(limit)]
    res = SuiteResult(suite="end_to_end")
    rows = []
    traceable, perturbed_traceable, routed, ok_tools, clean_reply = [], [], [], [], []
    caught, real_flagged = [], []
    for q in qs:
        t0 = time.perf_counter()
        try:
            ans = assistant.ask(q["question"])
        except Exception as e:  # the assistant must answer, not raise: record it as a failure
            rows.append([q["id"], q["question"], "", "", f"raised {type(e).__name__}: {str(e)[:120]}", None, None, None, round(time.perf_counter() - t0, 1)])
            clean_reply.append(False)
            traceable.append(False)
            routed.append(False)
            continue
        secs = time.perf_counter() - t0
        tools = [c.tool for c in ans.plan]
        exp = q.get("expect_tools") or []
        routed.append(bool((tools and tools[0] in exp) or (not tools and None in exp)))
        ok = [r.ok for r in ans.results]
        ok_tools.extend(ok)
        reply = ans.reply or ""
        good = bool(reply.strip()) and "Traceback (most recent call last)" not in reply
        clean_reply.append(good)
        bad = writer.numbers_traceable(reply, ans.results, allowed=[q["question"]])
        traceable.append(not bad)
        n_nums = len(_NUM.findall(reply))
        if n_nums:
            real_flagged.append(len(bad) / n_nums)
            pr, n = perturb_reply(reply)
            pbad = writer.numbers_traceable(pr, ans.results, allowed=[q["question"]])
            perturbed_traceable.append(not pbad)
            caught.append(len(pbad) / max(1, n))
        rows.append([q["id"], q["question"], ", ".join(tools) or "(none)", ", ".join("ok" if o else "failed" for o in ok),
                     reply[:300], n_nums, ", ".join(bad) or "—", ans.planner, round(secs, 1)])
        if bad:
            res.notes.append(f"{q['id']}: numbers not traceable to any tool result: {', '.join(bad[:8])}")
    if not qs:
        raise SuiteSkipped("no end-to-end questions for this tier")
    n_agents = max(1, len(TOOLKIT))
    res.metrics = {
        "traceable_reply_rate": mean(traceable),
        "fabricated_number_catch_rate": mean(caught) if caught else None,
        "routed_as_expected_rate": mean(routed),
        "tool_ok_rate": mean(ok_tools) if ok_tools else None,
        "clean_reply_rate": mean(clean_reply),
    }
    res.baselines = {
        "traceable_reply_rate": {"same_replies_numbers_perturbed": mean(perturbed_traceable) if perturbed_traceable else None},
        "fabricated_number_catch_rate": {"real_numbers_flagged": mean(real_flagged) if real_flagged else None},
        "routed_as_expected_rate": {"random_tool": 1.0 / n_agents},
        "tool_ok_rate": {"target": 1.0},
        "clean_reply_rate": {"target": 1.0},
    }
    res.tables.append({
        "title": "Questions through the assistant",
        "columns": ["id", "question", "tools planned", "tool status", "reply (start)", "numbers", "untraceable", "planner", "seconds"],
        "rows": rows,
    })
    res.passed = bool(all(clean_reply) and all(traceable))
    res.provenance = {"questions": str(DATA.name), "n_questions": len(qs), "llm": bool(llm or ctx.llm), "seed": ctx.seed}
    return res
