"""Benchmark bulk LLM explanations (not a test): units per minute at two concurrencies, side by side.

Starts llama.cpp's server on loopback with the bundled SmolLM2 GGUF, then explains and scores
the same units of the model's activation store twice, once at each concurrency, each run
into its own empty explanation cache (so neither reads the other's results). The LLM writes
every explanation and simulates the held-out records (in batches, within the per-unit call
budget). Prints units/min for each run and their ratio.

    python benchmarks/bench_explain_bulk.py --units 5:100-102 --concurrency 1 4

``--base-url URL`` measures another OpenAI-compatible server (vLLM, llama.cpp's own
``llama-server --parallel 4``, OpenAI) instead of starting one; a server that batches
concurrent requests gains from concurrency, one that runs one request at a time gains only
the overlap of the offline work with the LLM calls.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model whose store is explained (default: the bundled SmolLM2)")
    ap.add_argument("--units", default="5:100-102", help="LAYERS:UNITS (default 5:100-102)")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--base-url", default=None, help="an OpenAI-compatible server to measure instead of the bundled one")
    ap.add_argument("--llm-model", default="local")
    ap.add_argument("--max-tokens", type=int, default=160, help="answer tokens per call (default 160)")
    ap.add_argument("--threads", type=int, default=2, help="threads of the started server")
    ap.add_argument("--modes", action="store_true", help="include the mode analysis")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from gnothi.agents.llm import LLMClient, LLMConfig
    from gnothi.agents.llm_server import llama_server
    from gnothi.tools.explain_bulk import explain_units, parse_unit_spec
    from gnothi.tools.model import get_handle
    from gnothi.tools.store import ensure_default_store

    store = ensure_default_store(get_handle(args.model))
    units = parse_unit_spec(args.units, store)
    server = contextlib.nullcontext(args.base_url) if args.base_url else llama_server(threads=args.threads)
    rows = []
    with server as url:
        for conc in args.concurrency:
            with tempfile.TemporaryDirectory() as d:
                os.environ["GNOTHI_EXPLANATIONS_DIR"] = d
                client = LLMClient(LLMConfig(base_url=url, model=args.llm_model, timeout=300, retries=1, max_tokens=args.max_tokens))
                r = explain_units(store, units, llm=client, concurrency=conc, modes=args.modes, progress=False)
                rows.append({"concurrency": conc, "units": r.explained, "failed": len(r.failed), "seconds": r.seconds,
                             "units_per_minute": r.units_per_minute, "llm_calls": r.llm_calls,
                             "calls_per_second": round(r.llm_calls / r.seconds, 3) if r.seconds else None,
                             "mean_pearson": r.mean_pearson, "mean_shuffled_pearson": r.mean_shuffled_pearson})
    base = rows[0]["units_per_minute"] or 0
    for row in rows:
        row["ratio_to_first"] = round(row["units_per_minute"] / base, 3) if base and row["units_per_minute"] else None
    if args.json:
        print(json.dumps({"units": args.units, "server": args.base_url or "llama.cpp (llama-cpp-python), bundled GGUF", "runs": rows}, indent=2))
        return
    print(f"bulk explanations of {len(units)} units ({args.units}), {'with' if args.modes else 'without'} modes, "
          f"server: {args.base_url or 'llama-cpp-python server, bundled SmolLM2 GGUF'}")
    print(f"{'concurrency':>11} {'units':>5} {'failed':>6} {'seconds':>8} {'units/min':>9} {'calls':>6} {'calls/s':>7} {'ratio':>6}")
    for r in rows:
        print(f"{r['concurrency']:>11} {r['units']:>5} {r['failed']:>6} {r['seconds']:>8.1f} {r['units_per_minute'] or 0:>9.3f} "
              f"{r['llm_calls']:>6} {r['calls_per_second'] or 0:>7.3f} {r['ratio_to_first'] or 0:>6.2f}")


if __name__ == "__main__":
    main()
