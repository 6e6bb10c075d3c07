"""``ModelHandle``: one loaded model and the few operations every gnothi tool needs.

Load the bundled default, a Hugging Face id from the local HF cache, or a local folder::

    from gnothi.tools.model import load_model
    h = load_model()                       # bundled SmolLM2-135M-Instruct
    h = load_model("/path/to/hf_folder")   # safetensors weights + tokenizer files
    h = load_model("Qwen/Qwen2.5-0.5B")    # only if already in the local HF cache

Hook points use TransformerLens names (``blocks.{L}.mlp.hook_post`` ...); ask for them by
kind with :meth:`ModelHandle.hook_name`. Runs record only the hook points you ask for and
stop after the last layer they need. Every public method takes the handle's lock, so one
handle can be shared by threads (a chat UI with several users, a batch job).
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Callable, Sequence

import torch
from pydantic import BaseModel

from . import bundled
from . import tokens as tok_text
from .adapter import HOOK_KINDS, BridgeAdapter, bridge_architectures
from .config import DEFAULT_MODEL, memory_limit_bytes, physical_memory_bytes
from .errors import (
    InputError,
    MemoryBoundError,
    ModelNotCachedError,
    OutOfRangeError,
    UnknownHookPointError,
    UnknownModelError,
    UnsafeWeightsError,
    check_range,
    check_unicode,
)

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


class ModelShape(BaseModel):
    name: str
    architecture: str
    n_layers: int
    d_model: int
    d_mlp: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_vocab: int
    n_ctx: int


def pick_device(device: str | None = None) -> str:
    """``device`` if given, else cuda, then mps, then cpu."""
    if device and device != "auto":
        if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", device):
            raise InputError(f"Unknown device {device!r}.", "Use --device cpu, cuda, cuda:N, mps or auto.")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise InputError("CUDA was requested but no CUDA GPU is visible.", "Use --device cpu, or auto.")
        if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
            raise InputError(f"There is no {device}: {torch.cuda.device_count()} CUDA GPU(s) are visible.", "Use --device cuda:0, or auto.")
        if device == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise InputError("MPS (Apple GPU) was requested but it is not available here.", "Use --device cpu, or auto.")
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(dtype: str | torch.dtype | None, device: str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        return torch.float32 if device == "cpu" else torch.bfloat16
    if dtype not in DTYPES:
        raise InputError(f"Unknown dtype {dtype!r}.", f"Use one of: {', '.join(sorted(DTYPES))}.")
    return DTYPES[dtype]


_LAYER_RE = re.compile(r"^blocks\.(\d+)\.")


_VOCAB: dict[int, tuple[object, list[str]]] = {}


def decoded_vocab(tokenizer) -> list[str]:
    """Every token id's text, decoded once per tokenizer (the stop and sentence-end sets are
    read off it)."""
    hit = _VOCAB.get(id(tokenizer))
    if hit is None or hit[0] is not tokenizer:
        hit = _VOCAB[id(tokenizer)] = (tokenizer, tokenizer.batch_decode([[i] for i in range(len(tokenizer))]))
    return hit[1]


def _newline_ids(tokenizer) -> list[int]:
    """Ids of the tokens whose text holds a newline ("\n", "\n\n", ".\n" ...): where a base
    model's answer in the question-answer frame ends."""
    unk = getattr(tokenizer, "unk_token_id", None)
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    return [i for i, t in enumerate(decoded_vocab(tokenizer)) if "\n" in t and i != unk and i not in special]


_FIXED_BYTES = 0.6e9  # a run's fixed cost (thread pools, the first allocations), measured by benchmarks/bench_memory.py


def _ram_note() -> str:
    total = physical_memory_bytes()
    return f" (this machine has {total / 1e9:.0f} GB)" if total else ""


class ModelHandle:
    """A loaded model: tokenizer, shape, hook points, and locked operations."""

    def __init__(self, adapter: BridgeAdapter, tokenizer, name: str, source: str, device: str, dtype: torch.dtype):
        self.adapter = adapter
        self.tokenizer = tokenizer
        self.name = name
        self.source = source
        self.device = device
        self.dtype = dtype
        self.lock = threading.RLock()
        cfg = adapter.cfg
        self.shape = ModelShape(
            name=name,
            architecture=adapter.architecture,
            n_layers=cfg.n_layers,
            d_model=cfg.d_model,
            d_mlp=cfg.d_mlp or 0,
            n_heads=cfg.n_heads,
            n_kv_heads=cfg.n_key_value_heads or cfg.n_heads,
            d_head=cfg.d_head,
            d_vocab=cfg.d_vocab,
            n_ctx=cfg.n_ctx,
        )
        self._hook_names = set(adapter.hook_names())

    # ------------------------------------------------------------------ shape shortcuts
    @property
    def n_layers(self) -> int:
        return self.shape.n_layers

    @property
    def d_model(self) -> int:
        return self.shape.d_model

    @property
    def d_mlp(self) -> int:
        return self.shape.d_mlp

    @property
    def n_heads(self) -> int:
        return self.shape.n_heads

    # ------------------------------------------------------------------ hook points
    def hook_name(self, kind: str, layer: int) -> str:
        """TransformerLens name of hook ``kind`` (see ``HOOK_KINDS``) at ``layer``."""
        if kind not in HOOK_KINDS:
            raise UnknownHookPointError(f"Unknown hook kind {kind!r}.", f"Use one of: {', '.join(HOOK_KINDS)}.")
        check_range("layer", layer, self.n_layers)
        return HOOK_KINDS[kind].format(layer=layer)

    def hook_points(self) -> dict[str, list[str]]:
        """Hook-point names grouped by kind (only kinds this model has)."""
        out: dict[str, list[str]] = {}
        for kind, pat in HOOK_KINDS.items():
            names = [pat.format(layer=l) for l in range(self.n_layers)]
            names = [n for n in names if n in self._hook_names]
            if names:
                out[kind] = names
        return out

    def all_hook_names(self) -> list[str]:
        return sorted(self._hook_names)

    def check_neuron(self, layer: int, neuron: int) -> None:
        check_range("layer", layer, self.n_layers)
        check_range("neuron", neuron, self.d_mlp)

    def _validate(self, names: Sequence[str]) -> None:
        for n in names:
            if n not in self._hook_names:
                m = _LAYER_RE.match(n)
                if m and int(m.group(1)) >= self.n_layers:
                    raise OutOfRangeError(
                        f"Hook point {n!r} is past the last layer: this model has layers 0 to {self.n_layers - 1}.",
                        f"Pick a layer from 0 to {self.n_layers - 1}.",
                    )
                raise UnknownHookPointError(
                    f"This model has no hook point {n!r}.",
                    "List them with `gnothi info --json` (field hook_points).",
                )

    # ------------------------------------------------------------------ memory
    def memory_needed(self, batch: int, seq: int, names: Sequence[str] = (), logits: bool = True, grad: bool = False) -> int:
        """Bytes one forward pass of ``batch`` x ``seq`` tokens needs beyond the weights: a
        fixed 0.6 GB, per token the logits and a float32 copy of them (a log-softmax) when
        ``logits``, the MLP and residual work space and each recorded hook point; per
        token pair, one layer's attention scores and their softmax (the hooks need eager
        attention) and each recorded pattern. With ``grad`` (a backward pass follows) every
        layer's work space and attention are kept for it. It is an upper estimate:
        ``python benchmarks/bench_memory.py`` prints it beside the measured peaks."""
        b = torch.finfo(self.dtype).bits // 8 if self.dtype.is_floating_point else 4
        s = self.shape
        kept = 2 * s.n_layers if grad else 1  # activations and their gradients, every layer
        work = (s.d_mlp * b * 4 + s.d_model * b * 8) * kept
        per_tok = work + (s.d_vocab * (b + 4) * (2 if grad else 1) if logits else 0)
        recorded = sum(s.d_mlp if (".mlp.hook_pre" in n or ".mlp.hook_post" in n) else s.d_model for n in names if "hook_pattern" not in n)
        n_patterns = sum("hook_pattern" in n for n in names)
        attn = batch * s.n_heads * seq * seq * 4 * (2 * kept + n_patterns)  # eager attention: scores and softmax
        return int(_FIXED_BYTES + batch * seq * (per_tok + recorded * 4) + attn)

    def check_memory(self, batch: int, seq: int, names: Sequence[str] = (), logits: bool = True, grad: bool = False) -> None:
        """:class:`MemoryBoundError` when :meth:`memory_needed` passes the bound:
        ``GNOTHI_MEMORY_LIMIT_GB`` (by default half this machine's RAM), and on a GPU also
        its free memory."""
        limit, what_bound = memory_limit_bytes(), "GNOTHI_MEMORY_LIMIT_GB"
        if str(self.device).startswith("cuda") and torch.cuda.is_available():
            free = int(torch.cuda.mem_get_info(torch.device(self.device))[0])
            if limit is None or free < limit:
                limit, what_bound = free, "the GPU's free memory"
        need = self.memory_needed(batch, seq, names, logits, grad)
        if limit is None or need <= limit:
            return
        what = (f"{batch} x {seq} tokens" if batch > 1 else f"{seq} tokens") + (" with gradients" if grad else "")
        head = f"This run of {what} would need about {need / 1e9:.1f} GB of memory, more than the bound of {limit / 1e9:.1f} GB ({what_bound})."
        raise_it = f", or raise GNOTHI_MEMORY_LIMIT_GB (0 = no bound){_ram_note()}."
        if self.memory_needed(batch, 1, names, logits, grad) > limit:  # not even one token fits
            raise MemoryBoundError(head, f"The bound is below the fixed cost of a run (about {_FIXED_BYTES / 1e9:.1f} GB)" + raise_it)
        fits = max(1, seq)
        while fits > 1 and self.memory_needed(batch, fits, names, logits, grad) > limit:
            fits = int(fits * 0.9)
        raise MemoryBoundError(head, f"Shorten the text to under about {fits} tokens" + (" or use a smaller batch" if batch > 1 else "") + raise_it)

    def stop_layer_for(self, names: Sequence[str]) -> int | None:
        """The earliest ``stop_at_layer`` that still fires every hook in ``names``."""
        last = -1
        for n in names:
            m = _LAYER_RE.match(n)
            if m is None:
                if n.startswith("hook_embed") or n.startswith("hook_pos_embed"):
                    last = max(last, 0)
                    continue
                return None  # ln_final / unembed: needs the whole model
            last = max(last, int(m.group(1)))
        return last + 1

    # ------------------------------------------------------------------ tokens
    @property
    def bos_token_id(self) -> int | None:
        tid = self.tokenizer.bos_token_id
        return tid if tid is not None else self.tokenizer.eos_token_id

    def to_tokens(self, texts: str | Sequence[str], prepend_bos: bool = True, max_length: int | None = None) -> torch.Tensor:
        """Token ids ``[batch, pos]`` (right-padded with the pad/EOS id when lengths differ)."""
        if isinstance(texts, str):
            texts = [texts]
        if not texts or any(not isinstance(t, str) or t == "" for t in texts):
            raise InputError("No text given (empty string).", "Pass a non-empty string or list of strings.")
        for t in texts:
            check_unicode(t)
        ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        if prepend_bos and self.bos_token_id is not None:
            ids = [[self.bos_token_id] + x for x in ids]
        if any(len(x) == 0 for x in ids):
            raise InputError("A text is empty after tokenization.", "Give non-empty text.")
        limit = max_length or self.shape.n_ctx
        too_long = max(len(x) for x in ids)
        if too_long > limit:
            raise InputError(
                f"Text is {too_long} tokens long; the limit here is {limit}.",
                f"Shorten it to under {limit} tokens.",
            )
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else (self.tokenizer.eos_token_id or 0)
        L = max(len(x) for x in ids)
        arr = [x + [pad] * (L - len(x)) for x in ids]
        return torch.tensor(arr, dtype=torch.long, device=self.device)

    def str_tokens(self, text_or_tokens, prepend_bos: bool = True) -> list[str]:
        if isinstance(text_or_tokens, str):
            toks = self.to_tokens(text_or_tokens, prepend_bos=prepend_bos)[0]
        else:
            toks = torch.as_tensor(text_or_tokens).reshape(-1)
        return tok_text.labels(self.tokenizer, toks.tolist())

    def token_pieces(self, toks) -> list[str]:
        """Per-token text that joins to the text (see :func:`gnothi.tools.tokens.pieces`)."""
        return tok_text.pieces(self.tokenizer, torch.as_tensor(toks).reshape(-1).tolist())

    def token_id(self, text: str) -> int:
        """The id of ``text`` if it is exactly one token, else InputError."""
        check_unicode(text)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise InputError(
                f"{text!r} is {len(ids)} tokens ({tok_text.labels(self.tokenizer, ids)}), not one.",
                "Use a single-token string (mind the leading space, e.g. ' Paris').",
            )
        return ids[0]

    def _as_tokens(self, tokens_or_texts) -> torch.Tensor:
        if isinstance(tokens_or_texts, torch.Tensor):
            t = tokens_or_texts
            if t.dim() == 1:
                t = t.unsqueeze(0)
            return t.to(self.device)
        return self.to_tokens(tokens_or_texts)

    # ------------------------------------------------------------------ runs
    @torch.inference_mode()
    def run_with_cache(
        self,
        tokens_or_texts,
        names: Sequence[str],
        stop_early: bool = True,
    ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """Run recording only ``names``. Returns ``(logits or None, {name: activation})``.

        With ``stop_early`` the forward pass stops after the last layer a name needs; the
        logits are then ``None``.
        """
        names = list(dict.fromkeys(names))
        self._validate(names)
        tokens = self._as_tokens(tokens_or_texts)
        stop = self.stop_layer_for(names) if stop_early else None
        self.check_memory(tokens.shape[0], tokens.shape[1], names, logits=stop is None)
        with self.lock:
            out, cache = self.adapter.run_with_cache(tokens, names, stop)
        return (out if stop is None else None), cache

    def run_with_hooks(
        self,
        tokens_or_texts,
        fwd_hooks: Sequence[tuple[str, Callable]] = (),
        bwd_hooks: Sequence[tuple[str, Callable]] = (),
        stop_at_layer: int | None = None,
        grad: bool = False,
    ) -> torch.Tensor:
        """Run with TransformerLens-style hooks ``(name, fn(act, hook) -> act|None)``.

        Use it to patch activations, add vectors, or (``grad=True`` with ``bwd_hooks``)
        collect gradients. Returns logits (or the residual when ``stop_at_layer`` is set).
        """
        self._validate([n for n, _ in fwd_hooks] + [n for n, _ in bwd_hooks])
        tokens = self._as_tokens(tokens_or_texts)
        self.check_memory(tokens.shape[0], tokens.shape[1], [n for n, _ in fwd_hooks], logits=stop_at_layer is None,
                          grad=bool(grad or bwd_hooks))
        with self.lock:
            if grad or bwd_hooks:
                with torch.enable_grad():
                    return self.adapter.run_with_hooks(tokens, fwd_hooks, bwd_hooks, stop_at_layer)
            with torch.inference_mode():
                return self.adapter.run_with_hooks(tokens, fwd_hooks, (), stop_at_layer)

    def run_with_patches(self, tokens_or_texts, patches: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits with the activations at each hook name replaced by the given tensors."""

        def make(value):
            def fn(act, hook):
                return value.to(act.dtype).expand_as(act).clone()

            return fn

        return self.run_with_hooks(tokens_or_texts, [(n, make(v)) for n, v in patches.items()])

    def run_with_added(self, tokens_or_texts, vectors: dict[str, torch.Tensor], scale: float = 1.0) -> torch.Tensor:
        """Logits with ``scale * vector`` added at each hook name (steering)."""

        def make(v):
            def fn(act, hook):
                return act + scale * v.to(act.dtype)

            return fn

        return self.run_with_hooks(tokens_or_texts, [(n, make(v)) for n, v in vectors.items()])

    @torch.inference_mode()
    def logits(self, tokens_or_texts) -> torch.Tensor:
        tokens = self._as_tokens(tokens_or_texts)
        self.check_memory(tokens.shape[0], tokens.shape[1])
        with self.lock:
            return self.adapter.forward(tokens)

    def log_probs(self, tokens_or_texts) -> torch.Tensor:
        """``[batch, pos, vocab]`` log-probabilities of the next token (float32)."""
        return torch.log_softmax(self.logits(tokens_or_texts).float(), dim=-1)

    # ------------------------------------------------------------------ generation
    def chat_prompt(self, user_message: str) -> str:
        """``user_message`` wrapped in the model's chat template; a base model without one
        gets the plain question-answer frame it was pretrained on (``Question: ...\nAnswer:``)."""
        tmpl = getattr(self.tokenizer, "chat_template", None)
        if not tmpl:
            return f"Question: {user_message}\nAnswer:"
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": user_message}], tokenize=False, add_generation_prompt=True
        )

    @torch.inference_mode()
    def generate(self, prompt: str, max_new_tokens: int = 32, chat: bool = True, temperature: float = 0.0) -> str:
        """Greedy (or sampled) continuation of ``prompt``; returns only the new text."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError("Empty prompt.", "Give a question or text to continue.")
        check_unicode(prompt)
        text = self.chat_prompt(prompt) if chat else prompt
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        templated = chat and getattr(self.tokenizer, "chat_template", None)
        if not templated and self.bos_token_id is not None:  # a chat template writes its own BOS
            ids = [self.bos_token_id] + ids
        if len(ids) + max_new_tokens > self.shape.n_ctx:
            raise InputError(
                f"Prompt is {len(ids)} tokens; with {max_new_tokens} new tokens that passes the model's context of {self.shape.n_ctx}.",
                "Shorten the prompt or context.",
            )
        stop = self.stop_ids(chat)
        new = [t for t in self.generate_ids([ids], max_new_tokens, stop, temperature)[0] if t not in stop]
        return self.tokenizer.decode(new, skip_special_tokens=True).strip()

    def stop_ids(self, chat: bool = True) -> list[int]:
        """Token ids that end a generation: EOS, and the chat template's end-of-turn token
        (for a base model in the question-answer frame: the newline that ends the answer)."""
        eos = self.tokenizer.eos_token_id
        out = [eos] if eos is not None else []
        if chat and not getattr(self.tokenizer, "chat_template", None):
            out += [t for t in _newline_ids(self.tokenizer) if t not in out]
        if chat:
            for t in ("<|im_end|>", "<end_of_turn>", "<|eot_id|>"):
                tid = self.tokenizer.convert_tokens_to_ids(t)
                if isinstance(tid, int) and tid != getattr(self.tokenizer, "unk_token_id", None) and tid not in out:
                    out.append(tid)
        return out

    @torch.inference_mode()
    def generate_ids(self, seqs: list[list[int]], max_new_tokens: int, stop: Sequence[int] = (), temperature: float = 0.0,
                     fwd_hooks: Sequence[tuple[str, Callable]] = ()) -> list[list[int]]:
        """Continue each token-id sequence (a batch, left-padded here); returns each one's new
        ids, up to and including the first stop id. ``fwd_hooks`` run at every step (steering) and
        are removed afterwards."""
        if not seqs:
            return []
        pad = self.tokenizer.pad_token_id
        pad = pad if pad is not None else (stop[0] if stop else 0)
        L = max(len(x) for x in seqs)
        batch = torch.tensor([[pad] * (L - len(x)) + list(x) for x in seqs], dtype=torch.long, device=self.device)
        mask = torch.tensor([[0] * (L - len(x)) + [1] * len(x) for x in seqs], dtype=torch.long, device=self.device)
        self._validate([n for n, _ in fwd_hooks])
        self.check_memory(batch.shape[0], L + max_new_tokens, [n for n, _ in fwd_hooks])
        with self.lock:
            new = self.adapter.generate(batch, mask, max_new_tokens, list(stop), temperature > 0, temperature, fwd_hooks)
        out = []
        for row in new.tolist():
            cut = []
            for t in row:
                cut.append(t)
                if t in stop:
                    break
            out.append(cut)
        return out

    # ------------------------------------------------------------------ weights
    def W_U(self) -> torch.Tensor:
        return self.adapter.W_U()

    def W_out(self, layer: int) -> torch.Tensor:
        check_range("layer", layer, self.n_layers)
        return self.adapter.W_out(layer)

    def neuron_directions(self, layer: int) -> torch.Tensor:
        """``[d_mlp, d_model]``: what each neuron of ``layer`` writes into the residual stream
        per unit of activation (``W_out``, through any post-MLP norm's weights)."""
        check_range("layer", layer, self.n_layers)
        return self.adapter.neuron_directions(layer)

    def W_in(self, layer: int) -> torch.Tensor:
        check_range("layer", layer, self.n_layers)
        return self.adapter.W_in(layer)

    def W_O(self, layer: int) -> torch.Tensor:
        check_range("layer", layer, self.n_layers)
        return self.adapter.W_O(layer)

    def W_E(self) -> torch.Tensor:
        return self.adapter.W_E()

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Embeddings as the first block sees them (with the model's embedding scale, if any)."""
        return self.adapter.embed_tokens(tokens)

    @property
    def logit_soft_cap(self) -> float:
        """The final logit soft cap, or 0 when the model has none."""
        return self.adapter.logit_soft_cap

    def run_from(self, resid: torch.Tensor, start: int, stop: int | None = None, fwd_hooks: Sequence[tuple[str, Callable]] = ()) -> torch.Tensor:
        """Run layers ``start .. stop-1`` (default: to the end) on ``resid``, the residual
        stream entering layer ``start``; returns the residual stream after them (before the
        final norm when run to the end). Hooks on those layers fire as in a full run."""
        check_range("layer", start, self.n_layers)
        if stop is not None and not start < stop <= self.n_layers:
            raise OutOfRangeError(f"stop layer {stop} is not after {start} and at most {self.n_layers}.",
                                  f"Use a stop from {start + 1} to {self.n_layers}, or none (to the end).")
        self._validate([n for n, _ in fwd_hooks])
        self.check_memory(resid.shape[0], resid.shape[1], [n for n, _ in fwd_hooks], logits=False)
        with self.lock, torch.inference_mode():
            return self.adapter.run_blocks(resid, start, stop, fwd_hooks)

    def final_norm(self, resid: torch.Tensor) -> torch.Tensor:
        return self.adapter.final_norm(resid)

    def unembed(self, resid_normed: torch.Tensor) -> torch.Tensor:
        return self.adapter.unembed(resid_normed)

    @property
    def tl_model(self):
        """The underlying TransformerLens bridge (tests plant weights through it; tools use
        the methods above)."""
        return self.adapter.model

    # ------------------------------------------------------------------ description
    def describe(self) -> dict:
        hp = self.hook_points()
        n_params = sum(p.numel() for p in self.adapter.parameters())
        return {
            **self.shape.model_dump(),
            "source": self.source,
            "device": self.device,
            "dtype": str(self.dtype).replace("torch.", ""),
            "n_params": n_params,
            "hook_point_kinds": list(hp),
            "hook_points": [n for names in hp.values() for n in names],
        }


# ============================================================================ loading

_HANDLE: ModelHandle | None = None
_HANDLE_KEY: tuple | None = None
_LOAD_LOCK = threading.Lock()


def _looks_like_hub_id(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.\-]*/[\w.\-]+", name)) and not Path(name).exists()


def _check_weights(folder: Path, allow_pickle: bool) -> None:
    files = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    has_st = any(f.endswith(".safetensors") for f in files)
    has_pickle = any(f.endswith((".bin", ".pt", ".pth", ".ckpt", ".pkl")) for f in files)
    if not has_st and has_pickle and not allow_pickle:
        raise UnsafeWeightsError(
            f"{folder} holds only pickle checkpoints (.bin/.pt), which can run arbitrary code when loaded.",
            "Convert them to safetensors, or pass --allow-pickle if you trust the source.",
        )
    if not has_st and not has_pickle:
        raise UnknownModelError(
            f"{folder} holds no model weights (no .safetensors files).",
            "Point at a folder saved with save_pretrained (config.json + *.safetensors + tokenizer files).",
        )
    if not (folder / "config.json").exists():
        raise UnknownModelError(f"{folder} has no config.json.", "Point at a folder saved with save_pretrained.")


def resolve_model(name: str | None) -> tuple[str, Path]:
    """Map a user's model name to ``(display_name, local_folder)`` or raise a clear error."""
    name = name or DEFAULT_MODEL
    bm = bundled.resolve_bundled(name)
    if bm is not None:
        return bm.name, bundled.ensure_converted(bm)
    p = Path(name).expanduser()
    if p.exists():
        if not p.is_dir():
            raise UnknownModelError(
                f"{name} is a file, not a model folder.",
                "Point at a folder with config.json, *.safetensors and tokenizer files (GGUF: see `gnothi models`).",
            )
        return p.name, p
    if _looks_like_hub_id(name):
        try:
            from huggingface_hub import snapshot_download

            folder = snapshot_download(name, local_files_only=True)
            return name, Path(folder)
        except Exception:
            raise ModelNotCachedError(
                f"Model {name!r} is not in the local Hugging Face cache, and gnothi does not download models.",
                f"On a machine with network run `huggingface-cli download {name}` (or copy the folder here), "
                "then use it by id, or pass the folder path.",
            ) from None
    if re.fullmatch(r"[A-Za-z0-9][\w.\-]*", name):  # a legacy hub id without an owner ("gpt2")?
        try:
            from huggingface_hub import snapshot_download

            return name, Path(snapshot_download(name, local_files_only=True))
        except Exception:
            pass
    raise UnknownModelError(
        f"Unknown model {name!r}: not a bundled model, not a folder here, and not in the local Hugging Face cache.",
        f"Bundled: {', '.join(m['name'] for m in list_models() if m['available'])}. "
        f"For a hub model, run `huggingface-cli download {name}` on a machine with network (gnothi never downloads), "
        "or pass a local folder of safetensors weights.",
    )


def load_model(
    name: str | None = None,
    device: str | None = None,
    dtype: str | torch.dtype | None = None,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
) -> ModelHandle:
    """Load a model by name (bundled alias, local folder, or cached HF id)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    display, folder = resolve_model(name)
    _check_weights(folder, allow_pickle)
    dev = pick_device(device)
    dt = pick_dtype(dtype, dev)
    try:
        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=trust_remote_code)
        hf = AutoModelForCausalLM.from_pretrained(
            str(folder),
            dtype=dt,
            local_files_only=True,
            use_safetensors=None if allow_pickle else True,
            trust_remote_code=trust_remote_code,
            attn_implementation="eager",
        )
    except (OSError, ValueError) as e:
        msg = str(e)
        if "trust_remote_code" in msg:
            raise UnknownModelError(
                f"{display} needs custom code from its repository to load.",
                "Pass --trust-remote-code only if you trust that code.",
            ) from None
        bm = bundled.resolve_bundled(name or DEFAULT_MODEL)
        if bm is not None:
            # damaged cache: rebuild once and retry
            folder = bundled.ensure_converted(bm, force=True)
            tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            hf = AutoModelForCausalLM.from_pretrained(
                str(folder), dtype=dt, local_files_only=True, use_safetensors=True, attn_implementation="eager"
            )
        else:
            raise UnknownModelError(f"Could not load {display}: {msg.splitlines()[0]}", "Check the folder holds a complete model.") from None
    adapter = BridgeAdapter(hf.eval(), tok, str(folder), dev, dt)
    return ModelHandle(adapter, tok, display, str(folder), dev, dt)


def get_handle(name: str | None = None, device: str | None = None, dtype: str | None = None, **kw) -> ModelHandle:
    """The process-wide handle: loaded once, reused; loading another model replaces it."""
    global _HANDLE, _HANDLE_KEY
    key = (name or DEFAULT_MODEL, device or "auto", dtype or "auto", tuple(sorted(kw.items())))
    with _LOAD_LOCK:
        if _HANDLE is not None and _HANDLE_KEY == key:
            return _HANDLE
        _HANDLE = None
        _HANDLE = load_model(name, device=device, dtype=dtype, **kw)
        _HANDLE_KEY = key
        return _HANDLE


def from_hf_model(hf_model, tokenizer, name: str = "tiny") -> ModelHandle:
    """Wrap an HF causal LM already in memory (tests build tiny random ones this way)."""
    p = next(hf_model.parameters())
    adapter = BridgeAdapter(hf_model.eval(), tokenizer, f"in-memory-{name}", str(p.device), p.dtype)
    return ModelHandle(adapter, tokenizer, name, "<in memory>", str(p.device), p.dtype)


# ============================================================================ listing




def list_models() -> list[dict]:
    """What can be loaded here: bundled models and causal LMs in the local HF cache."""
    out = []
    for bm in bundled.BUNDLED.values():
        out.append(
            {
                "name": bm.name,
                "kind": "bundled",
                "available": bm.available(),
                "converted": bm.cache_path().exists(),
                "description": bm.description,
                "license": bm.license,
                "install": bm.install,
            }
        )
    try:
        from huggingface_hub import scan_cache_dir

        supported = set(bridge_architectures())

        info = scan_cache_dir()
        for repo in sorted(info.repos, key=lambda r: r.repo_id):
            if repo.repo_type != "model":
                continue
            arch = None
            for rev in repo.revisions:
                for f in rev.files:
                    if f.file_name == "config.json":
                        try:
                            arch = (json.loads(Path(f.file_path).read_text()).get("architectures") or [None])[0]
                        except Exception:
                            pass
            out.append(
                {
                    "name": repo.repo_id,
                    "kind": "hf-cache",
                    "available": arch in supported,
                    "description": f"{arch or 'unknown architecture'} in the local Hugging Face cache",
                }
            )
    except Exception:
        pass
    return out


def compare_with_hf(handle: ModelHandle, texts: Sequence[str]) -> float:
    """Max |log-prob difference| between the hooked model and a fresh HF load of the same folder."""
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(
        handle.source, dtype=handle.dtype, local_files_only=True, use_safetensors=True, attn_implementation="eager"
    )
    torch.nn.Module.to(hf, handle.device).eval()
    worst = 0.0
    for t in texts:
        toks = handle.to_tokens(t)
        with torch.inference_mode():
            a = torch.log_softmax(hf(toks).logits.float(), -1)
        b = handle.log_probs(toks)
        worst = max(worst, (a - b).abs().max().item())
    return worst
