"""Benchmark the activation store (not a test): run it, read the ratios.

1. Throughput: building the store over N tokens (all layers by default) against a bare
   Hugging Face forward pass over the same token windows in the same batches, with and
   without the LM head (the store stops after the last layer it records, so it never
   computes the unembedding). Goal: store >= 0.95x the bare forward.
2. Peak memory of a store build at N and 10N tokens, each in a fresh process (goal:
   the 10N peak <= 1.1x the N peak: memory must not grow with the corpus).
3. Latency of explaining a neuron from the store (offline explainer and simulator), with
   and without the mode analysis; the model is not run.
4. With ``--ray-workers N``: the same build on a local Ray cluster of N one-thread workers,
   beside one process with ``--threads`` threads and one with a single thread, and whether
   the stores are the same (``store_differences``).

    python benchmarks/bench_store.py --tokens 2048 --mem-tokens 1024 --mem-layers 0-3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def mem_child(n_tokens: int, layers: str, threads: int, model: str | None = None) -> None:
    """Build a store in this fresh process; report the peak RSS *during the build* (sampled
    every 20 ms) next to the RSS before it. The process-lifetime peak (ru_maxrss) is
    reported too, but model loading sets it, so it says nothing about the build."""
    import threading

    import torch

    torch.set_num_threads(threads)
    from gnothi.tools.model import get_handle
    from gnothi.tools.store import build_store

    h = get_handle(model)
    import gc

    gc.collect()
    before = _current_rss_mb()
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _current_rss_mb())
            time.sleep(0.02)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    with tempfile.TemporaryDirectory() as td:
        rep = build_store(h, "mlp", "default", n_tokens=n_tokens, layers=layers, path=os.path.join(td, "mlp"), progress=False)
    done.set()
    th.join()
    print(json.dumps({"n_tokens": rep.n_tokens, "rss_before_build_mb": round(before, 1), "peak_during_build_mb": round(peak[0], 1),
                      "build_increment_mb": round(peak[0] - before, 1), "process_peak_mb": round(_rss_mb(), 1),
                      "tokens_per_second": rep.tokens_per_second}))


def body_flops_per_window(hf, window: int, n_layers: int | None = None) -> float:
    """Multiply-adds x 2 of one window through the model body (no LM head): every 2-D weight
    matrix of the first ``n_layers`` blocks (Linear or GPT-2's Conv1D) once per token, and
    the attention scores and their weighted sum (the full window x window matrices the
    attention computes). Embedding lookups and norms are not counted."""
    cfg = hf.config
    layers = hf.model.layers if hasattr(hf, "model") and hasattr(hf.model, "layers") else None
    blocks = list(layers) if layers is not None else list(hf.base_model.h if hasattr(hf.base_model, "h") else hf.base_model.layers)
    blocks = blocks[: n_layers or len(blocks)]
    per_token = 0.0
    for b in blocks:
        for name, w in b.named_parameters():
            if w.dim() == 2 and "norm" not in name:
                per_token += 2 * w.numel()
    heads = getattr(cfg, "num_attention_heads", None) or cfg.n_head
    d_head = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    attn_per_token = len(blocks) * 2 * 2 * heads * d_head * window  # Q.K over the window, then weights.V
    return window * (per_token + attn_per_token)


def matmul_flops_per_s(device: str, dtype, shapes: list[tuple[int, int, int]], seconds: float = 2.0) -> dict:
    """This machine's measured matmul rate (FLOP/s) on each ``(M, K, N)`` and the best of them:
    the limit the model's forward is measured against."""
    import torch

    out = {}
    for m, k, n in shapes:
        a = torch.randn(m, k, device=device, dtype=dtype)
        b = torch.randn(k, n, device=device, dtype=dtype)
        torch.mm(a, b)
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            torch.mm(a, b)
            reps += 1
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        out[f"{m}x{k}x{n}"] = 2 * m * k * n * reps / (time.perf_counter() - t0)
    out["best"] = max(out.values())
    return out


def auto_batch(h, window: int, n_layers: int) -> int:
    """Windows per forward from the device's free memory (a quarter of it for the recorded
    activations of every layer plus one layer's attention); 16 on a CPU."""
    import torch

    if not str(h.device).startswith("cuda"):
        return 16
    free, _ = torch.cuda.mem_get_info()
    per_window = 4 * window * (n_layers * h.d_mlp + 4 * h.d_model + h.n_heads * window)
    return int(max(16, min(1024, free // 4 // per_window)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="bundled name, folder or cached HF id (default: the bundled SmolLM2)")
    ap.add_argument("--tokens", type=int, default=2048, help="tokens for the throughput comparison")
    ap.add_argument("--layers", default="all", help="layers the store records in the throughput comparison")
    ap.add_argument("--batch-size", type=int, default=None, help="windows per forward (default: 16 on a CPU, from free memory on a GPU)")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: what the model loads on)")
    ap.add_argument("--dtype", default=None, help="float32 (CPU default) or bfloat16 (GPU default)")
    ap.add_argument("--mem-tokens", type=int, default=1024, help="N for the memory comparison (also runs 10N)")
    ap.add_argument("--mem-layers", default="0-3")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip", default="", help="comma list of parts to skip: throughput,memory,latency")
    ap.add_argument("--ray-workers", type=int, default=0, help="also build on a local Ray cluster of this many one-thread workers")
    ap.add_argument("--mem-child", nargs=2, metavar=("N", "LAYERS"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.mem_child:
        mem_child(int(a.mem_child[0]), a.mem_child[1], a.threads, a.model)
        return
    import numpy as np
    import torch

    torch.set_num_threads(a.threads)
    skip = set(filter(None, a.skip.split(",")))
    from gnothi.tools.corpus import load_corpus
    from gnothi.tools.model import get_handle
    from gnothi.tools.store import ActivationStore, build_store, corpus_windows

    dev = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    h = get_handle(a.model, device=dev, dtype=a.dtype or ("bfloat16" if dev.startswith("cuda") else None))
    from gnothi.tools.units import parse_layers

    n_rec = len(parse_layers(a.layers, h.n_layers))
    a.batch_size = a.batch_size or auto_batch(h, 64, n_rec)
    out: dict = {"model": h.name, "device": str(h.device), "dtype": str(h.dtype).replace("torch.", ""), "threads": a.threads,
                 "cpu_count": os.cpu_count(), "batch_size": a.batch_size}

    def sync() -> None:
        if str(h.device).startswith("cuda"):
            torch.cuda.synchronize()

    if "throughput" not in skip:
        from transformers import AutoModelForCausalLM

        hf = AutoModelForCausalLM.from_pretrained(h.source, dtype=h.dtype, local_files_only=True).eval().to(h.device)
        corpus = load_corpus("default")
        wins, _, _ = corpus_windows(corpus, h.tokenizer, 64, a.tokens, 0, h.bos_token_id)
        batches = [torch.from_numpy(wins[i : i + a.batch_size].astype(np.int64)).to(h.device) for i in range(0, len(wins), a.batch_size)]
        n_tok = int(wins.size)

        def hf_run(with_head: bool) -> float:
            sync()
            t = time.perf_counter()
            with torch.inference_mode():
                for b in batches:
                    if with_head:
                        hf(input_ids=b)
                    else:
                        hf.model(input_ids=b)
            sync()
            return time.perf_counter() - t

        from gnothi.tools.units import units_from_spec

        hooks = [units_from_spec(h, "mlp", a.layers).hook_name(l) for l in parse_layers(a.layers, h.n_layers)]

        def bridge_run() -> float:
            """The forward the store runs: the TransformerLens bridge, recording the same hooks."""
            sync()
            t = time.perf_counter()
            for b in batches:
                h.run_with_cache(b, hooks, stop_early=True)
            sync()
            return time.perf_counter() - t

        hf_run(False) if len(batches) == 1 else None  # warm-up on tiny runs only
        # best of two, alternating, so that a busy moment of a shared machine counts less
        t_head = min(hf_run(True), hf_run(True))
        t_nohead, t_bridge = min(hf_run(False), hf_run(False)), min(bridge_run(), bridge_run())
        with tempfile.TemporaryDirectory() as td:
            t = time.perf_counter()
            rep = build_store(h, "mlp", corpus, n_tokens=a.tokens, layers=a.layers, batch_size=a.batch_size, path=os.path.join(td, "mlp"), progress=False)
            t_store_total = time.perf_counter() - t
            t_store_stream = rep.n_tokens / rep.tokens_per_second
            size = rep.size_mb
            st = ActivationStore(os.path.join(td, "mlp"), tokenizer=h.tokenizer)
            out["store_mb"] = size
        # the FLOP limit: the forward's FLOPs against this machine's measured matmul rate, in the same run
        n_layers = max(rep.layers) + 1
        flops = body_flops_per_window(hf, 64, n_layers) * len(wins)
        body_flops = body_flops_per_window(hf, 64) * len(wins)
        rows = a.batch_size * 64
        mm = matmul_flops_per_s(str(h.device), h.dtype, [(rows, h.d_model, h.d_mlp), (rows, h.d_mlp, h.d_model), (2048, 2048, 2048)])
        out["throughput"] = {
            "n_tokens": n_tok,
            "layers": rep.layers[0] if len(rep.layers) == 1 else f"{rep.layers[0]}-{rep.layers[-1]}",
            "hf_with_lm_head_tok_s": round(n_tok / t_head, 1),
            "hf_without_lm_head_tok_s": round(n_tok / t_nohead, 1),
            "store_streaming_tok_s": round(n_tok / t_store_stream, 1),
            "store_total_tok_s": round(n_tok / t_store_total, 1),
            "ratio_store_streaming_vs_hf_with_head": round(t_head / t_store_stream, 3),
            "ratio_store_streaming_vs_hf_without_head": round(t_nohead / t_store_stream, 3),
            "ratio_store_total_vs_hf_with_head": round(t_head / t_store_total, 3),
            "ratio_store_total_vs_hf_without_head": round(t_nohead / t_store_total, 3),
            "bridge_forward_tok_s": round(n_tok / t_bridge, 1),
            "ratio_bridge_forward_vs_hf_without_head": round(t_nohead / t_bridge, 3),
            "ratio_store_streaming_vs_bridge_forward": round(t_bridge / t_store_stream, 3),
            "forward_gflop": round(flops / 1e9, 1),
            "matmul_gflop_s": {k: round(v / 1e9, 1) for k, v in mm.items()},
            "store_streaming_gflop_s": round(flops / t_store_stream / 1e9, 1),
            "hf_without_lm_head_gflop_s": round(body_flops / t_nohead / 1e9, 1),
            "ratio_store_streaming_vs_flop_limit": round(flops / t_store_stream / mm["best"], 3),
            "ratio_hf_without_lm_head_vs_flop_limit": round(body_flops / t_nohead / mm["best"], 3),
        }
        print(json.dumps(out["throughput"], indent=1), flush=True)
        del hf
    if "memory" not in skip:
        res = []
        for n in (a.mem_tokens, 10 * a.mem_tokens):
            p = subprocess.run([sys.executable, __file__, "--mem-child", str(n), a.mem_layers, "--threads", str(a.threads)]
                + (["--model", a.model] if a.model else []),
                               capture_output=True, text=True, check=True)
            res.append(json.loads(p.stdout.strip().splitlines()[-1]))
        out["memory"] = {
            "layers": a.mem_layers,
            "runs": res,
            "ratio_peak_during_build_10N_vs_N": round(res[1]["peak_during_build_mb"] / res[0]["peak_during_build_mb"], 3),
            "ratio_build_increment_10N_vs_N": round(res[1]["build_increment_mb"] / max(1.0, res[0]["build_increment_mb"]), 3),
        }
        print(json.dumps(out["memory"], indent=1), flush=True)
    if "latency" not in skip:
        from gnothi.tools.neurons import explain_neuron
        from gnothi.tools.store import open_store

        try:
            st = open_store(h)
            where = "default store"
        except Exception:
            td = tempfile.mkdtemp()
            build_store(h, "mlp", "default", n_tokens=1024, layers=[5], path=os.path.join(td, "mlp"), progress=False)
            st = ActivationStore(os.path.join(td, "mlp"), tokenizer=h.tokenizer)
            where = "1024-token store of layer 5"
        layer = st.layers[len(st.layers) // 2]
        neurons = torch.topk(st.max_activations(layer), 6).indices.tolist()
        lat = {"store": where, "layer": layer}
        t = time.perf_counter()
        explain_neuron(h, layer, neurons[0], store=st, modes=False)
        lat["first_call_no_modes_s"] = round(time.perf_counter() - t, 3)
        ts = []
        for n in neurons[1:4]:
            t = time.perf_counter()
            explain_neuron(h, layer, n, store=st, modes=False)
            ts.append(time.perf_counter() - t)
        lat["warm_no_modes_s"] = round(float(np.median(ts)), 3)
        t = time.perf_counter()
        explain_neuron(h, layer, neurons[4], store=st, modes=True)
        lat["first_call_with_modes_s"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        explain_neuron(h, layer, neurons[5], store=st, modes=True)
        lat["warm_with_modes_s"] = round(time.perf_counter() - t, 3)
        out["explain_latency"] = lat
        print(json.dumps(lat, indent=1), flush=True)
    if a.ray_workers:
        from gnothi.tools.store import store_differences

        runs, paths = {}, {}
        with tempfile.TemporaryDirectory() as td:
            for name, threads, ray in (("one_process", a.threads, None), ("one_process_1_thread", 1, None), ("ray", 1, "local")):
                torch.set_num_threads(threads)
                paths[name] = os.path.join(td, name)
                t = time.perf_counter()
                rep = build_store(h, "mlp", "default", n_tokens=a.tokens, layers=a.layers, batch_size=a.batch_size, path=paths[name],
                                  progress=False, ray=ray, ray_workers=a.ray_workers if ray else None)
                runs[name] = {"threads": threads, "seconds": round(time.perf_counter() - t, 1)}
            torch.set_num_threads(a.threads)
            out["ray"] = {
                "n_tokens": rep.n_tokens, "workers": a.ray_workers, "runs": runs,
                "ratio_ray_vs_one_process": round(runs["one_process"]["seconds"] / runs["ray"]["seconds"], 3),
                "ratio_ray_vs_one_process_1_thread": round(runs["one_process_1_thread"]["seconds"] / runs["ray"]["seconds"], 3),
                "differences_vs_1_thread": store_differences(paths["one_process_1_thread"], paths["ray"]),
                "differences_vs_threads": store_differences(paths["one_process"], paths["ray"]),
            }
        print(json.dumps(out["ray"], indent=1), flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
