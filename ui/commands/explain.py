"""`gnothi explain --units 10:0-1535`: explain and score many units in bulk.

Offline by default; with ``--llm-base-url`` (or ``GNOTHI_LLM_BASE_URL``) against any
OpenAI-compatible server, ``--concurrency`` units at a time, each retried with backoff when the
endpoint fails. Every finished unit lands in the explanation cache as it finishes: rerunning
the same command resumes, and the chat and its neuron page read those units back (for the same explainer).
"""

from __future__ import annotations

import sys

from gnothi.ui.cli_common import add_llm_args, add_model_args


def register(sub):
    p = sub.add_parser("explain", help="explain and score many neurons/features in bulk (offline or against an LLM server; resumable)")
    add_model_args(p)
    p.add_argument("--units", required=True, metavar="LAYERS:UNITS",
                   help="which units, e.g. 10:0-1535, '0-2:5,7', -1:all (several groups separated by spaces)")
    p.add_argument("--store", default="mlp", help="the store's units: mlp (default) or the units id of an SAE store")
    add_llm_args(p, "the explainer and the simulator")
    p.add_argument("--concurrency", type=int, default=1, help="units explained at once (default 1); useful with a server that batches requests")
    p.add_argument("--retries", type=int, default=3, help="tries again per unit when the endpoint fails, with exponential backoff (default 3)")
    p.add_argument("--no-modes", action="store_true", help="skip the polysemantic mode analysis (about half the LLM calls)")
    p.add_argument("--out", default=None, metavar="JSONL", help="also write one JSON line per unit here, as units finish")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from gnothi.tools.explain_bulk import explain_units, parse_unit_spec
    from gnothi.tools.store import open_store
    from gnothi.ui.cli_common import handle_from_args, llm_from_args, print_json

    h = handle_from_args(args)
    store = open_store(h, args.store)
    units = parse_unit_spec(args.units, store)
    llm = llm_from_args(args)
    if not args.quiet:
        how = f"with {llm.name}" if llm is not None else "offline"
        print(f"[gnothi] {len(units)} unit(s) of the {store.units_id} store, {how}, {args.concurrency} at a time; "
              "finished units are kept, so an interrupted run resumes when run again.", file=sys.stderr)
    res = explain_units(store, units, llm=llm, concurrency=args.concurrency, retries=args.retries, modes=not args.no_modes,
                        out=args.out, progress=not args.quiet)
    if args.json:
        print_json(res)
        return 0 if not res.failed else 1
    rate = f", {res.units_per_minute:.2f} units/min" if res.units_per_minute else ""
    print(f"Explained {res.explained} unit(s) in {res.seconds:.0f} s{rate}; {res.from_cache} were already done; "
          f"{len(res.failed)} failed. {res.llm_calls} LLM call(s).")
    if res.mean_pearson is not None:
        print(f"  mean explanation score {res.mean_pearson:.3f} (held-out simulation Pearson) vs {res.mean_shuffled_pearson:.3f} "
              "for another unit's explanation")
    for f in res.failed[:10]:
        print(f"  failed: {f}", file=sys.stderr)
    if res.failed:
        print("  run the same command again to retry the failed units.", file=sys.stderr)
    print(f"  reports: {res.cache_dir}" + (f"; one line per unit in {res.out}" if res.out else ""))
    return 0 if not res.failed else 1
