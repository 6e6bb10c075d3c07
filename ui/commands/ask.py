"""`gnothi ask`: ask a question about the model's insides (one question, or a JSONL batch).

    gnothi ask "what does neuron 340 in layer 7 respond to?"
    gnothi ask "now layer 5" --thread t1 --json
    gnothi ask --batch questions.jsonl --out answers.jsonl

A batch line is a JSON string or an object with ``question`` (and optional ``id``,
``thread``). Each answer is appended to ``--out`` as soon as it is done (flushed and
synced), so a crash halfway loses nothing done: rerunning skips the ids already answered.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from gnothi.ui.cli_common import add_llm_args, add_model_args, llm_from_args


def register(sub):
    p = sub.add_parser("ask", help="ask a question about the model's insides (offline planner by default)")
    p.add_argument("question", nargs="?", default=None, help="the question, in plain words")
    add_model_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object (question, reformulated, plan, results, reply, timings)")
    p.add_argument("--thread", default=None, help="conversation id: follow-ups resolve against its earlier turns")
    p.add_argument("--db", default=None, help="conversation database (default: <gnothi cache>/conversations.sqlite)")
    add_llm_args(p, "the planner, the writer and the explainers")
    p.add_argument("--planner", choices=["auto", "offline", "llm"], default="auto", help="auto: the LLM planner when an LLM is set")
    p.add_argument("--batch", default=None, help="JSONL file of questions")
    p.add_argument("--out", default=None, help="JSONL file of answers (with --batch)")
    p.add_argument("--stream", action="store_true", help="print each step as it happens (to stderr)")
    p.add_argument("--history", action="store_true", help="print the thread's earlier turns and exit")
    p.set_defaults(func=run)


def _assistant(args):
    from gnothi.agents import Assistant

    model = None
    if any(getattr(args, k, None) for k in ("model", "device", "dtype", "allow_pickle", "trust_remote_code")):
        from gnothi.ui.cli_common import handle_from_args

        model = handle_from_args(args)
    return Assistant(model=model, llm=llm_from_args(args), db_path=args.db, planner=args.planner)


def _print_event(ev) -> None:
    d = ev.data
    if ev.type == "planned":
        calls = ", ".join(f"{c['tool']}({json.dumps(c['args'], ensure_ascii=False)})" for c in d["plan"]["calls"]) or "no tool calls"
        print(f"[planned] {d['plan'].get('reformulated', '')} -> {calls}", file=sys.stderr)
    elif ev.type == "tool_started":
        print(f"[running] {d['tool']} ...", file=sys.stderr)
    elif ev.type == "notice":
        print(f"[note] {d['message']}", file=sys.stderr)
    elif ev.type == "tool_finished":
        print(f"[done {d['seconds']:.2f}s] {d['tool']}: {'ok' if d['ok'] else 'failed'}", file=sys.stderr)
    elif ev.type == "clarify":
        print("[clarify] " + d.get("question", ""), file=sys.stderr)
    elif ev.type == "error" and "message" in d:
        print("[error] " + d["message"], file=sys.stderr)


def _answer_json(ans) -> dict:
    d = ans.model_dump(mode="json")
    return d


def run(args) -> int:
    from gnothi.tools.errors import InputError
    from gnothi.ui.cli_common import print_json

    if args.batch:
        return run_batch(args)
    if args.history:
        if not args.thread:
            raise InputError("--history needs --thread ID.", "Pass the thread id printed by an earlier `gnothi ask`.")
        a = _assistant(args)
        h = a.history(args.thread)
        if args.json:
            print_json({"thread": args.thread, "turns": h})
        else:
            for t in h:
                print(f"> {t['question']}\n{t['reply']}\n")
        return 0
    if args.question is None:
        raise InputError("No question given.", 'Run e.g. gnothi ask "what does neuron 340 in layer 7 respond to?", or --batch FILE.')
    a = _assistant(args)
    ans = None
    for ev in a.stream(args.question, thread=args.thread):
        if args.stream or ev.type == "notice":  # a long first-use build is announced either way
            _print_event(ev)
        elif ev.type == "planned" and not args.json and ev.data["plan"].get("reformulated"):
            print(f"What I will measure: {ev.data['plan']['reformulated']}", file=sys.stderr, flush=True)
        if ev.type == "reply":
            from gnothi.agents.types import Answer

            ans = Answer.model_validate(ev.data["answer"])
    assert ans is not None
    if args.json:
        print_json(_answer_json(ans))
        return 0
    print(ans.reply)
    for w in ans.warnings:  # what the reply itself does not say (the writer's fallback, a tool's caveat)
        if w not in ans.reply:
            print(f"note: {w}", file=sys.stderr)
    from gnothi.tools.results import render_png

    if ans.figures:
        from gnothi.tools.config import cache_dir

        fig_dir = cache_dir() / "figures" / ans.thread
        fig_dir.mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(ans.figures):
            p = fig_dir / f"{len(a.history(ans.thread)):03d}-{i}.png"
            p.write_bytes(render_png(f))
            print(f"figure: {f.title} -> {p}")
    print(f"\n(thread {ans.thread}; planner {ans.planner}; {ans.timings.get('total_s', 0):.1f}s; follow up with --thread {ans.thread})", file=sys.stderr)
    return 0


def _read_batch(path: Path) -> list[dict]:
    from gnothi.tools.errors import InputError

    if not path.exists():
        raise InputError(f"The batch file {path} does not exist.", "Pass a JSONL file: one question (a JSON string or {\"question\": ...}) per line.")
    items = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            obj = {"question": line.strip()}  # a plain-text line is a question too
        if isinstance(obj, str):
            obj = {"question": obj}
        if not isinstance(obj, dict) or not isinstance(obj.get("question", ""), str):
            raise InputError(f"Line {i + 1} of {path} is not a question.", 'Each line: "question text" or {"question": "...", "id": "...", "thread": "..."}.')
        obj.setdefault("id", str(i))
        obj["id"] = str(obj["id"])
        items.append(obj)
    return items


def _done_ids(out: Path) -> set[str]:
    done: set[str] = set()
    if not out.exists():
        return done
    with out.open("rb") as f:
        for raw in f:
            try:
                done.add(str(json.loads(raw)["id"]))
            except Exception:  # a torn last line from a crash: that question is redone
                continue
    return done


def run_batch(args) -> int:
    from gnothi.tools.errors import InputError

    if not args.out:
        raise InputError("--batch needs --out FILE for the answers.", "Add --out answers.jsonl.")
    items = _read_batch(Path(args.batch))
    out = Path(args.out)
    done = _done_ids(out)
    if out.exists():  # drop a torn last line so the file stays valid JSONL
        data = out.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with out.open("r+b") as f:
                f.truncate(cut)
    todo = [it for it in items if it["id"] not in done]
    a = _assistant(args) if todo else None
    n_ok = 0
    with out.open("a", encoding="utf-8") as f:
        for k, it in enumerate(todo):
            assert a is not None  # made above whenever there is something to do
            ans = a.ask(it["question"], thread=it.get("thread") or args.thread)
            rec = {"id": it["id"], **ans.model_dump(mode="json")}
            rec.pop("figures", None)  # figures stay in results; keep lines small
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
            n_ok += 1
            print(f"[{k + 1}/{len(todo)}] {it['id']}: {', '.join(c.tool for c in ans.plan) or 'clarify'} ({ans.timings.get('total_s', 0):.1f}s)", file=sys.stderr)
    summary = {"batch": str(args.batch), "out": str(out), "questions": len(items), "skipped_already_done": len(items) - len(todo), "answered": n_ok}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"answered {n_ok}, skipped {summary['skipped_already_done']} already in {out}")
    return 0
