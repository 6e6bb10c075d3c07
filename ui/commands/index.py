"""`gnothi index`: build the activation store (top contexts, samples and stats per unit)."""

from __future__ import annotations

import sys

from gnothi.ui.cli_common import add_model_args


def register(sub):
    from gnothi.tools.store import DEFAULT_STORE_TOKENS, DEFAULT_WINDOW, QUICK_STORE_TOKENS

    p = sub.add_parser("index", help="stream a corpus through the model once and store what each neuron/feature responds to")
    add_model_args(p)
    p.add_argument("--layers", default="all", help="layers to index: 'all' or e.g. '0,5,10-12', '-1' for the last (default: all)")
    p.add_argument("--units", default="mlp", help="mlp (MLP neurons) or sae:PATH (an SAE folder in SAELens format)")
    p.add_argument("--corpus", default="default", help="'default' (offline text from installed packages) or a .txt/.jsonl file or folder")
    p.add_argument("--tokens", type=int, default=None, help=f"tokens to stream (default {DEFAULT_STORE_TOKENS:,})")
    p.add_argument("--quick", action="store_true", help=f"a smaller store of {QUICK_STORE_TOKENS:,} tokens (an eighth of the build time; less selective top contexts)")
    p.add_argument("--window", type=int, default=DEFAULT_WINDOW, help=f"tokens per record window (default {DEFAULT_WINDOW})")
    p.add_argument("--batch-size", type=int, default=16, help="windows per forward pass")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="rebuild even if a store with these settings exists")
    p.add_argument("--status", action="store_true", help="only say whether a store exists and how long a build would take")
    p.add_argument("--export", nargs=2, type=int, metavar=("LAYER", "UNIT"), help="print one unit's records as JSON (NeuronRecord layout)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="build on a Ray cluster: alone, one started on this machine; 'auto' or ray://HOST:10001 for a running one "
                        "(needs `pip install ray`; the shards merge into exactly the one-process store)")
    p.add_argument("--ray-workers", type=int, default=None, metavar="N",
                   help="Ray workers (default: one per GPU of the cluster, else one per CPU)")
    p.set_defaults(func=run)


def _units_id(handle, spec: str, layers: str) -> str:
    from gnothi.tools.units import units_from_spec

    return units_from_spec(handle, spec, layers).id


def run(args) -> int:
    from gnothi.tools.store import build_store, open_store, store_status
    from gnothi.ui.cli_common import handle_from_args, print_json

    h = handle_from_args(args)
    if args.status:
        uid = args.units if args.units == "mlp" else _units_id(h, args.units, args.layers)
        st = store_status(h, uid)
        if args.json:
            print_json(st)
        else:
            print(st.message)
        return 0
    if args.export:
        uid = args.units if args.units == "mlp" else _units_id(h, args.units, args.layers)
        store = open_store(h, uid)
        store.check_unit(args.export[0], args.export[1])
        print_json(store.export_unit(args.export[0], args.export[1]))
        return 0
    from gnothi.tools.errors import InputError
    from gnothi.tools.store import DEFAULT_STORE_TOKENS, QUICK_STORE_TOKENS, estimate_build_seconds
    from gnothi.tools.units import units_from_spec

    if args.quick and args.tokens is not None:
        raise InputError("--quick and --tokens both set the store's size.", f"Use one: --quick is --tokens {QUICK_STORE_TOKENS}.")
    n_tokens = args.tokens or (QUICK_STORE_TOKENS if args.quick else DEFAULT_STORE_TOKENS)
    n_layers = len(units_from_spec(h, args.units, args.layers).layers)
    est = estimate_build_seconds(h, n_tokens, n_layers)
    if not args.quiet:
        print(f"[gnothi] streaming {n_tokens:,} tokens through {n_layers} layer(s): about {_duration(est)} here "
              "(from the last build's speed on this machine, else from the model's size); a store with these settings is reused, "
              "an interrupted build resumes." + (" On Ray the shards share that time among the workers, plus a start-up of a minute or so."
                                          if args.ray is not None else ""), file=sys.stderr)
    if args.ray_workers is not None and args.ray_workers < 1:
        raise InputError(f"--ray-workers {args.ray_workers} is not a number of workers.", "Use 1 or more, or leave it out.")
    if args.ray_workers is not None and args.ray is None:
        raise InputError("--ray-workers needs --ray.", "Add --ray (a cluster on this machine) or --ray ADDRESS.")
    factory = None
    if args.ray is not None:

        from gnothi.tools.cluster import model_factory

        # each worker loads the model as this command did, on its own device unless --device says
        factory = model_factory(getattr(args, "model", None), getattr(args, "device", None), getattr(args, "dtype", None))
    rep = build_store(h, args.units, args.corpus, n_tokens=n_tokens, layers=args.layers, window=args.window,
                      batch_size=args.batch_size, seed=args.seed, force=args.force, progress=not args.quiet,
                      ray=args.ray, ray_workers=args.ray_workers, ray_factory=factory)
    if args.json:
        print_json(rep)
        return 0
    verb = "Reused the existing" if rep.reused else "Built the"
    if rep.added_layers:
        print(f"Added layers {', '.join(map(str, rep.added_layers))} to the existing {rep.units_id} store (its other layers kept).")
        verb = "Now the"
    print(f"{verb} {rep.units_id} store: {rep.n_tokens} tokens, layers {rep.layers[0]}-{rep.layers[-1]} ({len(rep.layers)}), "
          f"{rep.size_mb:.0f} MB, {rep.tokens_per_second:.0f} tokens/s" + (f", resumed after {rep.resumed_from_tokens} tokens" if rep.resumed_from_tokens else ""))
    print(f"  at {rep.path}" + ("" if rep.reused else f" (took {_duration(rep.seconds)}; estimated {_duration(est)})"))
    return 0


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
