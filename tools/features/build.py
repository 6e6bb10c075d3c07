"""Building the feature index: one store pass over a corpus, then an offline explanation and score per feature."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import SAEError
from ..files import atomic_write_bytes
from ..sae import SAE, SAEUnits, resolve_sae, update_manifest
from .index import DEFAULT_INDEX_TOKENS, EMB_FILE, INDEX_FILE, INDEX_WINDOW, FeatureIndex, FeatureInfo, IndexReport

if TYPE_CHECKING:
    from ..model import ModelHandle


def index_features(
    handle: ModelHandle,
    sae: SAE | str | None = None,
    n_tokens: int = DEFAULT_INDEX_TOKENS,
    corpus=None,
    force: bool = False,
    progress: bool = True,
    window: int = INDEX_WINDOW,
    seed: int = 0,
) -> IndexReport:
    """Index every feature of ``sae``: activation store + offline explanation + score each.

    The store build is resumable and reused when its settings match (see
    :func:`gnothi.tools.store.build_store`); ``force`` rebuilds both.
    """
    from ..explain import offline_explain, score_explanation
    from ..store import ActivationStore, build_store

    sae = resolve_sae(handle, sae)
    if sae.path is None:
        raise SAEError("Only an SAE saved in a folder can be indexed.", "Save it first with gnothi.tools.sae.save_sae(sae, path).")
    units = SAEUnits(sae, handle)
    layer = units.layers[0]
    t0 = time.perf_counter()
    rep = build_store(handle, units, corpus, n_tokens=n_tokens, window=window, seed=seed, force=force, progress=progress)
    t_store = time.perf_counter() - t0
    store = ActivationStore(rep.path, verify=True, tokenizer=handle.tokenizer)
    t1 = time.perf_counter()
    feats: list[FeatureInfo] = []
    from tqdm.auto import tqdm

    bar = tqdm(total=sae.d_sae, desc=f"Explaining {sae.d_sae} features", unit="feat", disable=not progress, file=sys.stderr)
    maxes = store.max_activations(layer)
    for u in range(sae.d_sae):
        st = store.stats(layer, u)
        if float(maxes[u]) <= 0:
            feats.append(FeatureInfo(id=u, explanation="never fires on the indexed corpus (a dead feature).", score=None,
                                     frequency=st.frequency, max_activation=st.max))
            bar.update(1)
            continue
        split = store.unit_split(layer, u)
        ex = offline_explain(split.explain, split.explain_random, st.max)  # single-pass: the index explains every feature, so it must be fast
        sc = score_explanation(ex.text, split.heldout_top, split.heldout_random, "offline")
        p = sc.get("pearson")
        feats.append(FeatureInfo(
            id=u, explanation=ex.text, score=None if p is None or not math.isfinite(p) else round(float(p), 4),
            frequency=st.frequency, max_activation=st.max, top_tokens=[k for k, _ in ex.tokens][:5],
        ))
        bar.update(1)
    bar.close()
    t_explain = time.perf_counter() - t1
    idx = FeatureIndex(
        sae=sae.name, units_id=units.id, layer=layer, hook_name=str(sae.hook_name), store_path=rep.path,
        n_tokens=rep.n_tokens, corpus=store.config.corpus, features=feats, seconds=round(t_store + t_explain, 2),
        built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    atomic_write_bytes(Path(sae.path) / INDEX_FILE, idx.model_dump_json().encode())
    (Path(sae.path) / EMB_FILE).unlink(missing_ok=True)
    scores = [f.score for f in feats if f.score is not None]
    update_manifest(sae.path, index={"units_id": units.id, "n_tokens": rep.n_tokens, "built_at": idx.built_at})
    return IndexReport(
        sae=sae.name, path=str(sae.path), layer=layer, n_features=sae.d_sae, n_alive=sum(f.max_activation > 0 for f in feats),
        n_tokens=rep.n_tokens, mean_score=round(float(np.mean(scores)), 4) if scores else None,
        median_score=round(float(np.median(scores)), 4) if scores else None, store_seconds=round(t_store, 2),
        explain_seconds=round(t_explain, 2), tokens_per_second=rep.tokens_per_second, reused_store=rep.reused,
    )
