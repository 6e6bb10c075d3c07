"""Benchmark: the memory bound's estimate beside the peak memory each run really takes.

``ModelHandle.check_memory`` refuses a run whose :meth:`ModelHandle.memory_needed` passes
``GNOTHI_MEMORY_LIMIT_GB``; that is a promise only if the estimate is at least what the run
takes. Each case runs in a fresh process (so its peak RSS is its own) on the bundled model,
and its peak (``ru_maxrss``) above what was resident after loading the model is printed
beside the estimate, with their ratio. Linux (it reads ``/proc/self/statm``).

    python benchmarks/bench_memory.py [--lengths 512,1024,2048] [--model NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CASE = r"""
import json, resource, sys
import torch
from gnothi.tools.model import load_model
from gnothi.tools import hallucination as H
kind, T, model = sys.argv[1], int(sys.argv[2]), sys.argv[3] or None
h = load_model(model)
torch.set_num_threads(2)
ids = torch.randint(100, min(h.shape.d_vocab, 40000), (1, T))
import gc
gc.collect()
base = int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()  # resident now, after loading
if kind == "logits":
    h.log_probs(ids)
    need = h.memory_needed(1, T)
elif kind == "patterns":
    names = [h.hook_name("attn_pattern", 1)]
    h.run_with_cache(ids, names)
    need = h.memory_needed(1, T, names, logits=False)
else:  # a hallucination question with a context of T tokens (the fallback path: generation, then one scored run)
    ctx = h.tokenizer.decode(ids[0].tolist())
    rep = H.detect(h, "What is this passage about?", context=ctx, train=False)
    n = len(H.D.prompt_ids(h, H.D.prompt_text(h, "What is this passage about?", ctx))) + len(rep.tokens)
    need = max(h.memory_needed(1, n), h.memory_needed(1, n + H.D.MAX_NEW_TOKENS))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"kind": kind, "tokens": T, "measured": peak - base, "estimate": need}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", default="512,1024,2048")
    ap.add_argument("--kinds", default="logits,patterns,detect")
    ap.add_argument("--model", default="")
    args = ap.parse_args()
    rows = []
    print(f"{'run':<10}{'tokens':>8}{'measured GB':>13}{'estimate GB':>13}{'estimate/measured':>19}")
    for kind in args.kinds.split(","):
        for T in (int(x) for x in args.lengths.split(",")):
            out = subprocess.run([sys.executable, "-c", CASE, kind, str(T), args.model], capture_output=True, text=True,
                                 env={**os.environ, "GNOTHI_MEMORY_LIMIT_GB": "0"})
            if out.returncode != 0:
                print(f"{kind:<10}{T:>8}  failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(r)
            print(f"{kind:<10}{T:>8}{r['measured'] / 1e9:>13.2f}{r['estimate'] / 1e9:>13.2f}{r['estimate'] / r['measured']:>19.2f}")
    if rows:
        worst = min(r["estimate"] / r["measured"] for r in rows)
        print(f"\nsmallest estimate/measured: {worst:.2f} ({'the estimate covers every run' if worst >= 1 else 'UNDER-ESTIMATE: a run passed its estimate'})")


if __name__ == "__main__":
    main()
