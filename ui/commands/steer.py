"""`gnothi steer`: add a direction while the model writes; effect and cost beside a random direction and prompting."""

from __future__ import annotations

from typing import Literal

from gnothi.ui.cli_common import add_model_args


def register(sub):
    p = sub.add_parser(
        "steer",
        help="steer generation with a concept, neuron, SAE feature or probe direction; default vs steered text, effect, cost, controls",
        description="Add strength x direction to the residual stream after one layer while the model writes. For a sweep of "
        "strengths: the continuations' similarity to the concept, its words' probability, the loss rise on corpus text, "
        "beside a random direction of the same norm and a prompting baseline. The model itself is never changed.",
    )
    add_model_args(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--concept", help="a topic to steer towards (contrastive activation addition), e.g. France")
    src.add_argument("--neuron", help="a neuron as LAYER.NEURON, e.g. 12.400")
    src.add_argument("--feature", type=int, help="an SAE feature of the layer's default SAE")
    src.add_argument("--probe", help="the dataset of a saved probe, e.g. sentiment")
    p.add_argument("--layer", type=int, help="layer to steer after (default: an early layer; for --neuron its own layer)")
    p.add_argument("--strength", type=float, action="append", help="strength(s) to try (repeatable; default: a sweep)")
    p.add_argument("--prompt", action="append", help="prompt(s) to continue (repeatable; default: six everyday prompts)")
    p.add_argument("--word", action="append", help="words whose probability measures the effect (default: the concept)")
    p.add_argument("--new-tokens", type=int, default=20, help="tokens to generate per prompt (default 20)")
    p.add_argument("--max-cost", type=float, default=None, help="loss rise (nats/token) a useful strength may cost (default 0.5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", metavar="PNG", help="write the effect figure to this PNG file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from gnothi.tools import steering
    from gnothi.tools.errors import InputError
    from gnothi.ui.cli_common import handle_from_args, print_report, write_plot

    kw: dict = {}
    source: Literal["concept", "neuron", "feature", "probe"] = "concept"
    if args.neuron:
        try:
            l_s, n_s = args.neuron.split(".")
            kw.update(layer=int(l_s), neuron=int(n_s))
        except ValueError:
            raise InputError(f"Cannot read the neuron {args.neuron!r}.", "Write it as LAYER.NEURON, e.g. --neuron 12.400.") from None
        source = "neuron"
    elif args.feature is not None:
        source, kw["feature"] = "feature", args.feature
    elif args.probe:
        source, kw["probe"] = "probe", args.probe
    else:
        kw["concept"] = args.concept
    if args.layer is not None and source != "neuron":
        kw["layer"] = args.layer
    h = handle_from_args(args)
    rep = steering.steer(h, source, strengths=args.strength, prompts=args.prompt, words=args.word, n_new=args.new_tokens,
                         max_cost=args.max_cost if args.max_cost is not None else steering.MAX_COST, seed=args.seed, **kw)
    tr = rep.to_tool_result()
    write_plot(args, tr)
    if args.json:
        print_report(rep, tr)
        return 0
    print(tr.summary)
    print(f"\n  {'strength':>8}  {'x resid':>7}  {'relevance':>9}  {'random':>6}  {'loss rise':>9}  {'random':>6}  mentions")
    print(f"  {'none':>8}  {'':>7}  {rep.base_relevance:>9.3f}  {'':>6}  {0:>9.3f}  {'':>6}  {rep.base_mention_rate:.0%}")
    for p in rep.sweep:
        mark = "  <- best" if p.strength == rep.best_strength else ""
        print(f"  {p.strength:>8.3g}  {p.relative_norm:>7.2f}  {p.relevance:>9.3f}  {p.random_relevance:>6.3f}  {p.cost:>9.3f}  {p.random_cost:>6.3f}  "
              f"{p.mention_rate:.0%}{mark}")
    if rep.prompting_relevance is not None:
        print(f"  prompting {rep.prompting_instruction!r}: relevance {rep.prompting_relevance:.3f}, loss rise {rep.prompting_cost:.3f}")
    shown = rep.best() or max(rep.sweep, key=lambda p: p.relevance)
    print(f"\n  side by side at strength {shown.strength:g}:")
    for b, g in zip(rep.base_generations, shown.generations):
        print(f"  {b.prompt!r}\n    unsteered: {b.text.strip()[:100]!r}\n    steered:   {g.text.strip()[:100]!r}")
    for w in rep.notes:
        print(f"  note: {w}")
    return 0
