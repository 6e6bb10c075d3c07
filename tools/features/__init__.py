"""SAE feature search: what fires on a text, features by meaning, features that separate two sets.

Four questions about the features of an SAE (see :mod:`gnothi.tools.sae`):

* :func:`features_on_text`: which features fire on a text, or on one token in it (runs
  the model on that text once, up to the SAE's layer);
* :func:`search_features`: features whose explanation means what a query means: the
  explanations are embedded with the bundled all-MiniLM-L6-v2 and ranked by cosine
  similarity to the query (needs the feature index, below);
* :func:`contrast_features`: features that fire more on one set of texts than another,
  with effect size, AUROC, and a split-half check of the best one;
* :func:`feature_page`: one feature's top contexts, explanation and its score, read from
  the activation store exactly like a neuron page, plus the tokens its decoder direction
  promotes and suppresses.

The **feature index** (:func:`index_features`, ``gnothi sae index``) streams a corpus
through the model once with the store (``build_store`` with :class:`SAEUnits`), then
explains every feature offline and scores each explanation by simulation on held-out
records. It is saved as ``features.json`` in the SAE's folder, tied to the SAE's weights
fingerprint so an index never describes a different SAE.

Layout: :mod:`.index` (the index's schema, loading and its cache), :mod:`.build`
(:func:`index_features`), :mod:`.encode` (running the SAE on texts), :mod:`.on_text`,
:mod:`.search`, :mod:`.contrast` and :mod:`.page` (one module per question above, each
with its result types).
"""

from __future__ import annotations

from .build import index_features
from .contrast import ContrastHit, ContrastResult, _auroc, _effects, contrast_features
from .encode import _check_text, _encode_texts
from .index import (
    DEFAULT_INDEX_TOKENS,
    EMB_FILE,
    INDEX_FILE,
    INDEX_WINDOW,
    _INDEX_CACHE,
    FeatureIndex,
    FeatureInfo,
    IndexReport,
    _read_index,
    estimate_index_seconds,
    index_command,
    load_feature_index,
    require_index,
)
from .on_text import FeatureHit, FeaturesOnTextResult, features_on_text
from .page import FeaturePage, explain_feature, feature_page, output_tokens
from .search import _EMB_CACHE, _QUOTE_PCT, FeatureSearchResult, SearchHit, _feature_embeddings, _search_text, search_features

# every name the single-module gnothi.tools.features defined, private helpers and caches included
__all__ = [
    "DEFAULT_INDEX_TOKENS", "EMB_FILE", "INDEX_FILE", "INDEX_WINDOW", "ContrastHit", "ContrastResult", "FeatureHit", "FeatureIndex",
    "FeatureInfo", "FeaturePage", "FeatureSearchResult", "FeaturesOnTextResult", "IndexReport", "SearchHit", "contrast_features",
    "estimate_index_seconds", "explain_feature", "feature_page", "features_on_text", "index_command", "index_features",
    "load_feature_index", "output_tokens", "require_index", "search_features",
    "_EMB_CACHE", "_INDEX_CACHE", "_QUOTE_PCT", "_auroc", "_check_text", "_effects", "_encode_texts", "_feature_embeddings",
    "_read_index", "_search_text",
]
