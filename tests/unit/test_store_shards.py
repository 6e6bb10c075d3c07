"""Stores built in shards equal the one-process build: the merge rules, and Ray (a local
cluster of two workers, one killed mid-build)."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys

import pytest
import torch

from gnothi.tools.testing import planted_handle, synthetic_corpus

WINDOW = 16

KW = dict(n_tokens=3072, window=WINDOW, chunk_tokens=256, batch_size=8, progress=False)
SUMS = ("sum", "sumsq")


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # the Ray workers run one thread each: the same matmuls, bit for bit
    yield
    torch.set_num_threads(old)


def _windows(h, n_tokens=2048):
    from gnothi.tools.store import corpus_windows

    wins, _, _ = corpus_windows(synthetic_corpus(), h.tokenizer, WINDOW, n_tokens, 0, h.bos_token_id)
    return wins


def _same_state(a, b):
    """Equal as the store will write them: slots in canonical order, statistics."""
    for x, y in zip(a.sorted_top() + a.final_quantile(), b.sorted_top() + b.final_quantile()):
        assert torch.equal(x, y)
    for k in ("count_pos", "max", "min"):
        assert torch.equal(getattr(a, k), getattr(b, k)), k
    for k in SUMS:
        assert torch.allclose(getattr(a, k), getattr(b, k), rtol=1e-12, atol=1e-9), k


def test_merged_halves_equal_one_pass_ties_included():
    from gnothi.tools.store.build import _stream_range
    from gnothi.tools.units import units_from_spec

    h = planted_handle()
    units = units_from_spec(h, "mlp")
    wins = _windows(h)
    n = len(wins)
    one, _ = _stream_range(h, units, wins, 0, n, 8, 0, 24, 12, {})
    # the case that needs the tie rule: units whose kept top values tie (windows whose every
    # non-BOS activation is negative all reach exactly 0)
    ties = [(l, u) for l in units.layers for u in range(units.n_units(l))
            if len(set(one[l].top_val[:, u].tolist())) < one[l].top_val.shape[0]]
    assert ties, "no tied top values: this test would not exercise the tie rule"
    for order in ((0, 1), (1, 0)):  # merge order does not matter
        halves = [_stream_range(h, units, wins, a, b, 8, 0, 24, 12, {})[0] for a, b in ((0, n // 2), (n // 2, n))]
        merged = halves[order[0]]
        for l in units.layers:
            merged[l].merge(halves[order[1]][l])
            _same_state(merged[l], one[l])


def test_quantile_sample_is_above_the_floor_of_the_final_max():
    from gnothi.tools.store import QUANTILE_FLOOR
    from gnothi.tools.store.build import _stream_range
    from gnothi.tools.units import units_from_spec

    h = planted_handle()
    units = units_from_spec(h, "mlp")
    wins = _windows(h)
    st, _ = _stream_range(h, units, wins, 0, len(wins), 8, 0, 24, 12, {})
    q_win, q_acts = st[0].final_quantile()
    kept = q_win >= 0
    assert kept.sum() > 0.5 * kept.numel()  # most units fill most of their 12 slots
    wmax = q_acts.float().amax(2)  # [Q, U]
    floor = QUANTILE_FLOOR * st[0].max.clamp(min=0)
    assert bool((wmax[kept] >= (floor[None, :].expand_as(wmax)[kept] - 1e-2)).all())
    # a weighted sample: the kept windows reach higher than uniformly drawn ones would
    top = st[0].top_val[0]
    assert float((wmax / top.clamp(min=1e-6)[None])[kept].mean()) > 0.4


def _factory():
    """What each Ray worker loads: the planted tiny model (built from its config and seed),
    slowed down so that a shard lasts long enough to be killed part way through."""
    from gnothi.tools.testing import slow_planted_handle

    return functools.partial(slow_planted_handle, 0.3)


def test_ray_build_equals_one_process_build_and_survives_a_killed_worker(ray_cluster, tmp_path, monkeypatch):
    from gnothi.tools.store import build_store, store_differences

    monkeypatch.setenv("GNOTHI_CACHE_DIR", str(tmp_path / "cache"))
    h, c = planted_handle(), synthetic_corpus()
    one = build_store(h, "mlp", c, path=tmp_path / "one", **KW)
    killed: list[int] = []

    def kill_one(p):
        # the first time a shard is part way through, its worker process is killed
        for r in p["running"].values():
            if not killed and 0 < r["windows"] < r["w1"] - r["w0"]:
                os.kill(r["pid"], signal.SIGKILL)
                killed.append(r["pid"])

    rep = build_store(h, "mlp", c, path=tmp_path / "ray", ray="local", ray_factory=_factory(), on_ray_progress=kill_one, **KW)
    assert killed, "no worker was killed: the test did not test survival"
    assert rep.n_tokens == one.n_tokens and rep.layers == one.layers
    assert store_differences(one.path, rep.path) == []


def test_interrupted_ray_build_resumes_with_the_unfinished_shards(ray_cluster, tmp_path, monkeypatch):
    from gnothi.tools.store import build_store, store_differences

    monkeypatch.setenv("GNOTHI_CACHE_DIR", str(tmp_path / "cache"))
    h, c = planted_handle(), synthetic_corpus()

    class Stop(Exception):
        pass

    def stop_after_two(p):
        if len(p["finished"]) >= 2:
            raise Stop

    with pytest.raises(Stop):
        build_store(h, "mlp", c, path=tmp_path / "ray", ray="local", ray_factory=_factory(), on_ray_progress=stop_after_two,
                    checkpoint_seconds=0, **KW)
    # finished as one process (a Ray partial is resumed without Ray too), then compared
    rep = build_store(h, "mlp", c, path=tmp_path / "ray", **KW)
    assert 0 < rep.resumed_from_tokens < rep.n_tokens
    one = build_store(h, "mlp", c, path=tmp_path / "one", **KW)
    assert store_differences(one.path, rep.path) == []


def test_a_build_without_ray_does_not_import_it(tmp_path):
    code = (
        "import sys\n"
        "from gnothi.tools.store import build_store\n"
        "from gnothi.tools.testing import planted_handle, synthetic_corpus\n"
        f"build_store(planted_handle(), 'mlp', synthetic_corpus(), n_tokens=512, window=16, chunk_tokens=256, batch_size=8, "
        f"progress=False, path={str(tmp_path / 's')!r})\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
        "print('ok')\n"
    )
    env = {**os.environ, "GNOTHI_CACHE_DIR": str(tmp_path / "c")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


def test_missing_ray_says_how_to_install(monkeypatch):
    from gnothi.tools import cluster
    from gnothi.tools.errors import InputError

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(InputError, match="pip install"):
        cluster.connect("local")


def test_cli_ray_flags_say_what_to_do(tiny, monkeypatch, tmp_path, capsys):
    from gnothi.ui import cli, cli_common

    monkeypatch.setenv("GNOTHI_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cli_common, "handle_from_args", lambda args: tiny)
    for argv, says in ((["index", "--ray-workers", "2", "--quiet"], "needs --ray"),
                       (["index", "--ray", "--ray-workers", "0", "--quiet"], "number of workers"),
                       (["sae", "train"], "--layer L, or --layers"),
                       (["sae", "train", "--layer", "1", "--ray"], "several layers"),
                       (["sae", "train", "--layers", "0-1", "--layer", "1"], "--layer L, or --layers")):
        assert cli.main(argv) == 2, argv
        out = capsys.readouterr()
        assert says in out.err + out.out, argv


def test_checkpoints_are_rate_limited_and_change_nothing(tmp_path, monkeypatch):
    from gnothi.tools.store import build_store, store_differences

    monkeypatch.setenv("GNOTHI_CACHE_DIR", str(tmp_path / "cache"))
    h, c = planted_handle(), synthetic_corpus()
    saved: dict[str, list] = {"every": [], "never": []}

    def watch(name):
        progress = tmp_path / f"{name}.partial" / "progress.json"
        return lambda i, n: saved[name].append(progress.exists())

    a = build_store(h, "mlp", c, path=tmp_path / "every", checkpoint_seconds=0, on_chunk=watch("every"), **KW)
    b = build_store(h, "mlp", c, path=tmp_path / "never", checkpoint_seconds=1e9, on_chunk=watch("never"), **KW)
    assert saved["every"] == [True] * (3072 // 256) and saved["never"] == [False] * (3072 // 256)
    assert store_differences(a.path, b.path) == []  # random windows kept in memory until the end are all there

    class Stop(Exception):
        pass

    def stop_at_three(i, n):
        if i == 3:
            raise Stop

    # stopped between checkpoints: it saves before it stops, and the next build resumes from there
    with pytest.raises(Stop):
        build_store(h, "mlp", c, path=tmp_path / "stopped", checkpoint_seconds=1e9, on_chunk=stop_at_three, **KW)
    rep = build_store(h, "mlp", c, path=tmp_path / "stopped", **KW)
    assert rep.resumed_from_tokens == 3 * 256  # three chunks of 256 tokens
    assert store_differences(a.path, rep.path) == []


def test_a_shard_that_fails_for_good_says_why_and_what_to_do(ray_cluster, tmp_path, monkeypatch):
    from gnothi.tools.errors import StoreError
    from gnothi.tools.store import build_store

    monkeypatch.setenv("GNOTHI_CACHE_DIR", str(tmp_path / "cache"))
    from gnothi.tools.model import get_handle

    # the workers cannot load the model (not in their cache): the error reaches the user as it is
    missing = functools.partial(get_handle, str(tmp_path / "no-such-model"))
    with pytest.raises(StoreError, match="failed on Ray: .*no-such-model") as e:
        build_store(planted_handle(), "mlp", synthetic_corpus(), path=tmp_path / "ray", ray="local", ray_factory=missing, **KW)
    assert "Rerun the same command" in e.value.fix
