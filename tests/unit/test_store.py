"""Activation store on a tiny model with planted neurons (seconds, no network).

Planting: layer-0 attention output is zeroed, so the MLP of layer 0 sees only the token
embedding; embedding dimension 0 is non-zero only for "cat", dims 1 and 2 only for
"king" and "river"; neuron 5 reads dim 0 (fires exactly on "cat"), neuron 9 reads dims
1 and 2 (fires on "king" and on "river": two modes). No other neuron reads dims 0-2.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gnothi.tools.errors import OutOfRangeError, StoreError
from gnothi.tools.testing import CAT_NEURON, planted_handle, synthetic_corpus

WINDOW = 16


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny matmuls gain nothing from threads, and lose a lot on a busy machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """(handle, build report) with a store built over 4096 tokens of the synthetic corpus."""
    from gnothi.tools.store import build_store

    mp = pytest.MonkeyPatch()
    mp.setenv("GNOTHI_CACHE_DIR", str(tmp_path_factory.mktemp("gnothi-cache")))
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    h = planted_handle()
    rep = build_store(h, "mlp", synthetic_corpus(), n_tokens=4096, window=WINDOW, chunk_tokens=1024, batch_size=8, progress=False)
    torch.set_num_threads(old)
    yield h, rep
    mp.undo()


def test_store_finds_planted_contexts(planted):
    from gnothi.tools.store import open_store

    h, rep = planted
    assert rep.n_tokens == 4096 and rep.layers == [0, 1] and not rep.reused
    st = open_store(h)
    top = st.top_records(0, CAT_NEURON)
    assert len(top) == st.config.top_k
    # every top window contains "cat", and the activation peaks exactly on it
    for r in top:
        assert len(r.tokens) == len(r.activations) == WINDOW
        assert r.tokens[r.argmax] == "cat", (r.tokens, r.activations)
        others = [a for t, a in zip(r.tokens, r.activations) if t != "cat"]
        assert max(others) < 0.01 * r.max_activation
    # records are best first and the stored max is the first record's max
    maxes = [r.max_activation for r in top]
    assert maxes == sorted(maxes, reverse=True)
    assert abs(st.stats(0, CAT_NEURON).max - maxes[0]) < 0.05 * maxes[0]
    # the window table really holds the corpus tokens the records show
    assert st.window_tokens(top[0].window) == top[0].tokens


def test_frequency_matches_token_rate(planted):
    from gnothi.tools.store import open_store

    h, _ = planted
    st = open_store(h)
    cat = h.tokenizer.convert_tokens_to_ids("cat")
    rate = float((st.windows[:, 1:] == cat).sum()) / st.windows.size
    assert abs(st.stats(0, CAT_NEURON).frequency - rate) < 0.2 * rate + 1e-4


def test_splits_random_and_quantile_records(planted):
    from gnothi.tools.store import open_store

    h, _ = planted
    st = open_store(h)
    tr, ho = st.top_records(0, 3, "train"), st.top_records(0, 3, "holdout")
    assert len(tr) + len(ho) == st.config.top_k and not {r.window for r in tr} & {r.window for r in ho}
    rnd = st.random_records(0, 3)
    assert len(rnd) == st.config.n_random
    assert len({r.window for r in rnd}) == len(rnd)
    # random records hold the unit's real activations: compare with a fresh forward pass
    r = rnd[0]
    toks = torch.from_numpy(st.windows[r.window].astype(np.int64))[None]
    _, cache = h.run_with_cache(toks, [h.hook_name("mlp_post", 0)])
    want = cache[h.hook_name("mlp_post", 0)][0, 1:, 3]
    assert torch.allclose(torch.tensor(r.activations[1:]), want, atol=2e-2)
    q = st.quantile_records(0, CAT_NEURON)
    assert q and all(x.max_activation >= 0.25 * st.stats(0, CAT_NEURON).max * 0.5 for x in q)


def test_export_json_record_shape(planted):
    from gnothi.tools.store import open_store

    h, _ = planted
    d = open_store(h).export_unit(0, CAT_NEURON)
    s = json.dumps(d)
    assert "most_positive_activation_records" in d and "random_sample" in d
    rec = d["most_positive_activation_records"][0]
    assert set(rec) == {"tokens", "activations"} and len(rec["tokens"]) == len(rec["activations"])
    assert len(s) > 100


def test_bad_units_and_layers(planted):
    from gnothi.tools.store import open_store

    h, _ = planted
    st = open_store(h)
    with pytest.raises(OutOfRangeError, match="0 to 63"):
        st.top_records(0, 64)
    with pytest.raises(OutOfRangeError, match="not in the mlp store"):
        st.top_records(5, 0)


def test_missing_store_says_how_to_build(planted, tmp_path, monkeypatch):
    from gnothi.tools.store import open_store, store_status

    h, _ = planted
    monkeypatch.setenv("GNOTHI_CACHE_DIR", str(tmp_path))
    s = store_status(h)
    assert not s.exists and s.estimated_build_seconds > 0 and "gnothi index" in s.build_command
    with pytest.raises(StoreError) as e:
        open_store(h)
    assert "gnothi index" in e.value.fix and " s" in e.value.fix


def test_resume_after_interruption_matches_clean_build(tmp_path, monkeypatch):
    from gnothi.tools.store import build_store, open_store

    monkeypatch.setenv("GNOTHI_CACHE_DIR", str(tmp_path / "a"))
    h = planted_handle()
    c = synthetic_corpus()
    kw = dict(n_tokens=2048, window=WINDOW, chunk_tokens=512, batch_size=8, progress=False)

    class Stop(Exception):
        pass

    def stop_after_two(chunk, done):
        if chunk == 2:
            raise Stop

    with pytest.raises(Stop):
        build_store(h, "mlp", c, on_chunk=stop_after_two, checkpoint_seconds=0, **kw)  # a checkpoint after every chunk
    rep = build_store(h, "mlp", c, **kw)
    assert rep.resumed_from_tokens == 1024
    a = open_store(h)
    clean = build_store(h, "mlp", c, path=tmp_path / "clean", **kw)
    from gnothi.tools.store import ActivationStore

    b = ActivationStore(clean.path)
    for unit in (CAT_NEURON, 0, 17):
        assert [r.window for r in a.top_records(0, unit)] == [r.window for r in b.top_records(0, unit)]
        assert [r.window for r in a.quantile_records(1, unit)] == [r.window for r in b.quantile_records(1, unit)]
        assert a.stats(1, unit) == b.stats(1, unit)
    # same settings again: reused, not rebuilt
    assert build_store(h, "mlp", c, **kw).reused


def test_damaged_store_is_detected_not_used(tmp_path, monkeypatch):
    from gnothi.tools.store import ActivationStore, build_store, open_store, store_status

    monkeypatch.setenv("GNOTHI_CACHE_DIR", str(tmp_path))
    h = planted_handle()
    rep = build_store(h, "mlp", synthetic_corpus(), n_tokens=512, window=WINDOW, chunk_tokens=256, batch_size=8, progress=False)
    f = next(p for p in __import__("pathlib").Path(rep.path).glob("layer_001.safetensors"))
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip one byte, same size
    f.write_bytes(bytes(data))
    st = ActivationStore(rep.path, verify=False)
    st.top_records(0, 1)  # an intact layer still reads
    with pytest.raises(StoreError, match="damaged"):
        st.top_records(1, 1)
    # truncation is caught on open, and status reports it
    f.write_bytes(bytes(data[:100]))
    with pytest.raises(StoreError, match="damaged"):
        ActivationStore(rep.path, verify=False)
    assert store_status(h).damaged
    with pytest.raises(StoreError, match="damaged"):
        open_store(h)


def test_sparse_packing_round_trip():
    from gnothi.tools.store import _pack, _unpack

    dense = torch.randn(4, 5, 6).half()
    sparse = torch.zeros(4, 50, 6).half()
    sparse[1, 3, 2] = 2.5
    sparse[3, 49, 5] = -1.0
    out: dict = {}
    _pack("d", dense, out)
    _pack("s", sparse, out)
    assert "d" in out and "s.idx" in out  # dense stays dense, sparse is stored as indices + values
    assert torch.equal(_unpack("d", out), dense) and torch.equal(_unpack("s", out), sparse)


def test_units_protocol_and_layers():
    from gnothi.tools.errors import InputError
    from gnothi.tools.testing import tiny_handle
    from gnothi.tools.units import MLPUnits, UnitSource, parse_layers, units_from_spec

    h = tiny_handle()
    u = MLPUnits(h, "1")
    assert isinstance(u, UnitSource) and u.layers == [1] and u.n_units(1) == 64
    assert u.hook_name(1) == "blocks.1.mlp.hook_post"
    x = torch.randn(2, 3, 64)
    assert u.encode(1, x) is x
    assert parse_layers("0-1", 2) == [0, 1] and parse_layers(None, 3) == [0, 1, 2]
    assert parse_layers("-1", 3) == [2] and parse_layers("0 -2--1", 5) == [0, 3, 4]  # the same grammar as `gnothi probe --layers`
    with pytest.raises(OutOfRangeError):
        parse_layers("0,4", 2)
    with pytest.raises(InputError):
        parse_layers("zero", 2)
    with pytest.raises(InputError):
        units_from_spec(h, "bogus:thing")


def test_second_concurrent_build_is_refused(tmp_path, monkeypatch):
    import os

    from gnothi.tools.store import build_store, store_path

    monkeypatch.setenv("GNOTHI_CACHE_DIR", str(tmp_path))
    h = planted_handle()
    lock = store_path(h.name, "mlp").with_name("mlp.lock")
    lock.write_text(str(os.getppid()))  # a live process that is not us holds the lock
    with pytest.raises(StoreError, match="Another process"):
        build_store(h, "mlp", synthetic_corpus(), n_tokens=256, window=WINDOW, progress=False)
    lock.write_text("999999999")  # a stale lock (no such process) is taken over
    rep = build_store(h, "mlp", synthetic_corpus(), n_tokens=256, window=WINDOW, progress=False)
    assert rep.n_tokens == 256 and not lock.exists()


def test_a_build_never_replaces_a_finished_store_and_adds_layers_to_it(tmp_path):
    """A build that differs from a finished store refuses without force, naming a command
    that keeps the store; a build of other layers with the same settings adds them, and the
    store then answers for both, each layer as a build of all of them would."""
    from gnothi.tools.errors import OutOfRangeError, StoreError
    from gnothi.tools.store import ActivationStore, build_store

    h = planted_handle()
    corpus = synthetic_corpus(80)
    p = tmp_path / "mlp"
    kw = dict(n_tokens=1024, window=WINDOW, chunk_tokens=512, batch_size=8, progress=False, path=p)
    build_store(h, "mlp", corpus, layers=[0], **kw)
    before = ActivationStore(p, verify=True)
    top0 = [r.window for r in before.top_records(0, CAT_NEURON)]
    with pytest.raises(OutOfRangeError) as e:
        before.check_layer(1)
    assert "--layers 1 --tokens 1024" in e.value.fix and "kept" in e.value.fix
    with pytest.raises(StoreError, match="would replace it") as e:
        build_store(h, "mlp", corpus, layers=[1], **{**kw, "n_tokens": 512})
    assert "--force" in e.value.fix and "--tokens 1024" in e.value.fix
    assert ActivationStore(p, verify=True).layers == [0]  # untouched
    old_files = {f.name for f in p.iterdir()} - {"meta.json", "summary.safetensors"}
    rep = build_store(h, "mlp", corpus, layers=[1], **kw)
    assert rep.added_layers == [1] and rep.layers == [0, 1]
    assert old_files <= {f.name for f in p.iterdir()}  # nothing of the old store is left behind
    after = ActivationStore(p, verify=True)
    assert after.layers == [0, 1] and [r.window for r in after.top_records(0, CAT_NEURON)] == top0
    both = build_store(h, "mlp", corpus, layers=[0, 1], **{**kw, "path": tmp_path / "both"})
    ref = ActivationStore(tmp_path / "both", verify=True)
    assert torch.equal(ref.max_activations(1), after.max_activations(1))
    assert both.layers == [0, 1]
    assert build_store(h, "mlp", corpus, layers=[1], **kw).reused  # a subset of what is there: reused
    build_store(h, "mlp", corpus, layers=[1], force=True, **{**kw, "n_tokens": 512})  # force replaces
    assert ActivationStore(p, verify=True).layers == [1]


_KILLED_BUILD = """
import sys, time, torch
sys.path.insert(0, {here!r})
torch.set_num_threads(1)
from test_store import planted_handle, synthetic_corpus, WINDOW
from gnothi.tools.store import build_store

def hang_after_two(chunk, done):
    if chunk == 2:
        open({marker!r}, "w").write(str(done))
        time.sleep(600)  # killed here, with -9, mid-build

build_store(planted_handle(), "mlp", synthetic_corpus(), n_tokens=2048, window=WINDOW, chunk_tokens=512, batch_size=8,
            progress=False, on_chunk=hang_after_two, checkpoint_seconds=0)
"""


def test_a_build_killed_with_sigkill_resumes_to_the_clean_result(tmp_path):
    """kill -9 mid-build (no exception handler runs): the next build resumes from the saved
    chunks and its store matches a clean build's byte for byte."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from gnothi.tools.store import ActivationStore, build_store, open_store

    marker = tmp_path / "two-chunks-saved"
    env = {**os.environ, "GNOTHI_CACHE_DIR": str(tmp_path / "a")}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_BUILD.format(here=str(Path(__file__).parent), marker=str(marker))], env=env)
    try:
        t0 = time.time()
        while not marker.exists():
            assert proc.poll() is None, "the build ended before it could be killed"
            assert time.time() - t0 < 300, "the build never saved two chunks"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    kw = dict(n_tokens=2048, window=WINDOW, chunk_tokens=512, batch_size=8, progress=False)
    mp = pytest.MonkeyPatch()
    mp.setenv("GNOTHI_CACHE_DIR", str(tmp_path / "a"))
    try:
        h = planted_handle()
        rep = build_store(h, "mlp", synthetic_corpus(), **kw)
        assert rep.resumed_from_tokens == 1024  # the two chunks saved before the kill were kept
        a = open_store(h)
        clean = build_store(h, "mlp", synthetic_corpus(), path=tmp_path / "clean", **kw)
    finally:
        mp.undo()
    pa, pc = Path(a.path), Path(clean.path)
    files = sorted(p.relative_to(pa) for p in pa.rglob("*") if p.is_file() and p.name != "meta.json")
    assert files and files == sorted(p.relative_to(pc) for p in pc.rglob("*") if p.is_file() and p.name != "meta.json")
    for f in files:
        assert (pa / f).read_bytes() == (pc / f).read_bytes(), f
    assert ActivationStore(pc).stats(0, CAT_NEURON) == a.stats(0, CAT_NEURON)


def test_cli_index_says_how_long_before_it_builds(tiny, tmp_path, monkeypatch, capsys):
    import gnothi.ui.cli as cli
    import gnothi.ui.cli_common as cli_common
    from gnothi.tools.store import DEFAULT_STORE_TOKENS, QUICK_STORE_TOKENS

    assert DEFAULT_STORE_TOKENS == 8 * QUICK_STORE_TOKENS
    monkeypatch.setenv("GNOTHI_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cli_common, "handle_from_args", lambda args: tiny)
    assert cli.main(["index", "--tokens", "512", "--layers", "0"]) == 0
    out, err = capsys.readouterr()
    assert "streaming 512 tokens through 1 layer(s): about" in err  # the estimate comes before the build
    assert "Built the mlp store: 512 tokens" in out and "estimated" in out
    assert cli.main(["index", "--quick", "--tokens", "512"]) != 0
    assert "--quick and --tokens" in capsys.readouterr().err
