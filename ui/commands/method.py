"""`gnothi method`: how a method works and how to read its numbers, from the method cards, with citations."""

from __future__ import annotations


def register(sub):
    p = sub.add_parser(
        "method",
        help="explain an interpretability method or one of its numbers from the method cards (with the papers)",
        description="Answer a question about a method (activation patching, probes, SAEs, neuron scores, hallucination signals, "
        "attention heads, steering, bias tests ...) by retrieval over the project's method cards, citing their papers.",
    )
    p.add_argument("question", nargs="*", help="the question, e.g. how do I read a normalized effect of 0.8?")
    p.add_argument("--list", action="store_true", help="list the cards")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from gnothi.tools import methods
    from gnothi.tools.errors import InputError
    from gnothi.ui.cli_common import print_json

    if args.list:
        cards = methods.load_cards()
        if args.json:
            print_json([{"card": c.name, "title": c.title, "tools": c.tools, "references": c.references} for c in cards])
        else:
            for c in cards:
                print(f"  {c.name:<24} {c.title}  ({len(c.references)} references)")
        return 0
    q = " ".join(args.question).strip()
    if not q:
        raise InputError("No question given.", "Ask one, e.g. gnothi method what is activation patching?")
    ans = methods.explain_method(q)
    if args.json:
        print_json(ans)
        return 0
    print(f"{ans.title} ({ans.section}):")
    for p in ans.quote:
        print(f"  {p}")
    print("References:")
    for r in ans.references:
        print(f"  - {r}")
    return 0
