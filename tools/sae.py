"""Sparse autoencoders (SAEs) stored in SAELens' folder format.

An SAE maps an activation ``x`` (``[..., d_in]``) at one hook point to sparse feature
activations ``f = encode(x)`` (``[..., d_sae]``) and back, ``x_hat = decode(f)``. gnothi keeps
its own small implementation (pure torch, fast to import) and reads and writes the
folder layout SAELens 6 uses, so SAEs move freely between the two::

    <folder>/cfg.json                   # d_in, d_sae, architecture, k, metadata.hook_name ...
    <folder>/sae_weights.safetensors    # W_enc [d_in, d_sae], b_enc, W_dec [d_sae, d_in], b_dec
    <folder>/gnothi_sae.json            # (gnothi only) checksums + training record

``sae_lens.SAE.load_from_disk(folder)`` loads what :func:`save_sae` writes, and
:func:`load_sae` loads what ``sae_lens`` ``save_model`` writes (tests check both ways).

Architectures (one registry entry each; registering a name twice is refused):

* ``topk``: ``f = TopK_k(ReLU((x - b_dec) W_enc + b_enc))`` (optionally scaled by decoder
  norms, ``rescale_acts_by_decoder_norm``);
* ``standard``: ``f = ReLU((x - b_dec) W_enc + b_enc)``;
* ``jumprelu``: ``f = ReLU(pre) * (pre > threshold)``.

Loading validates everything it can: both files present, the config parses and names a
known architecture, the weights file opens, every tensor has the shape the config says
and holds only finite numbers, and (for folders gnothi wrote) the weights' checksum
matches the one recorded at save time. A damaged SAE raises :class:`SAECorruptError`;
it is never silently used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from pydantic import BaseModel, Field

from .config import model_cache_dir
from .files import sha256_file
from .units import parse_layers, register_unit_kind
from .errors import InputError, SAECorruptError, SAEError, SAENotFoundError

SAE_CFG_FILENAME = "cfg.json"
SAE_WEIGHTS_FILENAME = "sae_weights.safetensors"
GNOTHI_MANIFEST = "gnothi_sae.json"
SUPPORTED_NORMALIZATIONS = ("none", "constant_norm_rescale", "layer_norm")

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}
_HOOK_LAYER_RE = re.compile(r"^blocks\.(\d+)\.")


# ============================================================================ registry

ActivationFn = Callable[["SAE", torch.Tensor], torch.Tensor]
_ARCHITECTURES: dict[str, ActivationFn] = {}


def register_architecture(name: str, activation: ActivationFn) -> None:
    """Register ``activation(sae, hidden_pre) -> feature_acts`` under ``name`` (once)."""
    if name in _ARCHITECTURES:
        raise ValueError(f"SAE architecture {name!r} is already registered")
    _ARCHITECTURES[name] = activation


def architectures() -> list[str]:
    return sorted(_ARCHITECTURES)


def _topk(sae: "SAE", pre: torch.Tensor) -> torch.Tensor:
    k = min(int(sae.cfg["k"]), pre.shape[-1])
    vals, idx = torch.topk(pre, k=k, dim=-1, sorted=False)
    out = torch.zeros_like(pre)
    return out.scatter_(-1, idx, vals.relu())


def _relu(sae: "SAE", pre: torch.Tensor) -> torch.Tensor:
    return pre.relu()


def _jumprelu(sae: "SAE", pre: torch.Tensor) -> torch.Tensor:
    return pre.relu() * (pre > sae.threshold).to(pre.dtype)


register_architecture("topk", _topk)
register_architecture("standard", _relu)
register_architecture("jumprelu", _jumprelu)


# ============================================================================ the model


class SAE(nn.Module):
    """An SAE at one hook point. ``cfg`` is the SAELens ``cfg.json`` as a dict.

    Shapes: ``W_enc [d_in, d_sae]``, ``b_enc [d_sae]``, ``W_dec [d_sae, d_in]``,
    ``b_dec [d_in]`` (+ ``threshold [d_sae]`` for ``jumprelu``).
    """

    def __init__(self, cfg: dict[str, Any], path: Path | None = None):
        super().__init__()
        cfg = dict(cfg)
        cfg.setdefault("architecture", "topk")
        cfg.setdefault("dtype", "float32")
        cfg.setdefault("device", "cpu")
        cfg.setdefault("apply_b_dec_to_input", True)
        cfg.setdefault("normalize_activations", "none")
        cfg.setdefault("reshape_activations", "none")
        cfg.setdefault("metadata", {})
        if cfg["architecture"] == "topk":
            cfg.setdefault("k", 32)
            cfg.setdefault("rescale_acts_by_decoder_norm", False)
        if cfg["architecture"] not in _ARCHITECTURES:
            raise SAEError(
                f"SAE architecture {cfg['architecture']!r} is not supported here.",
                f"gnothi reads these SAELens architectures: {', '.join(architectures())}.",
            )
        if cfg["normalize_activations"] not in SUPPORTED_NORMALIZATIONS:
            raise SAEError(
                f"This SAE normalizes its inputs with {cfg['normalize_activations']!r}, which gnothi does not apply.",
                "Fold the normalization into the weights first (SAELens: fold_activation_norm_scaling_factor), "
                "or use an SAE with normalize_activations 'none'.",
            )
        self.cfg = cfg
        self.path = Path(path) if path is not None else None
        d_in, d_sae = int(cfg["d_in"]), int(cfg["d_sae"])
        self.W_enc = nn.Parameter(torch.zeros(d_in, d_sae))
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.W_dec = nn.Parameter(torch.zeros(d_sae, d_in))
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        if cfg["architecture"] == "jumprelu":
            self.threshold = nn.Parameter(torch.zeros(d_sae))
        self._act = _ARCHITECTURES[cfg["architecture"]]

    # ------------------------------------------------------------------ description
    @property
    def d_in(self) -> int:
        return int(self.cfg["d_in"])

    @property
    def d_sae(self) -> int:
        return int(self.cfg["d_sae"])

    @property
    def architecture(self) -> str:
        return str(self.cfg["architecture"])

    @property
    def metadata(self) -> dict[str, Any]:
        return self.cfg.get("metadata") or {}

    @property
    def hook_name(self) -> str | None:
        return self.metadata.get("hook_name") or self.cfg.get("hook_name")

    @property
    def model_name(self) -> str | None:
        return self.metadata.get("model_name") or self.cfg.get("model_name")

    @property
    def layer(self) -> int | None:
        m = _HOOK_LAYER_RE.match(self.hook_name or "")
        return int(m.group(1)) if m else None

    @property
    def name(self) -> str:
        if self.path is not None:
            return self.path.name
        return f"{self.architecture}-{self.hook_name or 'unknown'}-{self.d_sae}"

    def describe(self) -> dict[str, Any]:
        d = {
            "name": self.name,
            "path": str(self.path) if self.path else None,
            "architecture": self.architecture,
            "d_in": self.d_in,
            "d_sae": self.d_sae,
            "hook_name": self.hook_name,
            "layer": self.layer,
            "model_name": self.model_name,
        }
        if self.architecture == "topk":
            d["k"] = int(self.cfg["k"])
        return d

    # ------------------------------------------------------------------ maths
    def _norm_in(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        mode = self.cfg["normalize_activations"]
        if mode == "constant_norm_rescale":
            coeff = (self.d_in**0.5) / x.norm(dim=-1, keepdim=True)
            return x * coeff, coeff
        if mode == "layer_norm":
            mu = x.mean(dim=-1, keepdim=True)
            xc = x - mu
            std = xc.std(dim=-1, keepdim=True)
            return xc / (std + 1e-5), (mu, std)
        return x, None

    def _norm_out(self, x: torch.Tensor, state) -> torch.Tensor:
        mode = self.cfg["normalize_activations"]
        if mode == "constant_norm_rescale":
            return x / state
        if mode == "layer_norm":
            mu, std = state
            return x * std + mu
        return x

    def _flatten_in(self, x: torch.Tensor) -> torch.Tensor:
        if self.cfg["reshape_activations"] == "hook_z" and x.shape[-1] != self.d_in:
            x = x.flatten(-2)
        if x.shape[-1] != self.d_in:
            raise InputError(
                f"This SAE reads vectors of size {self.d_in}, but got size {x.shape[-1]}.",
                f"Use it on its own hook point ({self.hook_name}) of the model it was trained on ({self.model_name}).",
            )
        return x

    def hidden_pre(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-activations ``[..., d_sae]`` (before the sparsifying non-linearity)."""
        x = self._flatten_in(x).to(self.W_enc.dtype)
        x, _ = self._norm_in(x)
        if self.cfg["apply_b_dec_to_input"]:
            x = x - self.b_dec
        pre = x @ self.W_enc + self.b_enc
        if self.cfg.get("rescale_acts_by_decoder_norm"):
            pre = pre * self.W_dec.norm(dim=-1)
        return pre

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Feature activations ``[..., d_sae]`` for activations ``x`` ``[..., d_in]``."""
        return self._act(self, self.hidden_pre(x))

    def decode(self, f: torch.Tensor, _norm_state=None) -> torch.Tensor:
        """Reconstruction ``[..., d_in]`` from feature activations ``f``."""
        if self.cfg.get("rescale_acts_by_decoder_norm"):
            f = f / self.W_dec.norm(dim=-1)
        out = f @ self.W_dec + self.b_dec
        return self._norm_out(out, _norm_state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        xf = self._flatten_in(x).to(self.W_enc.dtype)
        xn, state = self._norm_in(xf)
        if self.cfg["apply_b_dec_to_input"]:
            xn = xn - self.b_dec
        pre = xn @ self.W_enc + self.b_enc
        if self.cfg.get("rescale_acts_by_decoder_norm"):
            pre = pre * self.W_dec.norm(dim=-1)
        out = self.decode(self._act(self, pre), state)
        return out.reshape(shape) if out.numel() == x.numel() else out

    def decoder_direction(self, feature: int) -> torch.Tensor:
        """The unit vector a feature writes along (its decoder row, normalized)."""
        check_feature(self, feature)
        w = self.W_dec[feature].detach().float()
        return w / w.norm().clamp_min(1e-8)

    # ------------------------------------------------------------------ handle checks
    def check_fits(self, handle) -> None:
        """Raise :class:`SAEError` unless this SAE reads a hook point of ``handle``'s size."""
        hook = self.hook_name
        if not hook:
            raise SAEError(
                f"SAE {self.name!r} does not say which hook point it reads (no metadata.hook_name in cfg.json).",
                "Add \"hook_name\" (e.g. \"blocks.6.hook_resid_post\") under \"metadata\" in its cfg.json.",
            )
        if hook not in set(handle.all_hook_names()):
            raise SAEError(
                f"SAE {self.name!r} reads hook point {hook!r}, which model {handle.name} does not have.",
                "Use an SAE trained on this model (`gnothi sae list`), or train one with `gnothi sae train --layer L`.",
            )
        width = handle.d_model
        if ".mlp.hook_post" in hook or ".mlp.hook_pre" in hook:
            width = handle.d_mlp
        if self.cfg["reshape_activations"] == "hook_z" or hook.endswith("hook_z"):
            width = handle.n_heads * handle.shape.d_head
        if width != self.d_in:
            raise SAEError(
                f"SAE {self.name!r} reads vectors of size {self.d_in}, but {hook} of {handle.name} has size {width}.",
                "This SAE was trained on another model; train one for this model with `gnothi sae train --layer L`.",
            )


def check_feature(sae: SAE, feature: int) -> int:
    from .errors import check_range

    return check_range("feature", feature, sae.d_sae)


# ============================================================================ saving


def _sae_lens_version() -> str:
    try:
        from importlib.metadata import version

        v = version("sae-lens")
        return v if int(v.split(".")[0]) >= 6 else "6.0.0"
    except Exception:
        return "6.0.0"




def sae_config(
    d_in: int,
    d_sae: int,
    hook_name: str,
    model_name: str,
    architecture: str = "topk",
    k: int | None = 32,
    **metadata: Any,
) -> dict[str, Any]:
    """A SAELens-6 ``cfg.json`` dict for a new SAE."""
    cfg: dict[str, Any] = {
        "d_in": int(d_in),
        "d_sae": int(d_sae),
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "hook_z" if hook_name.endswith("hook_z") else "none",
        "metadata": {
            "sae_lens_version": _sae_lens_version(),
            "sae_lens_training_version": _sae_lens_version(),
            "model_name": model_name,
            "hook_name": hook_name,
            "hook_head_index": None,
            "prepend_bos": True,
            **metadata,
        },
        "architecture": architecture,
    }
    if architecture == "topk":
        cfg["k"] = int(k or 32)
        cfg["rescale_acts_by_decoder_norm"] = False
    return cfg


def save_sae(sae: SAE, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``sae`` to the folder ``path`` in SAELens format, atomically.

    The folder is built under a temporary name and renamed into place, so a crash never
    leaves a half-written SAE; an existing folder at ``path`` is replaced (with
    everything in it: explanations of an old SAE do not describe a new one). ``extra``
    goes into ``gnothi_sae.json`` (e.g. training metrics).
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{int(time.time() * 1000)}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in sae.state_dict().items()}
        save_file(state, str(tmp / SAE_WEIGHTS_FILENAME))
        cfg = dict(sae.cfg)
        cfg["dtype"] = "float32"
        cfg["device"] = "cpu"
        meta = dict(cfg.get("metadata") or {})
        meta.setdefault("sae_lens_version", _sae_lens_version())
        meta.setdefault("sae_lens_training_version", meta["sae_lens_version"])
        cfg["metadata"] = meta
        (tmp / SAE_CFG_FILENAME).write_text(json.dumps(cfg, indent=2))
        manifest = {
            "format": "saelens-6",
            "files": {
                SAE_WEIGHTS_FILENAME: {"size": (tmp / SAE_WEIGHTS_FILENAME).stat().st_size, "sha256": sha256_file(tmp / SAE_WEIGHTS_FILENAME)},
                SAE_CFG_FILENAME: {"size": (tmp / SAE_CFG_FILENAME).stat().st_size, "sha256": sha256_file(tmp / SAE_CFG_FILENAME)},
            },
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **(extra or {}),
        }
        (tmp / GNOTHI_MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}-{int(time.time() * 1000)}")
            path.rename(old)
        tmp.rename(path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    sae.path = path
    return path


def update_manifest(path: str | Path, **fields: Any) -> None:
    """Merge ``fields`` into ``gnothi_sae.json`` (atomic rewrite)."""
    path = Path(path)
    mf = path / GNOTHI_MANIFEST
    data = json.loads(mf.read_text()) if mf.exists() else {}
    data.update(fields)
    tmp = mf.with_name(mf.name + f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, mf)


def read_manifest(path: str | Path) -> dict[str, Any]:
    mf = Path(path) / GNOTHI_MANIFEST
    if not mf.exists():
        return {}
    try:
        return json.loads(mf.read_text())
    except (json.JSONDecodeError, OSError):
        return {}


# ============================================================================ loading


def _corrupt(path: Path, what: str) -> SAECorruptError:
    if (path / GNOTHI_MANIFEST).exists():  # a folder gnothi wrote: it may be rebuilt
        fix = "Train a new one with `gnothi sae train --layer L`, or copy an intact one in its place."
    else:  # never advise deleting what gnothi did not make
        fix = "Copy an intact SAE (cfg.json + sae_weights.safetensors) into that folder, or point --sae at another one."
    return SAECorruptError(f"The SAE at {path} is damaged: {what}.", fix)


def _normalize_cfg(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    """Accept SAELens 6 configs and the common pre-6 layout (hook_point, activation_fn_str)."""
    cfg = dict(raw)
    meta = dict(cfg.get("metadata") or {})
    for old, new in (("hook_point", "hook_name"), ("hook_name", "hook_name"), ("model_name", "model_name"),
                     ("hook_head_index", "hook_head_index"), ("hook_point_head_index", "hook_head_index"),
                     ("prepend_bos", "prepend_bos"), ("context_size", "context_size"), ("dataset_path", "dataset_path")):
        if old in cfg and new not in meta:
            meta[new] = cfg[old]
    cfg["metadata"] = meta
    if "architecture" not in cfg:
        act = cfg.get("activation_fn") or cfg.get("activation_fn_str") or "relu"
        kw = cfg.get("activation_fn_kwargs") or {}
        if act == "topk" and kw.get("k") is not None:
            cfg["architecture"] = "topk"
            cfg["k"] = int(kw["k"])
        elif act == "relu":
            cfg["architecture"] = "standard"
        else:
            raise SAEError(
                f"The SAE at {path} uses activation {act!r}, which gnothi does not read.",
                f"Use an SAE with one of these architectures: {', '.join(architectures())}.",
            )
    return cfg


def load_sae(path: str | Path, device: str | None = None) -> SAE:
    """Load and validate the SAE in folder ``path`` (SAELens format). See module docs."""
    from safetensors import safe_open

    path = Path(path).expanduser()
    if not path.is_dir():
        raise SAENotFoundError(
            f"No SAE folder at {path}.",
            "Point at a folder holding cfg.json and sae_weights.safetensors, or train one with `gnothi sae train --layer L`.",
        )
    cfg_file, w_file = path / SAE_CFG_FILENAME, path / SAE_WEIGHTS_FILENAME
    missing = [f.name for f in (cfg_file, w_file) if not f.exists()]
    if len(missing) == 2 and not (path / GNOTHI_MANIFEST).exists():
        raise SAENotFoundError(
            f"{path} is not an SAE folder (it has neither {SAE_CFG_FILENAME} nor {SAE_WEIGHTS_FILENAME}).",
            "Point --sae at a folder in SAELens's layout, or train one with `gnothi sae train --layer L`.",
        )
    if missing:
        raise _corrupt(path, f"missing {', '.join(missing)}")
    try:
        raw = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
        raise _corrupt(path, f"cfg.json is not valid JSON ({type(e).__name__})") from None
    if not isinstance(raw, dict):
        raise _corrupt(path, "cfg.json does not hold a JSON object")
    manifest = read_manifest(path)
    recorded = (manifest.get("files") or {}).get(SAE_WEIGHTS_FILENAME)
    if recorded:
        size = w_file.stat().st_size
        if size != recorded.get("size") or sha256_file(w_file) != recorded.get("sha256"):
            raise _corrupt(path, "sae_weights.safetensors changed since it was saved (checksum mismatch)")
    cfg = _normalize_cfg(raw, path)
    for key in ("d_in", "d_sae"):
        v = cfg.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise _corrupt(path, f"cfg.json field {key!r} is {v!r}, not a positive integer")
    if cfg.get("architecture") == "topk":
        k = cfg.get("k", 32)
        if not isinstance(k, int) or not 0 < k <= cfg["d_sae"]:
            raise _corrupt(path, f"cfg.json field 'k' is {k!r}, not an integer from 1 to d_sae={cfg['d_sae']}")
    sae = SAE(cfg, path=path)
    expected = {k: tuple(v.shape) for k, v in sae.state_dict().items()}
    try:
        with safe_open(str(w_file), framework="pt", device="cpu") as f:
            keys = set(f.keys())
            if "log_threshold" in keys and "threshold" in expected and "threshold" not in keys:
                tensors = {k: f.get_tensor(k) for k in keys}
                tensors["threshold"] = tensors.pop("log_threshold").exp()
            else:
                lacking = sorted(set(expected) - keys)
                if lacking:
                    raise _corrupt(path, f"the weights lack {', '.join(lacking)}")
                tensors = {k: f.get_tensor(k) for k in expected}
    except SAECorruptError:
        raise
    except Exception as e:  # safetensors raises its own error types for truncated/garbled files
        raise _corrupt(path, f"sae_weights.safetensors cannot be read ({type(e).__name__}: {str(e)[:120]})") from None
    for k, shape in expected.items():
        t = tensors[k]
        if tuple(t.shape) != shape:
            raise _corrupt(path, f"tensor {k} has shape {tuple(t.shape)}, but cfg.json implies {shape}")
        if not torch.isfinite(t).all():
            raise _corrupt(path, f"tensor {k} holds NaN or infinite values")
    if "finetuning_scaling_factor" in tensors or cfg.get("finetuning_scaling_factor") not in (None, False):
        raise SAEError(f"The SAE at {path} uses a fine-tuning scaling factor, which gnothi does not apply.",
                       "Fold it into W_dec first, or use another SAE.")
    with torch.no_grad():
        sae.load_state_dict({k: tensors[k].to(torch.float32) for k in expected})
    dev = device or "cpu"
    sae.to(dev).eval()
    for p in sae.parameters():
        p.requires_grad_(False)
    return sae


# ============================================================================ the per-model library


def saes_dir(model_name: str) -> Path:
    """``model_cache_dir(model)/saes``: where gnothi keeps a model's SAEs."""
    p = model_cache_dir(model_name) / "saes"
    p.mkdir(parents=True, exist_ok=True)
    return p


def default_sae_name(layer: int, hook: str = "resid_post", k: int = 32, d_sae: int | None = None) -> str:
    return f"{hook}-L{layer}-topk{k}" + (f"-{d_sae}" if d_sae else "")


def list_saes(model_name: str) -> list[dict[str, Any]]:
    """SAE folders under the model's cache (newest first), with their state.

    Each entry: ``name``, ``path``, ``layer``, ``hook_name``, ``d_sae``, ``ok`` (loads
    cleanly), ``problem`` (why not), ``metrics`` (from training), ``indexed`` (feature
    explanations exist).
    """
    out = []
    base = saes_dir(model_name)
    for d in sorted(base.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
        if not d.is_dir() or d.name.startswith("."):
            continue
        entry: dict[str, Any] = {"name": d.name, "path": str(d)}
        try:
            raw = json.loads((d / SAE_CFG_FILENAME).read_text())
            meta = raw.get("metadata") or {}
            entry.update(hook_name=meta.get("hook_name"), d_sae=raw.get("d_sae"), architecture=raw.get("architecture"))
            m = _HOOK_LAYER_RE.match(meta.get("hook_name") or "")
            entry["layer"] = int(m.group(1)) if m else None
        except Exception:
            entry.update(hook_name=None, d_sae=None, layer=None)
        try:
            load_sae(d)
            entry.update(ok=True, problem=None)
        except SAEError as e:
            entry.update(ok=False, problem=e.message)
        man = read_manifest(d)
        entry["metrics"] = man.get("metrics")
        entry["indexed"] = bool(man.get("index"))
        out.append(entry)
    return out


# Measured on the 2-core development machine (shared, noisy): collecting residual
# activations of SmolLM2-135M ran at ~450 tokens/s when stopping after layer 6 of 30, i.e.
# about 3,200 "layer-tokens" per second. Finished trainings record their own rate in
# saes/_throughput.json and later estimates use that instead.
_DEFAULT_LAYER_TOKENS_PER_S = 3200.0


def _throughput_file(model_name: str) -> Path:
    return saes_dir(model_name) / "_throughput.json"


def record_throughput(model_name: str, layer_tokens_per_s: float) -> None:
    f = _throughput_file(model_name)
    tmp = f.with_name(f.name + f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps({"layer_tokens_per_s": float(layer_tokens_per_s), "at": time.time()}))
    os.replace(tmp, f)


def layer_tokens_per_s(model_name: str) -> float:
    try:
        v = float(json.loads(_throughput_file(model_name).read_text())["layer_tokens_per_s"])
        return v if v > 0 else _DEFAULT_LAYER_TOKENS_PER_S
    except Exception:
        return _DEFAULT_LAYER_TOKENS_PER_S


def estimate_seconds(model_name: str, layer: int, n_tokens: int, n_layers: int | None = None, full_passes: int = 0) -> float:
    """Rough wall time of running ``n_tokens`` through layers 0..``layer`` (+ full passes)."""
    rate = layer_tokens_per_s(model_name)
    t = n_tokens * (layer + 1) / rate
    if full_passes and n_layers:
        t += full_passes * n_layers / rate
    return t


def human_seconds(s: float) -> str:
    if s < 90:
        return f"{max(1, round(s))} s"
    if s < 5400:
        return f"{round(s / 60)} min"
    return f"{s / 3600:.1f} h"


class TrainConfig(BaseModel):
    """What to train. Defaults fit a 2-core CPU in minutes on SmolLM2-135M."""

    layer: int
    hook: str = "resid_post"  # a hook kind (see ModelHandle.hook_name)
    expansion: int = Field(4, ge=1, le=64)  # d_sae = expansion * d_in
    k: int = Field(32, ge=1)  # active latents per token
    n_tokens: int = Field(120_000, ge=256)  # training tokens (BOS excluded)
    window: int = Field(128, ge=8)
    epochs: int = Field(3, ge=1, le=50)
    batch_size: int = Field(2048, ge=16)  # at most; smaller when n_tokens / 50 is smaller
    lr: float | None = None  # default 2e-4 / sqrt(d_sae / 16384) (Gao et al.)
    aux_k: int | None = None  # default d_in // 2
    aux_coef: float = 1 / 32
    dead_after_tokens: int = Field(40_000, ge=1)  # a latent silent this long counts as dead for AuxK
    eval_tokens: int = Field(4096, ge=64)  # held out: explained variance, L0, dead fraction
    ce_tokens: int = Field(1024, ge=0)  # of those, CE-loss recovered on this many (3 full forward passes)
    model_batch: int = Field(8, ge=1)  # windows per model forward
    corpus: str = "default"
    seed: int = 0
    name: str | None = None



def estimate_train_seconds(handle, cfg: TrainConfig) -> float:
    """Rough wall time of :func:`train_sae` with ``cfg`` on this machine."""
    read = estimate_seconds(handle.name, cfg.layer, cfg.n_tokens)
    evaluation = estimate_seconds(handle.name, cfg.layer, cfg.eval_tokens) + 3 * estimate_seconds(handle.name, handle.n_layers - 1, cfg.ce_tokens)
    d_sae = cfg.expansion * handle.d_model
    # encoder + decoder, forward + backward: ~12 d_in d_sae FLOPs per token, ~15 GFLOP/s here
    train = cfg.epochs * cfg.n_tokens * 12 * handle.d_model * d_sae / 15e9
    return read + evaluation + train


def default_sae(handle, layer: int | None = None) -> SAE:
    """The SAE the assistant uses when none is named.

    The newest intact SAE for ``handle``'s model (at ``layer`` if given), preferring
    SAEs whose features are indexed. Raises
    :class:`SAENotFoundError` with the command that trains one and how long it takes.
    Damaged SAEs are skipped, and if only damaged ones exist the error says so.
    """
    if layer is not None:
        from .errors import check_range

        check_range("layer", layer, handle.n_layers)
    damaged = []
    entries = [e for e in list_saes(handle.name) if layer is None or e.get("layer") == layer]
    # indexed SAEs first (they can answer every question), newest first within each group
    for e in sorted(entries, key=lambda e: not e.get("indexed")):
        if not e["ok"]:
            damaged.append(e)
            continue
        sae = load_sae(e["path"])
        try:
            sae.check_fits(handle)
        except SAEError:
            continue
        return sae.to(handle.device)
    L = layer if layer is not None else max(1, handle.n_layers // 5)  # a fifth of the depth: cheap to reach
    cfg = TrainConfig(layer=L)
    est = human_seconds(estimate_train_seconds(handle, cfg))
    where = f" at layer {layer}" if layer is not None else ""
    note = f" ({len(damaged)} damaged one(s) found and skipped: {damaged[0]['problem']})" if damaged else ""
    raise SAENotFoundError(
        f"No SAE for model {handle.name}{where} yet{note}.",
        f"Train one with `gnothi sae train --layer {L}` (about {est} on this machine; "
        f"{cfg.n_tokens:,} tokens, d_sae {cfg.expansion}x d_model, TopK k={cfg.k}). "
        "Or point at a SAELens folder with --sae PATH.",
    )


def resolve_sae(handle, sae: SAE | str | Path | None = None, layer: int | None = None) -> SAE:
    """``sae`` as an :class:`SAE` checked against ``handle``: an SAE, a folder path, a name
    under the model's ``saes/`` folder, or ``None`` for :func:`default_sae`."""
    if sae is None:
        return default_sae(handle, layer=layer)
    if isinstance(sae, SAE):
        sae.check_fits(handle)
        return sae.to(handle.device)
    p = Path(str(sae)).expanduser()
    if not p.exists():
        cand = saes_dir(handle.name) / str(sae)
        if cand.exists():
            p = cand
    s = load_sae(p)
    s.check_fits(handle)
    return s.to(handle.device)


# ============================================================================ store units


def weights_fingerprint(sae: SAE) -> str:
    """First 10 hex digits of the weights' sha256 (from the manifest when recorded)."""
    if sae.path is not None:
        rec = (read_manifest(sae.path).get("files") or {}).get(SAE_WEIGHTS_FILENAME) or {}
        if rec.get("sha256"):
            return rec["sha256"][:10]
        w = sae.path / SAE_WEIGHTS_FILENAME
        if w.exists():
            return sha256_file(w)[:10]
    h = hashlib.sha256()
    for k, v in sorted(sae.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().float().numpy().tobytes())
    return h.hexdigest()[:10]


class SAEUnits:
    """SAE features as units for the activation store (see :mod:`gnothi.tools.units`).

    Records the SAE's hook point and encodes with the SAE's encoder. ``id`` carries a
    fingerprint of the weights, so a store built for one SAE is never read for another
    (retraining in place gives a new id).
    """

    kind = "sae"

    def __init__(self, sae: SAE, handle=None):
        if handle is not None:
            sae.check_fits(handle)
        if sae.layer is None:
            raise SAEError(
                f"SAE {sae.name!r} reads {sae.hook_name!r}, which is not a per-layer hook point.",
                "The activation store indexes SAEs on blocks.{L}.* hook points.",
            )
        self.sae = sae
        self.layers = [sae.layer]
        safe = re.sub(r"[^A-Za-z0-9_.\-]+", "_", sae.name)[:60]
        self.id = f"sae-{safe}-{weights_fingerprint(sae)}"

    def _check(self, layer: int) -> None:
        if layer != self.sae.layer:
            from .errors import OutOfRangeError

            raise OutOfRangeError(
                f"This SAE reads layer {self.sae.layer}, not layer {layer}.",
                f"Use layer {self.sae.layer}, or an SAE trained at layer {layer}.",
            )

    def hook_name(self, layer: int) -> str:
        self._check(layer)
        return str(self.sae.hook_name)

    def n_units(self, layer: int) -> int:
        self._check(layer)
        return self.sae.d_sae

    @torch.no_grad()
    def encode(self, layer: int, acts: torch.Tensor) -> torch.Tensor:
        self._check(layer)
        w = self.sae.W_enc
        if w.device != acts.device:
            self.sae.to(acts.device)
        return self.sae.encode(acts.float()).to(acts.dtype)

    def describe(self) -> dict:
        return {"kind": self.kind, "id": self.id, "layers": self.layers, "n_units": self.sae.d_sae, "sae": self.sae.describe()}

    def __repr__(self) -> str:  # pragma: no cover
        return f"SAEUnits({self.sae.name!r}, layer={self.sae.layer}, d_sae={self.sae.d_sae})"


def _sae_units_factory(handle, arg: str, layers=None) -> SAEUnits:
    sae = resolve_sae(handle, arg)
    units = SAEUnits(sae, handle)
    if layers not in (None, "", "all"):

        wanted = parse_layers(layers, handle.n_layers)
        if wanted != units.layers:
            raise InputError(
                f"SAE {sae.name!r} reads layer {sae.layer} only, but layers {wanted} were asked for.",
                f"Drop --layers, or pass --layers {sae.layer}.",
            )
    return units


register_unit_kind("sae", _sae_units_factory)  # the "sae:PATH" unit kind of the store's registry
