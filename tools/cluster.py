"""Ray, for the builds that run on a cluster (``gnothi index --ray``, ``gnothi sae train --ray``).

Imported only when ``--ray`` is given: without it nothing imports Ray. A cluster is either
started here (``local``: this machine's cores) or an existing one (``auto``, ``ray://HOST:PORT``).
"""

from __future__ import annotations

import os
from typing import Any

from .errors import InputError, StoreError


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InputError(
            "Building on Ray needs the ray package, which is not installed.",
            "Install it (pip install 'ray>=2.40'), or build without --ray.",
        ) from None
    return ray


def connect(address: str, n_workers: int | None = None) -> Any:
    """Ray, connected: ``"local"`` starts a cluster in this process (``n_workers`` CPUs,
    default every core); anything else is passed to ``ray.init(address=...)``."""
    ray = _ray()
    if ray.is_initialized():
        return ray
    try:
        if address in ("", "local"):
            env = {k: v for k, v in os.environ.items() if k.startswith("GNOTHI_")}
            ray.init(num_cpus=n_workers or os.cpu_count() or 1, include_dashboard=False, runtime_env={"env_vars": env},
                     logging_level="WARNING")
        else:
            ray.init(address=address, logging_level="WARNING")
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise StoreError(
            f"Could not connect to the Ray cluster at {address!r}: {str(e).splitlines()[0][:200]}",
            "Start one with `ray start --head` (then --ray auto), pass its address (--ray ray://HOST:10001), "
            "or use --ray local for a cluster on this machine.",
        ) from None
    return ray


def model_factory(name: str | None, device: str | None = None, dtype: Any = None) -> Any:
    """What each Ray worker calls to load its model: ``get_handle(name, device, dtype)`` (device
    None: the worker's own, a GPU when it has one). Picklable, so it travels to the workers."""
    import functools

    from .model import get_handle

    return functools.partial(get_handle, name, device, None if dtype is None else str(dtype).replace("torch.", ""))


def worker_resources(ray: Any, n_workers: int | None) -> tuple[int, dict[str, float]]:
    """(workers, each task's Ray resources): one GPU each when the cluster has GPUs, else an
    equal share of its CPUs."""
    res = ray.cluster_resources()
    gpus, cpus = int(res.get("GPU", 0)), max(1, int(res.get("CPU", 1)))
    workers = n_workers or (gpus if gpus else cpus)
    per_task: dict[str, float] = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": max(1, cpus // workers)}
    return workers, per_task


def result_or_stop(ray: Any, ref: Any, pending: Any, fail: Any) -> Any:
    """``ray.get(ref)``; if the task failed for good (Ray already ran it again where a worker
    died), cancel the ``pending`` tasks and raise ``fail(reason)``."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as e:
        for r in pending:
            ray.cancel(r, force=True)
        raise fail(str(e).strip().splitlines()[-1][:300]) from None
