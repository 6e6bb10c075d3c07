"""`gnothi heads`: rank every attention head by behaviour, or show one head's pattern on a prompt."""

from __future__ import annotations

from gnothi.ui.cli import add_model_args


def register(sub):
    p = sub.add_parser(
        "heads",
        help="find induction, previous-token, duplicate-token and first-token heads; or show a head's attention pattern",
        description="Without --prompt: score every head of the model for four behaviours (each beside its control and "
        "a uniform head) and rank them. With --prompt and --head L.H (or --layer L): that head's attention pattern.",
    )
    add_model_args(p)
    p.add_argument("--behaviour", action="append", choices=["previous_token", "induction", "duplicate_token", "first_token"],
                   help="rank by this behaviour (repeatable; default all four)")
    p.add_argument("--top", type=int, default=10, help="heads listed per behaviour (default 10)")
    p.add_argument("--prompt", help="show attention patterns on this prompt instead of ranking")
    p.add_argument("--head", action="append", help="with --prompt: a head as LAYER.HEAD (repeatable), e.g. 18.6")
    p.add_argument("--layer", type=int, help="with --prompt: every head of this layer")
    p.add_argument("--fresh", action="store_true", help="measure again instead of reading the cached scores")
    p.add_argument("--plot", metavar="PNG", help="write the first figure to this PNG file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from gnothi.tools import attention, heads
    from gnothi.tools.errors import InputError
    from gnothi.ui.cli import handle_from_args, print_json

    if args.top < 1:
        raise InputError(f"--top {args.top} lists nothing.", "Give --top 1 or more.")
    if (args.head or args.layer is not None) and not args.prompt:
        raise InputError("--head and --layer show a pattern on a prompt.", "Add --prompt '...', or drop them to rank every head.")
    h = handle_from_args(args)
    if args.prompt:
        rep = attention.attention_view(h, args.prompt, layer=args.layer, heads=args.head)
        tr = rep.to_tool_result()
        out = rep.model_dump(mode="json")
    else:
        rep = heads.head_scores(h, use_cache=not args.fresh)
        tr = rep.to_tool_result(args.behaviour, k=args.top)
        out = {**tr.data, "summary": tr.summary, "top": {ev["behaviour"]: ev["top"] for ev in tr.evidence},
               "median": {ev["behaviour"]: ev["median"] for ev in tr.evidence}, "settings": rep.settings, "model": rep.model}
    if args.plot and tr.figures:
        from pathlib import Path

        from gnothi.tools.results import render_png

        Path(args.plot).write_bytes(render_png(tr.figures[0]))
    if args.json:
        out["summary"] = tr.summary
        print_json(out)
        return 0
    print(tr.summary)
    if not args.prompt:
        for ev in tr.evidence:
            print(f"\n  {heads.LABEL[ev['behaviour']]} (uniform head {ev['uniform']:.3f}, median head {ev['median']:.3f})")
            print(f"  {'head':>6}  {'score':>6}  {'control':>7}")
            for t in ev["top"]:
                print(f"  {t['head']:>6}  {t['score']:>6.3f}  {t['control']:>7.3f}")
    else:
        for hp in rep.heads:
            print(f"  head {hp.name}: " + ", ".join(f"{a.token!r} {a.weight:.2f}" for a in hp.last_token_top))
    if args.plot:
        print(f"  figure: {args.plot}")
    return 0
