"""The activation store: stream a corpus through the model once, keep what explains each unit.

For every unit (MLP neuron or SAE feature, see :mod:`gnothi.tools.units`) the store keeps

* its **top-k windows** (by the unit's max activation in the window) with one activation
  per token,
* **quantile samples**: a random reservoir of windows where the unit reaches at least a
  quarter of its running max, so mid-level activations are represented,
* **random windows** (the same windows for every unit, all units' activations kept),
* **summary statistics**: frequency (share of tokens with activation > 0), mean, std,
  max, min.

A record has the shape of the published explain-simulate-score work: tokens plus one
activation per token (:class:`ActivationRecord`), and a unit exports to JSON in the
``NeuronRecord`` layout (``most_positive_activation_records``, ``random_sample``,
``random_sample_by_quantile``...).

Building is memory-bounded (per-unit running top-k and reservoirs kept in torch, fp16
activations; nothing grows with the corpus except the int32 window table), checkpointed
per chunk of windows (versioned files + a progress file written last, all by temp file
and rename) so an interrupted build resumes from its last finished chunk, and shows a
tqdm progress bar with an ETA on stderr. A finished store lists every file with its size
and SHA-256 in ``meta.json``; opening checks sizes, loading a layer checks its hash, and a
damaged store raises :class:`StoreError` instead of being used.

Layout: ``model_cache_dir(model)/stores/<units id>/`` with ``meta.json``, ``windows.npz``
(token ids and source of each window) and ``layer_LLL.safetensors`` per layer.
"""

from __future__ import annotations

from .build import BuildReport, _add_layers, _build_store, _RUN_FIELDS, _same_run, build_store, ensure_default_store
from .commands import _fmt_layers, _index_command, build_command
from .format import (
    DEFAULT_BATCH,
    DEFAULT_CHUNK_TOKENS,
    DEFAULT_N_QUANTILE,
    DEFAULT_N_RANDOM,
    DEFAULT_STORE_TOKENS,
    DEFAULT_TOP_K,
    DEFAULT_WINDOW,
    HOLDOUT_EVERY,
    QUANTILE_FLOOR,
    QUICK_STORE_TOKENS,
    STORE_VERSION,
    SUM_FIELDS,
    StoreConfig,
    StoreMeta,
    _pack,
    _save_tensors,
    _throughput_file,
    _unpack,
    store_differences,
    store_path,
    stores_dir,
)
from .opened import _OPEN, _OPEN_LOCK, open_store
from .reader import ActivationStore
from .records import ActivationRecord, UnitSplit, UnitStats
from .state import _LayerState
from .status import StoreStatus, estimate_build_seconds, store_status
from .windows import corpus_windows

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_CHUNK_TOKENS",
    "DEFAULT_N_QUANTILE",
    "DEFAULT_N_RANDOM",
    "DEFAULT_STORE_TOKENS",
    "DEFAULT_TOP_K",
    "DEFAULT_WINDOW",
    "HOLDOUT_EVERY",
    "QUANTILE_FLOOR",
    "QUICK_STORE_TOKENS",
    "STORE_VERSION",
    "SUM_FIELDS",
    "ActivationRecord",
    "ActivationStore",
    "BuildReport",
    "StoreConfig",
    "StoreMeta",
    "StoreStatus",
    "UnitSplit",
    "UnitStats",
    "build_command",
    "build_store",
    "corpus_windows",
    "ensure_default_store",
    "estimate_build_seconds",
    "open_store",
    "store_differences",
    "store_path",
    "store_status",
    "stores_dir",
    # private names that tests and tools use
    "_OPEN",
    "_OPEN_LOCK",
    "_LayerState",
    "_RUN_FIELDS",
    "_add_layers",
    "_build_store",
    "_fmt_layers",
    "_index_command",
    "_pack",
    "_same_run",
    "_save_tensors",
    "_throughput_file",
    "_unpack",
]
