"""The one place gnothi touches TransformerLens: a ``TransformerBridge`` over the HF model.

Everything else talks to :class:`BridgeAdapter` (through ``ModelHandle``). The bridge wraps
the Hugging Face model's own modules with hook points, so activations and log-probs are
those of the HF checkpoint, weights unchanged (no layer-norm folding or centering), for
every architecture TransformerLens has a bridge adapter for (157 in 3.9: Llama, Gemma 1-3,
Qwen 2-3, GPT-2, GPT-NeoX/Pythia, Mistral, Phi, OLMo...).

gnothi names hook points in TransformerLens's convention (``blocks.{L}.hook_resid_post``,
``blocks.{L}.mlp.hook_post``...); the bridge registers those names as aliases of its own
(``blocks.{L}.hook_out``, ``blocks.{L}.mlp.out.hook_in``...). Architecture differences are
handled here, not in the tools:

- ``attn_out`` and ``mlp_out`` are what the block adds to the residual stream, after any
  post-attention / post-MLP norm (Gemma 2-3), so ``resid_post = resid_mid + mlp_out`` holds
  on every architecture with sequential blocks.
- ``mlp_post`` is the input of the MLP's output projection (``act(gate) * up`` for gated MLPs).
- the embedding includes the model's own scaling (Gemma multiplies by sqrt(d_model)).
- the final logit soft cap (Gemma 2) is read from the HF config.

Nothing needs ``HookedTransformer``. The bridge cannot start a forward pass mid-model
(``start_at_layer``): :meth:`BridgeAdapter.run_blocks` does it by calling the block modules
themselves with the arguments the HF model passed them on a run of the same length
(position embeddings, masks), captured once per length.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import warnings
from typing import Any, Callable, Literal, Sequence

import torch

from .errors import UnsupportedArchitectureError

Hook = tuple[str, Callable]

# hook kinds gnothi names, -> TransformerLens hook name pattern (aliases on the bridge)
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

# architectures run here on a real checkpoint or a tiny random model built from a config
TESTED = {
    "LlamaForCausalLM": "real (SmolLM2-135M-Instruct) and tiny random",
    "Gemma3ForCausalLM": "real (Gemma 3 270M) and tiny random",
    "GPT2LMHeadModel": "tiny random",
    "Qwen2ForCausalLM": "tiny random",
    "GPTNeoXForCausalLM": "tiny random (sequential blocks, and parallel ones as in Pythia)",
}


def _quiet_tl_logging() -> None:
    logging.getLogger("transformer_lens").setLevel(logging.ERROR)


def bridge_architectures() -> list[str]:
    """HF architecture names TransformerLens's bridge has an adapter for."""
    from transformer_lens.factories.architecture_adapter_factory import SUPPORTED_ARCHITECTURES

    return sorted(SUPPORTED_ARCHITECTURES)


def closest_architecture(arch: str) -> str | None:
    """The supported architecture whose name is nearest to ``arch`` (for error messages)."""
    import difflib

    names = bridge_architectures()
    hit = difflib.get_close_matches(arch, names, n=1, cutoff=0.0)
    return hit[0] if hit else None


class _Stop(Exception):
    """Raised from a hook to end a forward pass once everything asked for is recorded."""

    def __init__(self, value=None):
        self.value = value


class _Named:
    """What a hook function sees as ``hook``: the name it was registered under."""

    __slots__ = ("name", "point")

    def __init__(self, name: str, point):
        self.name = name
        self.point = point

    def layer(self) -> int:
        return int(self.name.split(".")[1])


def _named(name: str, fn: Callable) -> Callable:
    """A bridge hook calling ``fn(act, hook)`` with ``hook.name`` the name asked for.

    A hook that returns nothing returns ``act`` itself: the bridge hands some hooks a
    reshaped view (``hook_z`` as ``[batch, pos, head, d_head]``) and only what a hook returns
    flows on, so a recorded view is then on the path to the output (gradients reach it)."""

    def hook(tensor, hook):
        out = fn(tensor, _Named(name, hook))
        return tensor if out is None else out

    return hook


class BridgeAdapter:
    """A TransformerLens ``TransformerBridge`` over an HF causal LM, weights unchanged."""

    def __init__(self, hf_model, tokenizer, source: str, device: str, dtype: torch.dtype):
        """``source``: the model's folder (or a name for one built in memory); the bridge
        only records it (a short name could collide with TransformerLens's hub aliases)."""
        from transformer_lens.model_bridge import TransformerBridge

        _quiet_tl_logging()
        if not getattr(hf_model.config, "architectures", None):
            hf_model.config.architectures = [type(hf_model).__name__]  # models built from a config in memory
        arch = hf_model.config.architectures[0]
        try:
            # hooks on attention patterns need the eager attention implementation
            hf_model.set_attn_implementation("eager")
        except Exception:
            hf_model.config._attn_implementation = "eager"
        hf_model.to(device)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.model = TransformerBridge.boot_transformers(
                    source, hf_model=hf_model, tokenizer=tokenizer, device=device, dtype=dtype
                )
        except (NotImplementedError, ValueError, KeyError, AttributeError) as e:
            if arch in bridge_architectures():  # supported, yet this checkpoint did not boot
                raise UnsupportedArchitectureError(
                    f"TransformerLens's bridge could not wrap this {arch} model ({type(e).__name__}: {str(e)[:300]}).",
                    "Check that the folder is a complete save_pretrained checkpoint; `gnothi models` lists what was tested here.",
                ) from e
            near = closest_architecture(arch)
            raise UnsupportedArchitectureError(
                f"TransformerLens's bridge has no adapter for a {arch} model.",
                (f"The closest supported architecture is {near}. " if near else "")
                + "`gnothi models --json` lists the architectures it supports and those tested here.",
            ) from e
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.hf = hf_model
        self.architecture = arch
        self._block_args: dict[int, list] = {}
        self._points = self.model.hook_dict  # name (aliases included) -> HookPoint, built once
        self._levels = itertools.count(1_000_000)  # hook levels of our own, apart from the bridge's

    # ------------------------------------------------------------------ shape
    @property
    def cfg(self):
        return self.model.cfg

    def hook_names(self) -> list[str]:
        return sorted(self._points)

    @property
    def logit_soft_cap(self) -> float:
        """The final logit soft cap (Gemma 2), or 0 when the model has none."""
        cap = getattr(self.hf.config, "final_logit_softcapping", None) or 0.0
        return float(cap) if cap and cap > 0 else 0.0

    def parameters(self):
        return self.hf.parameters()

    # ------------------------------------------------------------------ runs
    @contextlib.contextmanager
    def _hooked(self, fwd_hooks: Sequence[Hook] = (), bwd_hooks: Sequence[Hook] = ()):
        """Hooks attached to the hook points for the duration (and only these removed after).

        Hook points are looked up in a map built once: the bridge's own ``run_with_hooks``
        rebuilds its alias table on every call, which cost a quarter of a recording run."""
        level = next(self._levels)
        points = []
        try:
            both: tuple[tuple[Literal["fwd", "bwd"], Sequence[Hook]], ...] = (("fwd", fwd_hooks), ("bwd", bwd_hooks))
            for direction, hooks in both:
                for name, fn in hooks:
                    point = self._points[name]
                    point.add_hook(_named(name, fn), dir=direction, level=level)
                    points.append(point)
            yield
        finally:
            for point in points:
                point.remove_hooks(dir="both", level=level)
            # a run ended early can leave the bridge's per-run state set: the batch size its
            # learned position embedding (GPT-2) expands to, read and cleared later in the run
            pos: Any = self.model._modules.get("pos_embed")
            if pos is not None and getattr(pos, "_current_batch_size", None) is not None:
                pos._current_batch_size = None

    def _stop_hook(self, stop_at_layer: int, box: dict) -> Hook:
        """A hook that ends the run with the residual stream entering ``stop_at_layer``."""
        n_layers = self.cfg.n_layers
        name = f"blocks.{n_layers - 1}.hook_resid_post" if stop_at_layer >= n_layers else f"blocks.{stop_at_layer}.hook_resid_pre"

        def stop(act, hook):
            box["resid"] = act
            raise _Stop()

        return name, stop

    def forward(self, tokens: torch.Tensor, stop_at_layer: int | None = None, attention_mask=None) -> torch.Tensor:
        if stop_at_layer is not None:
            return self.run_with_hooks(tokens, (), (), stop_at_layer)
        return self.model(tokens, attention_mask=attention_mask, use_cache=False)

    def run_with_cache(self, tokens: torch.Tensor, names: Sequence[str], stop_at_layer: int | None):
        """Run recording only ``names``; returns (logits or None, {name: tensor}).

        With ``stop_at_layer`` set the run ends as soon as every name has been recorded
        (logits ``None``)."""
        store: dict[str, torch.Tensor] = {}
        want = set(names)
        stop_early = stop_at_layer is not None

        def make(name):
            def fn(act, hook):
                store[name] = act.detach()
                if stop_early and want.issubset(store):
                    raise _Stop()

            return fn

        with self._hooked([(n, make(n)) for n in names]):
            try:
                out = self.model(tokens, use_cache=False)
            except _Stop:
                out = None
        return out, store

    def run_with_hooks(
        self,
        tokens: torch.Tensor,
        fwd_hooks: Sequence[Hook] = (),
        bwd_hooks: Sequence[Hook] = (),
        stop_at_layer: int | None = None,
    ) -> torch.Tensor:
        """Logits with hooks ``(name, fn(act, hook) -> act | None)``; with ``stop_at_layer`` L,
        the residual stream entering layer L (L = n_layers: the one entering the final norm)."""
        fwd = list(fwd_hooks)
        box: dict = {}
        if stop_at_layer is not None:
            fwd = [(n, f) for n, f in fwd if not n.startswith("blocks.") or int(n.split(".")[1]) < stop_at_layer]
            fwd.append(self._stop_hook(stop_at_layer, box))
        with self._hooked(fwd, bwd_hooks):
            try:
                return self.model(tokens, use_cache=False)
            except _Stop:
                return box["resid"]

    # ------------------------------------------------------------------ running from a layer
    def _block_call_args(self, pos: int) -> list:
        """Per block, ``(args, kwargs)`` the HF model passes it on a ``pos``-token run
        (hidden states left out): position embeddings, attention masks, cache positions."""
        if pos in self._block_args:
            return self._block_args[pos]
        calls: list = [None] * self.cfg.n_layers
        handles = []

        def make(i):
            def pre(module, args, kwargs):
                a = list(args)
                k = dict(kwargs)
                if a:
                    a[0] = None
                else:
                    k.pop("hidden_states", None)
                for key in ("past_key_values", "past_key_value", "layer_past"):
                    if key in k:
                        k[key] = None  # no KV cache: each partial run starts fresh
                if "use_cache" in k:
                    k["use_cache"] = False
                calls[i] = (a, k)

            return pre

        for i, block in enumerate(self.model.blocks):
            handles.append(block.register_forward_pre_hook(make(i), with_kwargs=True))
        try:
            tokens = torch.zeros(1, pos, dtype=torch.long, device=self.cfg.device or "cpu")
            with torch.inference_mode():
                self.model(tokens, use_cache=False)
        finally:
            for h in handles:
                h.remove()
        if any(c is None for c in calls):
            raise UnsupportedArchitectureError(
                f"Could not run the {self.architecture} model from a middle layer (a block was not called).",
                "Use mode='attribution', which needs no partial runs.",
            )
        if len(self._block_args) > 16:
            self._block_args.clear()
        self._block_args[pos] = calls
        return calls

    def run_blocks(self, resid: torch.Tensor, start: int, stop: int | None, fwd_hooks: Sequence[Hook] = ()) -> torch.Tensor:
        """Run blocks ``start .. stop-1`` on ``resid`` (the residual stream entering block
        ``start``, ``[batch, pos, d_model]``); returns the residual after block ``stop - 1``.
        Hooks on those blocks fire as in a full run."""
        n_layers = self.cfg.n_layers
        stop = n_layers if stop is None else stop
        calls = self._block_call_args(resid.shape[1])
        with self._hooked(fwd_hooks):
            x = resid
            for i in range(start, stop):
                args, kwargs = calls[i]
                if args:
                    out = self.model.blocks[i](x, *args[1:], **kwargs)
                else:
                    out = self.model.blocks[i](hidden_states=x, **kwargs)
                x = out[0] if isinstance(out, tuple) else out
        return x

    # ------------------------------------------------------------------ generation
    def generate(self, batch: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int, eos: list[int], sample: bool, temperature: float,
                 fwd_hooks: Sequence[Hook] = ()) -> torch.Tensor:
        """New token ids ``[batch, new]`` after left-padded prompts, by the HF model's own
        ``generate`` (KV cache). ``fwd_hooks`` fire at every step: on the prompt, then on each new token."""
        kw: dict[str, Any] = dict(do_sample=sample, max_new_tokens=max_new_tokens, pad_token_id=eos[0] if eos else 0)
        if eos:
            kw["eos_token_id"] = eos
        if sample:
            kw["temperature"] = temperature
        else:
            kw.update(top_p=None, top_k=None, temperature=None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with self._hooked(fwd_hooks):
                out = self.hf.generate(batch, attention_mask=attention_mask, **kw)
        return out[:, batch.shape[1] :]

    # ------------------------------------------------------------------ weights (views of the HF parameters)
    def W_U(self) -> torch.Tensor:
        return self.model.W_U  # [d_model, d_vocab]

    def W_E(self) -> torch.Tensor:
        return self.model.W_E  # [d_vocab, d_model], before any embedding scale

    def W_out(self, layer: int) -> torch.Tensor:
        return self.model.blocks[layer].mlp.W_out  # [d_mlp, d_model]

    def neuron_directions(self, layer: int) -> torch.Tensor:
        """``[d_mlp, d_model]``: the direction each MLP neuron writes into the residual stream.

        ``W_out`` rows, passed through the post-MLP norm where the architecture has one
        (Gemma 2-3): its scale is shared by every neuron at a position, so the directions are
        exact; each row keeps the norm of its ``W_out`` row."""
        W = self.W_out(layer)
        post = getattr(self.model.blocks[layer], "ln2_post", None)
        if post is None:
            return W
        d = post(W.unsqueeze(0))[0]
        return d * (W.norm(dim=-1, keepdim=True) / d.norm(dim=-1, keepdim=True).clamp(min=1e-12))

    def W_in(self, layer: int) -> torch.Tensor:
        return self.model.blocks[layer].mlp.W_in  # [d_model, d_mlp]

    def W_O(self, layer: int) -> torch.Tensor:
        return self.model.blocks[layer].attn.W_O  # [n_heads, d_head, d_model]

    def final_norm(self, resid: torch.Tensor) -> torch.Tensor:
        return self.model.ln_final(resid)

    def unembed(self, resid_normed: torch.Tensor) -> torch.Tensor:
        return self.model.unembed(resid_normed)

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Embeddings as the first block sees them (with the model's embedding scale)."""
        return self.model.embed(tokens)
