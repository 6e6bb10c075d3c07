"""Tiny random models for fast tests (seconds, no network).

``tiny_handle()`` builds a llama-style HookedTransformer from a config (RMSNorm, rotary,
gated SiLU MLP, grouped-query attention) and a word-level tokenizer saved to a temporary
folder and loaded back from it, as TransformerLens requires. Tools are tested on it
exactly as on a real model; tests may then set weights by hand to plant features.
"""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path

import torch

WORDS = (
    "the a an of to in on at and or but is was are were be been it he she they we you i this that "
    "cat cats dog dogs bird birds fish house houses tree trees car cars city cities king queen man woman "
    "child children red blue green big small old new good bad happy sad fast slow hot cold "
    "run runs ran walk walks eat eats see sees say says go goes went come came "
    "paris rome london berlin madrid tokyo france italy england germany spain japan capital country "
    "one two three four five six seven eight nine ten zero number numbers "
    "def return if else for while import class print true false none "
    "love hate like want need know think feel make take give find tell ask "
    "water fire earth air light dark day night sun moon star sky sea river mountain "
    ". , ! ? : ; ( ) = + - \" '"
).split()


@lru_cache(maxsize=1)
def tiny_tokenizer_dir() -> str:
    """A saved word-level tokenizer folder (built once per process)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<unk>", "<pad>"]
    vocab = {w: i for i, w in enumerate(specials + sorted(set(WORDS)))}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    tk.decoder = decoders.WordPiece(prefix="##")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<unk>",
        pad_token="<pad>",
    )
    d = Path(tempfile.mkdtemp(prefix="gnothi-tiny-tok-"))
    fast.save_pretrained(str(d))
    return str(d)


def tiny_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir())


def tiny_config(**overrides):
    from transformer_lens import HookedTransformerConfig

    tok = tiny_tokenizer()
    cfg = dict(
        n_layers=2,
        d_model=32,
        n_heads=4,
        d_head=8,
        n_key_value_heads=2,
        d_mlp=64,
        d_vocab=len(tok),
        n_ctx=64,
        act_fn="silu",
        normalization_type="RMS",
        positional_embedding_type="rotary",
        rotary_dim=8,
        gated_mlp=True,
        final_rms=True,
        original_architecture="LlamaForCausalLM",
        seed=0,
        device="cpu",
        dtype=torch.float32,
    )
    cfg.update(overrides)
    return HookedTransformerConfig(**cfg)


def tiny_hooked(**overrides):
    """A random-weight HookedTransformer with the tiny tokenizer."""
    from transformer_lens import HookedTransformer

    cfg = tiny_config(**overrides)
    torch.manual_seed(cfg.seed or 0)
    model = HookedTransformer(cfg, tokenizer=tiny_tokenizer(), move_to_device=False, default_padding_side="right")
    model.eval()
    return model


def tiny_handle(name: str = "tiny-llama", **overrides):
    """A ``ModelHandle`` over a tiny random llama-style model."""
    from .model import from_hooked_transformer

    model = tiny_hooked(**overrides)
    return from_hooked_transformer(model, model.tokenizer, name=name)
