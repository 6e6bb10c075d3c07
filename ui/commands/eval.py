"""`gnothi eval`: offline evaluation suites, their report, and comparing two runs.

    gnothi eval                          # every suite, quick tier
    gnothi eval neurons patching --full  # chosen suites, full tier
    gnothi eval --list
    gnothi eval compare RUN_A RUN_B      # two run folders side by side
"""

from __future__ import annotations

import sys
from typing import Any

from gnothi.ui.cli_common import add_llm_args, add_model_args

DEFAULT_OUT = "artifacts/evals"


def register(sub):
    p = sub.add_parser(
        "eval",
        help="run offline evaluation suites and write a report (or: eval compare RUN_A RUN_B)",
        description="Run evaluation suites (routing, neurons, sae, probing, patching, heads, methods, bias, steering, hallucination, end_to_end) "
        "and write report.json + report.md with plots. `gnothi eval compare RUN_A RUN_B` puts two runs side by side.",
    )
    p.add_argument("suites", nargs="*", metavar="SUITE", help="suites to run (default: all); or `compare RUN_A RUN_B`")
    add_model_args(p)
    tier = p.add_mutually_exclusive_group()
    tier.add_argument("--quick", dest="quick", action="store_true", default=True, help="quick tier: small samples, minutes (default)")
    tier.add_argument("--full", dest="quick", action="store_false", help="full tier: the sizes the README's numbers come from")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"folder for run reports (default: {DEFAULT_OUT})")
    p.add_argument("--seed", type=int, default=0, help="seed for every sample the suites draw (default 0)")
    p.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="run each suite with N seeds (--seed, --seed+1, ...: splits and samples drawn anew) and report each metric's mean and 95%% interval (default 1)")
    p.add_argument("--set", dest="options", action="append", default=[], metavar="KEY=VALUE", help="suite option, e.g. n_units=8 (repeatable)")
    add_llm_args(p)
    p.add_argument("--list", action="store_true", help="list the suites and exit")
    p.add_argument("--json", action="store_true", help="print one JSON object (the report) on stdout")
    p.set_defaults(func=run)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _parse_options(items: list[str]) -> dict:
    from gnothi.tools.errors import InputError

    out: dict[str, Any] = {}
    for it in items:
        if "=" not in it:
            raise InputError(f"Suite option {it!r} is not KEY=VALUE.", "Write it like --set n_units=8.")
        k, raw = it.split("=", 1)
        v: Any = raw
        for conv in (int, float):
            try:
                v = conv(raw)
                break
            except ValueError:
                continue
        else:
            if raw.lower() in ("true", "false"):
                v = raw.lower() == "true"
        out[k.strip()] = v
    return out


def make_llm(args):
    """The LLM client the options name, or None; the suites' own processes see it through GNOTHI_LLM_*."""
    import os

    from gnothi.ui.cli_common import llm_from_args

    llm = llm_from_args(args)
    if llm is not None:
        os.environ["GNOTHI_LLM_BASE_URL"] = llm.config.base_url
        os.environ["GNOTHI_LLM_MODEL"] = llm.config.model
    return llm


def run(args) -> int:
    from pathlib import Path

    from gnothi.ui.cli_common import print_json

    if args.suites and args.suites[0] == "compare":
        return run_compare(args)

    from gnothi.evals.registry import SuiteContext, discover
    from gnothi.evals.runner import run_suites
    from gnothi.tools.errors import InputError

    reg = discover()
    if args.list:
        rows = [{"suite": n, "doc": ((fn.__doc__ or "").strip().splitlines() or [""])[0]} for n, fn in sorted(reg.items())]
        if args.json:
            print_json({"suites": rows})
        else:
            for r in rows:
                print(f"{r['suite']:<14} {r['doc']}")
        return 0
    unknown = [s for s in args.suites if s not in reg]
    if unknown:
        raise InputError(f"No evaluation suite named {', '.join(map(repr, unknown))}.", f"Use one of: {', '.join(sorted(reg))} (or `gnothi eval --list`).")
    options = _parse_options(args.options)
    for k in ("device", "dtype"):
        if getattr(args, k, None):
            options[k] = getattr(args, k)
    llm = make_llm(args)
    if llm is not None:
        options["llm_base_url"] = llm.config.base_url
        options["llm_model"] = llm.config.model
    ctx = SuiteContext(model=args.model, llm=llm, out_dir=Path(args.out), quick=args.quick,
                       seed=args.seed, options=options)
    if args.device or args.dtype or args.allow_pickle or args.trust_remote_code:
        from gnothi.ui.cli_common import handle_from_args

        ctx.model_handle = handle_from_args(args)
    if args.seeds < 1:
        raise InputError(f"--seeds must be at least 1, got {args.seeds}.", "Use e.g. --seeds 3 for a mean and interval over three seeds.")
    seeds = list(range(args.seed, args.seed + args.seeds))
    report = run_suites(args.suites, ctx, out_dir=Path(args.out), registry=reg, argv=sys.argv[1:], log=_log, seeds=seeds)
    bad = [n for n, r in report.suites.items() if r.status in ("error", "failed")]
    if args.json:
        print_json(report)
    else:
        print(f"gnothi eval ({report.tier} tier), {report.seconds:.0f} s — report in {report.out_dir}/report.md")
        for name, status, head, secs in report.summary_rows():
            print(f"  {name:<14} {status:<8} {secs:>6.1f}s  {head}")
    return 1 if bad else 0


def run_compare(args) -> int:
    from gnothi.evals.compare import compare_runs
    from gnothi.tools.errors import InputError
    from gnothi.ui.cli_common import print_json

    paths = args.suites[1:]
    if len(paths) != 2:
        raise InputError(f"`gnothi eval compare` takes two run folders, got {len(paths)}.", "Run: gnothi eval compare RUN_A RUN_B (folders under artifacts/evals/).")
    cr = compare_runs(paths[0], paths[1])
    if args.json:
        print_json(cr)
    else:
        print(cr.to_markdown())
    return 0
