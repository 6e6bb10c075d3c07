"""The one place gnothi touches TransformerLens.

Everything else talks to :class:`HookedAdapter`. Moving to TransformerLens' bridge API
(or another hooking library) means rewriting this file only: the rest of gnothi sees
hook-point names in TransformerLens' convention (``blocks.{L}.hook_resid_post``...), plain
tensors, and the small set of operations below.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import torch

from .errors import UnsupportedArchitectureError

Hook = tuple[str, Callable]

# hook kinds gnothi names, -> TransformerLens hook name pattern
HOOK_KINDS: dict[str, str] = {
    "resid_pre": "blocks.{layer}.hook_resid_pre",
    "resid_mid": "blocks.{layer}.hook_resid_mid",
    "resid_post": "blocks.{layer}.hook_resid_post",
    "attn_out": "blocks.{layer}.hook_attn_out",
    "head_out": "blocks.{layer}.attn.hook_z",  # per-head output before W_O: [batch, pos, head, d_head]
    "attn_pattern": "blocks.{layer}.attn.hook_pattern",  # [batch, head, query, key]
    "mlp_pre": "blocks.{layer}.mlp.hook_pre",
    "mlp_post": "blocks.{layer}.mlp.hook_post",  # MLP neuron activations: [batch, pos, d_mlp]
    "mlp_out": "blocks.{layer}.hook_mlp_out",
}


def _quiet_tl_logging() -> None:
    logging.getLogger("transformer_lens").setLevel(logging.ERROR)


class HookedAdapter:
    """A TransformerLens ``HookedTransformer`` built from an HF model, weights unchanged.

    No layer-norm folding, centering or other weight processing is applied, so neuron
    activations and output weights are those of the original checkpoint, and log-probs
    match the HF model to float precision.
    """

    def __init__(self, hf_model, tokenizer, model_dir: Path, device: str, dtype: torch.dtype):
        from transformer_lens import HookedTransformer
        from transformer_lens.loading_from_pretrained import (
            get_pretrained_model_config,
            get_pretrained_state_dict,
        )

        _quiet_tl_logging()
        arch = (getattr(hf_model.config, "architectures", None) or ["?"])[0]
        # TransformerLens infers some architectures from words in the name ("llama",
        # "gemma"); a neutral symlink name makes it read config.json instead.
        with tempfile.TemporaryDirectory(prefix="gnothi-") as td:
            link = Path(td) / "m"
            os.symlink(Path(model_dir).resolve(), link)
            try:
                cfg = get_pretrained_model_config(str(link), dtype=dtype, device=device, fold_ln=False)
                state = get_pretrained_state_dict(str(link), cfg, hf_model=hf_model, dtype=dtype)
            except (NotImplementedError, ValueError, KeyError, AttributeError) as e:
                raise UnsupportedArchitectureError(
                    f"TransformerLens 3.9 cannot convert a {arch} model ({type(e).__name__}: {e}).",
                    "Use a supported architecture (Llama, Mistral, Qwen2/3, Gemma 1-3, GPT-2, GPT-NeoX/Pythia, "
                    "OPT, Phi, OLMo...), see `gnothi models`.",
                ) from e
        cfg.model_name = Path(model_dir).name
        self.model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False, default_padding_side="right")
        self.model.load_and_process_state_dict(
            state,
            fold_ln=False,
            center_writing_weights=False,
            center_unembed=False,
            fold_value_biases=False,
            refactor_factored_attn_matrices=False,
        )
        self.model.to(device, print_details=False)
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.architecture = arch

    # ------------------------------------------------------------------ shape
    @property
    def cfg(self):
        return self.model.cfg

    def hook_names(self) -> list[str]:
        return list(self.model.hook_dict.keys())

    # ------------------------------------------------------------------ runs
    def forward(self, tokens: torch.Tensor, stop_at_layer: int | None = None, attention_mask=None) -> torch.Tensor:
        return self.model(tokens, stop_at_layer=stop_at_layer, attention_mask=attention_mask)

    def run_with_cache(self, tokens: torch.Tensor, names: Sequence[str], stop_at_layer: int | None):
        """Run recording only ``names``; returns (output, {name: tensor})."""
        store: dict[str, torch.Tensor] = {}

        def make(name):
            def fn(act, hook):
                store[name] = act.detach()

            return fn

        out = self.model.run_with_hooks(
            tokens,
            fwd_hooks=[(n, make(n)) for n in names],
            stop_at_layer=stop_at_layer,
            reset_hooks_end=True,
        )
        return out, store

    def run_with_hooks(
        self,
        tokens: torch.Tensor,
        fwd_hooks: Sequence[Hook] = (),
        bwd_hooks: Sequence[Hook] = (),
        stop_at_layer: int | None = None,
    ) -> torch.Tensor:
        return self.model.run_with_hooks(
            tokens,
            fwd_hooks=list(fwd_hooks),
            bwd_hooks=list(bwd_hooks),
            stop_at_layer=stop_at_layer,
            reset_hooks_end=True,
        )

    # ------------------------------------------------------------------ weights
    def W_U(self) -> torch.Tensor:
        return self.model.W_U  # [d_model, d_vocab]

    def W_out(self, layer: int) -> torch.Tensor:
        return self.model.blocks[layer].mlp.W_out  # [d_mlp, d_model]

    def W_in(self, layer: int) -> torch.Tensor:
        return self.model.blocks[layer].mlp.W_in  # [d_model, d_mlp]

    def W_O(self, layer: int) -> torch.Tensor:
        return self.model.blocks[layer].attn.W_O  # [n_heads, d_head, d_model]

    def final_norm(self, resid: torch.Tensor) -> torch.Tensor:
        return self.model.ln_final(resid)

    def unembed(self, resid_normed: torch.Tensor) -> torch.Tensor:
        return self.model.unembed(resid_normed)

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.embed(tokens)
