"""Activation patching end to end (:func:`patch`), with causal tracing when prompts cannot line up."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Sequence

import torch

from ..errors import InputError, PromptAlignmentError
from .attribution import attribution_sweep
from .corruption import auto_corrupt
from .engine import _last_logits, _names_for, exact_sweep
from .prompts import _build_metric, _ids, _prompt_tokens, _tok_str, align_prompts, differing_span
from .reports import PatchReport, TraceReport, _layer_profile, _pearson, _r, _top_components
from .schemas import KINDS, KindEffects, Mode
from .tracing import causal_trace, find_subject

if TYPE_CHECKING:
    from ..model import ModelHandle


def patch(
    handle: ModelHandle,
    clean: str,
    corrupted: str | None = None,
    answer: str | None = None,
    alternative: str | None = None,
    mode: Mode = "both",
    kinds: Sequence[str] = KINDS,
    top_k: int = 8,
    token_budget: int = 4096,
    max_positions: int = 64,
) -> PatchReport:
    """Which components cause ``answer`` (vs ``alternative``) on ``clean``? Activation / attribution patching.

    ``corrupted``: same number of tokens as ``clean``; built automatically when ``None``
    (the subject or a name swapped for another of the same token length, see
    :func:`auto_corrupt`). ``answer``: default the model's top prediction on ``clean``.
    ``alternative``: default the corrupted prompt's top prediction. ``mode``: ``exact``
    (batched activation patching), ``attribution`` (gradient estimate, one forward +
    backward), or ``both`` (and their agreement). ``kinds``: any of ``resid`` (layer x
    position), ``attn`` and ``mlp`` (by layer), ``heads`` (layer x head). An exact residual
    sweep is refused above ``max_positions`` tokens (attribution mode has no such limit).
    """
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    notes: list[str] = []
    warnings: list[str] = []
    if mode not in ("exact", "attribution", "both"):
        raise InputError(f"Unknown mode {mode!r}.", "Use exact, attribution or both.")
    if isinstance(kinds, str):
        kinds = [k.strip() for k in kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise InputError(f"Unknown component kind(s) {unknown}.", f"Pick from: {', '.join(KINDS)}.")
    kinds = [k for k in KINDS if k in set(kinds)]
    if not kinds:
        raise InputError("No component kinds to patch.", f"Pick some of: {', '.join(KINDS)}.")
    if not isinstance(clean, str) or not clean.strip():
        raise InputError("The clean prompt is empty.", "Give a prompt, e.g. --clean 'The capital of France is'.")
    if answer is None:
        answer_id = int(_last_logits(handle, _prompt_tokens(handle, clean))[0].argmax())
        answer = _tok_str(handle, answer_id)
        notes.append(f"No answer given: using the model's top prediction on the clean prompt, {answer!r}.")
    auto = None
    if alternative is None:
        a_ids = _ids(handle, answer)
        if not a_ids:
            raise InputError("The answer is empty after tokenization.", "Give an answer such as ' Paris'.")
        if corrupted is None:
            auto = auto_corrupt(handle, clean, a_ids[0])
            corrupted = auto.corrupted
            alt_id = auto.alternative_id
            assert alt_id is not None  # auto_corrupt always picks one
        else:
            ct = _prompt_tokens(handle, corrupted)
            lg = _last_logits(handle, ct)[0]
            lg[a_ids[0]] = float("-inf")
            alt_id = int(lg.argmax())
        alternative = _tok_str(handle, alt_id)
        notes.append(f"No alternative given: using {alternative!r}, the corrupted prompt's top prediction other than the answer.")
    metric = _build_metric(handle, answer, alternative)
    if corrupted is None:
        auto = auto_corrupt(handle, clean, metric.answer_id, metric.alt_id, suffix=metric.suffix)
        corrupted = auto.corrupted
    ct, rt, pair = align_prompts(handle, clean, corrupted, metric.suffix)
    if auto is not None:
        pair.auto = True
        pair.note = (
            f"Corrupted prompt built automatically: swapped {auto.original!r} for {auto.replacement!r} "
            f"(a {auto.category.replace('_', ' ')} of the same token length; the strongest of {auto.tried} candidate swaps)."
        )
        notes.append(pair.note)
    if metric.suffix:
        pair.note = (pair.note + " " if pair.note else "") + f"The last {len(metric.suffix)} position(s) are the shared answer tokens appended to both prompts."
    n_pos = ct.shape[1]
    n_changed = len(pair.changed_positions)
    if n_changed > 1 and n_changed > (n_pos - 1) // 2:
        warnings.append(
            f"The prompts differ at {n_changed} of {n_pos} positions; a minimal corruption (one word swapped) gives cleaner, easier to read effects."
        )
    if mode != "attribution" and "resid" in kinds and n_pos > max_positions:
        raise InputError(
            f"The prompt is {n_pos} tokens; an exact residual sweep over {n_pos} positions x {handle.n_layers} layers is too slow to wait for here (limit {max_positions}).",
            "Use --mode attribution (one forward + backward for every component), drop resid from --kinds, or shorten the prompt.",
        )
    timings["prepare_s"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    names = _names_for(handle, kinds)
    clean_logits, clean_cache = handle.run_with_cache(ct, names, stop_early=False)
    corr_logits, corr_cache = handle.run_with_cache(rt, names, stop_early=False)
    assert clean_logits is not None and corr_logits is not None  # stop_early=False: full runs return logits
    clean_m = float(clean_logits[0, -1, metric.answer_id] - clean_logits[0, -1, metric.alt_id])
    corr_m = float(corr_logits[0, -1, metric.answer_id] - corr_logits[0, -1, metric.alt_id])
    timings["clean_and_corrupted_forward_s"] = time.perf_counter() - t1
    denom = clean_m - corr_m
    if abs(denom) < 1e-4:
        raise InputError(
            f"The corruption does not change the metric (clean {clean_m:.4f}, corrupted {corr_m:.4f}), so no effect can be normalized.",
            "Corrupt something the answer depends on (e.g. the subject), or pick an alternative the corrupted prompt prefers.",
        )
    if abs(denom) < 0.5:
        warnings.append(f"Clean and corrupted metrics differ by only {denom:.3f} logits: normalized effects are noisy.")
    if clean_m <= 0:
        warnings.append(f"On the clean prompt the model prefers {metric.alternative!r} over {metric.answer!r} (logit difference {clean_m:.2f}).")

    raw: dict[str, dict[str, torch.Tensor]] = {}
    n_runs = 0
    if mode in ("exact", "both"):
        t2 = time.perf_counter()
        ex, n_runs = exact_sweep(handle, clean_cache, corr_cache, metric, kinds, n_pos, token_budget, min(pair.changed_positions), corr_m)
        raw["exact"] = {k: (v - corr_m) / denom for k, v in ex.items()}
        timings["exact_sweep_s"] = time.perf_counter() - t2
    if mode in ("attribution", "both"):
        t3 = time.perf_counter()
        at, _ = attribution_sweep(handle, rt, clean_cache, metric, kinds)
        raw["attribution"] = {k: v / denom for k, v in at.items()}
        timings["attribution_sweep_s"] = time.perf_counter() - t3
    effects = {}
    for k in kinds:
        e = KindEffects(kind=k)
        if "exact" in raw:
            e.exact = _r(raw["exact"][k])
        if "attribution" in raw:
            e.attribution = _r(raw["attribution"][k])
        if "exact" in raw and "attribution" in raw:
            e.correlation = _pearson(raw["exact"][k], raw["attribution"][k])
        effects[k] = e
    main = "exact" if "exact" in raw else "attribution"
    top = _top_components(raw[main], main, pair.clean_tokens, top_k)
    profile = _layer_profile(raw[main], pair.changed_positions, n_pos)
    profile["method"] = main
    if "mlp" in raw[main] and float(raw[main]["mlp"][0]) > 0.8:
        notes.append(
            "Attention and MLP outputs are patched at every position, the changed token's included; there the layer-0 MLP "
            "acts as part of the token's embedding, so its effect near 1 mostly says that the changed token matters."
        )
    if main == "attribution":
        notes.append("Effects are attribution-patching estimates (linear approximation); run mode exact to confirm the top ones.")
    timings["total_s"] = time.perf_counter() - t0
    return PatchReport(
        model=handle.name,
        prompts=pair,
        answer=metric.answer,
        alternative=metric.alternative,
        answer_token=_tok_str(handle, metric.answer_id),
        alternative_token=_tok_str(handle, metric.alt_id),
        metric=metric.note,
        clean_metric=round(clean_m, 4),
        corrupted_metric=round(corr_m, 4),
        mode=mode,
        n_layers=handle.n_layers,
        n_heads=handle.n_heads,
        effects=effects,
        top_components=top,
        layer_profile=profile,
        notes=notes,
        warnings=warnings,
        timings={k: round(v, 4) for k, v in timings.items()},
        n_patched_runs=n_runs,
    )


def patch_or_trace(
    handle: ModelHandle,
    clean: str,
    corrupted: str | None = None,
    answer: str | None = None,
    alternative: str | None = None,
    kinds: Sequence[str] = KINDS,
) -> PatchReport | TraceReport:
    """:func:`patch`, or causal tracing when the prompts cannot be lined up token for token.

    Activation patching copies activations position by position, so it needs a corrupted
    prompt with the clean one's token count. When the given prompts differ in length, or no
    same-length swap of the subject exists, this runs :func:`causal_trace` on ``clean``
    instead, noising the words the corrupted prompt changes (or the guessed subject), and
    says so in the report's warnings. Other input errors are raised as they are.
    """
    try:
        return patch(handle, clean, corrupted=corrupted, answer=answer, alternative=alternative, kinds=kinds)
    except PromptAlignmentError as e:
        why = e.message
    subject = differing_span(handle, clean, corrupted) if corrupted else None
    if subject is None or subject not in clean:
        subject = find_subject(clean)
    rep = causal_trace(handle, clean, answer=answer, subject=subject)
    rep.warnings.insert(0, f"Activation patching was not possible ({why.rstrip('.')}), so this is causal tracing instead: "
                           f"the subject {subject!r} was noised and each clean state restored in turn.")
    return rep
