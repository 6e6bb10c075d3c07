"""`gnothi heads`: rank every attention head of the model by behaviour (one head's pattern on a prompt: `gnothi attention`)."""

from __future__ import annotations

from gnothi.ui.cli_common import add_model_args


def register(sub):
    p = sub.add_parser(
        "heads",
        help="find induction, previous-token, duplicate-token and first-token heads over the whole model",
        description="Score every head of the model for four behaviours, each beside its control and a uniform head, and "
        "rank them (scores are cached per model). One head's pattern on a prompt: gnothi attention.",
    )
    add_model_args(p)
    p.add_argument("--behaviour", action="append", choices=["previous_token", "induction", "duplicate_token", "first_token"],
                   help="rank by this behaviour (repeatable; default all four)")
    p.add_argument("--top", type=int, default=10, help="heads listed per behaviour (default 10)")
    p.add_argument("--fresh", action="store_true", help="measure again instead of reading the cached scores")
    p.add_argument("--plot", metavar="PNG", help="write the first figure to this PNG file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from gnothi.tools import heads
    from gnothi.tools.errors import InputError
    from gnothi.ui.cli_common import handle_from_args, print_json, write_plot

    if args.top < 1:
        raise InputError(f"--top {args.top} lists nothing.", "Give --top 1 or more.")
    h = handle_from_args(args)
    rep = heads.head_scores(h, use_cache=not args.fresh)
    tr = rep.to_tool_result(args.behaviour, k=args.top)
    out = {**tr.data, "summary": tr.summary, "top": {ev["behaviour"]: ev["top"] for ev in tr.evidence},
           "median": {ev["behaviour"]: ev["median"] for ev in tr.evidence}, "settings": rep.settings, "model": rep.model}
    write_plot(args, tr)
    if args.json:
        out["summary"] = tr.summary
        print_json(out)
        return 0
    print(tr.summary)
    for ev in tr.evidence:
        print(f"\n  {heads.LABEL[ev['behaviour']]} (uniform head {ev['uniform']:.3f}, median head {ev['median']:.3f})")
        print(f"  {'head':>6}  {'score':>6}  {'control':>7}")
        for t in ev["top"]:
            print(f"  {t['head']:>6}  {t['score']:>6.3f}  {t['control']:>7.3f}")
    if args.plot:
        print(f"  figure: {args.plot}")
    return 0
