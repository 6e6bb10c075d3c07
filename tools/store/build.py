"""Building a store: streaming windows through the model, chunk checkpoints and resume, adding layers."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch
from pydantic import BaseModel

from .. import tokens as tok_text
from ..corpus import Corpus, bytes_for_tokens, load_corpus
from ..errors import InputError, StoreError
from ..files import atomic_write_json, sha256_file
from ..units import UnitSource, check_units, units_from_spec
from .commands import _fmt_layers, _index_command
from .format import (
    CHECKPOINT_SECONDS,
    DEFAULT_BATCH,
    DEFAULT_CHUNK_TOKENS,
    DEFAULT_N_QUANTILE,
    DEFAULT_N_RANDOM,
    DEFAULT_STORE_TOKENS,
    DEFAULT_TOP_K,
    DEFAULT_WINDOW,
    StoreConfig,
    StoreMeta,
    _pack,
    _save_tensors,
    _throughput_file,
    store_path,
)
from .opened import _OPEN, _OPEN_LOCK, open_store
from .reader import ActivationStore
from .state import _LayerState
from .status import store_status
from .windows import corpus_windows

if TYPE_CHECKING:
    from ..model import ModelHandle
    from ..results import ToolResult


class BuildReport(BaseModel):
    """What a build did: where the store is, what it covers, how fast it was built."""

    path: str
    units_id: str
    layers: list[int]
    n_tokens: int
    n_windows: int
    seconds: float
    tokens_per_second: float
    resumed_from_tokens: int = 0
    size_mb: float
    reused: bool = False
    added_layers: list[int] = []  # layers added to an existing store (the others were kept)

    def to_tool_result(self) -> ToolResult:
        """The build as the ``index`` tool's result (summary, headline numbers, timings)."""
        from ..results import ToolResult

        verb = "reused" if self.reused else "built"
        return ToolResult(
            tool="index",
            summary=f"Activation store {verb}: {self.n_tokens} tokens, {len(self.layers)} layers of {self.units_id}, "
            f"{self.tokens_per_second:.0f} tokens/s, {self.size_mb:.0f} MB.",
            headline={"n_tokens": self.n_tokens, "tokens_per_second": self.tokens_per_second, "seconds": self.seconds},
            data=self.model_dump(),
            timings={"build_s": self.seconds},
        )


# what makes two builds the same run (the same windows and samples): all but the layers
_RUN_FIELDS = ("model", "units_id", "units_kind", "corpus", "corpus_fingerprint", "n_tokens", "window", "seed", "top_k",
               "n_quantile", "n_random")


def _same_run(a: StoreConfig, b: StoreConfig) -> bool:
    return all(getattr(a, f) == getattr(b, f) for f in _RUN_FIELDS)


def _add_layers(handle: ModelHandle, units: UnitSource, corpus: Corpus, st: ActivationStore, missing: list[int], window: int,
                top_k: int, n_quantile: int, n_random: int, chunk_tokens: int, batch_size: int, seed: int, progress: bool,
                final: Path, t0: float, ray_args: tuple = ()) -> BuildReport:
    """Build only ``missing`` layers over the same windows, then merge them into the finished
    store ``st`` (a new folder swapped in when complete: the old store stays whole until then)."""
    from safetensors.torch import load_file

    old_cfg = st.config
    add_dir = final.with_name(final.name + ".add")
    part = _build_store(handle, units_from_spec(handle, "mlp", missing) if units.kind == "mlp" else units, corpus, old_cfg.n_tokens,
                        missing, window, top_k, n_quantile, n_random, chunk_tokens, batch_size, seed, True, progress, add_dir, None,
                        *ray_args)
    new = ActivationStore(add_dir, verify=False)
    if st.meta.files.get("windows.npz", {}).get("sha256") != new.meta.files.get("windows.npz", {}).get("sha256"):
        shutil.rmtree(add_dir, ignore_errors=True)
        raise StoreError("The new layers were built over other windows than the store's (the corpus changed?).",
                         f"Rebuild the whole store: `{_index_command(old_cfg, sorted(set(old_cfg.layers) | set(missing)))} --force`.")
    merged = final.with_name(final.name + ".merge")
    shutil.rmtree(merged, ignore_errors=True)
    merged.mkdir()
    for src, keep in ((add_dir, lambda n: n.startswith("layer_")), (final, lambda n: n not in ("meta.json", "summary.safetensors"))):
        for f in src.iterdir():  # the old store's files (vocab, windows ...) all come along
            if f.is_file() and keep(f.name) and not (merged / f.name).exists():
                try:
                    os.link(f, merged / f.name)
                except OSError:
                    shutil.copy2(f, merged / f.name)
    summ = {**load_file(str(final / "summary.safetensors")), **load_file(str(add_dir / "summary.safetensors"))}
    _save_tensors(merged / "summary.safetensors", summ)
    layers = sorted(set(old_cfg.layers) | set(missing))
    cfg = old_cfg.model_copy(update={
        "layers": layers,
        "n_units": {**old_cfg.n_units, **new.config.n_units},
        "hook_names": {**old_cfg.hook_names, **new.config.hook_names},
    })
    files: dict[str, dict[str, Any]] = {name: {"size": (merged / name).stat().st_size, "sha256": sha256_file(merged / name)}
             for name in sorted(p.name for p in merged.iterdir() if p.is_file())}
    meta = st.meta.model_copy(update={"config": cfg, "files": files, "created": time.time(),
                                      "build_seconds": round(st.meta.build_seconds + new.meta.build_seconds, 2)})
    atomic_write_json(merged / "meta.json", json.loads(meta.model_dump_json()))
    old = final.with_name(final.name + f".old-{os.getpid()}")
    os.replace(final, old)
    os.replace(merged, final)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(add_dir, ignore_errors=True)
    with _OPEN_LOCK:
        for k in [k for k in _OPEN if k[0] == str(final)]:
            _OPEN.pop(k, None)
    size = sum(f["size"] for f in files.values()) / 2**20
    return BuildReport(path=str(final), units_id=units.id, layers=layers, n_tokens=st.n_tokens, n_windows=st.meta.n_windows,
                       seconds=round(time.perf_counter() - t0, 2), tokens_per_second=part.tokens_per_second, size_mb=round(size, 1),
                       added_layers=missing)


def _uncovered(covered: Sequence[Sequence[int]], n_win: int) -> list[tuple[int, int]]:
    """The window ranges of [0, n_win) not in ``covered`` (disjoint ranges), in order."""
    out, at = [], 0
    for a, b in sorted((int(a), int(b)) for a, b in covered):
        if a > at:
            out.append((at, a))
        at = max(at, b)
    if at < n_win:
        out.append((at, n_win))
    return out


def _coalesce(ranges: Sequence[Sequence[int]]) -> list[list[int]]:
    """Disjoint ranges, adjacent ones joined: [[0, 8], [8, 16], [32, 40]] -> [[0, 16], [32, 40]]."""
    out: list[list[int]] = []
    for a, b in sorted((int(a), int(b)) for a, b in ranges):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


def _stream_range(handle: ModelHandle, units: UnitSource, wins: np.ndarray, w0: int, w1: int, batch_size: int, seed: int,
                  top_k: int, n_quantile: int, rand_slot: dict[int, int], states: dict[int, _LayerState] | None = None,
                  on_batch: Callable[[int], None] | None = None) -> tuple[dict[int, _LayerState], dict[str, torch.Tensor]]:
    """Stream windows [w0, w1) through the model into ``states`` (fresh ones if None): the
    states, and the activations of the store's random windows among them."""
    T = wins.shape[1]
    if states is None:
        states = {l: _LayerState(units.n_units(l), top_k, n_quantile, T, l, seed, handle.device) for l in units.layers}
    hooks = [units.hook_name(l) for l in units.layers]
    skip_first = handle.bos_token_id is not None
    rand_here: dict[str, torch.Tensor] = {}
    for b0 in range(w0, w1, batch_size):
        b1 = min(w1, b0 + batch_size)
        toks = torch.from_numpy(wins[b0:b1].astype(np.int64)).to(handle.device)
        _, cache = handle.run_with_cache(toks, hooks, stop_early=True)
        ids = torch.arange(b0, b1, dtype=torch.int32, device=handle.device)
        for l in units.layers:
            with torch.inference_mode():
                a = units.encode(l, cache[units.hook_name(l)]).float()  # stays on the model's device, as the state does
                if skip_first:
                    a[:, 0, :] = 0.0  # the BOS position is not part of any record's evidence
            states[l].update(a, ids)
            for j, w in enumerate(range(b0, b1)):
                if w in rand_slot:
                    rand_here[f"{l}.{rand_slot[w]}"] = a[j].to(torch.float16).cpu().clone()
        del cache
        if on_batch is not None:
            on_batch(b1 - b0)
    return states, rand_here


def _build_store(
    handle: ModelHandle,
    units: UnitSource | str | None = "mlp",
    corpus: Corpus | str | None = None,
    n_tokens: int = DEFAULT_STORE_TOKENS,
    layers: Sequence[int] | str | None = None,
    window: int = DEFAULT_WINDOW,
    top_k: int = DEFAULT_TOP_K,
    n_quantile: int = DEFAULT_N_QUANTILE,
    n_random: int = DEFAULT_N_RANDOM,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    batch_size: int = DEFAULT_BATCH,
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
    path: str | Path | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
    ray: str | None = None,
    ray_workers: int | None = None,
    ray_factory: Callable[[], ModelHandle] | None = None,
    on_ray_progress: Callable[[dict], None] | None = None,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
) -> BuildReport:
    """The build itself (see :func:`build_store`); the caller holds the build lock."""
    t0 = time.perf_counter()
    if isinstance(units, str) or units is None:
        units = units_from_spec(handle, units or "mlp", layers)
    check_units(units)
    if n_tokens is None or n_tokens < window:
        raise InputError(f"--tokens {n_tokens} is less than one window of {window} tokens.", f"Use at least {window} tokens (e.g. {DEFAULT_STORE_TOKENS}).")
    if n_tokens > 50_000_000:
        raise InputError(f"--tokens {n_tokens} is more than this store is meant for (50M).", "Use fewer tokens.")
    if top_k < 3 or n_random < 2 or n_quantile < 1:
        raise InputError("top_k must be >= 3, n_random >= 2, n_quantile >= 1.", "Use the defaults.")
    if not isinstance(corpus, Corpus):
        corpus = load_corpus(corpus, max_bytes=bytes_for_tokens(n_tokens))
    final = Path(path) if path else store_path(handle.name, units.id)
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(final.name + ".partial")
    cfg = StoreConfig(
        model=handle.name,
        units_id=units.id,
        units_kind=units.kind,
        layers=list(units.layers),
        n_units={str(l): int(units.n_units(l)) for l in units.layers},
        hook_names={str(l): units.hook_name(l) for l in units.layers},
        corpus=corpus.name,
        corpus_fingerprint=corpus.fingerprint(),
        n_tokens=int(n_tokens),
        window=window,
        seed=seed,
        top_k=top_k,
        n_quantile=n_quantile,
        n_random=n_random,
        chunk_tokens=chunk_tokens,
        batch_size=batch_size,
    )
    # a finished store is never replaced without force: reuse it, add the missing layers to
    # it, or refuse
    prog_p = partial / "progress.json"
    resuming = False
    if prog_p.exists():  # an interrupted build of exactly this: it resumes (it was allowed to start)
        try:
            resuming = json.loads(prog_p.read_text()).get("key") == cfg.key()
        except Exception:
            resuming = False
    if not force and not resuming and (final / "meta.json").exists():
        try:
            st = ActivationStore(final, verify=False)
        except StoreError:
            st = None  # damaged: rebuilt below
        if st is not None:
            old_cfg = st.config
            if old_cfg.key() == cfg.key() or (_same_run(old_cfg, cfg) and set(cfg.layers) <= set(old_cfg.layers)):
                return BuildReport(path=str(final), units_id=units.id, layers=st.layers, n_tokens=st.n_tokens, n_windows=st.meta.n_windows,
                                   seconds=round(time.perf_counter() - t0, 2), tokens_per_second=st.meta.tokens_per_second,
                                   size_mb=st.describe()["size_mb"], reused=True)
            if not _same_run(old_cfg, cfg):
                differ = [f"{f} {getattr(old_cfg, f)} vs {getattr(cfg, f)}" for f in _RUN_FIELDS if getattr(old_cfg, f) != getattr(cfg, f)]
                if set(cfg.layers) <= set(old_cfg.layers):
                    keep = f"It already covers layers {_fmt_layers(cfg.layers)}: use it as it is, or add --force to replace it."
                else:
                    keep = f"Add --force to replace it, or add the layers to it with its own settings: `{_index_command(old_cfg, cfg.layers)}`."
                raise StoreError(
                    f"A finished {units.id} store is at {final} (layers {_fmt_layers(old_cfg.layers)}, {old_cfg.n_tokens} tokens); "
                    f"this build differs from it ({'; '.join(differ)}) and would replace it.",
                    keep,
                )
            missing = [l for l in cfg.layers if l not in old_cfg.layers]
            return _add_layers(handle, units, corpus, st, missing, window, top_k, n_quantile, n_random, chunk_tokens,
                               batch_size, seed, progress, final, t0, (ray, ray_workers, ray_factory, on_ray_progress, checkpoint_seconds))
    # resume or start fresh (force allows replacing a finished store; it does not throw away progress)
    progress_rec = None
    if prog_p.exists():
        try:
            progress_rec = json.loads(prog_p.read_text())
            if progress_rec.get("key") != cfg.key():
                progress_rec = None
        except Exception:
            progress_rec = None
    if progress_rec is None:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)

    tok = handle.tokenizer
    wins, src_idx, src_names = corpus_windows(corpus, tok, window, n_tokens, seed, handle.bos_token_id)
    n_win, T = wins.shape
    if progress_rec is None:
        np.savez(partial / "windows.tmp.npz", tokens=wins, source=src_idx)
        os.replace(partial / "windows.tmp.npz", partial / "windows.npz")
        vocab = {str(int(i)): tok_text.label(tok, int(i)) for i in np.unique(wins)}
        atomic_write_json(partial / "vocab.json", vocab)
    rng = np.random.default_rng(seed)
    rand_win = np.sort(rng.choice(n_win, size=min(n_random, n_win), replace=False)).astype(np.int64)
    rand_slot = {int(w): i for i, w in enumerate(rand_win)}

    states = {l: _LayerState(units.n_units(l), top_k, n_quantile, T, l, seed, handle.device) for l in units.layers}
    chunk_i, prev_seconds = 0, 0.0
    covered: list[list[int]] = []  # window ranges [w0, w1) already in ``states``
    if progress_rec is not None:
        chunk_i = int(progress_rec["chunk"])
        covered = [list(map(int, r)) for r in progress_rec.get("covered", [[0, progress_rec.get("next_window", 0)]])]
        prev_seconds = float(progress_rec.get("seconds", 0.0))
        from safetensors.torch import load_file

        for l in units.layers:
            try:
                states[l].load(load_file(str(partial / f"state_{l:03d}.c{chunk_i}.safetensors")))
            except Exception:
                # a damaged checkpoint (or one of an older layout): start over rather than use it
                print("[gnothi] the interrupted build's checkpoint cannot be used (damaged, or from an older version); starting over",
                      file=sys.stderr)
                shutil.rmtree(partial, ignore_errors=True)
                return _build_store(handle, units, corpus, n_tokens, None, window, top_k, n_quantile, n_random, chunk_tokens,
                                   batch_size, seed, True, progress, path, on_chunk, ray, ray_workers, ray_factory, on_ray_progress,
                                   checkpoint_seconds)
    done_tokens = sum(b - a for a, b in covered) * T
    resumed_from = done_tokens
    wins_per_chunk = max(batch_size, (chunk_tokens // T) // batch_size * batch_size)
    todo = _uncovered(covered, n_win)

    from tqdm.auto import tqdm

    bar = tqdm(total=n_win * T, initial=done_tokens, unit="tok", unit_scale=True, desc=f"Indexing {units.id} ({len(units.layers)} layers)",
               disable=not progress, file=sys.stderr, dynamic_ncols=True)
    t_run = time.perf_counter()

    unsaved_rand: dict[str, torch.Tensor] = {}  # random windows' activations not yet in a checkpoint
    last_save = [time.perf_counter()]

    def save() -> None:
        """A checkpoint: versioned state files, then the progress (written last)."""
        nonlocal chunk_i
        nxt = chunk_i + 1
        for l in units.layers:
            _save_tensors(partial / f"state_{l:03d}.c{nxt}.safetensors", states[l].tensors())
        if unsaved_rand:
            _save_tensors(partial / f"rand.c{nxt}.safetensors", unsaved_rand)
            unsaved_rand.clear()
        atomic_write_json(prog_p, {"key": cfg.key(), "chunk": nxt, "covered": covered, "n_tokens_seen": done_tokens,
                                    "seconds": prev_seconds + time.perf_counter() - t_run})
        for l in units.layers:
            (partial / f"state_{l:03d}.c{chunk_i}.safetensors").unlink(missing_ok=True)
        chunk_i = nxt
        last_save[0] = time.perf_counter()

    n_chunks = [0]

    def checkpoint(rand_here: dict[str, torch.Tensor], w0: int, w1: int) -> None:
        """Windows [w0, w1) went into the states: save them when ``checkpoint_seconds`` have
        passed since the last save, then tell ``on_chunk``; if it raises (to stop the build),
        save first, so that the next build resumes from here."""
        nonlocal done_tokens
        unsaved_rand.update(rand_here)
        covered[:] = _coalesce(covered + [[w0, w1]])
        done_tokens += (w1 - w0) * T
        n_chunks[0] += 1
        saved = time.perf_counter() - last_save[0] >= checkpoint_seconds
        if saved:
            save()
        if on_chunk is not None:
            try:
                on_chunk(n_chunks[0], done_tokens)
            except BaseException:
                if not saved:
                    save()
                raise

    try:
        if ray is not None:
            from ..cluster import model_factory
            from .distributed import build_on_ray

            factory = ray_factory or model_factory(handle.name, None, handle.dtype)
            build_on_ray(ray, ray_workers, factory, units, wins, todo, batch_size, seed, top_k, n_quantile, rand_slot, states,
                         checkpoint, bar, on_ray_progress)
        else:
            for r0, r1 in todo:
                for w0 in range(r0, r1, wins_per_chunk):
                    w1 = min(r1, w0 + wins_per_chunk)
                    # windows after all those seen stream straight in; a gap before some (left by an
                    # interrupted Ray build) is built apart and merged
                    fresh = w0 < max((b for _, b in covered), default=0)
                    part_states, rand_here = _stream_range(handle, units, wins, w0, w1, batch_size, seed, top_k, n_quantile, rand_slot,
                                                           None if fresh else states, lambda n: bar.update(n * T))
                    if fresh:
                        for l in units.layers:
                            states[l].merge(part_states[l])
                    checkpoint(rand_here, w0, w1)
    finally:
        bar.close()
    run_seconds = prev_seconds + time.perf_counter() - t_run

    # finalize: per-layer files with the random windows' activations merged in
    from safetensors.torch import load_file

    rand_all: dict[str, torch.Tensor] = {}
    for f in sorted(partial.glob("rand.c*.safetensors")):
        rand_all.update(load_file(str(f)))
    rand_all.update(unsaved_rand)
    files: dict[str, dict] = {}
    for l in units.layers:
        s = states[l].to("cpu")
        U = units.n_units(l)
        rand_acts = torch.zeros((len(rand_win), T, U), dtype=torch.float16)
        for i in range(len(rand_win)):
            t = rand_all.get(f"{l}.{i}")
            if t is None:
                raise StoreError("A random window of the build is missing its activations.", "Rebuild with --force.")
            rand_acts[i] = t
        top_val, top_win, top_acts = s.sorted_top()
        q_win, q_acts = s.final_quantile()
        out = {
            "top_val": top_val.float(),
            "top_win": top_win,
            "q_win": q_win,
            "count_pos": s.count_pos,
            "sum": s.sum,
            "sumsq": s.sumsq,
            "max": s.max.float(),
            "min": s.min.float(),
            "rand_win": torch.from_numpy(rand_win).to(torch.int32),
        }
        _pack("top_acts", top_acts, out)
        _pack("q_acts", q_acts, out)
        _pack("rand_acts", rand_acts, out)
        name = f"layer_{l:03d}.safetensors"
        _save_tensors(partial / name, out)
    # per-layer summary of every unit (max, mean, frequency) in one small file
    n_seen = max(1, n_win * T)
    summ = {}
    for l in units.layers:
        s = states[l]
        summ[f"max.{l}"] = s.max.float()
        summ[f"mean.{l}"] = (s.sum / n_seen).float()
        summ[f"frequency.{l}"] = (s.count_pos.double() / n_seen).float()
    _save_tensors(partial / "summary.safetensors", summ)
    for f in list(partial.glob("state_*.safetensors")) + list(partial.glob("rand.c*.safetensors")) + [prog_p]:
        f.unlink(missing_ok=True)
    for name in sorted(p.name for p in partial.iterdir() if p.is_file()):
        files[name] = {"size": (partial / name).stat().st_size, "sha256": sha256_file(partial / name)}
    tps = n_win * T / max(run_seconds, 1e-9)
    meta = StoreMeta(config=cfg, complete=True, n_windows=n_win, n_tokens_seen=n_win * T, sources=src_names, files=files,
                     build_seconds=round(run_seconds, 2), tokens_per_second=round(tps, 1), created=time.time())
    atomic_write_json(partial / "meta.json", json.loads(meta.model_dump_json()))
    # swap into place
    old = final.with_name(final.name + f".old-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(partial, final)
    shutil.rmtree(old, ignore_errors=True)
    with _OPEN_LOCK:
        for k in [k for k in _OPEN if k[0] == str(final)]:
            _OPEN.pop(k, None)
    if resumed_from == 0 and path is None and ray is None:  # a Ray build's speed includes its start-up
        try:
            full = tps * len(units.layers) / max(1, handle.n_layers)
            atomic_write_json(_throughput_file(handle.name), {"tokens_per_second_full_depth": full, "measured": time.time()})
        except Exception:
            pass
    size = sum(f["size"] for f in files.values()) / 2**20
    return BuildReport(path=str(final), units_id=units.id, layers=list(units.layers), n_tokens=n_win * T, n_windows=n_win,
                       seconds=round(time.perf_counter() - t0, 2), tokens_per_second=round(tps, 1), resumed_from_tokens=resumed_from,
                       size_mb=round(size, 1))


def build_store(
    handle: ModelHandle,
    units: UnitSource | str | None = "mlp",
    corpus: Corpus | str | None = None,
    n_tokens: int = DEFAULT_STORE_TOKENS,
    layers: Sequence[int] | str | None = None,
    window: int = DEFAULT_WINDOW,
    top_k: int = DEFAULT_TOP_K,
    n_quantile: int = DEFAULT_N_QUANTILE,
    n_random: int = DEFAULT_N_RANDOM,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    batch_size: int = DEFAULT_BATCH,
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
    path: str | Path | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
    ray: str | None = None,
    ray_workers: int | None = None,
    ray_factory: Callable[[], ModelHandle] | None = None,
    on_ray_progress: Callable[[dict], None] | None = None,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
) -> BuildReport:
    """Stream ``n_tokens`` tokens of ``corpus`` through the model once and write the store.

    ``units``: a UnitSource, or a spec (``"mlp"``, ``"sae:PATH"``); ``layers`` narrows an
    ``"mlp"`` spec. A finished store with the same settings is reused unless ``force``;
    an interrupted build with the same settings resumes from its last finished chunk
    (``on_chunk(chunks_done, tokens_done)`` is called after each chunk, or with Ray each shard;
    if it raises, the build saves and stops there). A checkpoint is saved after the first chunk
    that ends ``checkpoint_seconds`` or more after the last one (0: after every chunk).

    ``ray``: build on a Ray cluster instead of in this process: ``"local"`` starts one here
    (``ray_workers`` workers, default one per core), anything else is a cluster address
    (``"auto"``, ``"ray://host:10001"``); the windows are split into shards, each worker builds
    some with its own model (``ray_factory()``, default: this model by name, on the worker's
    own device) and the shards merge into exactly this store (see :mod:`.state`). Only one
    process builds a given store at a time (a lock file next to it); a second gets a
    :class:`StoreError`.
    """
    if isinstance(units, str) or units is None:
        units = units_from_spec(handle, units or "mlp", layers)
    check_units(units)
    final = Path(path) if path else store_path(handle.name, units.id)
    final.parent.mkdir(parents=True, exist_ok=True)
    lock = final.with_name(final.name + ".lock")
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or "0")
                os.kill(pid, 0)
                alive = pid != os.getpid()
            except (ValueError, ProcessLookupError, FileNotFoundError):
                alive = False
            except PermissionError:
                alive = True
            if alive:
                raise StoreError(
                    f"Another process (pid {pid}) is building the store at {final}.",
                    "Wait for it to finish (it shows a progress bar), then use the store.",
                ) from None
            lock.unlink(missing_ok=True)  # a stale lock from a killed build
    else:  # pragma: no cover
        raise StoreError(f"Cannot take the build lock {lock}.", "Remove the file if no build is running.")
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return _build_store(handle, units, corpus, n_tokens, layers, window, top_k, n_quantile, n_random, chunk_tokens,
                            batch_size, seed, force, progress, path, on_chunk, ray, ray_workers, ray_factory, on_ray_progress,
                            checkpoint_seconds)
    finally:
        lock.unlink(missing_ok=True)


def ensure_default_store(handle: ModelHandle, progress: bool = True, n_tokens: int = DEFAULT_STORE_TOKENS) -> ActivationStore:
    """The model's MLP store, building a modest default (all layers, ``n_tokens`` tokens) if none exists."""
    st = store_status(handle, "mlp")
    if not st.exists or st.damaged:
        build_store(handle, "mlp", None, n_tokens=n_tokens, progress=progress, force=st.damaged)
    return open_store(handle, "mlp")
