"""Attribution patching: the gradient estimate of every component's effect from one backward pass."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch

from .engine import _names_for
from .prompts import _Metric

if TYPE_CHECKING:
    from ..model import ModelHandle


def attribution_sweep(handle: ModelHandle, corrupted_tokens: torch.Tensor, clean_cache: dict, metric: _Metric, kinds: Sequence[str]) -> tuple[dict[str, torch.Tensor], float]:
    """Attribution patching: one forward + backward on the corrupted prompt.

    Returns the estimated patched-minus-corrupted metric change for each component,
    ``(a_clean - a_corrupted) · ∂metric/∂a``, and the corrupted metric of that run.
    """
    names = _names_for(handle, kinds)
    first = names[0]  # resid_pre of layer 0: made a leaf that requires grad
    store: dict[str, torch.Tensor] = {}

    def seed(act, hook):
        act = act.detach().clone().requires_grad_(True)
        store[hook.name] = act
        return act

    def keep(act, hook):
        store[hook.name] = act

    hooks = [(first, seed)] + [(n, keep) for n in names[1:]]
    logits = handle.run_with_hooks(corrupted_tokens, fwd_hooks=hooks, grad=True)
    with torch.enable_grad():
        m = logits[0, -1, metric.answer_id] - logits[0, -1, metric.alt_id]
        grads = torch.autograd.grad(m, [store[n] for n in names])
    g = dict(zip(names, grads))
    L = handle.n_layers
    res: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        diff = {n: (clean_cache[n].float() - store[n].detach().float()) * g[n].float() for n in names}
        if "resid" in kinds:
            res["resid"] = torch.stack([diff[handle.hook_name("resid_pre", l)][0].sum(-1) for l in range(L)])
        if "attn" in kinds:
            res["attn"] = torch.stack([diff[handle.hook_name("attn_out", l)].sum() for l in range(L)])
        if "mlp" in kinds:
            res["mlp"] = torch.stack([diff[handle.hook_name("mlp_out", l)].sum() for l in range(L)])
        if "heads" in kinds:
            res["heads"] = torch.stack([diff[handle.hook_name("head_out", l)][0].sum(dim=(0, 2)) for l in range(L)])
    return res, float(m.detach())
