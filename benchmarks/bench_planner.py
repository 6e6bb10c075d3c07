"""Benchmark: what one question costs the offline planner once warm, beside one model forward.

The planner must never dominate a turn. Measured side by side in one run, interleaved, on
the same questions (the routing questions of ``evals/data/routing/``, used as inputs only):
the offline planner with MiniLM + character n-grams, the n-grams-only planner, one MiniLM
embedding of the question, and one forward of the bundled model on a 16-token prompt.
Prints milliseconds per question (median) and the ratios. Not a timed test: compare ratios.

    python benchmarks/bench_planner.py [--questions 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from gnothi.agents.embed import get_embedder
    from gnothi.agents.planner_offline import OfflinePlanner, PlanContext
    from gnothi.evals.suite_routing import DEV, HELDOUT, load_rows
    from gnothi.tools.datasets import dataset_names
    from gnothi.tools.model import get_handle

    rows = (load_rows(HELDOUT) + load_rows(DEV))[: args.questions]
    qs = [(r["question"], r.get("history") or []) for r in rows if len(r["question"]) < 2000]
    emb = get_embedder()
    full, ngrams = OfflinePlanner(embedder=emb), OfflinePlanner(embedder=None)
    handle = get_handle(None)
    tokens = handle.to_tokens("The capital of France is a city that many people like to visit")
    ctx = lambda h: PlanContext(history=h, n_layers=handle.n_layers, d_mlp=handle.d_mlp, datasets=dataset_names())  # noqa: E731
    for q, h in qs[:5]:  # warm: train the routers and taggers, load MiniLM
        full.plan(q, ctx(h)), ngrams.plan(q, ctx(h))
    emb.model.encode(["warm"])
    handle.log_probs(tokens)

    times: dict[str, list[float]] = {"planner (MiniLM + n-grams)": [], "planner (n-grams only)": [], "one MiniLM embedding": [], "one model forward, 16 tokens": []}
    for _ in range(args.repeats):
        for q, h in qs:
            for name, fn in (
                ("planner (MiniLM + n-grams)", lambda q=q, h=h: full.plan(q, ctx(h))),
                ("planner (n-grams only)", lambda q=q, h=h: ngrams.plan(q, ctx(h))),
                ("one MiniLM embedding", lambda q=q: emb.model.encode([q[:1000]])),
                ("one model forward, 16 tokens", lambda: handle.log_probs(tokens)),
            ):
                if name == "planner (MiniLM + n-grams)":
                    emb._cache.clear()  # no help from the embedding cache: every question is new
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    ref = med["one model forward, 16 tokens"]
    print(f"{len(qs)} questions x {args.repeats} repeats (median ms per call; ratio to one 16-token forward of {handle.name})")
    for k, v in med.items():
        p95 = sorted(times[k])[int(0.95 * (len(times[k]) - 1))] * 1000
        print(f"  {k:32s} {v:8.1f} ms  (p95 {p95:7.1f} ms)  x{v / ref:5.2f}")


if __name__ == "__main__":
    main()
