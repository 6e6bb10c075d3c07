"""Head finder: score every attention head of the model for four known behaviours.

For each head, averaged over positions:

* **previous-token**: attention from token ``i`` to token ``i-1`` on corpus text;
* **induction**: on a random token sequence repeated twice (``BOS r1..rn r1..rn``), attention
  from a token of the second copy to the token right after its earlier occurrence
  (Olsson et al. 2022);
* **duplicate-token**: on the same sequences, attention to the earlier occurrence itself;
* **first-token** (attention sink): attention to position 0 on corpus text.

Every score stands beside two references:

* ``control`` (per head): the same head's attention to the same offsets where the behaviour
  has nothing to find: for induction and duplicate-token, random sequences whose second half
  is *not* a repeat; for previous-token and first-token, the uniform head below (a per-head
  control would need another corpus, and attention to i-1 or 0 is what is being measured);
* ``uniform``: what a head that spreads its attention evenly over the tokens it can see would
  score (the mean of ``1/(i+1)`` over the scored positions).

Scores are cached per model (``model_cache_dir(model)/heads/``), keyed by the settings.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, Field

from .config import model_cache_dir
from .errors import InputError
from .files import atomic_write_json, read_json
from .results import Figure, ToolResult, provenance

Behaviour = Literal["previous_token", "induction", "duplicate_token", "first_token"]
BEHAVIOURS: tuple[str, ...] = ("previous_token", "induction", "duplicate_token", "first_token")
LABEL = {"previous_token": "previous-token", "induction": "induction", "duplicate_token": "duplicate-token", "first_token": "first-token (attention sink)"}
FORMAT_VERSION = 1
CLEAR_MIN = 0.3  # a head "has" a behaviour when it scores at least this ...
CLEAR_MARGIN = 0.2  # ... and this much above its control


class HeadScore(BaseModel):
    head: str  # "L.H"
    layer: int
    index: int
    score: float
    control: float


class HeadScores(BaseModel):
    model: str
    n_layers: int
    n_heads: int
    scores: dict[str, list[list[float]]]  # behaviour -> [layer][head]
    controls: dict[str, list[list[float]]]  # behaviour -> [layer][head]: the same head where there is nothing to find
    uniform: dict[str, float]  # behaviour -> score of a head attending uniformly
    settings: dict[str, int]
    timings: dict[str, float] = Field(default_factory=dict)
    cached: bool = False

    def ranked(self, behaviour: str, k: int = 10) -> list[HeadScore]:
        s, c = np.asarray(self.scores[behaviour]), np.asarray(self.controls[behaviour])
        order = np.argsort(-s, axis=None)[:k]
        return [HeadScore(head=f"{l}.{h}", layer=int(l), index=int(h), score=round(float(s[l, h]), 4), control=round(float(c[l, h]), 4))
                for l, h in (np.unravel_index(i, s.shape) for i in order)]

    def median(self, behaviour: str) -> float:
        return round(float(np.median(self.scores[behaviour])), 4)

    def clear(self, behaviour: str) -> list[HeadScore]:
        """Heads that clearly show the behaviour (score >= 0.3 and >= 0.2 above their control)."""
        return [h for h in self.ranked(behaviour, self.n_layers * self.n_heads) if h.score >= CLEAR_MIN and h.score - h.control >= CLEAR_MARGIN]

    def figures(self, behaviours: list[str] | None = None) -> list[Figure]:
        figs = []
        for b in behaviours or list(BEHAVIOURS):
            figs.append(Figure(
                kind="heatmap",
                title=f"{LABEL[b].capitalize()} score of every head",
                data={"z": [[round(v, 3) for v in row] for row in self.scores[b]], "x": [str(h) for h in range(self.n_heads)],
                      "y": [str(l) for l in range(self.n_layers)], "xlabel": "head", "ylabel": "layer"},
                caption=f"A head attending uniformly would score {self.uniform[b]:.2f}; the median head scores {self.median(b):.2f}.",
            ))
        b = (behaviours or list(BEHAVIOURS))[0]
        top = self.ranked(b, 10)
        figs.append(Figure(kind="bar", title=f"Top {len(top)} {LABEL[b]} heads (score; each head's control in the table)",
                           data={"labels": [t.head for t in top], "values": [t.score for t in top], "ylabel": f"{LABEL[b]} score"}))
        return figs

    def to_tool_result(self, behaviours: list[str] | None = None, k: int = 10) -> ToolResult:
        bs = behaviours or list(BEHAVIOURS)
        parts = []
        for b in bs:
            top = self.ranked(b, 1)[0]
            n = len(self.clear(b))
            parts.append(f"{LABEL[b]}: top head {top.head} scores {top.score:.2f} (control {top.control:.2f}, uniform {self.uniform[b]:.2f}); "
                         f"{n} head{'s' if n != 1 else ''} clearly show it")
        return ToolResult(
            tool="head_finder",
            summary="; ".join(parts) + ".",
            headline={f"{b}_top": self.ranked(b, 1)[0].head for b in bs},
            evidence=[{"behaviour": b, "top": [t.model_dump() for t in self.ranked(b, k)], "uniform": self.uniform[b],
                       "median": self.median(b), "n_clear": len(self.clear(b))} for b in bs],
            figures=self.figures(bs),
            provenance=provenance(None, model=self.model, **self.settings),
            timings=self.timings,
            data={"behaviours": bs, "scores": {b: self.scores[b] for b in bs}, "controls": {b: self.controls[b] for b in bs},
                  "uniform": self.uniform, "cached": self.cached},
        )


def _random_sequences(handle, n: int, length: int, seed: int, repeat: bool) -> torch.Tensor:
    """``[n, 1 + 2*length]``: BOS, ``length`` random tokens, then a repeat of them (or fresh ones)."""
    g = torch.Generator().manual_seed(seed)
    vocab = len(handle.tokenizer)
    special = set(handle.tokenizer.all_special_ids)
    lo = max(special) + 1 if special and max(special) < vocab // 4 else 0  # skip a block of special tokens at the start
    first = torch.randint(lo, vocab, (n, length), generator=g)
    second = first.clone() if repeat else torch.randint(lo, vocab, (n, length), generator=g)
    bos = handle.bos_token_id if handle.bos_token_id is not None else int(first[0, 0])
    return torch.cat([torch.full((n, 1), bos), first, second], dim=1).to(handle.device)


def _patterns(handle, tokens: torch.Tensor, batch: int = 8) -> torch.Tensor:
    """``[layer, n, head, q, k]`` attention patterns of every layer (float32, CPU)."""
    names = [handle.hook_name("attn_pattern", l) for l in range(handle.n_layers)]
    out = []
    for i in range(0, tokens.shape[0], batch):
        _, cache = handle.run_with_cache(tokens[i:i + batch], names)
        out.append(torch.stack([cache[n].float().cpu() for n in names]))
    return torch.cat(out, dim=1)


def _offset_score(pat: torch.Tensor, queries: torch.Tensor, keys: torch.Tensor) -> np.ndarray:
    """Mean over sequences and the given (query, key) pairs: ``[layer, head]``."""
    return pat[:, :, :, queries, keys].mean(dim=(1, 3)).numpy()


def _uniform(queries: torch.Tensor) -> float:
    return round(float((1.0 / (queries.float() + 1)).mean()), 4)


def _key(handle, settings: dict) -> str:
    blob = json.dumps({"v": FORMAT_VERSION, "model": handle.name, **settings}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def head_scores(handle, n_sequences: int = 16, length: int = 24, n_windows: int = 16, window: int = 64, seed: int = 0,
                use_cache: bool = True) -> HeadScores:
    """Score every head for previous-token, induction, duplicate-token and first-token behaviour (cached per model)."""
    for name, v, lo in (("n_sequences", n_sequences, 1), ("length", length, 2), ("n_windows", n_windows, 1), ("window", window, 4)):
        if not isinstance(v, int) or v < lo:
            raise InputError(f"{name} must be an integer of at least {lo} (got {v!r}).", f"Give --{name.replace('_', '-')} {max(lo, 2)} or more.")
    settings = {"n_sequences": n_sequences, "length": length, "n_windows": n_windows, "window": window, "seed": seed}
    path = model_cache_dir(handle.name) / "heads" / f"scores-{_key(handle, settings)}.json"
    if use_cache:
        got = read_json(path)
        if got is not None:
            try:
                return HeadScores.model_validate({**got, "cached": True})
            except ValueError:
                pass  # an old or damaged cache: measure again
    t0 = time.perf_counter()
    scores, controls, uniform = {}, {}, {}

    # induction and duplicate-token: repeated random sequences vs non-repeated ones
    q = torch.arange(1 + length, 1 + 2 * length)
    rep = _patterns(handle, _random_sequences(handle, n_sequences, length, seed, repeat=True))
    ctl = _patterns(handle, _random_sequences(handle, n_sequences, length, seed, repeat=False))
    for b, keys in (("induction", q - length + 1), ("duplicate_token", q - length)):
        scores[b] = _offset_score(rep, q, keys)
        controls[b] = _offset_score(ctl, q, keys)
        uniform[b] = _uniform(q)
    del rep, ctl
    t1 = time.perf_counter()

    # previous-token and first-token: corpus text
    from .corpus import default_corpus
    from .store import corpus_windows

    wins, _, _ = corpus_windows(default_corpus(), handle.tokenizer, window, n_windows * window, seed, handle.bos_token_id)
    pat = _patterns(handle, torch.as_tensor(wins[:n_windows], dtype=torch.long, device=handle.device))
    qc = torch.arange(1, pat.shape[-1])
    for b, keys in (("previous_token", qc - 1), ("first_token", torch.zeros_like(qc))):
        scores[b] = _offset_score(pat, qc, keys)
        uniform[b] = _uniform(qc)
        controls[b] = np.full_like(scores[b], uniform[b])
    out = HeadScores(
        model=handle.name, n_layers=handle.n_layers, n_heads=handle.n_heads,
        scores={b: np.round(scores[b], 4).tolist() for b in BEHAVIOURS},
        controls={b: np.round(controls[b], 4).tolist() for b in BEHAVIOURS},
        uniform=uniform, settings=settings,
        timings={"random_sequences_s": round(t1 - t0, 3), "corpus_s": round(time.perf_counter() - t1, 3)},
    )
    atomic_write_json(path, out.model_dump(mode="json", exclude={"cached"}), indent=None)
    return out


def head_ablation_loss(handle, heads: list[tuple[int, int]], n_sequences: int = 16, length: int = 24, seed: int = 1) -> float:
    """Mean loss (nats/token) on the repeated half of random repeated sequences with ``heads``'
    outputs zeroed: how much the model's in-context copying depends on them."""
    toks = _random_sequences(handle, n_sequences, length, seed, repeat=True)
    by_layer: dict[int, list[int]] = {}
    for l, h in heads:
        by_layer.setdefault(l, []).append(h)

    def make(hs):
        def fn(z, hook):
            z = z.clone()
            z[:, :, hs, :] = 0.0
            return z
        return fn

    hooks = [(handle.hook_name("head_out", l), make(hs)) for l, hs in by_layer.items()]
    logits = handle.run_with_hooks(toks, hooks).float()
    lp = torch.log_softmax(logits[:, length:-1], dim=-1)  # predictions of tokens length+1 .. 2*length
    target = toks[:, length + 1:]
    return float(-lp.gather(-1, target.unsqueeze(-1)).mean())
