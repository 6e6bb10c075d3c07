"""Tiny random models for fast tests (seconds, no network).

``tiny_handle(arch=...)`` builds a random Hugging Face model of one of several
architectures (Llama, Gemma 3, GPT-2, Qwen2, GPT-NeoX sequential and parallel as in
Pythia) from a config, with a word-level
tokenizer, and wraps it in the same TransformerLens bridge a real model gets. Tools are
tested on it exactly as on a real model; tests may then set weights by hand (the bridge's
weights are views of the HF parameters) to plant features.
"""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

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


def _tiny_hf_config(arch: str, vocab: int, tok):
    """An HF config of architecture ``arch``: 2 layers, d_model 32, 4 heads of 8, d_mlp 64."""
    import transformers as tf

    # weights drawn at 0.8 / sqrt(d_model), as TransformerLens initialises: HF's default 0.02
    # leaves a model this small with near-uniform outputs
    ids = dict(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        initializer_range=0.8 / 32**0.5,
    )
    if arch == "llama":
        return tf.LlamaConfig(
            vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=8, max_position_embeddings=64, tie_word_embeddings=False, **ids,
        )
    if arch == "gemma3":
        # Gemma 3's quirks: scaled and tied embeddings, norms before and after attention and
        # MLP, (1 + w) RMSNorm, q/k norms, sliding-window layers mixed with global ones, one KV head
        return tf.Gemma3TextConfig(
            vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=1, head_dim=8, max_position_embeddings=64, sliding_window=4,
            layer_types=["sliding_attention", "full_attention"], query_pre_attn_scalar=8, **ids,
        )
    if arch == "gpt2":
        return tf.GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=4, n_inner=64, n_positions=64, **ids)
    if arch == "qwen2":
        return tf.Qwen2Config(
            vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=False, **ids,
        )
    if arch in ("gpt_neox", "pythia"):
        # Pythia's blocks are parallel (attention and MLP both read the block's input), so
        # they have no resid_mid; plain GPT-NeoX here is sequential
        partial: dict[str, Any] = {"rotary_pct": 0.5}  # rotary on half of each head (as Pythia), a legacy keyword the config still reads
        return tf.GPTNeoXConfig(
            vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=64, use_parallel_residual=arch == "pythia", **ids, **partial,
        )
    raise ValueError(f"no tiny config for {arch!r}; use one of {', '.join(TINY_ARCHS)}")


TINY_ARCHS = ("llama", "gemma3", "gpt2", "qwen2", "gpt_neox", "pythia")


def tiny_hf(arch: str = "llama", seed: int = 0):
    """A random-weight HF causal LM of architecture ``arch`` sized for the tiny tokenizer."""
    from transformers import AutoModelForCausalLM

    tok = tiny_tokenizer()
    cfg = _tiny_hf_config(arch, len(tok), tok)
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, attn_implementation="eager")
    with torch.no_grad():  # norms start at identity; give them some spread so they matter
        for name, p in model.named_parameters():
            if "norm" in name or "ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model.eval(), tok


def tiny_handle(name: str = "tiny-llama", arch: str = "llama", seed: int = 0):
    """A ``ModelHandle`` over a tiny random model (llama-style by default: RMSNorm, rotary,
    gated SiLU MLP, grouped-query attention)."""
    from .model import from_hf_model

    model, tok = tiny_hf(arch, seed)
    return from_hf_model(model, tok, name=name)


CAT_NEURON, TWO_MODE_NEURON = 5, 9


def planted_handle():
    """A tiny model with planted MLP neurons in layer 0 (layer-0 attention output zeroed, so
    the MLP sees only the token embedding): neuron 5 fires exactly on "cat", neuron 9 on
    "king" and on "river" (two modes). Deterministic: built from a config and a seed."""
    h = tiny_handle(name="tiny-planted")
    m, tok = h.tl_model, h.tokenizer
    ids = {w: tok.convert_tokens_to_ids(w) for w in ("cat", "king", "river")}
    with torch.no_grad():
        m.blocks[0].attn.W_O.zero_()
        m.W_E[:, :3] = 0
        m.W_E[ids["cat"], 0] = 4.0
        m.W_E[ids["king"], 1] = 4.0
        m.W_E[ids["river"], 2] = 4.0
        mlp = m.blocks[0].mlp
        mlp.W_gate[:3, :] = 0
        mlp.W_in[:3, :] = 0
        for n, dims in ((CAT_NEURON, [0]), (TWO_MODE_NEURON, [1, 2])):
            mlp.W_gate[:, n] = 0
            mlp.W_in[:, n] = 0
            for d in dims:
                mlp.W_gate[d, n] = 3.0
                mlp.W_in[d, n] = 1.0
    return h


def synthetic_corpus(n_docs: int = 300, seed: int = 0):
    """Documents of random words from :data:`WORDS`, two sources."""
    import random

    from .corpus import Corpus, Document

    rng = random.Random(seed)
    words = [w for w in WORDS if w.isalpha()]
    docs = [Document(" ".join(rng.choice(words) for _ in range(rng.randint(20, 60))), f"src{i % 2}") for i in range(n_docs)]
    return Corpus("synthetic", docs)


def slow_planted_handle(seconds_per_batch: float = 0.3):
    """:func:`planted_handle` whose every forward pass takes ``seconds_per_batch`` longer: a
    build then lasts long enough for a test to stop or kill it part way through."""
    import time

    h = planted_handle()
    run = h.run_with_cache

    def slow(*a, **kw):
        time.sleep(seconds_per_batch)
        return run(*a, **kw)

    h.run_with_cache = slow
    return h
