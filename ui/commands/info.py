"""`gnothi info`: describe a model (shape, hook points)."""

from __future__ import annotations

from gnothi.ui.cli_common import add_model_args


def register(sub):
    p = sub.add_parser("info", help="describe a model: layers, widths, hook points")
    add_model_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--verify", action="store_true", help="also compare log-probs with the plain HF model")
    p.set_defaults(func=run)


def run(args) -> int:
    from gnothi.tools.model import compare_with_hf
    from gnothi.ui.cli_common import handle_from_args, print_json

    h = handle_from_args(args)
    d = h.describe()
    if args.verify:
        d["max_abs_logprob_diff_vs_hf"] = compare_with_hf(h, ["The capital of France is Paris.", "def add(a, b):\n    return a + b"])
    if args.json:
        print_json(d)
        return 0
    print(f"{d['name']}  ({d['architecture']}, {d['n_params'] / 1e6:.1f}M parameters, {d['dtype']} on {d['device']})")
    print(f"  layers {d['n_layers']}, d_model {d['d_model']}, d_mlp {d['d_mlp']}, heads {d['n_heads']} "
          f"({d['n_kv_heads']} key/value), d_head {d['d_head']}, vocab {d['d_vocab']}, context {d['n_ctx']}")
    print(f"  source: {d['source']}")
    print("  hook points per layer (TransformerLens names):")
    hp = h.hook_points()
    for kind, names in hp.items():
        print(f"    {kind:<13} {names[0]} ... ({len(names)})")
    if "max_abs_logprob_diff_vs_hf" in d:
        print(f"  max |log-prob difference| vs plain HF: {d['max_abs_logprob_diff_vs_hf']:.2e}")
    return 0
