"""Routing suite: does each planner pick the right tools with the right arguments?

Data (format and labelling rules in ``evals/data/routing/FORMAT.md``):

* ``routing/dev.jsonl`` and ``routing/tuning1.jsonl`` (a first held-out set, studied after
  its one measurement): what the router and taggers are trained on. Their figure here is
  cross-validated by template family (retrained without the families scored), so it
  measures generalization to new ways of asking, not memory.
* ``routing/heldout.jsonl``: families written before any tuning and frozen
  (``routing/FROZEN.md``); the planner is never tuned on them. This is the honest number.

Metrics per planner: ``tool_accuracy`` (the planned tool list and clarify/no-clarify are
right), ``full_accuracy`` (tools, every expected argument and clarify all right), by
category. Planners: ``offline`` (router with MiniLM + character n-grams), ``offline_ngrams``
(character n-grams only), and ``llm`` when an LLM endpoint is configured. Baseline: always
the most frequent expected plan (majority class).

Run alone: ``python -m gnothi.evals.suite_routing [--llm-base-url URL | --llama] [--every N] [--quick] [--show-misses]``
(``--llama`` starts llama.cpp's server with the bundled GGUF; ``--every 4`` scores every fourth held-out question).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from gnothi.agents import router
from gnothi.agents.router import load_rows
from gnothi.tools.probing import wilson_interval

from .registry import SuiteContext, SuiteResult, suite

ROUTING = Path(__file__).parent / "data" / "routing"
DEV = ROUTING / "dev.jsonl"
TUNING = list(router.TUNING)  # earlier held-out sets and a tuning set (FROZEN.md)
HELDOUT = ROUTING / "heldout.jsonl"
EXACT_KEYS = {"answer", "alternative"}  # the leading space is part of the token
TARGET = 0.95


def _norm(v: Any) -> Any:
    if isinstance(v, str):
        s = re.sub(r"\s+", " ", v).strip().strip("\"'“”‘’`").strip()
        return re.sub(r"[.?!]+$", "", s).strip().lower()
    if isinstance(v, list):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    return v


def arg_matches(key: str, expected: Any, actual: dict) -> bool:
    """One expected argument against a planned call's arguments (rules in FORMAT.md)."""
    if key.endswith("~"):
        k = key[:-1]
        return isinstance(actual.get(k), str) and _norm(expected) in _norm(actual[k])
    if key not in actual:
        return False
    if key in EXACT_KEYS:
        return isinstance(actual[key], str) and actual[key].rstrip() == str(expected).rstrip()
    return _norm(actual[key]) == _norm(expected)


def score_plan(row: dict, plan) -> dict[str, bool]:
    exp = row["expect"]
    tools = [c.tool for c in plan.calls]
    clar_ok = bool(plan.clarify) == bool(exp.get("clarify"))
    tools_ok = tools == exp["tools"] and clar_ok
    if exp.get("or_clarify") and plan.clarify and not tools and (plan.pending or {}).get("tool") in exp["tools"]:
        return {"tools": True, "full": True}  # the agent asked for what it needs (see router.read_row)
    args_ok = tools_ok and all(all(arg_matches(k, v, c.args) for k, v in e.items()) for e, c in zip(exp.get("args") or [], plan.calls))
    return {"tools": tools_ok, "full": tools_ok and args_ok}


def evaluate(planner, rows: list[dict], n_layers: int, d_mlp: int, datasets: list[str]) -> dict[str, Any]:
    """Run ``planner`` on every row; accuracy overall and by category, plus the misses."""
    from gnothi.agents.planner_offline import PlanContext

    by_cat: dict[str, list[bool]] = defaultdict(list)
    tools_hits, full_hits, misses, fallbacks = 0, 0, [], 0
    t0 = time.perf_counter()
    for row in rows:
        ctx = PlanContext(history=row.get("history") or [], n_layers=n_layers, d_mlp=d_mlp, datasets=datasets or None)
        plan = planner.plan(row["question"], ctx)
        s = score_plan(row, plan)
        tools_hits += s["tools"]
        full_hits += s["full"]
        fallbacks += plan.planner == "llm->offline"
        by_cat[row["category"]].append(s["full"])
        if not s["full"]:
            misses.append({"id": row["id"], "family": row.get("family"), "question": row["question"][:160], "expected": row["expect"],
                           "got": [c.model_dump() for c in plan.calls], "clarify": plan.clarify})
    n = max(1, len(rows))
    return {
        "n": len(rows),
        "tool_accuracy": tools_hits / n,
        "full_accuracy": full_hits / n,
        "by_category": {k: sum(v) / len(v) for k, v in sorted(by_cat.items())},
        "fallback_rate": fallbacks / n,
        "seconds_per_question": (time.perf_counter() - t0) / n,
        "misses": misses,
    }


def majority_baseline(rows: list[dict]) -> dict[str, Any]:
    """Always answer with the most frequent expected tool list (and, for full accuracy, the most frequent whole plan)."""
    def tkey(r):
        return json.dumps([r["expect"]["tools"], bool(r["expect"].get("clarify"))])

    def fkey(r):
        return json.dumps([r["expect"]["tools"], r["expect"].get("args") or [], bool(r["expect"].get("clarify"))], sort_keys=True)

    t_key, t_n = Counter(tkey(r) for r in rows).most_common(1)[0]
    f_key, f_n = Counter(fkey(r) for r in rows).most_common(1)[0]
    tools, clarify = json.loads(t_key)
    return {"tool_accuracy": t_n / len(rows), "full_accuracy": f_n / len(rows), "plan": tools, "clarify": clarify}


def family_folds(rows: list[dict], k: int = 5) -> list[list[dict]]:
    """``rows`` in ``k`` folds, each template family whole inside one fold (deterministic)."""
    import hashlib

    folds: list[list[dict]] = [[] for _ in range(k)]
    for r in rows:
        h = int(hashlib.sha256(r.get("family", r["id"]).encode()).hexdigest(), 16)
        folds[h % k].append(r)
    return folds


def cross_validate(rows: list[dict], embedder, n_layers: int, d_mlp: int, datasets: list[str], k: int = 5) -> dict[str, Any]:
    """Family-grouped cross-validation of the offline planner on the dev corpus."""
    from gnothi.agents.planner_offline import OfflinePlanner
    from gnothi.agents.router import Router, training_pairs
    from gnothi.agents.spans import train_taggers

    by_cat: dict[str, list[bool]] = defaultdict(list)
    misses: list[dict] = []
    hits = {"tools": 0, "full": 0}
    n = 0
    folds = family_folds(rows, k)
    for i, fold in enumerate(folds):
        train = [r for j, f in enumerate(folds) if j != i for r in f]
        planner = OfflinePlanner(embedder=embedder, router=Router(embedder).fit(*training_pairs(train)), taggers=train_taggers(train))
        ev = evaluate(planner, fold, n_layers, d_mlp, datasets)
        n += ev["n"]
        hits["tools"] += round(ev["tool_accuracy"] * ev["n"])
        hits["full"] += round(ev["full_accuracy"] * ev["n"])
        misses.extend(ev["misses"])
        missed = {m["id"] for m in ev["misses"]}
        for r in fold:
            by_cat[r["category"]].append(r["id"] not in missed)
    n = max(1, n)
    return {"n": n, "tool_accuracy": hits["tools"] / n, "full_accuracy": hits["full"] / n,
            "by_category": {c: sum(v) / len(v) for c, v in sorted(by_cat.items())}, "misses": misses}


def _planners(llm: Any, n_layers: int, d_mlp: int) -> dict[str, Any]:
    from gnothi.agents.planner_offline import OfflinePlanner

    out: dict[str, Any] = {"offline": OfflinePlanner(), "offline_ngrams": OfflinePlanner(embedder=None)}
    if llm is not None:
        from gnothi.agents.llm import make_llm
        from gnothi.agents.planner_llm import LLMPlanner

        client = make_llm(llm)
        if client is not None:
            out["llm"] = LLMPlanner(client, fallback=out["offline"], shape={"n_layers": n_layers, "d_mlp": d_mlp})
    return out


def _shape(ctx: SuiteContext) -> tuple[int, int, list[str]]:
    from gnothi.tools.datasets import dataset_names

    h = ctx.handle()
    return h.n_layers, h.d_mlp, dataset_names()


def _miss_table(title: str, misses: list[dict], limit: int = 60) -> dict:
    return {"title": title, "columns": ["id", "question", "expected", "got", "clarify"],
            "rows": [[m["id"], m["question"], json.dumps(m["expected"]), json.dumps(m["got"]), m["clarify"]] for m in misses[:limit]]}


@suite("routing")
def run(ctx: SuiteContext) -> SuiteResult:
    """Tool and argument accuracy of each planner: dev corpus (cross-validated by family) and the frozen held-out families."""
    t0 = time.perf_counter()
    dev, held = load_rows([DEV, *TUNING]), load_rows(HELDOUT)
    every = int(ctx.options.get("every") or 1)
    held = held[::every]  # every N-th held-out question, for a slow planner (an LLM on a CPU); all families stay in
    n_layers, d_mlp, datasets = _shape(ctx)
    hbase = majority_baseline(held)
    res = SuiteResult(suite="routing")
    cats = sorted({r["category"] for r in held})
    table = []
    planners = _planners(ctx.llm, n_layers, d_mlp)
    for name, planner in planners.items():
        hev = evaluate(planner, held, n_layers, d_mlp, datasets)
        res.metrics[name] = {"heldout_tool_accuracy": hev["tool_accuracy"], "heldout_full_accuracy": hev["full_accuracy"],
                             "fallback_rate": hev["fallback_rate"], "seconds_per_question": hev["seconds_per_question"]}
        res.baselines[name] = {"heldout_tool_accuracy": hbase["tool_accuracy"], "heldout_full_accuracy": hbase["full_accuracy"],
                               "fallback_rate": 0.0, "seconds_per_question": 0.0}
        table.append([name, hev["n"], round(hev["tool_accuracy"], 3), round(hev["full_accuracy"], 3), round(hev["seconds_per_question"], 4)]
                     + [round(hev["by_category"].get(c, 0.0), 2) for c in cats])
        lo, hi = wilson_interval(round(hev["full_accuracy"] * hev["n"]), hev["n"])
        tlo, thi = wilson_interval(round(hev["tool_accuracy"] * hev["n"]), hev["n"])
        res.metrics[name]["heldout_full_accuracy_ci95"] = [round(lo, 4), round(hi, 4)]
        res.metrics[name]["heldout_tool_accuracy_ci95"] = [round(tlo, 4), round(thi, 4)]
        print(f"routing[{name}] held-out: tools {hev['tool_accuracy']:.1%} [{tlo:.1%}, {thi:.1%}], tools+args {hev['full_accuracy']:.1%} "
              f"[{lo:.1%}, {hi:.1%}] (95% Wilson intervals) on {hev['n']} questions "
              f"in {len({r['family'] for r in held})} frozen families; majority baseline {hbase['full_accuracy']:.1%}"
              + (f"; {hev['fallback_rate']:.0%} of its plans replaced by the offline planner's" if name == "llm" else ""))
        if hev["misses"]:
            res.tables.append(_miss_table(f"held-out misses of {name}", hev["misses"], 400))
    if not ctx.quick:
        cv = cross_validate(dev, planners["offline"].embedder, n_layers, d_mlp, datasets)
        dbase = majority_baseline(dev)
        res.metrics["offline_dev_cv"] = {"full_accuracy": cv["full_accuracy"], "tool_accuracy": cv["tool_accuracy"]}
        res.baselines["offline_dev_cv"] = {"full_accuracy": dbase["full_accuracy"], "tool_accuracy": dbase["tool_accuracy"]}
        print(f"routing[offline] dev corpus, 5-fold by family: tools {cv['tool_accuracy']:.1%}, tools+args {cv['full_accuracy']:.1%} on {cv['n']}")
        res.tables.append({"title": "dev corpus, cross-validated by family (offline)", "columns": ["category", "full_acc"],
                           "rows": [[c, round(v, 3)] for c, v in cv["by_category"].items()]})
        res.tables.append(_miss_table("dev cross-validation misses (offline)", cv["misses"], 80))
    res.tables.insert(0, {"title": "held-out routing accuracy by planner and category (full = tools + arguments + clarify)",
                          "columns": ["planner", "n", "tool_acc", "full_acc", "s/question", *cats], "rows": table})
    res.notes.append(f"{len(held)} frozen held-out questions in {len({r['family'] for r in held})} families ({HELDOUT.name}); "
                     f"{len(dev)} dev questions in {len({r['family'] for r in dev})} families; baseline: always plan {hbase['plan']}.")
    res.passed = res.metrics["offline"]["heldout_full_accuracy"] >= TARGET
    res.seconds = time.perf_counter() - t0
    return res


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - a convenience
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--llm-base-url", default=None)
    p.add_argument("--show-misses", action="store_true")
    p.add_argument("--llama", action="store_true", help="start llama.cpp's server with the bundled GGUF and measure the LLM planner on it")
    p.add_argument("--quick", action="store_true", help="held-out only (no dev cross-validation)")
    p.add_argument("--every", type=int, default=1, help="score every N-th held-out question only (for a slow LLM planner)")
    a = p.parse_args(argv)
    if a.llama:
        from gnothi.agents.llm_server import llama_server

        with llama_server() as url:
            return _report(run(SuiteContext(llm=url, quick=a.quick, options={"every": a.every})), a.show_misses)
    return _report(run(SuiteContext(llm=a.llm_base_url, quick=a.quick, options={"every": a.every})), a.show_misses)


def _report(res: SuiteResult, show_misses: bool) -> int:  # pragma: no cover - a convenience
    for t in res.tables if show_misses else res.tables[:1]:
        print(t["title"])
        print("  " + " | ".join(map(str, t["columns"])))
        for r in t["rows"]:
            print("  " + " | ".join(map(str, r)))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
