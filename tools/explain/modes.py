"""Modes of a polysemantic unit: cluster its activating contexts, explain and score each mode."""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np

from .. import explain_refine
from ..stats import pearson
from ..store import ActivationRecord
from .keys import CONTEXT_SPAN, token_key
from .llm_explainer import llm_explain
from .offline_explainer import explain_offline
from .schemas import LLM, Mode, ModesResult
from .scoring import _score_on
from .simulator import _Simulator


def _context_text(r: ActivationRecord, span: int = 12) -> tuple[str, str]:
    i = r.argmax
    ctx = "".join(r.tokens[max(1, i - span): i]).strip()
    tok = r.tokens[i]
    return f"{ctx} [{tok.strip()}]", tok


def _embed_contexts(records: Sequence[ActivationRecord], method: str) -> tuple[np.ndarray, str]:
    texts = [_context_text(r)[0] for r in records]
    if method in ("auto", "minilm"):
        try:
            from ..embeddings import embed

            e = embed(texts, batch_size=32)
            # the top token itself matters most: append a one-hot of its key
            return np.asarray(e, dtype=np.float64), "minilm"
        except Exception:
            if method == "minilm":
                raise
    vocab: dict[str, int] = {}
    rows = []
    for r in records:
        i = r.argmax
        feats: defaultdict[str, float] = defaultdict(float)  # weighted features (0.0 for an unseen key, as a Counter gives 0)
        feats["T:" + token_key(r.tokens[i])] += 3.0
        if i > 0:
            feats["P:" + token_key(r.tokens[i - 1])] += 1.0
        for j in range(max(1, i - CONTEXT_SPAN), i):
            feats["C:" + token_key(r.tokens[j])] += 0.3
        rows.append(feats)
        for k in feats:
            vocab.setdefault(k, len(vocab))
    X = np.zeros((len(records), max(1, len(vocab))))
    for n, feats in enumerate(rows):
        for k, v in feats.items():
            X[n, vocab[k]] = v
    X /= np.linalg.norm(X, axis=1, keepdims=True) + 1e-9
    return X, "tokens"


def find_modes(store_records: Sequence[ActivationRecord], holdout_top: Sequence[ActivationRecord], holdout_random: Sequence[ActivationRecord],
               random_train: Sequence[ActivationRecord], unit_max: float, single_pearson: float, method: str = "auto",
               explainer: str | LLM = "offline", simulator: "str | LLM | _Simulator" = "offline", label: str = "unit", max_k: int = 3,
               seed: int = 0) -> ModesResult | None:
    """Cluster activating contexts into 2..max_k modes; explain and score each; compare with one explanation."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    recs = [r for r in store_records if r.max_activation > 0]
    if len(recs) < 6:
        return None
    X, used = _embed_contexts(recs + list(holdout_top), method)
    Xtr, Xho = X[: len(recs)], X[len(recs):]
    best = None
    for k in range(2, max_k + 1):
        if len(recs) < 3 * k:
            break
        km = KMeans(n_clusters=k, n_init=5, random_state=seed).fit(Xtr)
        if len(set(km.labels_)) < 2:
            continue
        sil = float(silhouette_score(Xtr, km.labels_))
        if best is None or sil > best[0] + 1e-9:
            best = (sil, k, km)
    if best is None:
        return None
    sil, k, km = best
    ho_labels = km.predict(Xho) if len(holdout_top) else np.zeros(0, dtype=int)
    sim = simulator if isinstance(simulator, _Simulator) else _Simulator(simulator)
    modes: list[Mode] = []
    mode_expl: list[tuple[str, float]] = []
    for m in range(k):
        mrecs = [r for r, lab in zip(recs, km.labels_) if lab == m]
        if not mrecs:
            continue
        off = explain_offline(explainer if isinstance(explainer, str) else "offline", mrecs, random_train, unit_max)
        expl = off if isinstance(explainer, str) else llm_explain(explainer, mrecs, unit_max, off, label)
        mho = [r for r, lab in zip(holdout_top, ho_labels) if lab == m]
        mp, _, _ = _score_on(sim, expl.text, mho + list(holdout_random))
        mm = float(np.mean([r.max_activation for r in mrecs]))
        modes.append(Mode(index=m, n_records=len(mrecs), share=round(len(mrecs) / len(recs), 4), explanation=expl.text,
                          pearson=round(mp, 4), mean_max_activation=round(mm, 4),
                          examples=[_context_text(r)[0][-60:] for r in mrecs[:3]]))
        # a refined explanation states its levels on the unit's scale; other texts are scaled by the mode's typical strength
        strength = 1.0 if explain_refine.parse(expl.text) else (mm / unit_max if unit_max > 0 else 1.0)
        mode_expl.append((expl.text, strength))
    # union of the modes' simulations, each scaled by its typical strength
    held = list(holdout_top) + list(holdout_random)
    per_mode = [[np.asarray(p) * w for p in sim.many(t, [r.tokens for r in held])] for t, w in mode_expl]
    pred: list[float] = []
    true: list[float] = []
    for n, r in enumerate(held):
        sims = [pm[n] for pm in per_mode]
        u = np.max(np.stack(sims), axis=0) if sims else np.zeros(len(r.tokens))
        pred.extend(u[1:].tolist())
        true.extend(r.activations[1:])
    union = pearson(pred, true)
    return ModesResult(k=len(modes), method=used, silhouette=round(sil, 4), modes=modes, single_pearson=round(single_pearson, 4),
                       union_pearson=round(union, 4), modes_beat_single=bool(union > single_pearson + 0.01))
