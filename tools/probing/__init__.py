"""Linear probes per layer: what does each layer of the residual stream know?

For a labelled dataset (see :mod:`gnothi.tools.datasets`), record the residual stream
after every requested layer (``blocks.{L}.hook_resid_post``) at one token position (the
last token, or the mean over the text's tokens without BOS), fit a logistic-regression
probe per layer on a training split and measure it on held-out examples::

    from gnothi.tools.model import get_handle
    from gnothi.tools.probing import run_probe
    rep = run_probe(get_handle(), "true_false")          # all layers, last token
    rep.best_layer, rep.layers[rep.best_layer].accuracy
    rep.to_tool_result()                                  # summary, figure, evidence

Method, and why:

* **Split by group.** Datasets mark near-duplicates with a ``group`` (the same fact said
  true and false; the same sentiment word in several templates). Train and test never
  share a group, so held-out accuracy measures generalisation, not template recall.
* **Probe.** Standardise each feature on the training split, then L2-regularised
  logistic regression (``C``, default 0.1). Accuracy on the test split with a 95% Wilson
  interval.
* **Control tasks.** *Shuffled labels* (labels permuted across examples, same split,
  same probe): held-out accuracy near chance says the probe cannot fit noise that
  generalises; ``selectivity = accuracy - control_accuracy`` uses it by default.
  *Word-type control* (Hewitt & Liang 2019, "Designing and Interpreting Probes with
  Control Tasks"): every word type (the dataset's ``control_key``, e.g. the last word)
  gets a random label with the class frequencies, and the same probe is fit to those.
  Its accuracy is how far this probe can go by memorising word identity: when it is as
  high as the real accuracy on a task that word identity could solve, the probe's
  success says little about the representation. Both are always measured;
  ``control="word_type"`` makes selectivity subtract the word-type one. (On sentence
  tasks with a grouped split, where word identity carries no label, e.g. a question and
  its statement end in the same word, the word-type control can reach 100% while telling
  nothing about the real task; hence the shuffled default.)
* **Saved directions.** Each layer's probe is saved in raw activation space
  (``score = act @ weight.T + bias``), with the standardiser's mean and scale, as
  safetensors + JSON under ``model_cache_dir(model)/probes/<dataset>/``;
  :func:`load_probe` reads it back (the hallucination detector uses it).

Modules: ``schemas`` (arguments, per-layer rows, option names), ``activations``
(:func:`collect_features`), ``stats`` (Wilson interval, grouped split), ``controls``
(control-task labels), ``fitting`` (the per-layer probe and its controls), ``report``
(:class:`ProbeReport`), ``saved`` (the on-disk format, :func:`load_probe`) and ``tool``
(:func:`run_probe`, :func:`get_or_train_probe`).
"""

from __future__ import annotations

from ..units import parse_layers  # re-exported: the one layer-list grammar of every command
from .activations import _token_lengths, collect_features
from .controls import control_labels
from .fitting import _one_blas_thread, _pick_best, _probe_layer, _raw_space, fit_classifier, probe_features
from .report import ProbeReport
from .saved import FORMAT_VERSION, SavedProbe, _atomic_write, list_saved_probes, load_probe, probes_dir, save_probes
from .schemas import HOOK_KIND, POSITIONS, ControlKind, LayerProbe, Position, ProbeArgs
from .stats import split_indices, wilson_interval
from .tool import _resolve_layers, get_or_train_probe, list_datasets, run_probe

# every name the single-module gnothi.tools.probing defined (private helpers included), and parse_layers
__all__ = [
    "FORMAT_VERSION", "HOOK_KIND", "POSITIONS", "ControlKind", "LayerProbe", "Position", "ProbeArgs", "ProbeReport", "SavedProbe",
    "collect_features", "control_labels", "fit_classifier", "get_or_train_probe", "list_datasets", "list_saved_probes",
    "load_probe", "parse_layers", "probe_features", "probes_dir", "run_probe", "save_probes", "split_indices", "wilson_interval",
    "_atomic_write", "_one_blas_thread", "_pick_best", "_probe_layer", "_raw_space", "_resolve_layers", "_token_lengths",
]
