"""Is it making this up? A hallucination detector read from the model's own internals.

``detect(handle, question, answer=None, context=None)`` runs the model on the question
(chat template, greedy), takes its answer (or the given one) and turns internal signals
into one calibrated risk between 0 and 1:

* **hidden-state probes** (SAPLMA-style): logistic regressions on the residual stream at
  a chosen layer, one read at the last prompt token (before the model answers: does it
  "know" it knows?) and one averaged over the answer's tokens;
* **uncertainty signals**: negative mean log-prob of the answer tokens (log-perplexity),
  their minimum log-prob, mean and max next-token entropy, and the first answer token's
  log-prob and entropy.

A logistic regression over these signals (probes entered as out-of-fold logits, so the
combiner sees honest probe scores) gives the risk; on held-out data its probabilities are
checked with a reliability diagram. Each reply lists how much each signal pushed the risk
up or down (coefficient x standardized value: additive in log-odds).

Labels come from :mod:`gnothi.tools.hallu_data` (the model's own answers to the project's
fact table, checked automatically; fabricated subjects have no true answer). The split is
by entity. A trained detector is saved per model under
``model_cache_dir(model)/hallucination/`` (``detector.safetensors`` + ``detector.json``)
and loaded next time; without one, ``detect`` trains it on the shipped data (progress bar)
or, with ``train=False``, falls back to an uncalibrated uncertainty score
(1 - the geometric-mean probability of the answer tokens), and the report says which.

Layout: :mod:`.signals` (reading the internals), :mod:`.linear` (standardize + logistic
regression), :mod:`.detector` (the probes and combiner, fitting, the saved format),
:mod:`.cache` (dataset signals cached per model), :mod:`.evaluation` (held-out report,
reliability, bootstrap, text-only controls, transfer), :mod:`.training` (train and evaluate,
load or train on first use) and :mod:`.report` (one question: :func:`detect`).
"""

from __future__ import annotations

from .. import facts as F  # noqa: F401  (module aliases the single module had)
from .. import hallu_data as D  # noqa: F401
from .. import hallu_text as HT  # noqa: F401
from .. import tokens as tok_text  # noqa: F401
from ..config import model_cache_dir
from ..stats import auroc
from .cache import _load_signal_cache, _save_signal_cache, _signal_cache_path, dataset_signals
from .detector import DETECTOR_VERSION, PROBE_CS, HallucinationDetector, _json_default, detector_dir
from .evaluation import HallucinationEval, ReliabilityBin, _bootstrap, _bootstrap_margin, _bootstrapauroc, _reliability, _text_control, _transfer
from .linear import LinearModel, _oof_logits, _sigmoid, fit_linear
from .report import HallucinationReport, SignalValue, _level, detect
from .signals import FALLBACK_SIGNAL, SIGNAL_TEXT, UNC_NAMES, Signals, candidate_layers, compute_signals, scored_text
from .training import _LOADED, get_detector, load_detector, train_and_evaluate

# every name the single-module gnothi.tools.hallucination defined, private helpers included (tests use some), plus the
# names it imported that others read from it (`auroc` in tests; the module aliases above: benchmarks/bench_memory.py
# reads H.D). A test that replaces a function must patch the submodule that looks it up (e.g. `training.train_and_evaluate`
# or `training.load_detector` for get_detector, `cache.compute_signals` for dataset_signals, `training._LOADED`).
__all__ = [
    "DETECTOR_VERSION", "FALLBACK_SIGNAL", "PROBE_CS", "SIGNAL_TEXT", "UNC_NAMES",
    "HallucinationDetector", "HallucinationEval", "HallucinationReport", "LinearModel", "ReliabilityBin", "SignalValue", "Signals",
    "auroc", "model_cache_dir", "candidate_layers", "compute_signals", "dataset_signals", "detect", "detector_dir", "fit_linear", "get_detector",
    "load_detector", "scored_text", "train_and_evaluate",
    "_LOADED", "_bootstrap", "_bootstrap_margin", "_bootstrapauroc", "_json_default", "_level", "_load_signal_cache", "_oof_logits",
    "_reliability", "_save_signal_cache", "_sigmoid", "_signal_cache_path", "_text_control", "_transfer",
]
