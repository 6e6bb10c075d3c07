"""`gnothi patch`, `gnothi trace`, `gnothi attention`: which components cause an answer.

    gnothi patch --clean "The capital of France is" --corrupted "The capital of Italy is" \\
                 --answer " Paris" --alternative " Rome" [--mode exact|attribution|both] [--json]
    gnothi trace --prompt "The capital of France is" --answer " Paris" [--subject France] [--json]
    gnothi attention --prompt "The capital of France is" --heads 23.4,29.0 [--json]
"""

from __future__ import annotations

import sys
from pathlib import Path

from gnothi.ui.cli_common import add_model_args


def _split(s: str | None) -> list[str] | None:
    if s is None:
        return None
    return [x.strip() for x in s.split(",") if x.strip()]


def register(sub):
    p = sub.add_parser(
        "patch",
        help="activation / attribution patching: which layers, positions, heads and MLPs cause an answer",
        description="Copy activations from a clean run into a corrupted run one component at a time and measure how much of "
        "the answer's logit difference comes back (normalized: clean = 1, corrupted = 0).",
    )
    add_model_args(p)
    p.add_argument("--clean", required=True, help="the prompt whose answer to explain")
    p.add_argument("--corrupted", default=None, help="same prompt with one thing changed, same token count (default: built automatically)")
    p.add_argument("--answer", default=None, help="the clean answer, e.g. ' Paris' (default: the model's top prediction)")
    p.add_argument("--alternative", default=None, help="competing answer, e.g. ' Rome' (default: the corrupted prompt's top prediction)")
    p.add_argument("--mode", choices=["exact", "attribution", "both"], default="both")
    p.add_argument("--kinds", default="resid,attn,mlp,heads", help="comma list of resid, attn, mlp, heads")
    p.add_argument("--top", type=int, default=8, help="how many top components to name")
    p.add_argument("--png", default=None, metavar="DIR", help="also write the figures as PNG files into DIR")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_patch)

    t = sub.add_parser(
        "trace",
        help="causal tracing of a fact: noise the subject, restore one state, see where the answer comes back",
    )
    add_model_args(t)
    t.add_argument("--prompt", required=True)
    t.add_argument("--answer", default=None, help="answer to trace (default: the model's top prediction)")
    t.add_argument("--subject", default=None, help="words to noise, as written in the prompt (default: guessed)")
    t.add_argument("--samples", type=int, default=3, help="noise samples to average")
    t.add_argument("--noise", type=float, default=3.0, help="noise std in units of the embedding std")
    t.add_argument("--window", type=int, default=5, help="layers restored together for mlp/attn")
    t.add_argument("--kinds", default="resid,mlp,attn", help="comma list of resid, mlp, attn")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--png", default=None, metavar="DIR")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=run_trace)

    a = sub.add_parser("attention", help="attention patterns of chosen heads on a prompt, as heatmaps")
    add_model_args(a)
    a.add_argument("--prompt", required=True)
    a.add_argument("--layer", type=int, default=None, help="layer (all its heads, or those in --heads)")
    a.add_argument("--heads", default=None, help="comma list: head indices at --layer, or LAYER.HEAD names like 23.4")
    a.add_argument("--top", type=int, default=3, help="top attended tokens to list per head")
    a.add_argument("--png", default=None, metavar="DIR")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=run_attention)


def _write_pngs(result, folder: str | None, stem: str) -> list[str]:
    if not folder:
        return []
    from gnothi.tools.results import render_png

    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, fig in enumerate(result.figures):
        path = d / f"{stem}_{i}.png"
        tmp = path.with_suffix(".png.tmp")
        tmp.write_bytes(render_png(fig))
        tmp.replace(path)
        paths.append(str(path))
    return paths


def run_patch(args) -> int:
    from gnothi.tools.patching import patch
    from gnothi.ui.cli_common import handle_from_args, print_json

    h = handle_from_args(args)
    print(f"patching on {h.name}...", file=sys.stderr)
    r = patch(h, args.clean, args.corrupted, args.answer, args.alternative, mode=args.mode, kinds=_split(args.kinds) or [], top_k=args.top)
    tr = r.to_tool_result()
    pngs = _write_pngs(tr, args.png, "patch")
    if args.json:
        print_json({**r.model_dump(mode="json"), "summary": tr.summary, "figures": pngs})
        return 0
    p = r.prompts
    print(f"clean:     {p.clean!r}")
    print(f"corrupted: {p.corrupted!r}" + (" (automatic)" if p.auto else ""))
    print(f"metric:    {r.metric}")
    print(f"clean {r.clean_metric:+.3f}   corrupted {r.corrupted_metric:+.3f}   ({r.n_patched_runs} patched runs)")
    print()
    print(tr.summary)
    print("\ntop components (normalized effect: 1 restores the clean answer, 0 does nothing):")
    for c in r.top_components:
        print(f"  {c.effect:+.3f}  {c.name}  [{c.method}]")
    lp = r.layer_profile
    if "resid_at_last_token" in lp:
        print("\nresidual effect by layer (changed token / last token):")
        print("  " + " ".join(f"L{l}:{a:.2f}/{b:.2f}" for l, (a, b) in enumerate(zip(lp["resid_at_changed_token"], lp["resid_at_last_token"]))))
    for k, e in r.effects.items():
        if e.correlation is not None:
            print(f"attribution vs exact, {k}: r = {e.correlation:.3f}")
    for w in r.warnings + r.notes:
        print(f"note: {w}")
    for path in pngs:
        print(f"figure: {path}")
    return 0


def run_trace(args) -> int:
    from gnothi.tools.patching import causal_trace
    from gnothi.ui.cli_common import handle_from_args, print_json

    h = handle_from_args(args)
    print(f"tracing on {h.name}...", file=sys.stderr)
    r = causal_trace(h, args.prompt, args.answer, args.subject, samples=args.samples, noise_scale=args.noise, window=args.window, kinds=_split(args.kinds) or [], seed=args.seed)
    tr = r.to_tool_result()
    pngs = _write_pngs(tr, args.png, "trace")
    if args.json:
        print_json({**r.model_dump(mode="json"), "summary": tr.summary, "figures": pngs})
        return 0
    print(tr.summary)
    last = len(r.tokens) - 1
    s = r.subject_positions[-1]
    for k, g in r.grids.items():
        print(f"\n{k}: p({r.answer_token!r}) restored, by layer, at the last subject token {r.tokens[s]!r} / at the last token:")
        print("  " + " ".join(f"L{l}:{row[s]:.2f}/{row[last]:.2f}" for l, row in enumerate(g)))
    for w in r.warnings + r.notes:
        print(f"note: {w}")
    for path in pngs:
        print(f"figure: {path}")
    return 0


def run_attention(args) -> int:
    from gnothi.tools.attention import attention_view
    from gnothi.ui.cli_common import handle_from_args, print_json

    h = handle_from_args(args)
    r = attention_view(h, args.prompt, layer=args.layer, heads=_split(args.heads), top=args.top)
    tr = r.to_tool_result()
    pngs = _write_pngs(tr, args.png, "attention")
    if args.json:
        print_json({**r.model_dump(mode="json"), "summary": tr.summary, "figures": pngs})
        return 0
    print(f"tokens: {r.tokens}")
    for hp in r.heads:
        tops = ", ".join(f"{a.token!r}@{a.position} {a.weight:.2f}" for a in hp.last_token_top)
        print(f"head {hp.name}: last token attends to {tops}")
    for path in pngs:
        print(f"figure: {path}")
    return 0
