"""Neuron pages and the reverse question "which neurons fire on this token?".

:func:`explain_neuron` reads an MLP neuron's records from the activation store (the model
is not re-run), explains, simulates and scores it (:func:`gnothi.tools.explain.explain_unit`),
and adds what only a neuron has: the output tokens it promotes and suppresses, read from
its output weights through the final norm and the unembedding.

:func:`top_neurons_for_token` runs the model once on a text and ranks the neurons at one
token, by activation relative to each neuron's max over the store's corpus when a store
exists (so a neuron at 90% of its usual peak ranks above a loud neuron at 10%), else by
raw activation.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence, cast

import torch
from pydantic import BaseModel, Field

from .errors import InputError, StoreError, check_range
from .explain import UnitReport, token_key
from .explain_bulk import cached_explain_unit
from .store import ActivationStore, open_store
from . import tokens as tok_text
from .units import parse_layers


class OutputToken(BaseModel):
    token: str
    logit: float  # direct effect on the logit, per unit of activation, through final norm + unembedding


class NeuronReport(UnitReport):
    promoted: list[OutputToken] = Field(default_factory=list)
    suppressed: list[OutputToken] = Field(default_factory=list)

    def to_tool_result(self, handle=None):
        from .results import Figure

        ev = [{"kind": "output_tokens", "promoted": [t.model_dump() for t in self.promoted],
               "suppressed": [t.model_dump() for t in self.suppressed]}]
        tr = super().to_tool_result(tool="neuron", handle=handle, extra_evidence=ev)
        if self.promoted:
            toks = self.promoted[:8] + list(reversed(self.suppressed[:8]))
            tr.figures.append(Figure(kind="bar", title=f"{self.label}: output tokens it promotes / suppresses",
                                     data={"labels": [t.token for t in toks], "values": [t.logit for t in toks], "ylabel": "logit per unit activation"},
                                     caption="Output weights through the final norm and unembedding (direct effect only)."))
            tr.headline["promotes"] = [t.token for t in self.promoted[:5]]
            tr.headline["suppresses"] = [t.token for t in self.suppressed[:5]]
            tr.summary += f" Promotes {', '.join(repr(t.token) for t in self.promoted[:3])}; suppresses {', '.join(repr(t.token) for t in self.suppressed[:3])}."
        return tr


@torch.inference_mode()
def output_tokens(handle, layer: int, neuron: int, k: int = 10) -> tuple[list[OutputToken], list[OutputToken]]:
    """Tokens whose logits the neuron's output weights raise most / lower most (direct path)."""
    handle.check_neuron(layer, neuron)
    with handle.lock:
        w = handle.neuron_directions(layer)[neuron].detach().float()  # [d_model]
        # the final norm's scale depends on the whole residual; its per-dimension weights don't
        v = handle.final_norm(w.reshape(1, 1, -1).to(handle.dtype))
        logits = handle.unembed(v).reshape(-1).float()
    logits = logits * (w.norm() / v.float().norm().clamp(min=1e-12))  # back to per-unit-activation scale
    top = torch.topk(logits, k)
    bot = torch.topk(-logits, k)
    dec = handle.tokenizer.decode
    return ([OutputToken(token=dec([int(i)]), logit=round(float(v), 4)) for v, i in zip(top.values, top.indices)],
            [OutputToken(token=dec([int(i)]), logit=round(-float(v), 4)) for v, i in zip(bot.values, bot.indices)])


def explain_neuron(
    handle,
    layer: int,
    neuron: int,
    llm: Callable[[str], str] | None = None,
    modes: bool = True,
    store: ActivationStore | None = None,
    simulator: str | Callable[[str], str] | None = None,
    mode_method: str = "auto",
    n_contexts: int = 10,
    cache: bool = True,
) -> NeuronReport:
    """The neuron page: top contexts, histogram, output tokens, explanation and its score.

    ``llm``: a callable ``llm(prompt) -> str`` used to explain and (unless ``simulator``
    says otherwise) to simulate; ``None`` runs everything offline. Raises
    :class:`StoreError` (with the build command and a time estimate) when there is no
    store, and :class:`OutOfRangeError` for a neuron outside the model. ``n_contexts``: how
    many top-activating contexts the page shows. ``cache``: read the unit back from the
    explanation cache when it was explained the same way before (an LLM client's answers are
    cached per unit; see :mod:`gnothi.tools.explain_bulk`).
    """
    handle.check_neuron(layer, neuron)
    t0 = time.perf_counter()
    store = store or open_store(handle, "mlp")
    rep = cached_explain_unit(store, layer, neuron, llm=llm, simulator=simulator, modes=modes, mode_method=mode_method,
                              n_contexts=n_contexts, cache=cache)
    t1 = time.perf_counter()
    promoted, suppressed = output_tokens(handle, layer, neuron)
    d = rep.model_dump()
    d["timings"] = {**rep.timings, "output_tokens_s": round(time.perf_counter() - t1, 4), "total_s": round(time.perf_counter() - t0, 4)}
    return NeuronReport(**d, promoted=promoted, suppressed=suppressed)


# =========================================================================== reverse lookup


class TokenNeuron(BaseModel):
    layer: int
    neuron: int
    activation: float
    max_activation: float | None = None  # over the store's corpus
    relative: float | None = None  # activation / max_activation
    top_tokens: list[str] = Field(default_factory=list)  # what it fires on most in the store


class TokenNeuronsResult(BaseModel):
    text: str
    token: str
    position: int
    tokens: list[str]  # a label per token (a split character shown whole: 東(1/3))
    layers: list[int]
    ranked_by: str  # relative | activation
    pieces: list[str] = Field(default_factory=list)  # per-token text that joins to the text (for the highlighted span)
    neurons: list[TokenNeuron]
    store: str | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)

    def to_tool_result(self, handle=None):
        from .results import Figure, TokenSpan, ToolResult, provenance

        if self.neurons:
            n0 = self.neurons[0]
            how = (f"at {n0.relative:.0%} of its max over the corpus" if n0.relative is not None else f"activation {n0.activation:.3g}")
            summary = (f"On {self.token!r} (position {self.position}), neuron {n0.layer}.{n0.neuron} fires most ({how}); "
                       f"{len(self.neurons)} neurons listed, ranked by {self.ranked_by}.")
        else:
            summary = f"No neuron fires above 0 on {self.token!r}."
        shown = self.pieces or self.tokens
        spans = [TokenSpan(tokens=shown, values=[1.0 if i == self.position else 0.0 for i in range(len(shown))], note="the token asked about")]
        fig = Figure(kind="bar", title=f"Neurons firing on {self.token!r}",
                     data={"labels": [f"{n.layer}.{n.neuron}" for n in self.neurons],
                           "values": [n.relative if self.ranked_by == "relative" else n.activation for n in self.neurons],
                           "ylabel": "activation / max" if self.ranked_by == "relative" else "activation"})
        return ToolResult(tool="top_neurons_for_token", summary=summary,
                          headline={"top": [f"{n.layer}.{n.neuron}" for n in self.neurons[:5]], "position": self.position, "ranked_by": self.ranked_by},
                          evidence=[{"kind": "neuron", **n.model_dump()} for n in self.neurons], spans=spans, figures=[fig],
                          provenance=provenance(handle, layers=self.layers, store=self.store), timings=self.timings, warnings=self.warnings,
                          data=self.model_dump(mode="json"))


@torch.inference_mode()
def top_neurons_for_token(
    handle,
    text: str,
    token: str | int,
    layer: int | Sequence[int] | str | None = None,
    k: int = 10,
    rank_by: str = "auto",
    store: ActivationStore | None = None,
) -> TokenNeuronsResult:
    """Which MLP neurons fire most on ``token`` (a token string or a position) in ``text``.

    ``layer``: one layer, a list, ``"0-5"``, or None for all. ``rank_by``: ``"relative"``
    (activation / the neuron's max over the store's corpus; needs a store), ``"activation"``,
    or ``"auto"`` (relative when a store covers the layers).
    """
    t0 = time.perf_counter()
    if not isinstance(text, str) or not text.strip():
        raise InputError("No text given.", "Give the text the token appears in.")
    if not isinstance(k, int) or k < 1 or k > 1000:
        raise InputError(f"k must be between 1 and 1000, got {k!r}.", "Use e.g. k=10.")
    if rank_by not in ("auto", "relative", "activation"):
        raise InputError(f"Unknown rank_by {rank_by!r}.", "Use auto, relative or activation.")
    layers = [layer] if isinstance(layer, int) and not isinstance(layer, bool) else parse_layers(cast("str | Sequence[int] | None", layer), handle.n_layers)
    for l in layers:
        check_range("layer", l, handle.n_layers)
    toks = handle.to_tokens(text)
    str_toks = handle.str_tokens(toks[0])
    pieces = handle.token_pieces(toks[0])
    pos = tok_text.find(pieces, token, start=1)
    names = [handle.hook_name("mlp_post", l) for l in layers]
    _, cache = handle.run_with_cache(toks, names)
    acts = torch.stack([cache[n][0, pos].float().cpu() for n in names])  # [n_layers_sel, d_mlp]
    t_run = time.perf_counter()
    warnings: list[str] = []
    maxes = None
    st_path = None
    if rank_by != "activation":
        try:
            store = store or open_store(handle, "mlp")
            missing = [l for l in layers if l not in store.layers]
            if missing:
                raise StoreError(f"the store lacks layers {missing}", "")
            maxes = torch.stack([store.max_activations(l) for l in layers]).clamp(min=1e-6)
            st_path = str(store.path)
        except StoreError as e:
            if rank_by == "relative":
                raise
            warnings.append(f"Ranked by raw activation: no usable store ({e.message})")
            store = None
    score = acts / maxes if maxes is not None else acts
    flat = score.reshape(-1)
    kk = min(k, flat.numel())
    top = torch.topk(flat, kk)
    d = acts.shape[1]
    out = []
    for i in top.indices.tolist():
        li, n = divmod(i, d)
        l = layers[li]
        a = float(acts[li, n])
        if a <= 0:
            continue
        tn = TokenNeuron(layer=l, neuron=n, activation=round(a, 4))
        if maxes is not None:
            tn.max_activation = round(float(maxes[li, n]), 4)
            tn.relative = round(a / float(maxes[li, n]), 4)
            try:
                from collections import Counter

                c = Counter(token_key(r.tokens[r.argmax]) for r in cast(ActivationStore, store).top_records(l, n)[:12])  # store is set whenever maxes is
                tn.top_tokens = [t for t, _ in c.most_common(3)]
            except StoreError:
                pass
        out.append(tn)
    return TokenNeuronsResult(text=text, token=str_toks[pos], position=pos, tokens=str_toks, pieces=pieces, layers=layers,
                              ranked_by="relative" if maxes is not None else "activation", neurons=out, store=st_path,
                              timings={"run_s": round(t_run - t0, 4), "total_s": round(time.perf_counter() - t0, 4)}, warnings=warnings)
