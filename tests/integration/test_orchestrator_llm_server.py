"""The LLM planner and writer against a real OpenAI-compatible server: llama.cpp's
server on loopback with the bundled SmolLM2 GGUF (marked ``llm``)."""

from __future__ import annotations

import time

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.llm]


@pytest.fixture(scope="module")
def llama_url():
    from gnothi.agents.llm_server import llama_server

    with llama_server() as url:
        yield url


def _client(url, max_tokens: int = 256):
    from gnothi.agents.llm import LLMClient, LLMConfig

    return LLMClient(LLMConfig(base_url=url, model="smollm2", timeout=240, retries=0, max_tokens=max_tokens))


def test_llm_planner_gets_valid_plans(llama_url):
    from gnothi.agents.planner_llm import LLMPlanner
    from gnothi.agents.planner_offline import OfflinePlanner, PlanContext
    from gnothi.agents.toolkit import TOOLKIT as AGENTS

    client = _client(llama_url)
    planner = LLMPlanner(client, fallback=OfflinePlanner(embedder=None))
    ctx = PlanContext(n_layers=30, d_mlp=1536)
    for q in ["which layers know whether a statement is true?"]:
        p = planner.plan(q, ctx)
        # the JSON-schema (grammar) path works against llama.cpp: no endpoint failure, no invalid output
        assert not any("LLM planner failed" in n for n in p.notes), p.notes
        assert p.planner in ("llm", "llm->offline") and p.calls and all(c.tool in AGENTS for c in p.calls)
        for c in p.calls:
            AGENTS[c.tool].validate(c.args)
    assert client.calls >= 1 and client.config.json_style in ("json_schema", "json_object")


def test_llm_writer_reply_is_grounded(llama_url):
    from gnothi.agents.writer import numbers_traceable, write_reply
    from gnothi.tools.results import ToolResult

    r = ToolResult(tool="probing", summary="Layer 3 separates negative from positive reviews best: 99.0% held-out accuracy (chance 50.0%).",
                   headline={"best_layer": 3, "accuracy": 0.99, "chance": 0.5})
    text, writer, warns = write_reply("which layers know sentiment?", "Which layers encode sentiment?", [r], llm=_client(llama_url))
    assert text.strip()
    assert writer in ("llm", "offline") and (writer == "llm" or warns)  # an offline reply always says why
    assert numbers_traceable(text, [r], allowed=["which layers know sentiment?"]) == []


def test_assistant_end_to_end_with_llama(llama_url, tiny, tmp_path):
    from gnothi.agents import Assistant
    from gnothi.tools.results import ToolResult

    def fake(h, a, llm):
        return ToolResult(tool="probing", summary="Layer 1 is best (accuracy 0.75).", headline={"best_layer": 1, "accuracy": 0.75})

    runners = {n: fake for n in ("neuron_explainer", "sae_feature_search", "probing", "activation_patching", "hallucination_detector")}
    a = Assistant(model=tiny, llm=_client(llama_url, max_tokens=128), db_path=tmp_path / "c.sqlite", embedder=None, runners=runners)
    ans = a.ask("which layers know whether a review is positive?", thread="llm1")
    assert ans.planner.startswith("llm") and ans.reply and ans.plan
    assert a.history("llm1")[0]["planner"].startswith("llm")
    a.close()


def test_llm_explainer_and_simulator_batched_within_budget(llama_url, tiny, tmp_path):
    """A unit explained and scored by the real server: simulation runs a few records a call,
    the call count stays inside the budget, and whatever the small model answers, the
    report is complete (unreadable answers are simulated offline and say so)."""
    import math

    from gnothi.tools import explain as E
    from gnothi.tools.store import ActivationStore, build_store

    rep = build_store(tiny, "mlp", "default", n_tokens=2048, layers=[0], path=tmp_path / "mlp", progress=False)
    st = ActivationStore(rep.path, verify=True, tokenizer=tiny.tokenizer)
    unit = int(st.max_activations(0).argmax())
    client = _client(llama_url, max_tokens=512)
    prompts = []

    def llm(prompt: str) -> str:
        prompts.append(prompt)
        return client.complete(prompt)

    t0 = time.perf_counter()
    page = E.explain_unit(st, 0, unit, explainer=llm, simulator=llm, modes=False)
    secs = time.perf_counter() - t0
    n_sim = sum("text.index<TAB>token" in p for p in prompts)
    per_score = len(E.llm_batches([len(r.tokens) for r in page.heldout]))
    assert n_sim == min(2 * per_score, per_score * (E.LLM_CALL_BUDGET // per_score))
    assert len(prompts) - n_sim == 2  # one explanation for the unit, one for its control
    assert math.isfinite(page.score.pearson) and page.score.simulator == "llm" and len(page.heldout) == page.score.n_records
    print(f"\n{len(prompts)} LLM calls for {page.score.n_records} held-out records (x2 with the control) in {secs:.0f} s; "
          f"explainer {page.explanation_detail.explainer}; warnings {page.warnings}")


def test_bulk_explanations_against_the_server_resume_and_report_a_dead_endpoint(llama_url, tiny, tmp_path, monkeypatch):
    """`gnothi explain --units` in miniature against the real server: units explained two at
    a time (the LLM writes each explanation; simulation is kept offline here by a call budget of
    0, so the test stays short: the batched LLM simulation is the test above), every unit
    cached, a rerun answered from the cache with no LLM call, and a server that is gone
    reported per unit after its retries, with nothing cached for those units."""
    from gnothi.agents.llm import LLMClient, LLMConfig
    from gnothi.tools.explain_bulk import UnitCache, explain_units
    from gnothi.tools.store import ActivationStore, build_store

    monkeypatch.setenv("GNOTHI_LLM_CALL_BUDGET", "0")
    monkeypatch.setenv("GNOTHI_EXPLANATIONS_DIR", str(tmp_path / "explanations"))
    rep = build_store(tiny, "mlp", "default", n_tokens=2048, layers=[0], path=tmp_path / "mlp", progress=False)
    st = ActivationStore(rep.path, verify=True, tokenizer=tiny.tokenizer)
    units = [(0, int(u)) for u in st.max_activations(0).argsort(descending=True)[:3]]
    client = _client(llama_url, max_tokens=128)
    t0 = time.perf_counter()
    res = explain_units(st, units, llm=client, concurrency=2, modes=False, progress=False)
    secs = time.perf_counter() - t0
    assert (res.explained, res.failed) == (3, []) and res.llm_calls == 6 == client.calls  # an explanation per unit and per control
    assert UnitCache(st, client.identity, False).done() == set(units)
    again = explain_units(st, units, llm=client, concurrency=2, modes=False, progress=False)
    assert (again.from_cache, again.explained, client.calls) == (3, 0, 6)
    print(f"\n3 units, 2 at a time, against llama.cpp's server: {secs:.0f} s ({res.units_per_minute} units/min)")
    dead = LLMClient(LLMConfig(base_url="http://127.0.0.1:9/v1", model="smollm2", timeout=5, retries=0))
    gone = explain_units(st, [(0, 0), (0, 1)], llm=dead, retries=1, backoff_s=0.05, modes=False, progress=False, max_failures_in_a_row=5)
    assert len(gone.failed) == 2 and all("could not be reached" in f for f in gone.failed), gone.failed
    assert UnitCache(st, dead.identity, False).done() == set()
