"""Residual-stream activations at one token position, for every requested layer in one pass."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np
import torch

from ..errors import InputError
from .schemas import HOOK_KIND, POSITIONS, Position

if TYPE_CHECKING:
    from ..model import ModelHandle


def _token_lengths(handle: ModelHandle, texts: Sequence[str]) -> list[int]:
    bos = 1 if handle.bos_token_id is not None else 0
    return [len(handle.tokenizer(t, add_special_tokens=False)["input_ids"]) + bos for t in texts]


def collect_features(
    handle: ModelHandle,
    texts: Sequence[str],
    layers: Sequence[int],
    position: Position = "last",
    batch_size: int = 32,
    progress: bool = False,
    kind: str = HOOK_KIND,
) -> np.ndarray:
    """Residual activations ``[len(layers), len(texts), d_model]`` (float32 numpy).

    One ``run_with_cache`` per batch records every requested layer at once; the forward
    pass stops after the last of them. Texts are batched by length to limit padding.
    ``position``: ``"last"`` = the text's last token; ``"mean"`` = the mean over its tokens,
    BOS excluded (BOS's residual is large and the same for every text).
    """
    if position not in POSITIONS:
        raise InputError(f"Unknown token position {position!r}.", f"Use one of: {', '.join(POSITIONS)}.")
    if not texts:
        raise InputError("No texts to probe.", "Give a dataset with examples.")
    names = [handle.hook_name(kind, l) for l in layers]
    lengths = _token_lengths(handle, texts)
    has_bos = handle.bos_token_id is not None
    order = np.argsort(lengths, kind="stable")
    out = np.zeros((len(layers), len(texts), handle.d_model), dtype=np.float32)
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    it: Iterable[np.ndarray] = batches
    if progress:
        try:
            from tqdm import tqdm

            it = tqdm(batches, desc="activations", unit="batch", file=sys.stderr, leave=False)
        except ImportError:  # pragma: no cover
            pass
    for idx in it:
        toks = handle.to_tokens([texts[i] for i in idx])
        _, cache = handle.run_with_cache(toks, names)
        lens = torch.tensor([lengths[i] for i in idx])
        for li, name in enumerate(names):
            act = cache[name].float().cpu()  # [b, pos, d]
            if position == "last":
                feats = act[torch.arange(len(idx)), lens - 1]
            else:
                pos = torch.arange(act.shape[1])[None, :]
                start = 1 if has_bos else 0
                mask = (pos < lens[:, None]) & (pos >= start)
                # a text that is only BOS: fall back to the BOS position
                mask[mask.sum(1) == 0, 0] = True
                m = mask.float().unsqueeze(-1)
                feats = (act * m).sum(1) / m.sum(1)
            out[li, idx] = feats.numpy()
    return out
