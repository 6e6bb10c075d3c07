"""Build-time bookkeeping of one layer: running per-unit top-k, quantile reservoir and statistics."""

from __future__ import annotations

import math

import torch

from .format import QUANTILE_FLOOR


class _LayerState:
    """Running per-unit top-k, quantile reservoir and statistics for one layer."""

    def __init__(self, n_units: int, K: int, Q: int, T: int):
        U = n_units
        self.top_val = torch.full((K, U), -math.inf)
        self.top_win = torch.full((K, U), -1, dtype=torch.int32)
        # activations are kept [slot, pos, unit] while building (writes are contiguous) and
        # written [slot, unit, pos] at the end
        self.top_acts = torch.zeros((K, T, U), dtype=torch.float16)
        self.q_key = torch.full((Q, U), -math.inf)
        self.q_win = torch.full((Q, U), -1, dtype=torch.int32)
        self.q_acts = torch.zeros((Q, T, U), dtype=torch.float16)
        self.count_pos = torch.zeros(U, dtype=torch.int64)
        self.sum = torch.zeros(U, dtype=torch.float64)
        self.sumsq = torch.zeros(U, dtype=torch.float64)
        self.max = torch.full((U,), -math.inf)
        self.min = torch.full((U,), math.inf)

    FIELDS = ("top_val", "top_win", "top_acts", "q_key", "q_win", "q_acts", "count_pos", "sum", "sumsq", "max", "min")

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k) for k in self.FIELDS}

    def load(self, d: dict[str, torch.Tensor]) -> None:
        for k in self.FIELDS:
            if d[k].shape != getattr(self, k).shape:
                raise ValueError(f"checkpoint field {k} has shape {tuple(d[k].shape)}")
        for k in self.FIELDS:
            setattr(self, k, d[k].clone())

    @staticmethod
    def _insert(vals: torch.Tensor, wins: torch.Tensor, acts: torch.Tensor, new_vals: torch.Tensor, new_win: torch.Tensor,
                a: torch.Tensor) -> None:
        """Keep the ``len(vals)`` largest values per unit, unsorted: each new window replaces
        the unit's current smallest slot when it beats it. Only changed slots are written, so
        late in a build (when few windows still qualify) this costs almost nothing."""
        B = new_vals.shape[0]
        K = vals.shape[0]
        inf_rows = torch.isinf(vals).all(dim=1).to(torch.int64)  # [K]
        empty = int(inf_rows.flip(0).cumprod(0).sum())  # trailing rows never written
        start = K - empty
        if empty >= B:
            # filling: the first windows go straight into the empty slots (vectorised);
            # quantile keys of -inf stay -inf and are dropped when the store is finalised
            vals[start:start + B] = new_vals
            wins[start:start + B] = new_win[:, None]
            acts[start:start + B] = a.to(torch.float16)
            return
        for b in range(B):
            mn, slot = vals.min(0)  # [U]
            hit = (new_vals[b] > mn).nonzero().reshape(-1)
            if hit.numel() == 0:
                continue
            s = slot[hit]
            vals[s, hit] = new_vals[b, hit]
            wins[s, hit] = new_win[b]
            acts[s, :, hit] = a[b][:, hit].T.to(torch.float16)

    def update(self, a: torch.Tensor, win_ids: torch.Tensor, gen: torch.Generator) -> None:
        """``a``: ``[B, T, U]`` float unit activations for windows ``win_ids``."""
        self.count_pos += (a > 0).sum((0, 1))
        self.sum += a.sum((0, 1)).double()  # per-batch sums in fp32, running sums in fp64
        self.sumsq += (a * a).sum((0, 1)).double()
        wmax = a.amax(1)  # [B, U]
        self.max = torch.maximum(self.max, wmax.max(0).values)
        self.min = torch.minimum(self.min, a.amin((0, 1)))
        self._insert(self.top_val, self.top_win, self.top_acts, wmax, win_ids, a)
        keys = torch.rand(wmax.shape, generator=gen)
        floor = QUANTILE_FLOOR * self.max.clamp(min=0)
        keys[(wmax < floor[None, :]) | (wmax <= 0)] = -math.inf
        self._insert(self.q_key, self.q_win, self.q_acts, keys, win_ids, a)

    def sorted_top(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Top slots ordered best first per unit (empty slots last)."""
        order = self.top_val.argsort(dim=0, descending=True)
        vals = torch.gather(self.top_val, 0, order)
        wins = torch.gather(self.top_win, 0, order)
        acts = torch.gather(self.top_acts, 0, order[:, None, :].expand(-1, self.top_acts.shape[1], -1))
        return vals, wins, acts.permute(0, 2, 1).contiguous()
