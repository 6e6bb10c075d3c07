"""`gnothi bias`: counterfactual gender gaps per occupation, beside a neutral word pair."""

from __future__ import annotations

from gnothi.ui.cli_common import add_model_args


def register(sub):
    p = sub.add_parser(
        "bias",
        help="measure the model's he/she gap after sentences about 40 occupations, with intervals and a neutral control pair",
        description="Fill sentence templates with 40 occupations (WinoBias's, grouped by US labour statistics) and compare the "
        "log-probabilities of gendered continuations; report the gap per occupation (bootstrap 95%% CI), the difference between "
        "male- and female-dominated occupations, and the same for a neutral word pair.",
    )
    add_model_args(p)
    p.add_argument("--occupation", action="append", help="an occupation to highlight or add (repeatable)")
    p.add_argument("--template", help="your own sentence with {occupation} where it goes, e.g. 'The {occupation} told me that'")
    p.add_argument("--pair", help="the two words to compare after the template, e.g. he/she (required with --template)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", metavar="PNG", help="write the per-occupation figure to this PNG file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from gnothi.tools import bias
    from gnothi.ui.cli_common import handle_from_args, print_report, write_plot

    h = handle_from_args(args)
    rep = bias.bias_check(h, args.occupation, template=args.template, pair=args.pair, seed=args.seed)
    tr = rep.to_tool_result()
    write_plot(args, tr)
    if args.json:
        print_report(rep, tr)
        return 0
    print(tr.summary)
    print(f"\n  {'occupation':<22} {'group':<17} {'gap':>6}  {'95% CI':>15}  {'neutral':>7}  prompts")
    for o in sorted(rep.occupations, key=lambda o: o.gap):
        ci = f"[{o.ci[0]:+.2f},{o.ci[1]:+.2f}]" if o.ci else "(one prompt)"
        print(f"  {o.occupation:<22} {o.group:<17} {o.gap:>+6.2f}  {ci:>15}  {o.control_gap:>+7.2f}  {o.n_prompts}")
    for w in rep.notes:
        print(f"  note: {w}")
    return 0
