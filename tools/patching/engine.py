"""The batched patching engine: patched runs from the layer they patch, and the exact sweep."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import torch

from .prompts import _Metric

if TYPE_CHECKING:
    from ..model import ModelHandle


def _last_logits(handle: ModelHandle, tokens: torch.Tensor) -> torch.Tensor:
    """Logits at the last position for a batch of equal-length prompts: ``[batch, vocab]``."""
    with torch.inference_mode():
        resid = handle.run_with_hooks(tokens, stop_at_layer=handle.n_layers)
        out = handle.unembed(handle.final_norm(resid[:, -1:, :]))[:, 0].float()
    return out.clone()  # a normal tensor, editable outside inference mode


@dataclass(frozen=True)
class PatchSpec:
    """One patched run: copy source activations at these hook points into the base run.

    ``patches``: ``(hook_name, layer, position or None for all, head or None)``. ``sample``
    picks the base run when there are several (noise samples in causal tracing).
    """

    patches: tuple[tuple[str, int, int | None, int | None], ...]
    sample: int = 0

    @property
    def start(self) -> int:
        """The first layer this run patches (where it starts from the base run's residual stream)."""
        return min(p[1] for p in self.patches) if self.patches else 0


def _make_hook(rows: list[tuple[int, int | None, int | None, int]], source: torch.Tensor) -> Callable:
    """Hook copying ``source`` (``[1 or S, pos, ...]``, clean run) into the given batch rows."""

    def fn(act, hook):
        for r, pos, head, s in rows:
            src = source[s if source.shape[0] > 1 else 0]
            if head is None:
                if pos is None:
                    act[r] = src
                else:
                    act[r, pos] = src[pos]
            else:
                if pos is None:
                    act[r, :, head] = src[:, head]
                else:
                    act[r, pos, head] = src[pos, head]
        return act

    return fn


def run_specs(
    handle: ModelHandle,
    base_resid: dict[int, torch.Tensor],
    source: dict[str, torch.Tensor],
    specs: Sequence[PatchSpec],
    readout: Callable[[torch.Tensor], torch.Tensor],
    token_budget: int = 4096,
    source_sample: bool = False,
    grow: bool = True,
) -> torch.Tensor:
    """Run every patched run in ``specs``, batched; returns ``readout`` per spec.

    A run is the base run up to the first layer it patches, so it starts there, from the
    base residual stream. ``grow=True`` (default) runs the model one block at a time on a
    batch that grows as runs reach their start layer; ``grow=False`` runs each start
    layer's runs as their own batch through the rest of the model (more, smaller calls).

    ``base_resid[L]``: the base (corrupted) run's residual stream entering layer L,
    ``[S, pos, d_model]``. ``source[name]``: activations to copy in (``[1, ...]``, or
    ``[S, ...]`` with ``source_sample``). ``readout`` maps final residuals ``[B, pos, d_model]``
    to one number per run ``[B]``.
    """
    out = torch.empty(len(specs))
    if not specs:
        return out
    pos = next(iter(base_resid.values())).shape[1]
    chunk = max(1, token_budget // pos)
    resid: torch.Tensor | None  # the batch of runs under way
    if not grow:
        groups: dict[int, list[int]] = {}
        for i, s in enumerate(specs):
            groups.setdefault(s.start, []).append(i)
        for start in sorted(groups):
            idxs = groups[start]
            for c in range(0, len(idxs), chunk):
                part = idxs[c : c + chunk]
                samples = torch.tensor([specs[i].sample for i in part])
                resid = base_resid[start][samples].clone()
                by_hook: dict[str, list] = {}
                for r, i in enumerate(part):
                    for name, _layer, p, h in specs[i].patches:
                        by_hook.setdefault(name, []).append((r, p, h, specs[i].sample if source_sample else 0))
                hooks = [(name, _make_hook(rows, source[name])) for name, rows in by_hook.items()]
                final = handle.run_from(resid, start, None, hooks)
                out[torch.tensor(part)] = readout(final).float().cpu()
        return out
    # growing batch: rows join when the layer they start at comes up, so every block runs once
    # per chunk on every run that needs it, in the largest batch possible
    order = sorted(range(len(specs)), key=lambda i: specs[i].start)
    L = handle.n_layers
    for c in range(0, len(order), chunk):
        part = order[c : c + chunk]
        resid = None
        for l in range(specs[part[0]].start, L):
            new = [i for i in part if specs[i].start == l]
            if new:
                add = base_resid[l][torch.tensor([specs[i].sample for i in new])].clone()
                resid = add if resid is None else torch.cat([resid, add])
            assert resid is not None  # a chunk starts at the layer its first run starts at
            by_hook = {}
            for r, i in enumerate(part[: resid.shape[0]]):
                for name, layer, p, h in specs[i].patches:
                    if layer == l:
                        by_hook.setdefault(name, []).append((r, p, h, specs[i].sample if source_sample else 0))
            hooks = [(name, _make_hook(rows, source[name])) for name, rows in by_hook.items()]
            resid = handle.run_from(resid, l, l + 1, hooks)
        assert resid is not None
        out[torch.tensor(part)] = readout(resid).float().cpu()
    return out


def _logit_diff_readout(handle: ModelHandle, metric: _Metric) -> Callable[[torch.Tensor], torch.Tensor]:
    """Logit difference at the last position, unembedding only the two compared tokens."""
    with torch.inference_mode():
        ids = torch.tensor([metric.answer_id, metric.alt_id], device=handle.device)
        W = handle.W_U()[:, ids]  # [d_model, 2]
        zero = torch.zeros(1, 1, handle.d_model, dtype=W.dtype, device=W.device)
        bias = handle.unembed(zero)[0, 0, ids]  # b_U (zeros when the model has none)
    cap = handle.logit_soft_cap

    def readout(final: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            x = handle.final_norm(final[:, -1:, :])[:, 0]
            lg = x @ W + bias
            if cap > 0:
                lg = cap * torch.tanh(lg / cap)
            return lg[:, 0] - lg[:, 1]

    return readout


def _names_for(handle: ModelHandle, kinds: Sequence[str]) -> list[str]:
    names = [handle.hook_name("resid_pre", l) for l in range(handle.n_layers)]
    for l in range(handle.n_layers):
        if "attn" in kinds:
            names.append(handle.hook_name("attn_out", l))
        if "mlp" in kinds:
            names.append(handle.hook_name("mlp_out", l))
        if "heads" in kinds:
            names.append(handle.hook_name("head_out", l))
    return names


def build_specs(handle: ModelHandle, kinds: Sequence[str], n_pos: int, first_changed: int = 0) -> list[tuple[str, tuple, PatchSpec]]:
    """The standard sweep: residual by layer x position, attn/MLP output by layer, heads by layer x head.

    Residual positions before ``first_changed`` are left out: there the clean and corrupted
    streams are identical (causal attention), so patching them has exactly zero effect.
    """
    out: list[tuple[str, tuple, PatchSpec]] = []
    for l in range(handle.n_layers):
        if "resid" in kinds:
            name = handle.hook_name("resid_pre", l)
            for p in range(first_changed, n_pos):
                out.append(("resid", (l, p), PatchSpec(((name, l, p, None),))))
        if "attn" in kinds:
            out.append(("attn", (l,), PatchSpec(((handle.hook_name("attn_out", l), l, None, None),))))
        if "mlp" in kinds:
            out.append(("mlp", (l,), PatchSpec(((handle.hook_name("mlp_out", l), l, None, None),))))
        if "heads" in kinds:
            name = handle.hook_name("head_out", l)
            for h in range(handle.n_heads):
                out.append(("heads", (l, h), PatchSpec(((name, l, None, h),))))
    return out


def exact_sweep(
    handle: ModelHandle,
    clean_cache: dict,
    corrupted_cache: dict,
    metric: _Metric,
    kinds: Sequence[str],
    n_pos: int,
    token_budget: int = 4096,
    first_changed: int = 0,
    corrupted_metric: float | None = None,
    grow: bool = True,
) -> tuple[dict[str, torch.Tensor], int]:
    """Patched metric (raw logit difference) for every component of ``kinds``; returns it and the number of runs."""
    specs = build_specs(handle, kinds, n_pos, first_changed if corrupted_metric is not None else 0)
    base = {l: corrupted_cache[handle.hook_name("resid_pre", l)] for l in range(handle.n_layers)}
    vals = run_specs(handle, base, clean_cache, [s for _, _, s in specs], _logit_diff_readout(handle, metric), token_budget, grow=grow)
    L = handle.n_layers
    shapes = {"resid": (L, n_pos), "attn": (L,), "mlp": (L,), "heads": (L, handle.n_heads)}
    res = {k: torch.full(shapes[k], float("nan")) for k in kinds}
    if "resid" in kinds and corrupted_metric is not None:
        res["resid"][:, :first_changed] = corrupted_metric  # identical streams there: no effect
    for (kind, idx, _), v in zip(specs, vals):
        res[kind][idx] = v
    return res, len(specs)
