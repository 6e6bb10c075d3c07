"""Benchmark: ModelHandle recording runs against a bare HF forward, on the same tokens.

The handle runs the HF model through TransformerLens's TransformerBridge (eager attention,
so hooks see attention patterns); the bare HF forward is timed with both the default (SDPA)
and the eager attention. Where TransformerLens's HookedTransformer can convert the model
(SmolLM2; not Gemma 3), the previous handle's recording run over a HookedTransformer is
timed beside it as the baseline the bridge must not fall behind.

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
    ap.add_argument("--no-hooked", action="store_true", help="skip the HookedTransformer baseline")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from transformers import AutoModelForCausalLM

    from gnothi.tools.corpus import load_corpus, token_windows
    from gnothi.tools.model import load_model

    h = load_model(args.model)
    hf = AutoModelForCausalLM.from_pretrained(h.source, dtype=h.dtype, local_files_only=True, use_safetensors=True).eval()
    hf_eager = AutoModelForCausalLM.from_pretrained(
        h.source, dtype=h.dtype, local_files_only=True, use_safetensors=True, attn_implementation="eager"
    ).eval()
    hooked = None if args.no_hooked else hooked_transformer(h, hf_eager)
    wins = token_windows(load_corpus("default"), h.tokenizer, window=args.seq, n_tokens=args.batch * args.seq * args.batches, seed=0, bos_token_id=h.bos_token_id)
    batches = [torch.tensor(wins[i : i + args.batch]) for i in range(0, len(wins), args.batch)]
    n_tokens = sum(b.numel() for b in batches)
    all_mlp = [h.hook_name("mlp_post", l) for l in range(h.n_layers)]
    one = [h.hook_name("mlp_post", args.layer)]

    def hf_full():
        with torch.inference_mode():
            for b in batches:
                _ = hf(b).logits

    def hf_body():
        with torch.inference_mode():
            for b in batches:
                _ = hf.model(b).last_hidden_state

    def hf_body_eager():
        with torch.inference_mode():
            for b in batches:
                _ = hf_eager.model(b).last_hidden_state

    def hooked_rec_all():
        store = {}

        def keep(act, hook):
            store[hook.name] = act.detach()

        with torch.inference_mode():
            for b in batches:
                hooked.run_with_hooks(b, fwd_hooks=[(n, keep) for n in all_mlp], reset_hooks_end=True)

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
        "HF forward without lm_head, eager attention": hf_body_eager,
        "handle: plain forward (logits)": tl_logits,
        "handle: record every MLP neuron, all layers": rec_all,
        f"handle: record layer {args.layer} MLP, early stop": rec_one,
    }
    if hooked is not None:
        runs["HookedTransformer (previous handle): record every MLP neuron"] = hooked_rec_all
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
        print(f"{k:<64} {n_tokens / v:>10.0f} {base / v:>25.2f}x")
    body = med["HF forward without lm_head"]
    rec = med["handle: record every MLP neuron, all layers"]
    print(f"recording every MLP neuron vs the bare HF body: {body / rec:.2f}x")
    if hooked is not None:
        print(f"bridge handle vs HookedTransformer, recording every MLP neuron: {med['HookedTransformer (previous handle): record every MLP neuron'] / rec:.2f}x")
    else:
        print("HookedTransformer baseline: not run (--no-hooked, or TransformerLens cannot convert this architecture)")


def hooked_transformer(h, hf_model):
    """The model as the previous handle held it: a HookedTransformer with the HF weights,
    unprocessed; None when HookedTransformer cannot convert this architecture."""
    import logging
    import os
    import tempfile
    from pathlib import Path

    from transformer_lens import HookedTransformer
    from transformer_lens.loading_from_pretrained import get_pretrained_model_config, get_pretrained_state_dict

    logging.getLogger("transformer_lens").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as td:
        link = Path(td) / "m"  # a neutral name: TransformerLens guesses architectures from names
        os.symlink(Path(h.source).resolve(), link)
        try:
            cfg = get_pretrained_model_config(str(link), dtype=h.dtype, device="cpu", fold_ln=False)
            state = get_pretrained_state_dict(str(link), cfg, hf_model=hf_model, dtype=h.dtype)
        except Exception:
            return None
    m = HookedTransformer(cfg, tokenizer=h.tokenizer, move_to_device=False, default_padding_side="right")
    m.load_and_process_state_dict(state, fold_ln=False, center_writing_weights=False, center_unembed=False,
                                  fold_value_biases=False, refactor_factored_attn_matrices=False)
    return m.eval()


if __name__ == "__main__":
    main()
