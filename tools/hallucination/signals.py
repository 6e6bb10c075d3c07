"""Reading the model's internals for one answer: residual streams and answer-token uncertainty.

:func:`compute_signals` runs prompt + answer once per example and returns :class:`Signals`
(hidden states at the chosen layers, the six uncertainty signals named in ``UNC_NAMES``,
and the scored answer tokens with their log-probs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from .. import facts as F
from .. import hallu_data as D
from .. import tokens as tok_text
from ..errors import InputError

if TYPE_CHECKING:
    from ..model import ModelHandle

UNC_NAMES = ["neg_mean_logprob", "neg_min_logprob", "mean_entropy", "max_entropy", "first_neg_logprob", "first_entropy"]
SIGNAL_TEXT = {
    "probe_question": "hidden-state probe at the last prompt token",
    "probe_answer": "hidden-state probe averaged over the answer tokens",
    "neg_mean_logprob": "answer log-perplexity (minus mean log-prob of its tokens)",
    "neg_min_logprob": "least likely answer token (minus its log-prob)",
    "mean_entropy": "mean next-token entropy over the answer",
    "max_entropy": "largest next-token entropy over the answer",
    "first_neg_logprob": "first answer token (minus its log-prob)",
    "first_entropy": "entropy before the first answer token",
    "uncertainty_combined": "the six uncertainty signals combined (no hidden states)",
    "text_minilm": "text-only control: the question's MiniLM embedding (the model is never run)",
    "text_surface": "text-only control: surface features of the question (length, capitals, letters)",
    "text_char_ngrams": "text-only control: character n-grams of the question (spots invented spellings)",
}
FALLBACK_SIGNAL = "neg_mean_logprob"


@dataclass
class Signals:
    """Per-example internal signals (numpy, tensors never leave this module)."""

    layers: list[int]
    resid_q: np.ndarray  # [n, len(layers), d_model] at the last prompt token
    resid_a: np.ndarray  # [n, len(layers), d_model] mean over answer tokens
    unc: np.ndarray  # [n, len(UNC_NAMES)]
    tokens: list[list[str]] = field(default_factory=list)  # scored answer tokens
    token_logprobs: list[list[float]] = field(default_factory=list)

    def subset(self, idx: Sequence[int]) -> "Signals":
        idx = list(idx)
        return Signals(
            self.layers, self.resid_q[idx], self.resid_a[idx], self.unc[idx],
            [self.tokens[i] for i in idx] if self.tokens else [], [self.token_logprobs[i] for i in idx] if self.token_logprobs else [],
        )

    def resid(self, where: str, layer: int) -> np.ndarray:
        j = self.layers.index(layer)
        return (self.resid_q if where == "question" else self.resid_a)[:, j, :]


def scored_text(answer: str) -> str:
    """The part of an answer that is scored: its first sentence (what the label checks)."""
    return F.first_sentence(answer).strip() or answer.strip()


def candidate_layers(n_layers: int) -> list[int]:
    """Layers the probes choose from: every third layer from the first sixth, plus the last."""
    if n_layers <= 4:
        return list(range(n_layers))
    return sorted(set(range(max(1, n_layers // 6), n_layers, 3)) | {n_layers - 1})


@torch.inference_mode()
def compute_signals(
    handle: ModelHandle,
    prompts: Sequence[str],
    answers: Sequence[str],
    layers: Sequence[int],
    batch_size: int = 16,
    progress: bool = False,
) -> Signals:
    """Run prompt + answer once per example; read residuals and answer-token uncertainty.

    An empty answer is scored as the end-of-turn token (the model said nothing).
    """
    layers = sorted(set(int(l) for l in layers))
    names = [handle.hook_name("resid_post", l) for l in layers]
    tok = handle.tokenizer
    stop = handle.stop_ids(chat=True)
    items = []
    for p, a in zip(prompts, answers):
        pids = D.prompt_ids(handle, p)
        text = scored_text(a) if a else ""
        aids = tok(text, add_special_tokens=False)["input_ids"] if text else []
        if not aids:
            aids = [stop[-1] if stop else (tok.eos_token_id or 0)]
        aids = aids[: D.MAX_NEW_TOKENS * 2]
        if len(pids) + len(aids) > handle.shape.n_ctx:
            raise InputError(
                f"Prompt and answer are {len(pids) + len(aids)} tokens; the model's context is {handle.shape.n_ctx}.",
                "Shorten the context, the question or the answer.",
            )
        items.append((pids, aids))
    n, d = len(items), handle.d_model
    rq = np.zeros((n, len(layers), d), dtype=np.float32)
    ra = np.zeros((n, len(layers), d), dtype=np.float32)
    unc = np.zeros((n, len(UNC_NAMES)), dtype=np.float64)
    toks_out: list[list[str]] = [[] for _ in range(n)]
    lps_out: list[list[float]] = [[] for _ in range(n)]
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    order = sorted(range(n), key=lambda i: len(items[i][0]) + len(items[i][1]))
    bar = D._bar(n, "reading internals", progress)
    for s in range(0, n, batch_size):
        idx = order[s : s + batch_size]
        seqs = [items[i][0] + items[i][1] for i in idx]
        L = max(len(x) for x in seqs)
        batch = torch.tensor([x + [pad] * (L - len(x)) for x in seqs], dtype=torch.long, device=handle.device)
        logits, cache = handle.run_with_cache(batch, names, stop_early=False)
        assert logits is not None  # stop_early=False: a full run returns logits
        for j, i in enumerate(idx):
            pids, aids = items[i]
            P, A = len(pids), len(aids)
            lp_rows = torch.log_softmax(logits[j, P - 1 : P - 1 + A].float(), dim=-1)  # predictions of the answer tokens
            ids = torch.tensor(aids, device=lp_rows.device)
            lp = lp_rows.gather(1, ids[:, None])[:, 0].double()
            ent = -(lp_rows.exp() * lp_rows).sum(-1).double()
            unc[i] = [
                float(-lp.mean()), float(-lp.min()), float(ent.mean()), float(ent.max()), float(-lp[0]), float(ent[0]),
            ]
            for k, nm in enumerate(names):
                act = cache[nm][j].float()
                rq[i, k] = act[P - 1].cpu().numpy()
                ra[i, k] = act[P : P + A].mean(0).cpu().numpy()
            toks_out[i] = tok_text.labels(tok, aids)
            lps_out[i] = [round(float(v), 4) for v in lp.tolist()]
        bar.update(len(idx))
    bar.close()
    return Signals(layers, rq, ra, unc, toks_out, lps_out)
