"""SAE benchmark: side-by-side measurements in one run, printed as ratios (not a test).

    python benchmarks/bench_sae.py [--layer 6] [--tokens 4096] [--sae NAME]

1. Training step: the sparse decoder gnothi uses (embedding_bag over the k chosen rows)
   vs the dense ``f @ W_dec`` of a naive TopK SAE, same batch, same weights.
2. Reading activations for training: gnothi's hooked run stopped after the SAE's layer
   vs a bare Hugging Face forward of the whole model with ``output_hidden_states`` over
   the same tokens.
3. Latency of the questions, with a trained (and, if indexed, searchable) SAE:
   loading it, features on a text, contrast of 8 vs 8 texts, search by meaning.

On a shared CPU absolute numbers are noisy; compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def _time(fn, repeats=3):
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_train_step(d_in=576, d_sae=2304, k=32, batch=2048):
    torch.manual_seed(0)
    x = torch.randn(batch, d_in)
    We = torch.nn.Parameter(torch.randn(d_sae, d_in) * 0.04)
    be = torch.nn.Parameter(torch.zeros(d_sae))
    Wd = torch.nn.Parameter(torch.randn(d_sae, d_in) * 0.04)
    bd = torch.nn.Parameter(torch.zeros(d_in))

    def dense():
        pre = (x - bd) @ We.T + be
        v, i = torch.topk(pre, k, dim=-1, sorted=False)
        f = torch.zeros_like(pre).scatter(-1, i, v.relu())
        ((x - (f @ Wd + bd)) ** 2).sum(-1).mean().backward()

    def sparse():
        pre = (x - bd) @ We.T + be
        v, i = torch.topk(pre, k, dim=-1, sorted=False)
        rec = torch.nn.functional.embedding_bag(i, Wd, per_sample_weights=v.relu(), mode="sum") + bd
        ((x - rec) ** 2).sum(-1).mean().backward()

    td, ts = _time(dense), _time(sparse)
    return {"dense_decoder_s": td, "sparse_decoder_s": ts, "speedup": td / ts}


def bench_collect(handle, layer, n_tokens):
    from transformers import AutoModelForCausalLM

    from gnothi.tools.sae_train import TrainConfig, collect_activations, training_windows

    cfg = TrainConfig(layer=layer, n_tokens=n_tokens, eval_tokens=64, window=128)
    wins, _ = training_windows(handle, cfg)
    hook = handle.hook_name("resid_post", layer)
    hf = AutoModelForCausalLM.from_pretrained(handle.source, dtype=handle.dtype, local_files_only=True, use_safetensors=True).eval()

    def ours():
        collect_activations(handle, hook, wins, batch=8, progress=False)

    def bare():
        with torch.inference_mode():
            for i in range(0, len(wins), 8):
                hf(wins[i : i + 8], output_hidden_states=True)

    t_ours, t_hf = _time(ours, 1), _time(bare, 1)
    n = wins.numel()
    return {"tokens": int(n), "gnothi_stop_early_tok_s": n / t_ours, "hf_full_forward_tok_s": n / t_hf, "ratio": t_hf / t_ours}


def bench_questions(handle, sae):
    from gnothi.tools.features import contrast_features, features_on_text, load_feature_index, search_features
    from gnothi.tools.sae import load_sae

    out = {"load_sae_s": _time(lambda: load_sae(sae.path), 3)}
    text = "The Eiffel Tower is in Paris, the capital of France."
    out["features_on_text_s"] = _time(lambda: features_on_text(handle, text, sae, token="Paris"), 3)
    a = [f"def f{i}(x):\n    return x * {i}" for i in range(8)]
    b = [f"The {w} walked slowly along the river." for w in "man woman child dog cat king queen bird".split()]
    out["contrast_8v8_s"] = _time(lambda: contrast_features(handle, a, b, sae), 1)
    if load_feature_index(sae) is not None:
        t = time.perf_counter()
        search_features(handle, "French cities", sae)
        out["search_first_s (embeds all explanations once)"] = time.perf_counter() - t
        out["search_s"] = _time(lambda: search_features(handle, "numbers and digits", sae), 3)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layer", type=int, default=6)
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--sae", default=None, help="SAE for the latency part (default: the newest)")
    ap.add_argument("--skip-collect", action="store_true")
    args = ap.parse_args()
    from gnothi.tools.errors import SAEError
    from gnothi.tools.model import get_handle
    from gnothi.tools.sae import resolve_sae

    res = {"threads": torch.get_num_threads(), "train_step": bench_train_step()}
    print(json.dumps(res, indent=1), flush=True)
    h = get_handle()
    if not args.skip_collect:
        res["collect"] = bench_collect(h, args.layer, args.tokens)
        print(json.dumps({"collect": res["collect"]}, indent=1), flush=True)
    try:
        sae = resolve_sae(h, args.sae)
        res["questions"] = bench_questions(h, sae)
        res["questions"]["sae"] = sae.name
    except SAEError as e:
        res["questions"] = {"skipped": e.message}
    print(json.dumps({"questions": res["questions"]}, indent=1))
    t = res["train_step"]
    print(f"\ntraining step: sparse decoder {t['speedup']:.2f}x faster than dense")
    if "collect" in res:
        print(f"reading activations at layer {args.layer}: {res['collect']['ratio']:.2f}x the throughput of a bare HF full forward")


if __name__ == "__main__":
    main()
