"""Steering: add a direction to the residual stream while the model writes, and measure what it does and costs.

A direction at one layer comes from one of four sources:

* ``concept``: contrastive activation addition (Turner et al. 2023, arXiv:2308.10248; Rimsky
  et al. 2023, arXiv:2312.06681): the mean residual stream on prompts about the concept minus
  the mean on the same prompts about neutral things;
* ``neuron``: an MLP neuron's output weights (strength 5 = the neuron firing 5 higher);
* ``feature``: an SAE feature's decoder row (strength = the feature's activation);
* ``probe``: a saved probe's direction (unit length; strength in residual-stream units).

``strength x direction`` is added at every position after the layer (``resid_post``), for the
prompt and for every token the model writes, by a hook that lives only for the call: the
model is never changed for anyone else or for a later turn.

For a sweep of strengths, on the same prompts with greedy decoding:

* **effect**: the probability the steered model gives to the concept's words at each step of
  its own continuation (mean), and the share of continuations that mention one;
* **cost**: how much the loss (nats/token) on held-out corpus text rises under the same
  steering;
* **controls**: a random direction of the same norm at the same strengths, and a prompting
  baseline (the instruction "Talk about X." before each prompt, no steering; its cost is the
  loss rise of corpus text after that instruction).

The best trade-off is the strength with the highest effect whose cost stays under
``max_cost`` and whose effect beats the random direction's at the same strength.
"""

from __future__ import annotations

import re
import time
from typing import Literal, Sequence

import numpy as np
import torch
from pydantic import BaseModel, Field

from . import tokens as tok_text
from .embeddings import embed
from .errors import InputError, check_range
from .results import Figure, ToolResult, provenance

Source = Literal["concept", "neuron", "feature", "probe"]

PROMPTS = ["My favourite food is", "Yesterday I went to", "The best thing about summer is", "I think that",
           "Here is a short story:", "The weather today is"]
# contrastive prompt templates: filled with the concept, and with neutral words for the other side
CONTRAST = ["I love {x}.", "Let me tell you about {x}.", "{X} is all I can think about.", "This is a story about {x}.",
            "Everyone was talking about {x}.", "My favourite topic is {x}.", "{X} is wonderful.", "We spent the day discussing {x}."]
NEUTRAL = ["things", "the day", "something", "it", "stuff", "this", "everything", "nothing in particular"]
RELATIVE_SWEEP = (0.125, 0.25, 0.5, 1.0)  # default strengths: added norm as a multiple of the layer's mean residual norm
MAX_COST = 0.5  # nats/token of corpus-loss rise a useful strength may cost
_FUNCTION_WORDS = {"the", "a", "an", "of", "and", "or", "to", "in", "on", "about", "with", "more", "less"}


class Generation(BaseModel):
    prompt: str
    text: str
    mentions: bool


class SweepPoint(BaseModel):
    strength: float
    relative_norm: float  # added norm / the layer's mean residual norm
    relevance: float  # mean MiniLM similarity of the continuations to the concept
    word_prob: float  # mean probability of the concept's words along the continuation
    mention_rate: float
    cost: float  # corpus-loss rise, nats/token
    random_relevance: float
    random_word_prob: float
    random_cost: float
    generations: list[Generation]


class SteeringReport(BaseModel):
    model: str
    source: str
    description: str  # "the concept 'France' (contrastive activation addition)"
    layer: int
    topic: str  # what relevance is measured against
    concept_words: list[str]
    direction_norm: float
    resid_norm: float
    base_relevance: float
    base_word_prob: float
    base_mention_rate: float
    base_loss: float
    base_generations: list[Generation]
    prompting_instruction: str | None = None
    prompting_relevance: float | None = None
    prompting_word_prob: float | None = None
    prompting_cost: float | None = None
    sweep: list[SweepPoint]
    best_strength: float | None = None
    goal: str = "towards"  # "away" when every strength is negative: the concept should come up less
    asked_strength: float | None = None  # the strength the user named (shown side by side whatever the best is)
    max_cost: float = MAX_COST
    n_new_tokens: int = 0
    timings: dict[str, float] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)

    def best(self) -> SweepPoint | None:
        return next((p for p in self.sweep if p.strength == self.best_strength), None)

    def figures(self) -> list[Figure]:
        x = [round(p.strength, 3) for p in self.sweep]
        flat = lambda v: [v] * len(x)  # noqa: E731
        return [
            Figure(kind="line", title=f"Steering effect: how much the continuations are about {self.topic}",
                   data={"x": x, "series": {"steered": [p.relevance for p in self.sweep], "random direction, same norm": [p.random_relevance for p in self.sweep],
                                            "no steering": flat(self.base_relevance),
                                            **({"prompting baseline": flat(self.prompting_relevance)} if self.prompting_relevance is not None else {})},
                         "xlabel": "strength", "ylabel": "similarity to the concept (MiniLM cosine)"}),
            Figure(kind="line", title="Cost: rise of the loss on held-out corpus text",
                   data={"x": x, "series": {"steered": [p.cost for p in self.sweep], "random direction, same norm": [p.random_cost for p in self.sweep]},
                         "xlabel": "strength", "ylabel": "loss rise (nats/token)"}),
        ]

    def to_tool_result(self) -> ToolResult:
        b = self.best()
        if b is not None:
            s = (f"Steering with {self.description} at layer {self.layer}: at strength {b.strength:g} the continuations' similarity to "
                 f"{self.topic!r} is {b.relevance:.2f} (no steering {self.base_relevance:.2f}, a random direction of the same norm "
                 f"{b.random_relevance:.2f}) for a loss rise of {b.cost:.2f} nats/token.")
        else:
            s = (f"Steering with {self.description} at layer {self.layer}: no strength tried made the continuations "
                 f"{'less' if self.goal == 'away' else 'more'} about {self.topic!r} than both no steering and a random direction did, "
                 f"within a loss rise of {self.max_cost} nats/token.")
        if self.prompting_relevance is not None:
            s += f" Prompting instead ({self.prompting_instruction!r}) gives {self.prompting_relevance:.2f}."
        return ToolResult(
            tool="steering",
            summary=s,
            headline={"best_strength": self.best_strength, "relevance": b.relevance if b else None, "random_relevance": b.random_relevance if b else None,
                      "base_relevance": self.base_relevance, "prompting_relevance": self.prompting_relevance, "cost": b.cost if b else None},
            evidence=[{"strength": p.strength, "relative_norm": p.relative_norm, "relevance": p.relevance, "word_prob": p.word_prob,
                       "mention_rate": p.mention_rate, "cost": p.cost, "random_relevance": p.random_relevance, "random_cost": p.random_cost}
                      for p in self.sweep],
            figures=self.figures(),
            provenance=provenance(None, model=self.model, layer=self.layer, source=self.source),
            timings=self.timings,
            warnings=self.notes,
            data=self.model_dump(mode="json"),
        )


# ------------------------------------------------------------------------------ directions

def _hook(handle, layer: int) -> str:
    return handle.hook_name("resid_post", layer)


def _mean_resid(handle, texts: Sequence[str], layer: int) -> torch.Tensor:
    """Mean residual stream after ``layer`` over the texts' tokens (BOS excluded)."""
    name = _hook(handle, layer)
    out = []
    for t in texts:
        toks = handle.to_tokens(t)
        _, cache = handle.run_with_cache(toks, [name])
        out.append(cache[name][0, 1:].float().mean(0))
    return torch.stack(out).mean(0)


def concept_vector(handle, concept: str, layer: int, positive: Sequence[str] | None = None, negative: Sequence[str] | None = None) -> torch.Tensor:
    """Contrastive activation addition: mean residual on prompts about ``concept`` minus on neutral ones."""
    if positive is None:
        positive = [t.format(x=concept, X=concept[:1].upper() + concept[1:]) for t in CONTRAST]
    if negative is None:
        negative = [t.format(x=n, X=n[:1].upper() + n[1:]) for t, n in zip(CONTRAST, NEUTRAL)]
    if not positive or not negative:
        raise InputError("Contrastive steering needs prompts on both sides.", "Give a concept, or both sets of prompts.")
    return _mean_resid(handle, positive, layer) - _mean_resid(handle, negative, layer)


def default_layer(handle) -> int:
    """Where concept steering works best on the bundled model (an early layer, as in ActAdd): a sixth of the way in."""
    return max(1, handle.n_layers // 6) if handle.n_layers > 1 else 0


def direction_for(handle, source: str, layer: int | None = None, concept: str | None = None, neuron: int | None = None,
                  feature: int | None = None, probe: str | None = None, positive=None, negative=None) -> tuple[torch.Tensor, int, str]:
    """``(vector [d_model], layer, description)`` for a steering source."""
    if source == "concept":
        if not concept and not positive:
            raise InputError("No concept to steer towards.", "Name one, e.g. --concept France.")
        layer = default_layer(handle) if layer is None else layer
        check_range("layer", layer, handle.n_layers)
        v = concept_vector(handle, concept or "", layer, positive, negative)
        what = f"the concept {concept!r} (contrastive activation addition)" if concept else "the contrast of your two prompt sets"
        return v, layer, what
    if source == "neuron":
        if layer is None or neuron is None:
            raise InputError("Steering by a neuron needs its layer and index.", "Write it as layer.neuron, e.g. --neuron 12.400.")
        handle.check_neuron(layer, neuron)
        return handle.neuron_directions(layer)[neuron].detach().float(), layer, f"neuron {layer}.{neuron}'s output weights"
    if source == "feature":
        if feature is None:
            raise InputError("No SAE feature given.", "Give --feature N (see `gnothi sae search`).")
        from .sae import resolve_sae

        sae = resolve_sae(handle, None, layer)
        if sae.layer is None or not (sae.hook_name or "").endswith("hook_resid_post"):
            raise InputError(f"The SAE {sae.name} does not read the residual stream after a layer.", "Train one on resid_post: gnothi sae train --layer L.")
        return sae.decoder_direction(feature), sae.layer, f"SAE feature {feature} of layer {sae.layer}"
    if source == "probe":
        if not probe:
            raise InputError("No probe named.", "Give the dataset of a saved probe, e.g. --probe sentiment.")
        from .probing import load_probe

        sp = load_probe(handle.name, probe)
        layer = sp.best_layer if layer is None else layer
        return torch.from_numpy(sp.direction(layer)), layer, f"the {probe} probe's direction (towards {sp.label_names[-1]!r})"
    raise InputError(f"Unknown steering source {source!r}.", "Use concept, neuron, feature or probe.")


def promoted_words(handle, v: torch.Tensor, k: int = 8) -> list[str]:
    """The words a direction promotes most directly (its logit-lens reading), for measuring its effect."""
    logits = handle.unembed(handle.final_norm(v.to(handle.device).reshape(1, 1, -1)))[0, 0].float()
    out: list[str] = []
    for i in logits.topk(k * 4).indices.tolist():
        raw = tok_text.label(handle.tokenizer, i)
        w = raw.strip()
        if raw.startswith(" ") and len(w) >= 3 and re.match(r"^[A-Za-z][a-z'-]*$", w) and w.lower() not in {x.lower() for x in out}:
            out.append(w)
        if len(out) >= k:
            break
    return out


def _word_ids(handle, words: Sequence[str]) -> list[int]:
    ids = set()
    for w in words:
        for v in {w, w.lower(), w[:1].upper() + w[1:]}:
            for form in (" " + v, v):
                t = handle.tokenizer(form, add_special_tokens=False)["input_ids"]
                if t:
                    ids.add(t[0])
    return sorted(ids)


# ------------------------------------------------------------------------------ measuring

def _add(v: torch.Tensor | None):
    def fn(act, hook):
        return act + v.to(act.dtype).to(act.device)
    return fn


def _generate(handle, prompts: list[str], layer: int, v: torch.Tensor | None, n_new: int) -> tuple[list[list[int]], list[int]]:
    """Each prompt with its greedy continuation under the steering (token ids), and where each continuation starts."""
    bos = [handle.bos_token_id] if handle.bos_token_id is not None else []
    seqs = [bos + handle.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    hooks = [(_hook(handle, layer), _add(v))] if v is not None else []
    eos = handle.tokenizer.eos_token_id
    new = handle.generate_ids(seqs, n_new, stop=[eos] if eos is not None else [], fwd_hooks=hooks)
    return [s + n for s, n in zip(seqs, new)], [len(s) for s in seqs]


def _effect(handle, prompts: list[str], layer: int, v: torch.Tensor | None, n_new: int, concept_ids: list[int], words: list[str],
            topic_vec: np.ndarray | None) -> tuple[float, float, float, list[Generation]]:
    """(relevance, mean P(concept ids) over the continuation's steps, mention rate, generations), under the same steering.

    Relevance: the mean MiniLM cosine similarity of each continuation to the concept."""
    full, starts = _generate(handle, prompts, layer, v, n_new)
    hooks = [(_hook(handle, layer), _add(v))] if v is not None else []
    pad = handle.tokenizer.pad_token_id if handle.tokenizer.pad_token_id is not None else (handle.tokenizer.eos_token_id or 0)
    L = max(len(x) for x in full)
    toks = torch.tensor([x + [pad] * (L - len(x)) for x in full], device=handle.device)
    pr = torch.softmax(handle.run_with_hooks(toks, hooks).float(), dim=-1)[..., concept_ids].sum(-1)  # [batch, pos]
    probs = [float(pr[i, s - 1:len(x) - 1].mean()) if len(x) > s else float(pr[i, s - 1]) for i, (x, s) in enumerate(zip(full, starts))]
    rx = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")(?:s|es)?\b", re.I) if words else None
    gens = []
    for p, seq, s in zip(prompts, full, starts):
        text = handle.tokenizer.decode(seq[s:], skip_special_tokens=True)
        gens.append(Generation(prompt=p, text=text, mentions=bool(rx and rx.search(text))))
    rel = float((embed([g.text or " " for g in gens]) @ topic_vec).mean()) if topic_vec is not None else float("nan")
    return round(rel, 4), round(float(np.mean(probs)), 5), round(float(np.mean([g.mentions for g in gens])), 4), gens


def _corpus_windows(handle, n_windows: int, window: int, seed: int) -> torch.Tensor:
    from .corpus import default_corpus
    from .store import corpus_windows

    wins, _, _ = corpus_windows(default_corpus(), handle.tokenizer, window, n_windows * window, seed + 7, handle.bos_token_id)
    return torch.as_tensor(wins[:n_windows], dtype=torch.long, device=handle.device)


def _loss(handle, toks: torch.Tensor, layer: int, v: torch.Tensor | None, skip: int = 0, logits: torch.Tensor | None = None) -> float:
    """Mean next-token loss (nats) on ``toks`` from position ``skip`` on, under the steering (or of ``logits`` already run)."""
    if logits is None:
        hooks = [(_hook(handle, layer), _add(v))] if v is not None else []
        logits = handle.run_with_hooks(toks, hooks)
    lp = torch.log_softmax(logits.float()[:, skip:-1], dim=-1)
    return float(-lp.gather(-1, toks[:, skip + 1:].unsqueeze(-1)).mean())


def steer(handle, source: Source = "concept", layer: int | None = None, concept: str | None = None, neuron: int | None = None,
          feature: int | None = None, probe: str | None = None, strengths: Sequence[float] | None = None, strength: float | None = None,
          prompts: Sequence[str] | None = None, words: Sequence[str] | None = None, positive: Sequence[str] | None = None,
          negative: Sequence[str] | None = None, n_new: int = 20, n_windows: int = 8, window: int = 64, max_cost: float = MAX_COST,
          seed: int = 0) -> SteeringReport:
    """Steer the model along a direction for a sweep of strengths; effect, cost, and both controls side by side."""
    t0 = time.perf_counter()
    if not 1 <= n_new <= 200:
        raise InputError(f"{n_new} new tokens is outside 1-200.", "Give --new-tokens between 1 and 200.")
    prompts = [p for p in (prompts or PROMPTS) if isinstance(p, str) and p.strip()]
    if not prompts:
        raise InputError("No prompt to generate from.", "Give a prompt, e.g. --prompt 'My favourite food is'.")
    v, layer, what = direction_for(handle, source, layer, concept, neuron, feature, probe, positive, negative)
    if float(v.norm()) < 1e-8:
        raise InputError(f"The direction of {what} is zero.", "Pick another unit or concept.")
    if not words and concept:  # "the ocean" is measured on "ocean", not on " the"
        words = [w for w in re.findall(r"[\w'-]+", concept) if w.lower() not in _FUNCTION_WORDS] or [concept]
    words = [w for w in (words or []) if w and w.strip()]
    notes = []
    if not words:
        words = promoted_words(handle, v)
        notes.append(f"No concept words were given; the effect is measured on the words this direction promotes most directly: {', '.join(words)}.")
    concept_ids = _word_ids(handle, words)
    corpus = _corpus_windows(handle, n_windows, window, seed)
    name = _hook(handle, layer)
    base_logits, cache = handle.run_with_cache(corpus, [name], stop_early=False)  # one run: the layer's norm and the base loss
    resid_norm = float(cache[name][:, 1:].float().norm(dim=-1).mean())
    base_loss = _loss(handle, corpus, layer, None, logits=base_logits)
    vnorm = float(v.norm())
    asked = strength if strength is not None else (float(strengths[0]) if strengths is not None and len(strengths) == 1 else None)
    if strengths is None:
        strengths = [strength * m for m in (0.5, 1.0, 2.0)] if strength is not None else [round(r * resid_norm / vnorm, 3) for r in RELATIVE_SWEEP]
    strengths = sorted({float(s) for s in strengths})
    if not strengths or any(not np.isfinite(s) for s in strengths):
        raise InputError("No usable strength.", "Give finite strengths, e.g. --strength 4.")
    g = torch.Generator().manual_seed(seed)
    rnd = torch.randn(v.shape[-1], generator=g)
    rnd = rnd / rnd.norm() * vnorm
    v = v.to(handle.device)
    rnd = rnd.to(handle.device)

    topic = concept or ", ".join(words[:4])
    topic_vec = embed([topic])[0]
    b_rel, b_wp, b_rate, base_gens = _effect(handle, prompts, layer, None, n_new, concept_ids, words, topic_vec)
    sweep = []
    for s in strengths:
        rel, wp, m, gens = _effect(handle, prompts, layer, s * v, n_new, concept_ids, words, topic_vec)
        r_rel, r_wp, _, _ = _effect(handle, prompts, layer, s * rnd, n_new, concept_ids, words, topic_vec)
        sweep.append(SweepPoint(strength=s, relative_norm=round(abs(s) * vnorm / resid_norm, 4), relevance=rel, word_prob=wp, mention_rate=m,
                                cost=round(_loss(handle, corpus, layer, s * v) - base_loss, 4), random_relevance=r_rel, random_word_prob=r_wp,
                                random_cost=round(_loss(handle, corpus, layer, s * rnd) - base_loss, 4), generations=gens))
    rep = SteeringReport(model=handle.name, source=source, description=what, layer=layer, topic=topic, concept_words=list(words),
                         direction_norm=round(vnorm, 4), resid_norm=round(resid_norm, 4), base_relevance=b_rel, base_word_prob=b_wp,
                         base_mention_rate=b_rate, base_loss=round(base_loss, 4), base_generations=base_gens, sweep=sweep, max_cost=max_cost,
                         n_new_tokens=n_new, notes=notes, asked_strength=asked)
    away = all(s < 0 for s in strengths)
    rep.goal = "away" if away else "towards"
    if concept:  # the prompting baseline needs a topic a person would name
        instr = f"Do not talk about {concept}." if away else f"Talk about {concept}."
        p_rel, p_wp, _, _ = _effect(handle, [instr + " " + p for p in prompts], layer, None, n_new, concept_ids, words, topic_vec)
        rep.prompting_instruction, rep.prompting_relevance, rep.prompting_word_prob = instr, p_rel, p_wp
        if handle.bos_token_id is not None:  # the instruction goes after BOS, before the corpus text
            prefix = handle.to_tokens(instr, prepend_bos=False)[0]
            with_instr = torch.cat([corpus[:, :1], prefix.expand(corpus.shape[0], -1), corpus[:, 1:]], dim=1)
            rep.prompting_cost = round(_loss(handle, with_instr, layer, None, skip=len(prefix)) - base_loss, 4)
    else:
        rep.notes.append("No concept was named, so there is no prompting baseline to compare with.")
    if away:  # steering away works when the continuations are less about the concept than both references
        ok = [p for p in sweep if p.cost <= max_cost and p.relevance < p.random_relevance and p.relevance < b_rel]
        rep.best_strength = min(ok, key=lambda p: p.relevance).strength if ok else None
    else:
        ok = [p for p in sweep if p.cost <= max_cost and p.relevance > p.random_relevance and p.relevance > b_rel]
        rep.best_strength = max(ok, key=lambda p: p.relevance).strength if ok else None
    rep.timings["total_s"] = round(time.perf_counter() - t0, 3)
    return rep
