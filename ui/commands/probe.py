"""`gnothi probe`: linear probes per layer (what does each layer know?)."""

from __future__ import annotations

import sys

from gnothi.ui.cli_common import add_model_args


def register(sub):
    p = sub.add_parser(
        "probe",
        help="train a linear probe per layer on labelled texts; accuracy, control task, selectivity",
        description="Fit a logistic-regression probe on the residual stream after each layer and report held-out "
        "accuracy (95%% CI), a control task's accuracy, and selectivity = accuracy - control.",
    )
    add_model_args(p)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--dataset", help="built-in dataset name (see --list)")
    src.add_argument("--file", help="a .csv (header text,label[,group]) or .jsonl file of labelled texts")
    src.add_argument("--list", action="store_true", help="list the built-in datasets and saved probes")
    p.add_argument("--layers", default="all", help="layers: all (default), 5, 0,5,10, 10-20, -1")
    p.add_argument("--position", default="last", choices=["last", "mean"], help="token position (default last)")
    p.add_argument("--n", type=int, default=400, help="examples drawn from a built-in dataset (default 400)")
    p.add_argument("--control", default="shuffled", choices=["shuffled", "word_type"],
                   help="control task that selectivity subtracts: shuffled labels (default) or random labels per "
                   "word type (Hewitt & Liang); both are measured")
    p.add_argument("--C", type=float, default=0.1, help="inverse L2 strength of the logistic regression (default 0.1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--no-save", action="store_true", help="do not save the probe directions")
    p.add_argument("--plot", metavar="PNG", help="write the accuracy-by-layer figure to this PNG file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from gnothi.tools.errors import InputError
    from gnothi.ui.cli_common import handle_from_args, print_json, write_plot

    if args.list:
        from gnothi.tools.datasets import list_datasets

        out = {"datasets": list_datasets()}
        from gnothi.tools.config import DEFAULT_MODEL
        from gnothi.tools.probing import list_saved_probes

        out["saved_probes"] = list_saved_probes(args.model or DEFAULT_MODEL)
        if args.json:
            print_json(out)
        else:
            print("Built-in datasets (use --dataset NAME):")
            for d in out["datasets"]:
                print(f"  {d['name']:<22} {d['n_examples']:>4} examples  {' vs '.join(d['label_names']):<22} {d['description']}")
                print(f"  {'':<22} e.g. {d['example']!r}")
            if out["saved_probes"]:
                print("Saved probes:")
                for s in out["saved_probes"]:
                    print(f"  {s['dataset']:<22} {s.get('position')}: best layer {s.get('best_layer')} "
                          f"(accuracy {s.get('accuracy') or 0:.3f})  {s['path']}")
        return 0

    if not args.dataset and not args.file:
        raise InputError("No dataset given.", "Pass --dataset NAME (see `gnothi probe --list`) or --file F.csv/.jsonl.")
    from gnothi.tools.datasets import check_dataset, load_dataset
    from gnothi.tools.probing import parse_layers, run_probe

    # read and check the data before spending time on loading the model
    ds = load_dataset(args.file if args.file else args.dataset, n=args.n, seed=args.seed)
    check_dataset(ds)
    h = handle_from_args(args)
    layers = parse_layers(args.layers, h.n_layers)
    rep = run_probe(
        h,
        ds,
        layers=layers,
        position=args.position,
        n=args.n,
        C=args.C,
        seed=args.seed,
        control=args.control,
        batch_size=args.batch_size,
        save=not args.no_save,
        progress=sys.stderr.isatty(),
    )
    tr = rep.to_tool_result()
    write_plot(args, tr)
    if args.json:
        d = rep.model_dump(mode="json")
        d["summary"] = tr.summary
        if args.plot:
            d["plot"] = args.plot
        print_json(d)
        return 0
    print(tr.summary)
    print(f"\n  {rep.dataset}: {rep.n_examples} examples ({', '.join(f'{k} {v}' for k, v in rep.class_counts.items())}), "
          f"{rep.n_train} train / {rep.n_test} test ({rep.split} split), control: {rep.control}, chance {rep.chance:.3f}")
    print(f"  {'layer':>5}  {'accuracy':>8}  {'95% CI':>13}  {'control':>7}  {'select.':>7}  {'word-type ctrl':>14}")
    for lp in rep.layers:
        mark = "  <- best" if lp.layer == rep.best_layer else ""
        wt = "-" if lp.word_type_control_accuracy is None else f"{lp.word_type_control_accuracy:.3f}"
        print(f"  {lp.layer:>5}  {lp.accuracy:>8.3f}  [{lp.ci_low:.3f},{lp.ci_high:.3f}]  {lp.control_accuracy:>7.3f}  "
              f"{lp.selectivity:>+7.3f}  {wt:>14}{mark}")
    for w in rep.warnings:
        print(f"  note: {w}")
    if rep.saved_to:
        print(f"  probes saved to {rep.saved_to}")
    if args.plot:
        print(f"  figure: {args.plot}")
    return 0
