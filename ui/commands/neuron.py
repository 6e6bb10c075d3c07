"""`gnothi neuron LAYER NEURON`: what a neuron responds to, with a scored explanation.

Also `gnothi neuron --token TOKEN --text TEXT`: which neurons fire most on that token.
"""

from __future__ import annotations

import sys

from gnothi.ui.cli_common import add_model_args


def register(sub):
    p = sub.add_parser("neuron", help="explain an MLP neuron from the activation store (top contexts, output tokens, scored explanation)")
    add_model_args(p)
    p.add_argument("layer", type=int, nargs="?", help="layer index")
    p.add_argument("neuron", type=int, nargs="?", help="neuron index in that layer")
    p.add_argument("--no-modes", action="store_true", help="skip the polysemantic mode analysis")
    p.add_argument("--modes-by", default="auto", choices=["auto", "minilm", "tokens"], help="how to cluster contexts into modes")
    p.add_argument("--contexts", type=int, default=10, help="top contexts to show")
    p.add_argument("--build-store", action="store_true", help="build the default store first if there is none")
    p.add_argument("--text", help="with --token: the text to look in")
    p.add_argument("--token", help="with --text: which neurons fire most on this token (string or position)")
    p.add_argument("--layers", default=None, help="with --token: layers to search (default all)")
    p.add_argument("-k", type=int, default=10, help="with --token: how many neurons")
    p.add_argument("--png", metavar="DIR", help="also write the figures as PNG files into DIR")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _write_pngs(tr, folder):
    from pathlib import Path

    from gnothi.tools.results import render_png

    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, f in enumerate(tr.figures):
        p = d / f"{tr.tool}_{i}_{f.kind}.png"
        p.write_bytes(render_png(f))
        paths.append(str(p))
    return paths


def run(args) -> int:
    from gnothi.tools.errors import InputError
    from gnothi.tools.neurons import explain_neuron, top_neurons_for_token
    from gnothi.tools.store import ensure_default_store, store_status
    from gnothi.ui.cli_common import handle_from_args, print_json

    if args.token is not None or args.text is not None:
        if not args.token or not args.text:
            raise InputError("--token and --text go together.", 'Use e.g. gnothi neuron --text "The cat sat" --token " cat".')
        h = handle_from_args(args)
        tok = int(args.token) if args.token.lstrip("-").isdigit() else args.token
        res = top_neurons_for_token(h, args.text, tok, layer=args.layers, k=args.k)
        tr = res.to_tool_result(h)
        if args.png:
            _write_pngs(tr, args.png)
        if args.json:
            print_json(res)
            return 0
        print(tr.summary)
        for n in res.neurons:
            rel = f"  {n.relative:6.1%} of max {n.max_activation:.3g}" if n.relative is not None else ""
            print(f"  neuron {n.layer}.{n.neuron}: activation {n.activation:.3g}{rel}  fires most on {n.top_tokens}")
        for w in res.warnings:
            print(f"  warning: {w}", file=sys.stderr)
        return 0
    if args.layer is None or args.neuron is None:
        raise InputError("Give a layer and a neuron, e.g. `gnothi neuron 12 345`.", "Or use --text/--token for the reverse question.")
    h = handle_from_args(args)
    h.check_neuron(args.layer, args.neuron)
    if args.build_store:
        st = store_status(h)
        if not st.exists or st.damaged:
            print(f"[gnothi] building the activation store (about {st.estimated_build_seconds:.0f} s)", file=sys.stderr)
        ensure_default_store(h, progress=True)
    from gnothi.tools.errors import StoreError

    try:
        rep = explain_neuron(h, args.layer, args.neuron, modes=not args.no_modes, mode_method=args.modes_by)
    except StoreError as e:
        if "No activation store" in e.message:
            e.fix += " Or rerun this command with --build-store to build it now."
        raise
    rep.top_contexts = rep.top_contexts[: max(0, args.contexts)]
    tr = rep.to_tool_result(h)
    pngs = _write_pngs(tr, args.png) if args.png else []
    if args.json:
        d = rep.model_dump(mode="json")
        if pngs:
            d["png"] = pngs
        print_json(d)
        return 0
    s = rep.score
    print(f"{rep.label}: {rep.explanation}")
    print(f"  score {s.pearson:.2f} (Pearson of simulated vs true activations, {s.n_records} held-out records, {s.n_tokens} tokens); "
          f"shuffled control {s.shuffled_pearson:.2f} (neuron {rep.layer}.{s.control_unit}'s explanation)")
    stats = rep.stats
    print(f"  max {stats.max:.3g}, mean {stats.mean:.3g}, active (>0) on {stats.frequency:.1%} of {stats.n_tokens} tokens")
    print(f"  promotes:   {', '.join(repr(t.token) for t in rep.promoted[:8])}")
    print(f"  suppresses: {', '.join(repr(t.token) for t in rep.suppressed[:8])}")
    if rep.modes is not None:
        m = rep.modes
        print(f"  {m.k} modes ({m.method}): together {m.union_pearson:.2f} vs single {m.single_pearson:.2f} -> "
              f"{'the modes fit better (polysemantic)' if m.modes_beat_single else 'one explanation suffices'}")
        for md in m.modes:
            print(f"    mode {md.index} ({md.share:.0%} of records, score {md.pearson:.2f}): {md.explanation}")
    print("  top contexts (activation of the top token):")
    for r in rep.top_contexts:
        i = r.argmax
        left = "".join(r.tokens[max(1, i - 12):i]).replace("\n", "⏎")
        right = "".join(r.tokens[i + 1:i + 6]).replace("\n", "⏎")
        print(f"    {r.max_activation:8.3g}  …{left}[[{r.tokens[i]}]]{right}…")
    for w in rep.warnings:
        print(f"  warning: {w}", file=sys.stderr)
    if pngs:
        print(f"  figures: {', '.join(pngs)}")
    return 0
