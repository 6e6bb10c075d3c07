"""Building a store on a Ray cluster: shards of windows on workers, merged exactly.

The driver (the process that runs ``gnothi index --ray``) cuts the windows not yet in the
store into shards of whole batches (the forward passes see the same windows as in a one-process
build). Each shard is a Ray
task: a worker loads its own model (on its own device: a GPU when the cluster gives it one),
streams the shard's windows and returns the shard's per-layer state. The driver merges each
finished shard into the build's state (:meth:`_LayerState.merge`, exact by construction) and
checkpoints, so an interrupted build resumes with only the unfinished shards, and a worker
that dies costs only the shard it was on (Ray runs it again elsewhere).

Only :func:`build_store` with ``ray=...`` imports this module: without it nothing imports Ray.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from ..cluster import connect, result_or_stop, worker_resources
from ..errors import InputError, StoreError
from .state import _LayerState

if TYPE_CHECKING:
    from ..model import ModelHandle
    from ..units import UnitSource

SHARDS_PER_WORKER = 3  # more, smaller shards: a lost worker costs less, the merge costs a little more


class _Reporter:
    """A Ray actor the shards report to: shard -> (worker pid, windows done)."""

    def __init__(self) -> None:
        self.done: dict[int, tuple[int, int]] = {}

    def report(self, shard: int, pid: int, windows: int) -> None:
        self.done[shard] = (pid, windows)

    def snapshot(self) -> dict[int, tuple[int, int]]:
        return dict(self.done)


def _shard_task(factory: Callable[[], ModelHandle], units: Any, layers: list[int], wins: np.ndarray, w0: int, w1: int,
                batch_size: int, seed: int, top_k: int, n_quantile: int, rand_slot: dict[int, int], reporter: Any,
                shard: int, threads: int) -> tuple[dict[int, dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    """One shard on a worker: windows [w0, w1) through the worker's own model."""
    from ..units import units_from_spec
    from .build import _stream_range

    torch.set_num_threads(threads)
    handle = factory()
    u = units_from_spec(handle, "mlp", layers) if units == "mlp" else units
    done = 0
    reporter.report.remote(shard, os.getpid(), 0)

    def on_batch(n: int) -> None:
        nonlocal done
        done += n
        reporter.report.remote(shard, os.getpid(), done)

    states, rand = _stream_range(handle, u, wins, w0, w1, batch_size, seed, top_k, n_quantile, rand_slot, None, on_batch)
    return {l: s.tensors() for l, s in states.items()}, rand


def plan_shards(todo: list[tuple[int, int]], batch_size: int, n_shards: int) -> list[tuple[int, int]]:
    """Cut the ranges into about ``n_shards`` shards of whole batches (a range's last shard may
    be short), so every forward pass sees the same windows as in a one-process build."""
    total = sum(b - a for a, b in todo)
    size = max(1, math.ceil(total / max(1, n_shards) / batch_size)) * batch_size
    return [(w, min(b, w + size)) for a, b in todo for w in range(a, b, size)]


def build_on_ray(address: str, n_workers: int | None, factory: Callable[[], ModelHandle], units: UnitSource, wins: np.ndarray,
                 todo: list[tuple[int, int]], batch_size: int, seed: int, top_k: int, n_quantile: int,
                 rand_slot: dict[int, int], states: dict[int, _LayerState],
                 checkpoint: Callable[[dict[str, torch.Tensor], int, int], None], bar: Any,
                 on_progress: Callable[[dict], None] | None = None) -> None:
    """Build the windows in ``todo`` as shards on Ray, merging each finished shard into
    ``states`` and calling ``checkpoint(random_window_acts, w0, w1)`` after it."""
    if not todo:
        return
    ray = connect(address, n_workers)
    workers, per_task = worker_resources(ray, n_workers)
    threads = int(per_task["num_cpus"])
    if units.kind == "mlp":
        unit_arg: Any = "mlp"
    else:
        import pickle

        try:
            pickle.dumps(units)
        except Exception:
            raise InputError(f"The {units.kind} units cannot be sent to Ray workers.", "Build this store without --ray.") from None
        unit_arg = units
    layers = list(units.layers)
    shards = plan_shards(todo, batch_size, workers * SHARDS_PER_WORKER)
    reporter = ray.remote(_Reporter).options(num_cpus=0).remote()
    task = ray.remote(_shard_task).options(max_retries=3, **per_task)
    wins_ref = ray.put(wins)
    fac_ref = ray.put(factory)
    pending = {task.remote(fac_ref, unit_arg, layers, wins_ref, w0, w1, batch_size, seed, top_k, n_quantile, rand_slot, reporter,
                           i, threads): (i, w0, w1) for i, (w0, w1) in enumerate(shards)}
    T = wins.shape[1]
    base = bar.n
    finished: list[int] = []
    if not getattr(bar, "disable", True):
        bar.set_description(f"{bar.desc} on Ray: {len(shards)} shards, {workers} workers")
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            snap = ray.get(reporter.snapshot.remote())
            running = {i: {"pid": pid, "windows": n, "w0": shards[i][0], "w1": shards[i][1]} for i, (pid, n) in snap.items()
                       if i not in finished}
            bar.n = base + T * (sum(shards[i][1] - shards[i][0] for i in finished) + sum(r["windows"] for r in running.values()))
            bar.refresh()
            if on_progress is not None:
                on_progress({"shards": shards, "finished": list(finished), "running": running})
            for ref in ready:
                i, w0, w1 = pending.pop(ref)
                tensors, rand = result_or_stop(ray, ref, pending, lambda why, i=i, w0=w0, w1=w1: StoreError(
                    f"Shard {i} (windows {w0}-{w1}) failed on Ray: {why}",
                    "Rerun the same command: the finished shards are kept and only the others are built again."))
                for l in layers:
                    s = states[l]
                    part = _LayerState(s.top_val.shape[1], s.top_val.shape[0], n_quantile, T, l, seed, s.device)
                    part.load(tensors[l])
                    s.merge(part)
                finished.append(i)
                checkpoint(rand, w0, w1)
    except BaseException:  # stopped (Ctrl-C, a failed shard): the cluster stops working for this build
        for r in pending:
            ray.cancel(r, force=True)
        raise
    bar.n = base + T * sum(b - a for a, b in shards)
    bar.refresh()
