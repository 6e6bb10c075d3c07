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
"""

from __future__ import annotations

import hashlib
import math
import re
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from pydantic import BaseModel, Field

from . import tokens as tok_text
from .embeddings import embed
from .files import atomic_write_bytes
from .errors import InputError, SAECorruptError, SAEError, SAENotFoundError, check_range
from .results import Figure, TokenSpan, ToolResult, provenance
from .sae import SAE, SAEUnits, estimate_seconds, human_seconds, resolve_sae, update_manifest

INDEX_FILE = "features.json"
EMB_FILE = "features_emb.npy"
DEFAULT_INDEX_TOKENS = 32768
INDEX_WINDOW = 64


# ============================================================================ the feature index


class FeatureInfo(BaseModel):
    id: int
    explanation: str
    score: float | None = None  # Pearson of simulated vs true activations on held-out records
    frequency: float = 0.0  # share of tokens where it fires
    max_activation: float = 0.0
    top_tokens: list[str] = Field(default_factory=list)


class FeatureIndex(BaseModel):
    sae: str
    units_id: str
    layer: int
    hook_name: str
    store_path: str
    n_tokens: int
    corpus: str
    explainer: str = "offline"
    simulator: str = "offline"
    features: list[FeatureInfo]
    seconds: float = 0.0
    built_at: str = ""

    def by_id(self) -> dict[int, FeatureInfo]:
        if not hasattr(self, "_by_id_cache"):
            object.__setattr__(self, "_by_id_cache", {f.id: f for f in self.features})
        return self._by_id_cache  # type: ignore[attr-defined]


class IndexReport(BaseModel):
    sae: str
    path: str
    layer: int
    n_features: int
    n_alive: int
    n_tokens: int
    mean_score: float | None
    median_score: float | None
    store_seconds: float
    explain_seconds: float
    tokens_per_second: float
    reused_store: bool

    def to_tool_result(self, handle=None) -> ToolResult:
        ms = f"{self.median_score:.2f}" if self.median_score is not None else "n/a"
        return ToolResult(
            tool="sae_index",
            summary=(f"Indexed {self.n_features} features of SAE {self.sae} on {self.n_tokens:,} tokens: {self.n_alive} fire at least once; "
                     f"median explanation score {ms} (Pearson, offline simulator, held-out records)."),
            headline={"n_features": self.n_features, "n_alive": self.n_alive, "median_score": self.median_score, "n_tokens": self.n_tokens},
            provenance=provenance(handle, sae=self.path, layer=self.layer),
            timings={"store_s": self.store_seconds, "explain_s": self.explain_seconds},
            data=self.model_dump(mode="json"),
        )


def estimate_index_seconds(handle, sae: SAE, n_tokens: int = DEFAULT_INDEX_TOKENS) -> float:
    """Rough wall time of :func:`index_features` here (model pass + explaining every feature)."""
    return estimate_seconds(handle.name, sae.layer or 0, n_tokens) + 0.03 * sae.d_sae


def index_command(sae: SAE) -> str:
    return f"gnothi sae index --sae {sae.name}"




def load_feature_index(sae: SAE) -> FeatureIndex | None:
    """The SAE's feature index, or ``None`` when there is none for these weights.

    A damaged index file raises :class:`SAECorruptError` (it is never silently used).
    """
    if sae.path is None:
        return None
    f = Path(sae.path) / INDEX_FILE
    if not f.exists():
        return None
    st = f.stat()
    key = (str(f), st.st_mtime_ns, st.st_size)
    hit = _INDEX_CACHE.get(str(f))
    if hit is not None and hit[0] == key:
        idx = hit[1]
    else:
        idx = _read_index(f, sae)
        _INDEX_CACHE[str(f)] = (key, idx)
    if idx.units_id != SAEUnits(sae).id:
        return None  # written for other weights (the SAE was retrained): stale
    if len(idx.features) != sae.d_sae or any(fi.id != i for i, fi in enumerate(idx.features)):
        raise SAECorruptError(
            f"The feature index of SAE {sae.name} does not list its {sae.d_sae} features in order.",
            f"Rebuild it: `{index_command(sae)} --force`.",
        )
    return idx


_INDEX_CACHE: dict[str, tuple[tuple, FeatureIndex]] = {}


def _read_index(f: Path, sae: SAE) -> FeatureIndex:
    try:
        return FeatureIndex.model_validate_json(f.read_text(encoding="utf-8"))
    except Exception:
        raise SAECorruptError(
            f"The feature index of SAE {sae.name} ({f}) is damaged.",
            f"Rebuild it: `{index_command(sae)} --force`.",
        ) from None


def require_index(handle, sae: SAE) -> FeatureIndex:
    idx = load_feature_index(sae)
    if idx is None:
        est = human_seconds(estimate_index_seconds(handle, sae))
        raise SAENotFoundError(
            f"The features of SAE {sae.name} have no explanations yet, so they cannot be searched by meaning.",
            f"Build the feature index once: `{index_command(sae)}` (about {est} here).",
        )
    return idx


def index_features(
    handle,
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
    from .explain import offline_explain, score_explanation
    from .store import ActivationStore, build_store

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


# ============================================================================ embeddings

_QUOTE_PCT = re.compile(r"\s*\(\d+(?:\.\d+)?%[^)]*\)")


def _search_text(f: FeatureInfo) -> str:
    """What gets embedded for a feature: its explanation without percentages and quotes."""
    t = _QUOTE_PCT.sub("", f.explanation)
    return t.replace('"', "").replace("“", "").replace("”", "").strip()


def _feature_embeddings(sae: SAE, idx: FeatureIndex) -> np.ndarray:
    texts = [_search_text(f) for f in idx.features]
    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    f = Path(sae.path) / EMB_FILE if sae.path else None
    mem = _EMB_CACHE.get(str(f))
    if mem is not None and mem[0] == key:
        return mem[1]
    if f is not None and f.exists():
        try:
            with open(f, "rb") as fh:
                stored_key = np.load(fh, allow_pickle=False)
                arr = np.load(fh, allow_pickle=False)
            if str(stored_key) == key and arr.shape[0] == len(texts):
                _EMB_CACHE[str(f)] = (key, arr)
                return arr
        except Exception:
            pass  # a damaged cache of embeddings is recomputed, it is derived data
    arr = embed(texts)
    if f is not None:
        import io

        buf = io.BytesIO()
        np.save(buf, np.array(key))
        np.save(buf, arr)
        atomic_write_bytes(f, buf.getvalue())
    _EMB_CACHE[str(f)] = (key, arr)
    return arr


_EMB_CACHE: dict[str, tuple[str, np.ndarray]] = {}


# ============================================================================ results


class FeatureHit(BaseModel):
    id: int
    activation: float  # at the focus token, or the max over the text
    position: int  # index into ``tokens`` (BOS excluded) where it is largest
    token: str
    values: list[float]  # per token of the text
    explanation: str | None = None
    score: float | None = None
    frequency: float | None = None


class FeaturesOnTextResult(BaseModel):
    sae: str
    layer: int
    hook_name: str
    text: str
    tokens: list[str]
    focus: int | None  # token index asked about, or None for the whole text
    features: list[FeatureHit]
    mean_active_per_token: float
    explained_variance: float  # of this text's activations by the SAE
    indexed: bool
    warnings: list[str] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)

    def to_tool_result(self, handle=None) -> ToolResult:
        where = f"on {self.tokens[self.focus]!r} (token {self.focus})" if self.focus is not None else "on this text"
        if self.features:
            f0 = self.features[0]
            ex = f": {f0.explanation}" if f0.explanation else ""
            summary = (f"{len(self.features)} SAE features fire {where}; the strongest is feature {f0.id} "
                       f"(activation {f0.activation:.3g} at {f0.token!r}){ex}")
        else:
            summary = f"No SAE feature fires {where}."
        figs = []
        if self.features:
            figs.append(Figure(kind="bar", title=f"Top SAE features {where} (layer {self.layer})",
                               data={"labels": [f"#{f.id}" for f in self.features], "values": [f.activation for f in self.features],
                                     "xlabel": "feature", "ylabel": "activation"}))
            figs.append(Figure(kind="tokens", title="Where the top features fire",
                               data={"rows": [{"tokens": self.tokens, "values": f.values} for f in self.features[:5]]},
                               caption="One row per feature (top 5), colour = activation."))
        return ToolResult(
            tool="sae_features_on_text",
            summary=summary,
            headline={"top_feature": self.features[0].id if self.features else None,
                      "top_activation": self.features[0].activation if self.features else 0.0,
                      "n_features": len(self.features), "mean_active_per_token": self.mean_active_per_token,
                      "explained_variance": self.explained_variance},
            evidence=[{"id": f.id, "activation": f.activation, "token": f.token, "position": f.position,
                       "explanation": f.explanation, "score": f.score, "frequency": f.frequency} for f in self.features],
            spans=[TokenSpan(tokens=self.tokens, values=f.values, note=f"feature {f.id}") for f in self.features[:5]],
            figures=figs,
            provenance=provenance(handle, sae=self.sae, hook_point=self.hook_name, layer=self.layer),
            timings=self.timings,
            warnings=self.warnings,
            data=self.model_dump(mode="json"),
        )


class SearchHit(BaseModel):
    id: int
    explanation: str
    similarity: float
    score: float | None = None
    frequency: float = 0.0
    max_activation: float = 0.0
    top_tokens: list[str] = Field(default_factory=list)


class FeatureSearchResult(BaseModel):
    query: str
    sae: str
    layer: int
    features: list[SearchHit]
    n_searched: int  # features with an explanation (dead ones left out)
    method: str = "all-MiniLM-L6-v2 cosine similarity between the query and each feature's explanation"
    warnings: list[str] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)

    def to_tool_result(self, handle=None) -> ToolResult:
        if self.features:
            f0 = self.features[0]
            summary = (f"Best match for {self.query!r} among {self.n_searched} features of SAE {self.sae}: feature {f0.id} "
                       f"(similarity {f0.similarity:.2f}): {f0.explanation}")
        else:
            summary = f"No feature of SAE {self.sae} has an explanation to match {self.query!r}."
        return ToolResult(
            tool="sae_search",
            summary=summary,
            headline={"top_feature": self.features[0].id if self.features else None,
                      "top_similarity": self.features[0].similarity if self.features else None, "n_searched": self.n_searched},
            evidence=[h.model_dump() for h in self.features],
            figures=[Figure(kind="bar", title=f"Features matching {self.query!r}",
                            data={"labels": [f"#{h.id}" for h in self.features], "values": [h.similarity for h in self.features],
                                  "xlabel": "feature", "ylabel": "cosine similarity"})] if self.features else [],
            provenance=provenance(handle, sae=self.sae, layer=self.layer, method=self.method),
            timings=self.timings,
            warnings=self.warnings,
            data=self.model_dump(mode="json"),
        )


class ContrastHit(BaseModel):
    id: int
    mean_a: float
    mean_b: float
    frac_a: float  # share of set-A texts where it fires
    frac_b: float
    effect: float  # (mean_a - mean_b) / pooled std
    auroc: float  # P(a random A text scores above a random B text) on this feature
    explanation: str | None = None


class ContrastResult(BaseModel):
    sae: str
    layer: int
    n_a: int
    n_b: int
    reduce: str  # max | mean over each text's tokens
    label_a: str
    label_b: str
    features_a: list[ContrastHit]  # fire more on A
    features_b: list[ContrastHit]  # fire more on B
    split_half_auroc: float | None  # best feature chosen on even texts, AUROC on odd texts
    split_half_feature: int | None
    warnings: list[str] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)

    def to_tool_result(self, handle=None) -> ToolResult:
        parts = []
        if self.features_a:
            h = self.features_a[0]
            parts.append(f"feature {h.id} fires more on {self.label_a} (AUROC {h.auroc:.2f}, effect {h.effect:.2f}, "
                         f"fires on {h.frac_a:.0%} vs {h.frac_b:.0%} of texts)")
        if self.features_b:
            h = self.features_b[0]
            parts.append(f"feature {h.id} fires more on {self.label_b} (AUROC {1 - h.auroc:.2f}, effect {-h.effect:.2f})")
        summary = f"{self.label_a} ({self.n_a} texts) vs {self.label_b} ({self.n_b}): " + ("; ".join(parts) or "no feature separates them") + "."
        if self.split_half_auroc is not None:
            summary += f" Held-out check: the best feature picked on half the texts reaches AUROC {self.split_half_auroc:.2f} on the other half."
        hits = self.features_a[:8] + self.features_b[:8]
        figs = [Figure(kind="bar", title=f"Features separating {self.label_a} from {self.label_b}",
                       data={"labels": [f"#{h.id}" for h in hits], "values": [h.effect for h in hits],
                             "xlabel": "feature", "ylabel": f"effect size ({self.label_a} - {self.label_b})"})] if hits else []
        return ToolResult(
            tool="sae_contrast",
            summary=summary,
            headline={"top_feature_a": self.features_a[0].id if self.features_a else None,
                      "top_auroc_a": self.features_a[0].auroc if self.features_a else None,
                      "top_feature_b": self.features_b[0].id if self.features_b else None,
                      "split_half_auroc": self.split_half_auroc},
            evidence=[{"set": self.label_a, **h.model_dump()} for h in self.features_a] + [{"set": self.label_b, **h.model_dump()} for h in self.features_b],
            figures=figs,
            provenance=provenance(handle, sae=self.sae, layer=self.layer, reduce=self.reduce),
            timings=self.timings,
            warnings=self.warnings,
            data=self.model_dump(mode="json"),
        )


# ============================================================================ running the SAE on texts


def _encode_texts(handle, sae: SAE, texts: Sequence[str], batch: int = 8) -> list[tuple[list[int], torch.Tensor, torch.Tensor]]:
    """Per text: (token ids without BOS, activations x [n, d_in], feature acts [n, d_sae]); BOS dropped."""
    hook = str(sae.hook_name)
    out = []
    bos = 1 if handle.bos_token_id is not None else 0
    for i in range(0, len(texts), batch):
        chunk = list(texts[i : i + batch])
        toks = handle.to_tokens(chunk)
        lens = [len(handle.tokenizer(t, add_special_tokens=False)["input_ids"]) + bos for t in chunk]
        _, cache = handle.run_with_cache(toks, [hook])
        acts = cache[hook].float()
        with torch.no_grad():
            for j, L in enumerate(lens):
                x = acts[j, bos:L]
                if x.dim() == 3:
                    x = x.flatten(-2)
                out.append((toks[j, bos:L].tolist(), x, sae.encode(x)))
    return out


def _check_text(text, what="text") -> str:
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"No {what} given (empty string).", f"Pass a non-empty {what}.")
    return text


def features_on_text(handle, text: str, sae: SAE | str | None = None, token: int | str | None = None, k: int = 10,
                     layer: int | None = None) -> FeaturesOnTextResult:
    """The ``k`` features that fire most on ``text`` (or on one ``token`` of it).

    ``token``: a position in the text's tokens (0 = first token after BOS; negative counts
    from the end) or a token's text (first match). Activations come from one run of the
    model on ``text``, stopped after the SAE's layer. Explanations are attached when the
    feature index exists.
    """
    t0 = time.perf_counter()
    _check_text(text)
    if not isinstance(k, int) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}.", "Use e.g. k=10.")
    sae = resolve_sae(handle, sae, layer=layer)
    (ids, x, f), = _encode_texts(handle, sae, [text])
    if not ids:
        raise InputError("The text has no tokens after BOS.", "Give a longer text.")
    tokens = tok_text.pieces(handle.tokenizer, ids)
    focus = tok_text.find(tokens, token) if token is not None else None
    score_vec = f[focus] if focus is not None else f.max(0).values
    kk = min(k, int((score_vec > 0).sum()))
    top = torch.topk(score_vec, kk).indices.tolist() if kk > 0 else []
    warnings: list[str] = []
    idx = None
    try:
        idx = load_feature_index(sae)
    except SAECorruptError as e:
        warnings.append(e.message + " " + e.fix)
    if idx is None and not warnings:
        warnings.append(f"No feature explanations yet: run `{index_command(sae)}` "
                        f"(about {human_seconds(estimate_index_seconds(handle, sae))}) to add them.")
    by_id = idx.by_id() if idx else {}
    hits = []
    for u in top:
        col = f[:, u]
        pos = focus if focus is not None else int(col.argmax())
        info = by_id.get(u)
        hits.append(FeatureHit(id=u, activation=round(float(score_vec[u]), 4), position=pos, token=tokens[tok_text.completing(tokens, pos)],
                               values=[round(float(v), 4) for v in col], explanation=info.explanation if info else None,
                               score=info.score if info else None, frequency=info.frequency if info else None))
    with torch.no_grad():
        rec = sae.decode(f)
        denom = float((x - x.mean(0)).pow(2).sum())
        ev = 1.0 - float((x - rec).pow(2).sum()) / denom if denom > 0 and len(x) > 1 else float("nan")
    return FeaturesOnTextResult(
        sae=sae.name, layer=int(sae.layer or 0), hook_name=str(sae.hook_name), text=text, tokens=tokens, focus=focus,
        features=hits, mean_active_per_token=round(float((f > 0).sum(-1).float().mean()), 3),
        explained_variance=round(ev, 4) if math.isfinite(ev) else 0.0, indexed=idx is not None, warnings=warnings,
        timings={"total_s": round(time.perf_counter() - t0, 4)},
    )


def search_features(handle, query: str, sae: SAE | str | None = None, k: int = 10, min_score: float | None = None,
                    layer: int | None = None) -> FeatureSearchResult:
    """Features whose explanation is closest in meaning to ``query`` (MiniLM cosine).

    Needs the feature index (:func:`index_features`); raises :class:`SAENotFoundError`
    with the command and a time estimate when it is missing. ``min_score`` drops
    features whose explanation scored below it.
    """
    t0 = time.perf_counter()
    _check_text(query, "query")
    if not isinstance(k, int) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}.", "Use e.g. k=10.")
    sae = resolve_sae(handle, sae, layer=layer)
    idx = require_index(handle, sae)
    emb = _feature_embeddings(sae, idx)
    t_emb = time.perf_counter()
    q = embed([query])[0]
    sims = emb @ q
    alive = np.array([fi.max_activation > 0 and (min_score is None or (fi.score is not None and fi.score >= min_score))
                      for fi in idx.features])
    sims = np.where(alive, sims, -np.inf)
    order = np.argsort(-sims)[: min(k, int(alive.sum()))]
    hits = [SearchHit(id=int(i), explanation=idx.features[i].explanation, similarity=round(float(sims[i]), 4),
                      score=idx.features[i].score, frequency=idx.features[i].frequency,
                      max_activation=idx.features[i].max_activation, top_tokens=idx.features[i].top_tokens) for i in order]
    warnings = []
    if hits and hits[0].similarity < 0.3:
        warnings.append(f"The best match is weak (similarity {hits[0].similarity:.2f}): no feature's explanation is close to the query.")
    return FeatureSearchResult(query=query, sae=sae.name, layer=idx.layer, features=hits, n_searched=int(alive.sum()),
                               warnings=warnings, timings={"embed_features_s": round(t_emb - t0, 4), "total_s": round(time.perf_counter() - t0, 4)})


def _auroc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per column: P(a > b) + 0.5 P(a == b) for a [na, d], b [nb, d]."""
    gt = (a[:, None, :] > b[None, :, :]).mean((0, 1))
    eq = (a[:, None, :] == b[None, :, :]).mean((0, 1))
    return gt + 0.5 * eq


def _effects(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ma, mb = a.mean(0), b.mean(0)
    va = a.var(0, ddof=1) if len(a) > 1 else np.zeros_like(ma)
    vb = b.var(0, ddof=1) if len(b) > 1 else np.zeros_like(mb)
    pooled = np.sqrt((va + vb) / 2)
    floor = 0.05 * np.maximum(np.abs(ma), np.abs(mb)) + 1e-6
    return (ma - mb) / np.maximum(pooled, floor)


def contrast_features(
    handle,
    texts_a: Sequence[str],
    texts_b: Sequence[str],
    sae: SAE | str | None = None,
    k: int = 10,
    reduce: str = "max",
    label_a: str = "set A",
    label_b: str = "set B",
    layer: int | None = None,
) -> ContrastResult:
    """Features that separate ``texts_a`` from ``texts_b``.

    Each text becomes one number per feature (its ``max`` or ``mean`` activation over the
    text's tokens). Features are ranked by effect size (difference of means over the
    pooled standard deviation, floored at 5% of the larger mean, so a feature that fires
    steadily in one set and never in the other gets an effect of 20) and reported with
    AUROC and how often they fire in each set. With at least 4 texts per set, the best feature is also chosen on the even texts
    and its AUROC measured on the odd ones (``split_half_auroc``), a guard against
    features that only separate these particular texts.
    """
    t0 = time.perf_counter()
    for name, ts in (("texts_a", texts_a), ("texts_b", texts_b)):
        if isinstance(ts, str) or not ts or any(not isinstance(t, str) or not t.strip() for t in ts):
            raise InputError(f"{name} must be a non-empty list of non-empty texts.", "Give at least one text per set (5 or more is better).")
    if reduce not in ("max", "mean"):
        raise InputError(f"reduce must be 'max' or 'mean', got {reduce!r}.", "Use reduce='max' (default) or 'mean'.")
    if not isinstance(k, int) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}.", "Use e.g. k=10.")
    sae = resolve_sae(handle, sae, layer=layer)

    def per_text(texts):
        rows = []
        for _, _, f in _encode_texts(handle, sae, list(texts)):
            rows.append((f.max(0).values if reduce == "max" else f.mean(0)).float().cpu().numpy())
        return np.stack(rows).astype(np.float64)

    A, B = per_text(texts_a), per_text(texts_b)
    eff = _effects(A, B)
    au = _auroc(A, B)
    fired = (A > 0).any(0) | (B > 0).any(0)
    eff = np.where(fired, eff, 0.0)
    idx = None
    warnings = []
    try:
        idx = load_feature_index(sae)
    except SAECorruptError as e:
        warnings.append(e.message)
    by_id = idx.by_id() if idx else {}

    def hit(u: int) -> ContrastHit:
        info = by_id.get(u)
        return ContrastHit(id=u, mean_a=round(float(A[:, u].mean()), 4), mean_b=round(float(B[:, u].mean()), 4),
                           frac_a=round(float((A[:, u] > 0).mean()), 4), frac_b=round(float((B[:, u] > 0).mean()), 4),
                           effect=round(float(eff[u]), 4), auroc=round(float(au[u]), 4), explanation=info.explanation if info else None)

    order = np.argsort(-eff)
    fa = [hit(int(u)) for u in order[:k] if eff[u] > 0]
    fb = [hit(int(u)) for u in order[::-1][:k] if eff[u] < 0]
    sh = shf = None
    if len(A) >= 4 and len(B) >= 4:
        e_even = np.where(fired, _effects(A[0::2], B[0::2]), 0.0)
        best = int(np.argmax(np.abs(e_even)))
        a_odd = _auroc(A[1::2, best : best + 1], B[1::2, best : best + 1])[0]
        sh = round(float(a_odd if e_even[best] >= 0 else 1 - a_odd), 4)
        shf = best
    else:
        warnings.append("Fewer than 4 texts per set: no held-out check; features may only separate these particular texts.")
    return ContrastResult(sae=sae.name, layer=int(sae.layer or 0), n_a=len(A), n_b=len(B), reduce=reduce, label_a=label_a, label_b=label_b,
                          features_a=fa, features_b=fb, split_half_auroc=sh, split_half_feature=shf, warnings=warnings,
                          timings={"total_s": round(time.perf_counter() - t0, 4)})


# ============================================================================ feature pages


class FeaturePage(BaseModel):
    """A feature's page: the store's explain-simulate-score report plus its output effects."""

    sae: str
    feature: int
    report: Any  # gnothi.tools.explain.UnitReport
    promotes: list[tuple[str, float]]  # tokens its decoder direction raises most (direction @ W_U)
    suppresses: list[tuple[str, float]]

    def to_tool_result(self, handle=None) -> ToolResult:
        extra = [{"kind": "output_tokens", "promotes": self.promotes, "suppresses": self.suppresses,
                  "note": "decoder direction through the unembedding (direct effect on logits)"}]
        tr = self.report.to_tool_result(tool="sae_feature", handle=handle, extra_evidence=extra)
        tr.summary = f"SAE {self.sae}, " + tr.summary
        if self.promotes:
            tr.summary += " It promotes " + ", ".join(repr(t) for t, _ in self.promotes[:5]) + "."
        tr.headline["promotes"] = [t for t, _ in self.promotes[:5]]
        tr.headline["suppresses"] = [t for t, _ in self.suppresses[:5]]
        tr.data = {"sae": self.sae, "feature": self.feature, "promotes": self.promotes, "suppresses": self.suppresses,
                   "report": self.report.model_dump(mode="json")}
        return tr


def output_tokens(handle, sae: SAE, feature: int, n: int = 10) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """Tokens whose logits the feature's decoder direction raises / lowers most (direct path)."""
    from .sae import check_feature

    check_feature(sae, feature)
    if not (sae.hook_name or "").endswith(("hook_resid_post", "hook_resid_pre", "hook_resid_mid", "hook_mlp_out", "hook_attn_out")):
        return [], []
    with torch.no_grad():
        d = sae.W_dec[feature].detach().float().to(handle.W_U().device)
        logits = d @ handle.W_U().float()
        top = torch.topk(logits, n)
        bot = torch.topk(-logits, n)
    dec = handle.tokenizer.decode
    return ([(dec([int(i)]), round(float(v), 4)) for v, i in zip(top.values, top.indices)],
            [(dec([int(i)]), round(-float(v), 4)) for v, i in zip(bot.values, bot.indices)])


def feature_page(handle, feature: int, sae: SAE | str | None = None, explainer="offline", simulator="offline",
                 modes: bool = True, n_contexts: int = 10, layer: int | None = None) -> FeaturePage:
    """Explain, simulate and score one feature from the feature store (like a neuron page).

    Needs the feature store (built by :func:`index_features`); raises a store error with
    the command and a time estimate otherwise. The model is not re-run.
    """
    from .errors import StoreError
    from .explain import explain_unit
    from .store import open_store

    sae = resolve_sae(handle, sae, layer=layer)
    check_range("feature", feature, sae.d_sae)
    units = SAEUnits(sae, handle)
    try:
        store = open_store(handle, units.id)
    except StoreError as e:
        est = human_seconds(estimate_index_seconds(handle, sae))
        raise SAENotFoundError(
            f"SAE {sae.name} has no feature store yet ({e.message})",
            f"Build it once: `{index_command(sae)}` (about {est} here).",
        ) from None
    report = explain_unit(store, units.layers[0], feature, explainer=explainer, simulator=simulator, modes=modes, n_contexts=n_contexts)
    pro, sup = output_tokens(handle, sae, feature)
    return FeaturePage(sae=sae.name, feature=feature, report=report, promotes=pro, suppresses=sup)


def explain_feature(handle, feature: int, sae: SAE | str | None = None, layer: int | None = None, llm=None, k: int = 10,
                    modes: bool = True) -> FeaturePage:
    """:func:`feature_page` with the assistant's arguments: ``llm`` (a callable) explains and
    simulates when given, else the offline explainer and simulator; ``k`` top contexts."""
    return feature_page(handle, feature, sae, explainer=llm or "offline", simulator=llm or "offline", modes=modes,
                        n_contexts=k, layer=layer)
