"""Benchmark: ModelHandle recording runs against a bare HF forward, on the same tokens.

Measured side by side in one run, interleaved (A B C D, A B C D, ...), median of repeats;
prints throughput (tokens/s) and ratios to the bare HF forward. Not a timed test: the
machine is shared and noisy, so compare ratios, not absolutes.

    python benchmarks/bench_model.py [--batch 8] [--seq 128] [--batches 3] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--layer", type=int, default=5, help="layer for the one-layer early-stop run")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from transformers import AutoModelForCausalLM

    from gnothi.tools.corpus import load_corpus, token_windows
    from gnothi.tools.model import load_model

    h = load_model(args.model)
    hf = AutoModelForCausalLM.from_pretrained(h.source, dtype=h.dtype, local_files_only=True, use_safetensors=True).eval()
    wins = token_windows(load_corpus("default"), h.tokenizer, window=args.seq, n_tokens=args.batch * args.seq * args.batches, seed=0, bos_token_id=h.bos_token_id)
    batches = [torch.tensor(wins[i : i + args.batch]) for i in range(0, len(wins), args.batch)]
    n_tokens = sum(b.numel() for b in batches)
    all_mlp = [h.hook_name("mlp_post", l) for l in range(h.n_layers)]
    one = [h.hook_name("mlp_post", args.layer)]

    def hf_full():
        with torch.inference_mode():
            for b in batches:
                hf(b).logits

    def hf_body():
        with torch.inference_mode():
            for b in batches:
                hf.model(b).last_hidden_state

    def rec_all():
        for b in batches:
            _, c = h.run_with_cache(b, all_mlp)
            assert len(c) == h.n_layers

    def rec_one():
        for b in batches:
            h.run_with_cache(b, one)

    def tl_logits():
        for b in batches:
            h.logits(b)

    runs = {
        "HF forward (with logits)": hf_full,
        "HF forward without lm_head": hf_body,
        "handle: plain forward (logits)": tl_logits,
        "handle: record every MLP neuron, all layers": rec_all,
        f"handle: record layer {args.layer} MLP, early stop": rec_one,
    }
    for fn in runs.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):
        for k, fn in runs.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["HF forward (with logits)"]
    print(f"model {h.name}, {n_tokens} tokens ({len(batches)} x {args.batch} x {args.seq}), torch threads {torch.get_num_threads()}, repeats {args.repeats}")
    print(f"{'run':<48} {'tokens/s':>10} {'throughput vs HF forward':>26}")
    for k, v in med.items():
        print(f"{k:<48} {n_tokens / v:>10.0f} {base / v:>25.2f}x")


if __name__ == "__main__":
    main()
