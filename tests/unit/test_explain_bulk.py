"""Bulk explanations and the per-unit explanation cache, on the planted tiny store.

The LLM here is a scripted client (it answers the explainer's and the simulator's prompts in
their formats, and fails on cue), so retries, backoff, resume and caching can be checked
exactly; the real server is exercised in tests/integration/test_orchestrator_llm_server.py."""

from __future__ import annotations

import json

import pytest

from test_store import CAT_NEURON, _one_thread, planted  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def store(planted):
    from gnothi.tools.store import open_store

    h, _ = planted
    return open_store(h)


@pytest.fixture()
def fresh_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("GNOTHI_EXPLANATIONS_DIR", str(tmp_path / "explanations"))
    return tmp_path / "explanations"


class ScriptedLLM:
    """Answers like a (poor) LLM server; raises ConnectionError while ``failing(call_number)``."""

    def __init__(self, identity: str = "scripted @ local", failing=lambda n: False):
        self.identity = identity
        self.failing = failing
        self.calls = 0
        self.resets = 0

    def reset_breaker(self):
        self.resets += 1

    def __call__(self, prompt: str) -> str:
        self.calls += 1
        if self.failing(self.calls):
            raise ConnectionError("connection refused")
        if "text.index" in prompt:  # the simulation prompt: sparse answers
            return "none"
        return "Explanation: the word cat."


def test_unit_spec_grammar(store):
    from gnothi.tools.errors import InputError, OutOfRangeError
    from gnothi.tools.explain_bulk import parse_unit_spec

    n = store.n_units(0)
    assert parse_unit_spec("0:1-3", store) == [(0, 1), (0, 2), (0, 3)]
    assert parse_unit_spec("0:5,2 0:2;0:-1", store) == [(0, 2), (0, 5), (0, n - 1)]
    assert parse_unit_spec("-1:all", store) == [(max(store.layers), u) for u in range(store.n_units(max(store.layers)))]
    with pytest.raises(OutOfRangeError, match="neuron"):
        parse_unit_spec(f"0:0-{n}", store)
    for bad in ("", "0", "0:x", "0:3-1", "0:1:2"):
        with pytest.raises(InputError):
            parse_unit_spec(bad, store)


def test_offline_bulk_equals_one_at_a_time_and_resumes_from_the_cache(store, fresh_cache, tmp_path):
    from gnothi.tools.explain import explain_unit
    from gnothi.tools.explain_bulk import explain_units

    units = [(0, CAT_NEURON), (0, 1), (0, 2), (1, 3)]
    out = tmp_path / "bulk.jsonl"
    res = explain_units(store, units, concurrency=3, modes=False, out=out, progress=False)
    assert (res.explained, res.from_cache, res.failed, res.skipped) == (4, 0, [], 0)
    rows = {(r["layer"], r["unit"]): r for r in map(json.loads, out.read_text().splitlines())}
    assert set(rows) == set(units)
    for layer, unit in units:  # threads change nothing: each row is what a single call gives
        one = explain_unit(store, layer, unit, modes=False)
        assert rows[(layer, unit)]["explanation"] == one.explanation
        assert rows[(layer, unit)]["pearson"] == one.score.pearson
    again = explain_units(store, units + [(0, 7)], concurrency=2, modes=False, progress=False)
    assert (again.explained, again.from_cache) == (1, 4)
    assert again.mean_pearson == pytest.approx(
        sum([r["pearson"] for r in rows.values()] + [explain_unit(store, 0, 7, modes=False).score.pearson]) / 5, abs=1e-4)


def test_a_failing_endpoint_is_retried_with_backoff_and_failed_units_are_not_cached(store, fresh_cache):
    from gnothi.tools.explain_bulk import UnitCache, explain_units

    sleeps: list[float] = []
    llm = ScriptedLLM(failing=lambda n: n <= 2)  # the first two calls fail: the first unit needs one retry
    res = explain_units(store, [(0, CAT_NEURON)], llm=llm, retries=2, backoff_s=1.0, modes=False, progress=False, sleep=sleeps.append)
    assert res.explained == 1 and not res.failed
    assert len(sleeps) == 1 and 1.0 <= sleeps[0] <= 1.25 and llm.resets == 1
    # an endpoint that never answers: every retry, backoff doubling, then the unit is reported failed and left uncached
    sleeps.clear()
    dead = ScriptedLLM(identity="dead @ local", failing=lambda n: True)
    res = explain_units(store, [(0, 1)], llm=dead, retries=3, backoff_s=1.0, modes=False, progress=False, sleep=sleeps.append,
                        max_failures_in_a_row=5)
    assert len(res.failed) == 1 and res.failed[0].startswith("0.1: ") and "LLM call(s) failed" in res.failed[0]
    assert len(sleeps) == 3 and all(b <= s <= 1.25 * b for s, b in zip(sleeps, [1, 2, 4])), sleeps  # 2**attempt, 0-25% jitter
    assert UnitCache(store, "dead @ local", True).done() == set() and UnitCache(store, "dead @ local", False).done() == set()


def test_offline_failures_are_not_retried_and_do_not_blame_a_server(store, fresh_cache, monkeypatch):
    from gnothi.tools import explain_bulk
    from gnothi.tools.errors import GnothiError, LLMError, StoreError

    def broken(*a, **k):
        raise StoreError("the store cannot be read.", "Rebuild it.")

    monkeypatch.setattr(explain_bulk, "explain_unit", broken)
    sleeps: list[float] = []
    with pytest.raises(GnothiError, match=r"0 of 3 units are done and kept") as e:
        explain_bulk.explain_units(store, [(0, u) for u in range(3)], retries=3, modes=False, progress=False, max_failures_in_a_row=2,
                                   sleep=sleeps.append)
    assert sleeps == [] and not isinstance(e.value, LLMError) and "LLM" not in e.value.fix  # the same failure would come back


def test_a_run_that_keeps_failing_stops_and_the_next_run_resumes(store, fresh_cache):
    from gnothi.tools.errors import LLMError
    from gnothi.tools.explain_bulk import explain_units

    units = [(0, u) for u in range(6)]
    ok = ScriptedLLM()
    first = explain_units(store, units[:2], llm=ok, modes=False, progress=False)
    assert first.explained == 2
    # the server goes away: after 2 units failed in a row the run stops, saying what is kept
    gone = ScriptedLLM(failing=lambda n: True)
    with pytest.raises(LLMError, match=r"2 of 6 units are done and kept") as e:
        explain_units(store, units, llm=gone, retries=0, modes=False, progress=False, max_failures_in_a_row=2, sleep=lambda s: None)
    assert "run the same command again" in e.value.fix
    # back up: the same command finishes the rest and redoes nothing
    back = ScriptedLLM()
    res = explain_units(store, units, llm=back, modes=False, progress=False)
    assert (res.explained, res.from_cache, res.failed) == (4, 2, [])
    assert back.calls == 4 * ok.calls // 2


def test_an_interrupted_run_keeps_the_finished_units(store, fresh_cache):
    from gnothi.tools.explain_bulk import explain_units

    per_unit = ScriptedLLM()
    explain_units(store, [(1, 0)], llm=per_unit, modes=False, progress=False)
    n = per_unit.calls  # LLM calls one unit takes

    class Interrupting(ScriptedLLM):
        def __call__(self, prompt):
            if self.calls == 2 * n:
                raise KeyboardInterrupt
            return super().__call__(prompt)

    units = [(0, 0), (0, 1), (0, 2), (0, 3)]
    with pytest.raises(KeyboardInterrupt):
        explain_units(store, units, llm=Interrupting(), modes=False, progress=False)
    res = explain_units(store, units, llm=ScriptedLLM(), modes=False, progress=False)
    assert (res.from_cache, res.explained) == (2, 2)


def test_the_neuron_page_reads_llm_explanations_back_from_the_cache(planted, fresh_cache):
    from gnothi.tools.neurons import explain_neuron

    h, _ = planted
    llm = ScriptedLLM()
    a = explain_neuron(h, 0, CAT_NEURON, llm=llm, modes=False, n_contexts=3)
    calls = llm.calls
    assert a.cached_at is None and calls > 0 and a.explanation_detail.explainer == "llm"
    b = explain_neuron(h, 0, CAT_NEURON, llm=llm, modes=False, n_contexts=5)
    assert llm.calls == calls and b.cached_at is not None  # no LLM call the second time
    assert b.explanation == a.explanation and b.score == a.score and len(b.top_contexts) == 5 and len(a.top_contexts) == 3
    # another model, other options, or a plain function: not the cached report
    other = ScriptedLLM(identity="other @ local")
    assert explain_neuron(h, 0, CAT_NEURON, llm=other, modes=False).cached_at is None and other.calls == calls
    assert explain_neuron(h, 0, CAT_NEURON, llm=lambda p: llm(p), modes=False).cached_at is None
    # a report whose LLM calls failed (the fallbacks filled in) is not kept
    flaky = ScriptedLLM(identity="flaky @ local", failing=lambda n: n == 1)
    explain_neuron(h, 0, 1, llm=flaky, modes=False)
    again = explain_neuron(h, 0, 1, llm=flaky, modes=False)
    assert again.cached_at is None


def test_bulk_cli_end_to_end(planted, fresh_cache, tmp_path, capsys, monkeypatch):
    from gnothi.ui import cli_common
    from gnothi.ui.cli import main

    h, _ = planted
    monkeypatch.setattr(cli_common, "handle_from_args", lambda args: h)
    monkeypatch.delenv("GNOTHI_LLM_BASE_URL", raising=False)  # offline, whatever the environment says
    out = tmp_path / "o.jsonl"
    assert main(["explain", "--units", "0:0-2", "--no-modes", "--quiet", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Explained 3 unit(s)" in text and "0 were already done" in text and len(out.read_text().splitlines()) == 3
    assert main(["explain", "--units", "0:0-3", "--no-modes", "--quiet"]) == 0
    assert "Explained 1 unit(s)" in capsys.readouterr().out
    assert main(["explain", "--units", "0:99999", "--quiet"]) == 2
    assert "out of range" in capsys.readouterr().err
