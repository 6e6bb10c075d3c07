"""Build-time bookkeeping of one layer: running per-unit top-k, quantile reservoir and statistics.

Everything here is mergeable: two states built over disjoint sets of windows merge into the
state a single pass over both would have built. That is what lets a store be built in shards
(on Ray workers, say) and still equal a one-process build of the same windows:

- top-k keeps the ``K`` best windows per unit by (max activation, descending; window id,
  ascending), so ties are broken the same way whatever the order the windows came in;
- the quantile reservoir keeps the windows with the largest sampling keys, and a window's key
  depends only on the window, the unit and the seed (a weighted sample without replacement,
  Efraimidis-Spirakis, weights the square of the window's max activation), never on what was
  seen before it; windows below :data:`QUANTILE_FLOOR` of the unit's final max are dropped
  when the store is finalised;
- counts, max and min merge exactly; sums and sums of squares (fp64) merge by addition, so
  they agree to fp64 rounding (the order of the additions differs).
"""

from __future__ import annotations

import math

import torch

from .format import QUANTILE_FLOOR

# the quantile reservoir keeps this many candidates per kept sample while building (some fall
# below the floor of the final max and are dropped when the store is finalised)
Q_SLACK = 2


def canonical_order(vals: torch.Tensor, wins: torch.Tensor) -> torch.Tensor:
    """Slot order per unit (dim 0) by value descending, then window id ascending."""
    by_win = torch.sort(wins, dim=0, stable=True).indices
    by_val = torch.sort(torch.gather(vals, 0, by_win), dim=0, descending=True, stable=True).indices
    return torch.gather(by_win, 0, by_val)


def window_keys(seed: int, layer: int, win_ids: torch.Tensor, n_units: int) -> torch.Tensor:
    """``[B, U]`` uniform numbers in [0, 1), a function of (seed, layer, window) only."""
    out = torch.empty((len(win_ids), n_units))
    g = torch.Generator()
    for i, w in enumerate(win_ids.cpu().tolist()):
        g.manual_seed(((seed * 1_000_003 + layer) * 10_000_019 + int(w)) % (2**63))
        out[i] = torch.rand(n_units, generator=g)
    return out


class _LayerState:
    """Running per-unit top-k, quantile reservoir and statistics for one layer."""

    def __init__(self, n_units: int, K: int, Q: int, T: int, layer: int = 0, seed: int = 0, device: str | torch.device = "cpu"):
        U = n_units
        self.layer, self.seed, self.n_quantile, self.device = layer, seed, Q, torch.device(device)
        dev = self.device
        self.top_val = torch.full((K, U), -math.inf, device=dev)
        self.top_win = torch.full((K, U), -1, dtype=torch.int32, device=dev)
        # activations are kept [slot, pos, unit] while building (writes are contiguous) and
        # written [slot, unit, pos] at the end
        self.top_acts = torch.zeros((K, T, U), dtype=torch.float16, device=dev)
        Qs = Q * Q_SLACK
        self.q_key = torch.full((Qs, U), -math.inf, device=dev)
        self.q_win = torch.full((Qs, U), -1, dtype=torch.int32, device=dev)
        self.q_acts = torch.zeros((Qs, T, U), dtype=torch.float16, device=dev)
        self.q_wmax = torch.zeros((Qs, U), device=dev)
        self.count_pos = torch.zeros(U, dtype=torch.int64, device=dev)
        self.sum = torch.zeros(U, dtype=torch.float64, device=dev)
        self.sumsq = torch.zeros(U, dtype=torch.float64, device=dev)
        self.max = torch.full((U,), -math.inf, device=dev)
        self.min = torch.full((U,), math.inf, device=dev)

    FIELDS = ("top_val", "top_win", "top_acts", "q_key", "q_win", "q_acts", "q_wmax", "count_pos", "sum", "sumsq", "max", "min")

    def tensors(self) -> dict[str, torch.Tensor]:
        """The state as CPU tensors (to save, or to send to another process)."""
        return {k: getattr(self, k).cpu() for k in self.FIELDS}

    def to(self, device: str | torch.device) -> "_LayerState":
        """Move the state to ``device`` (the store is finalised on the CPU)."""
        self.device = torch.device(device)
        for k in self.FIELDS:
            setattr(self, k, getattr(self, k).to(self.device))
        return self

    def load(self, d: dict[str, torch.Tensor]) -> None:
        for k in self.FIELDS:
            if k not in d or d[k].shape != getattr(self, k).shape:
                raise ValueError(f"checkpoint field {k} is missing or has another shape")
        for k in self.FIELDS:
            setattr(self, k, d[k].to(self.device, copy=True))

    @staticmethod
    def _insert(vals: torch.Tensor, wins: torch.Tensor, acts: torch.Tensor, new_vals: torch.Tensor, new_win: torch.Tensor,
                a: torch.Tensor, extra: torch.Tensor | None = None, new_extra: torch.Tensor | None = None) -> None:
        """Keep the ``len(vals)`` best windows per unit in the canonical order (value descending,
        window id ascending; slots unsorted): the kept slots and the batch's windows are ranked
        together, all units at once, and only the slots whose window leaves are written, so late
        in a build (when few windows still qualify) this costs almost nothing. ``extra``: one more
        per-slot value carried along (``new_extra``)."""
        B = new_vals.shape[0]
        K = vals.shape[0]
        inf_rows = torch.isinf(vals).all(dim=1).to(torch.int64)  # [K]
        empty = int(inf_rows.flip(0).cumprod(0).sum())  # trailing rows never written
        start = K - empty
        if empty >= B:
            # filling: the first windows go straight into the empty slots (vectorised); quantile
            # keys of -inf stay -inf and are dropped when the store is finalised
            vals[start:start + B] = new_vals
            wins[start:start + B] = new_win[:, None]
            acts[start:start + B] = a.to(torch.float16)
            if extra is not None and new_extra is not None:
                extra[start:start + B] = new_extra
            return
        if not bool((new_vals > vals.min(0).values[None, :]).any()):
            return  # late in a build most batches change nothing
        # the best K of the kept slots and the new windows, in the canonical order; then each
        # unit's leaving slots take its entering windows (both listed unit by unit, in order)
        all_vals = torch.cat([vals, new_vals])
        best = torch.topk(all_vals, K + 1, dim=0)
        order = best.indices[:K]
        # the K best are one set unless the K-th and the next tie: only those units need the tie rule
        tied = (best.values[K - 1] == best.values[K]).nonzero().reshape(-1)
        if tied.numel():
            all_wins = torch.cat([wins, new_win[:, None].to(wins.dtype).expand(B, vals.shape[1])])
            order[:, tied] = canonical_order(all_vals[:, tied], all_wins[:, tied])[:K]
        keep = torch.zeros((K + B, vals.shape[1]), dtype=torch.bool, device=vals.device)
        keep.scatter_(0, order, True)
        lu, ls = (~keep[:K]).T.nonzero(as_tuple=True)  # (unit, slot) of the slots that leave
        eu, eb = keep[K:].T.nonzero(as_tuple=True)  # (unit, window) of the windows that enter
        vals[ls, lu] = new_vals[eb, eu]
        wins[ls, lu] = new_win.to(wins.dtype)[eb]
        acts[ls, :, lu] = a[eb, :, eu].to(torch.float16)
        if extra is not None and new_extra is not None:
            extra[ls, lu] = new_extra[eb, eu]

    def update(self, a: torch.Tensor, win_ids: torch.Tensor) -> None:
        """``a``: ``[B, T, U]`` float unit activations for windows ``win_ids`` (increasing)."""
        self.count_pos += (a > 0).sum((0, 1))
        self.sum += a.sum((0, 1)).double()  # per-batch sums in fp32, running sums in fp64
        self.sumsq += (a * a).sum((0, 1)).double()
        wmax = a.amax(1)  # [B, U]
        self.max = torch.maximum(self.max, wmax.max(0).values)
        self.min = torch.minimum(self.min, a.amin((0, 1)))
        self._insert(self.top_val, self.top_win, self.top_acts, wmax, win_ids, a)
        u = window_keys(self.seed, self.layer, win_ids, a.shape[2]).to(a.device)
        pos = wmax.clamp(min=0)
        keys = torch.where(pos > 0, torch.log(u) / (pos * pos), torch.full_like(u, -math.inf))
        self._insert(self.q_key, self.q_win, self.q_acts, keys, win_ids, a, self.q_wmax, wmax)

    def merge(self, other: "_LayerState") -> None:
        """Fold in a state built over other windows (the result is as if one pass saw both)."""
        self.count_pos += other.count_pos
        self.sum += other.sum
        self.sumsq += other.sumsq
        self.max = torch.maximum(self.max, other.max)
        self.min = torch.minimum(self.min, other.min)
        for v, w, a, x in (("top_val", "top_win", "top_acts", None), ("q_key", "q_win", "q_acts", "q_wmax")):
            K = getattr(self, v).shape[0]
            vals = torch.cat([getattr(self, v), getattr(other, v)])
            wins = torch.cat([getattr(self, w), getattr(other, w)])
            order = canonical_order(vals, wins)[:K]
            setattr(self, v, torch.gather(vals, 0, order))
            setattr(self, w, torch.gather(wins, 0, order))
            acts = torch.cat([getattr(self, a), getattr(other, a)])
            setattr(self, a, torch.gather(acts, 0, order[:, None, :].expand(-1, acts.shape[1], -1)))
            if x is not None:
                setattr(self, x, torch.gather(torch.cat([getattr(self, x), getattr(other, x)]), 0, order))

    def sorted_top(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Top slots ordered best first per unit, ties by window id (empty slots last)."""
        order = canonical_order(self.top_val, self.top_win)
        vals = torch.gather(self.top_val, 0, order)
        wins = torch.gather(self.top_win, 0, order)
        acts = torch.gather(self.top_acts, 0, order[:, None, :].expand(-1, self.top_acts.shape[1], -1))
        return vals, wins, acts.permute(0, 2, 1).contiguous()

    def final_quantile(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The quantile sample as stored: ``[Q, U]`` window ids (-1: none) and ``[Q, U, T]``
        activations; windows under the floor of the unit's final max are dropped."""
        ok = torch.isfinite(self.q_key) & (self.q_wmax >= QUANTILE_FLOOR * self.max.clamp(min=0)[None, :])
        key = torch.where(ok, self.q_key, torch.full_like(self.q_key, -math.inf))
        wins = torch.where(ok, self.q_win, torch.full_like(self.q_win, -1))
        order = canonical_order(key, torch.where(ok, wins, torch.full_like(wins, 2**31 - 1)))[: self.n_quantile]
        q_win = torch.gather(wins, 0, order)
        acts = torch.gather(self.q_acts, 0, order[:, None, :].expand(-1, self.q_acts.shape[1], -1))
        acts = torch.where((q_win >= 0)[:, None, :], acts, torch.zeros_like(acts))
        return q_win, acts.permute(0, 2, 1).contiguous()
