"""Benchmark: is a patching sweep as cheap as the forwards it needs? (Not a timed test.)

Measures, side by side in one run (interleaved repeats, best of each):

1. the exact sweep of ``gnothi.tools.patching`` (residual by layer x position, attention and
   MLP output by layer, every head) against
   * the same number of plain forward passes of the corrupted prompt, batched the same way
     (``plain``: what the sweep's runs would cost as ordinary forwards), and
   * one patched forward per run, unbatched (``naive``; timed on a sample of runs, scaled up);
   with the FLOP estimate of each (goal: sweep time <= 1.5x the plain batched forwards);
2. the attribution sweep (all components from one forward + backward) against one plain
   forward + backward of the corrupted prompt.

    .venv/bin/python benchmarks/bench_patching.py            # bundled SmolLM2-135M
    .venv/bin/python benchmarks/bench_patching.py --tiny     # the tiny test model (smoke run)
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

PROMPTS = [
    ("The capital of France is", "The capital of Italy is", " Paris", " Rome"),
    (
        "When Mary and John went to the store, John gave a drink to",
        "When Mary and John went to the store, Mary gave a drink to",
        " Mary",
        " John",
    ),
]
TINY_PROMPTS = [("the capital of france is", "the capital of italy is", " paris", " rome")]


def flops_per_token_layer(h, n_pos: int) -> float:
    s = h.shape
    dq = s.n_heads * s.d_head
    dkv = s.n_kv_heads * s.d_head
    attn = 2 * (s.d_model * dq + 2 * s.d_model * dkv + dq * s.d_model) + 2 * 2 * n_pos * dq
    mlp = 2 * 3 * s.d_model * s.d_mlp  # gated MLP (the bundled and tiny models are llama-style)
    return attn + mlp


def timed(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_prompt(h, clean, corrupted, answer, alternative, repeats: int, budget: int) -> dict:
    from gnothi.tools import patching as P

    metric = P._build_metric(h, answer, alternative)
    ct, rt, pair = P.align_prompts(h, clean, corrupted, metric.suffix)
    n_pos = ct.shape[1]
    kinds = list(P.KINDS)
    names = P._names_for(h, kinds)
    _, clean_cache = h.run_with_cache(ct, names, stop_early=False)
    co_logits, corr_cache = h.run_with_cache(rt, names, stop_early=False)
    corr_m = float(co_logits[0, -1, metric.answer_id] - co_logits[0, -1, metric.alt_id])
    first = min(pair.changed_positions)
    specs = P.build_specs(h, kinds, n_pos, first)
    n_runs = len(specs)
    L = h.n_layers
    fl = flops_per_token_layer(h, n_pos)
    unembed = 2 * h.d_model * h.shape.d_vocab

    def sweep():
        P.exact_sweep(h, clean_cache, corr_cache, metric, kinds, n_pos, budget, first, corr_m, grow=True)

    def sweep_by_start():
        P.exact_sweep(h, clean_cache, corr_cache, metric, kinds, n_pos, budget, first, corr_m, grow=False)

    batch = max(1, budget // n_pos)

    def plain():
        with torch.inference_mode():
            for i in range(0, n_runs, batch):
                b = min(batch, n_runs - i)
                h.logits(rt.expand(b, -1))

    sample = specs[:: max(1, n_runs // 12)]

    def naive():
        for _, _, spec in sample:
            hooks = []
            for name, _l, pos, head in spec.patches:
                src = clean_cache[name]

                def fn(act, hook, src=src, pos=pos, head=head):
                    act = act.clone()
                    if head is None and pos is None:
                        act[:] = src
                    elif head is None:
                        act[:, pos] = src[:, pos]
                    else:
                        act[:, :, head] = src[:, :, head]
                    return act

                hooks.append((name, fn))
            lg = h.run_with_hooks(rt, fwd_hooks=hooks)
            float(lg[0, -1, metric.answer_id] - lg[0, -1, metric.alt_id])

    # attribution vs one forward + backward
    def attribution():
        P.attribution_sweep(h, rt, clean_cache, metric, kinds)

    def fwd_bwd():
        def seed(act, hook):
            return act.detach().clone().requires_grad_(True)

        lg = h.run_with_hooks(rt, fwd_hooks=[(h.hook_name("resid_pre", 0), seed)], grad=True)
        with torch.enable_grad():
            (lg[0, -1, metric.answer_id] - lg[0, -1, metric.alt_id]).backward()

    def one_forward():
        h.logits(rt)

    sweep(), plain(), attribution(), fwd_bwd()  # warm up
    t = {"sweep_by_start": float("inf"), "sweep": float("inf"), "plain": float("inf"), "attribution": float("inf"), "fwd_bwd": float("inf"), "forward": float("inf")}
    for _ in range(repeats):  # interleaved, best of each: fair on a busy machine
        t["sweep"] = min(t["sweep"], timed(sweep, 1))
        t["sweep_by_start"] = min(t["sweep_by_start"], timed(sweep_by_start, 1))
        t["plain"] = min(t["plain"], timed(plain, 1))
        t["attribution"] = min(t["attribution"], timed(attribution, 1))
        t["fwd_bwd"] = min(t["fwd_bwd"], timed(fwd_bwd, 1))
        t["forward"] = min(t["forward"], timed(one_forward, 3))
    t_naive = timed(naive, 1) * n_runs / len(sample)

    layers_run = sum(L - spec.start for _, _, spec in specs)
    flops_sweep = layers_run * n_pos * fl + n_runs * 2 * h.d_model * 2
    flops_plain = n_runs * n_pos * (L * fl + unembed)
    return {
        "prompt": clean,
        "tokens": n_pos,
        "patched_runs": n_runs,
        "sweep_s": round(t["sweep"], 4),
        "sweep_batch_per_start_layer_s": round(t["sweep_by_start"], 4),
        "plain_batched_forwards_s": round(t["plain"], 4),
        "naive_unbatched_s_est": round(t_naive, 3),
        "sweep_vs_plain_forwards": round(t["sweep"] / t["plain"], 3),
        "sweep_vs_naive": round(t["sweep"] / t_naive, 3),
        "gflop_sweep": round(flops_sweep / 1e9, 2),
        "gflop_plain_forwards": round(flops_plain / 1e9, 2),
        "sweep_time_per_flop_vs_plain": round((t["sweep"] / flops_sweep) / (t["plain"] / flops_plain), 3),
        "attribution_s": round(t["attribution"], 4),
        "forward_backward_s": round(t["fwd_bwd"], 4),
        "forward_s": round(t["forward"], 4),
        "attribution_vs_forward_backward": round(t["attribution"] / t["fwd_bwd"], 3),
        "attribution_speedup_over_sweep": round(t["sweep"] / t["attribution"], 1),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="use the tiny test model")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--budget", type=int, default=4096, help="tokens per batched call")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.tiny:
        from gnothi.tools.testing import tiny_handle

        h, prompts = tiny_handle(), TINY_PROMPTS
    else:
        from gnothi.tools.model import get_handle

        h, prompts = get_handle(), PROMPTS
    rows = []
    for c, r, a, b in prompts:
        print(f"benchmarking {c!r} ...", file=sys.stderr)
        rows.append(bench_prompt(h, c, r, a, b, args.repeats, args.budget))
    out = {"model": h.name, "threads": args.threads, "torch": torch.__version__, "results": rows}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"model {h.name}, {args.threads} thread(s), best of {args.repeats} interleaved repeats")
    for row in rows:
        print(f"\n{row['prompt']!r}: {row['tokens']} tokens, {row['patched_runs']} patched runs")
        print(f"  exact sweep            {row['sweep_s']:8.3f} s   ({row['gflop_sweep']} GFLOP)")
        print(f"  exact sweep, one batch per start layer {row['sweep_batch_per_start_layer_s']:.3f} s")
        print(f"  same # plain forwards  {row['plain_batched_forwards_s']:8.3f} s   ({row['gflop_plain_forwards']} GFLOP)  -> sweep/plain = {row['sweep_vs_plain_forwards']}x (goal <= 1.5x)")
        print(f"  naive, one run each    {row['naive_unbatched_s_est']:8.3f} s (est.)             -> sweep/naive = {row['sweep_vs_naive']}x")
        print(f"  time per FLOP, sweep vs plain forwards: {row['sweep_time_per_flop_vs_plain']}x")
        print(f"  attribution sweep      {row['attribution_s']:8.3f} s   vs one forward+backward {row['forward_backward_s']:.3f} s "
              f"-> {row['attribution_vs_forward_backward']}x (one forward alone {row['forward_s']:.3f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
