"""Running the SAE on texts: per-token feature activations of each text (BOS dropped)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch

from ..errors import InputError
from ..sae import SAE

if TYPE_CHECKING:
    from ..model import ModelHandle


def _encode_texts(handle: ModelHandle, sae: SAE, texts: Sequence[str], batch: int = 8) -> list[tuple[list[int], torch.Tensor, torch.Tensor]]:
    """Per text: (token ids without BOS, activations x [n, d_in], feature acts [n, d_sae]); BOS dropped."""
    hook = str(sae.hook_name)
    out = []
    bos = 1 if handle.bos_token_id is not None else 0
    for i in range(0, len(texts), batch):
        chunk = list(texts[i : i + batch])
        toks = handle.to_tokens(chunk)
        lens = [len(handle.tokenizer(t, add_special_tokens=False)["input_ids"]) + bos for t in chunk]
        _, cache = handle.run_with_cache(toks, [hook])
        acts = cache[hook].float()
        with torch.no_grad():
            for j, L in enumerate(lens):
                x = acts[j, bos:L]
                if x.dim() == 3:
                    x = x.flatten(-2)
                out.append((toks[j, bos:L].tolist(), x, sae.encode(x)))
    return out


def _check_text(text, what="text") -> str:
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"No {what} given (empty string).", f"Pass a non-empty {what}.")
    return text
