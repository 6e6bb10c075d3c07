"""Causal tracing (ROME): noise the subject's embeddings, restore one clean state at a time."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Sequence

import torch

from ..errors import InputError
from .engine import PatchSpec, _last_logits, run_specs
from .prompts import _ids, _prompt_tokens, _tok_str
from .reports import TraceReport, _r
from .schemas import TracePeak
from .words import _CAP_RUN, _WORD_CATEGORY, _WORD_RE

if TYPE_CHECKING:
    from ..model import ModelHandle


def find_subject(prompt: str) -> str:
    """A guess at the subject of ``prompt``: a known entity word, else the first run of capitalized words after the first word."""
    for m in _WORD_RE.finditer(prompt):
        if m.group(0).lower() in _WORD_CATEGORY and _WORD_CATEGORY[m.group(0).lower()] in ("country", "city", "first_name"):
            return m.group(0)
    for m in _CAP_RUN.finditer(prompt):
        if m.start() == 0:
            rest = m.group(0).split(None, 1)
            if len(rest) == 2:
                return rest[1]
            continue
        return m.group(0)
    for m in _WORD_RE.finditer(prompt):
        if m.group(0).lower() in _WORD_CATEGORY:
            return m.group(0)
    raise InputError(
        f"Could not tell what the subject of {prompt!r} is (no known entity and no capitalized name).",
        "Pass the subject to noise, e.g. --subject 'Eiffel Tower'.",
    )


def subject_positions(handle: ModelHandle, prompt: str, subject: str) -> list[int]:
    """Token positions (with BOS at 0) covering the first occurrence of ``subject`` in ``prompt``."""
    start = prompt.find(subject)
    if start < 0:
        raise InputError(f"The subject {subject!r} does not occur in the prompt {prompt!r}.", "Give a subject that is written exactly as in the prompt.")
    end = start + len(subject)
    enc = handle.tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
    offset = 1 if handle.bos_token_id is not None else 0
    pos = [i + offset for i, (a, b) in enumerate(enc["offset_mapping"]) if a < end and b > start and b > a]
    if not pos:
        raise InputError(f"No token of the prompt covers the subject {subject!r}.", "Give a subject made of whole words of the prompt.")
    return pos


def _embedding_std(handle: ModelHandle, n: int = 4096) -> float:
    vocab = handle.shape.d_vocab
    ids = torch.linspace(0, vocab - 1, min(n, vocab)).long().to(handle.device)
    with torch.inference_mode():
        return float(handle.embed_tokens(ids[None]).float().std())


def causal_trace(
    handle: ModelHandle,
    prompt: str,
    answer: str | None = None,
    subject: str | None = None,
    samples: int = 3,
    noise_scale: float = 3.0,
    window: int = 5,
    kinds: Sequence[str] = ("resid", "mlp", "attn"),
    seed: int = 0,
    token_budget: int = 4096,
) -> TraceReport:
    """Causal tracing (ROME): noise the subject's embeddings, restore one clean state, measure p(answer).

    ``samples`` noise draws (Gaussian, std = ``noise_scale`` x the embedding std) are
    averaged. ``kinds``: ``resid`` restores the residual stream after layer L at one
    position; ``mlp`` / ``attn`` restore that block's output at one position over a window
    of ``window`` layers centred on L (single layers have small effects, as in the paper).
    Positions before the first subject token are not noised, so restoring them changes
    nothing: they are filled with the noised probability without running.
    """
    t0 = time.perf_counter()
    notes: list[str] = []
    warnings: list[str] = []
    if isinstance(kinds, str):
        kinds = [k.strip() for k in kinds.split(",") if k.strip()]
    bad = [k for k in kinds if k not in ("resid", "mlp", "attn")]
    if bad or not kinds:
        raise InputError(f"Unknown trace kind(s) {bad or kinds}.", "Pick from: resid, mlp, attn.")
    if not isinstance(samples, int) or samples < 1:
        raise InputError(f"samples must be a positive integer, got {samples!r}.", "Use 1 to 20 noise samples (3 is a good start).")
    if window < 1:
        raise InputError(f"window must be at least 1, got {window!r}.", "Use 1 (single layer) to 10.")
    tokens = _prompt_tokens(handle, prompt)
    n_pos, L = tokens.shape[1], handle.n_layers
    if subject is None:
        subject = find_subject(prompt)
        notes.append(f"No subject given: noising {subject!r}.")
    subj = subject_positions(handle, prompt, subject)
    if answer is None:
        aid = int(_last_logits(handle, tokens)[0].argmax())
        answer = _tok_str(handle, aid)
        notes.append(f"No answer given: tracing the model's top prediction {answer!r}.")
    a_ids = _ids(handle, answer)
    if not a_ids:
        raise InputError("The answer is empty.", "Give the answer to trace, e.g. --answer ' Paris'.")
    aid = a_ids[0]
    metric = f"probability of {_tok_str(handle, aid)!r} at the last position"
    if len(a_ids) > 1:
        metric += f" (the first of the answer's {len(a_ids)} tokens; later tokens are not measured)"
    sigma = noise_scale * _embedding_std(handle)
    gen = torch.Generator().manual_seed(seed)
    noise = (torch.randn(samples, len(subj), handle.d_model, generator=gen) * sigma).to(handle.device, handle.dtype)
    subj_t = torch.tensor(subj, device=handle.device)

    # clean run: states to restore
    names = []
    for l in range(L):
        names.append(handle.hook_name("resid_post", l))
        if "mlp" in kinds:
            names.append(handle.hook_name("mlp_out", l))
        if "attn" in kinds:
            names.append(handle.hook_name("attn_out", l))
    clean_logits, clean = handle.run_with_cache(tokens, names, stop_early=False)
    assert clean_logits is not None  # stop_early=False: a full run returns logits
    p_clean = float(torch.softmax(clean_logits[0, -1].float(), -1)[aid])

    # noised runs: record the stream entering every layer (the starting points of restored runs)
    base: dict[int, torch.Tensor] = {}

    def add_noise(act, hook):
        act = act.clone()
        act[:, subj_t] = act[:, subj_t] + noise
        base[0] = act
        return act

    def record(l):
        def fn(act, hook):
            base[l] = act.clone()

        return fn

    hooks = [(handle.hook_name("resid_pre", 0), add_noise)] + [(handle.hook_name("resid_pre", l), record(l)) for l in range(1, L)]
    corr_logits = handle.run_with_hooks(tokens.repeat(samples, 1), fwd_hooks=hooks)
    p_corr_s = torch.softmax(corr_logits[:, -1].float(), -1)[:, aid]
    p_corr = float(p_corr_s.mean())
    if p_clean - p_corr < 0.02:
        warnings.append(
            f"Noising the subject barely changes p({answer!r}) ({p_clean:.3f} -> {p_corr:.3f}): the trace has little to restore. "
            "Try a larger noise_scale or a prompt whose answer depends on the subject."
        )

    def readout(final):
        with torch.inference_mode():
            lg = handle.unembed(handle.final_norm(final[:, -1:, :]))[:, 0].float()
            return torch.softmax(lg, -1)[:, aid]

    first = min(subj)
    specs: list[tuple[str, int, int, PatchSpec]] = []
    for k in kinds:
        for l in range(L):
            if k == "resid":
                layers = [l]
                hook_kind = "resid_post"
            else:
                lo, hi = max(0, l - window // 2), min(L, l - (-window // 2))
                layers = list(range(lo, hi))
                hook_kind = "mlp_out" if k == "mlp" else "attn_out"
            for p in range(first, n_pos):
                for s in range(samples):
                    spec = PatchSpec(tuple((handle.hook_name(hook_kind, x), x, p, None) for x in layers), sample=s)
                    specs.append((k, l, p, spec))
    t1 = time.perf_counter()
    vals = run_specs(handle, base, clean, [s for *_, s in specs], readout, token_budget)
    grids_t = {k: torch.full((L, n_pos, samples), p_corr) for k in kinds}
    for (k, l, p, spec), v in zip(specs, vals):
        grids_t[k][l, p, spec.sample] = v
    if first > 0:
        for k in kinds:
            grids_t[k][:, :first, :] = p_corr_s.cpu()[None, None, :]
    str_toks = handle.str_tokens(tokens[0])
    denom = p_clean - p_corr
    grids, peaks = {}, {}
    for k, g in grids_t.items():
        m = g.mean(-1)
        grids[k] = _r(m)
        i = int(m.flatten().argmax())
        l, p = i // n_pos, i % n_pos
        peaks[k] = TracePeak(
            layer=l,
            position=p,
            token=str_toks[p],
            p=round(float(m[l, p]), 4),
            effect=round((float(m[l, p]) - p_corr) / denom, 4) if abs(denom) > 1e-9 else 0.0,
        )
    return TraceReport(
        model=handle.name,
        prompt=prompt,
        tokens=str_toks,
        subject=subject,
        subject_positions=subj,
        answer=answer,
        answer_token=_tok_str(handle, aid),
        metric=metric,
        p_clean=round(p_clean, 4),
        p_corrupted=round(p_corr, 4),
        p_corrupted_samples=[round(float(x), 4) for x in p_corr_s],
        noise_std=round(sigma, 5),
        samples=samples,
        window=window,
        kinds=list(kinds),
        grids=grids,
        peaks=peaks,
        notes=notes,
        warnings=warnings,
        timings={"restore_sweep_s": round(time.perf_counter() - t1, 4), "total_s": round(time.perf_counter() - t0, 4)},
        n_restored_runs=len(specs),
    )
