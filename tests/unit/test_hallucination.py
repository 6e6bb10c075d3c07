"""Hallucination detector on tiny models and synthetic signals (seconds, no network)."""

import json

import numpy as np
import pytest

from gnothi.tools import hallu_data as D
from gnothi.tools import hallucination as H
from gnothi.tools.hallucination import cache as H_cache
from gnothi.tools.hallucination import training as H_training
from gnothi.tools.errors import CacheCorruptError, InputError, NoAnswerError


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GNOTHI_CACHE_DIR", str(tmp_path / "cache"))
    H._LOADED.clear()
    yield
    H._LOADED.clear()


def _planted_signals(n=240, d=24, layers=(0, 3, 5), planted_layer=3, seed=0):
    """Random residuals with the label written along one direction at one layer."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.5).astype(int)
    rq = rng.normal(size=(n, len(layers), d)).astype(np.float32)
    ra = rng.normal(size=(n, len(layers), d)).astype(np.float32)
    j = list(layers).index(planted_layer)
    rq[:, j, 0] += 2.0 * (2 * y - 1)
    unc = rng.normal(size=(n, len(H.UNC_NAMES)))
    unc[:, 0] += 0.5 * y  # perplexity: a weak signal
    sig = H.Signals(list(layers), rq, ra, unc, [["x"]] * n, [[-1.0]] * n)
    groups = [f"e{i // 2}" for i in range(n)]  # pairs share an entity
    return sig, y, groups


def test_fit_finds_planted_layer_and_beats_perplexity():
    sig, y, groups = _planted_signals()
    tr, te = D.split_by_entity(groups, test_frac=0.3, seed=0)
    assert not {groups[i] for i in tr} & {groups[i] for i in te}
    det, info = H.HallucinationDetector.fit(sig.subset(tr), y[tr], [groups[i] for i in tr])
    assert det.layer_q == 3
    risk = det.risk(sig.subset(te))
    assert ((risk >= 0) & (risk <= 1)).all()
    au_comb = H.auroc(risk, y[te])
    au_ppl = H.auroc(sig.unc[te, 0], y[te])
    assert au_comb > 0.9 and au_comb > au_ppl + 0.1
    # the planted probe carries the weight
    contrib = np.abs(det.combiner.coef)
    assert int(np.argmax(contrib)) == 0


def test_fit_refuses_one_class():
    sig, y, groups = _planted_signals(n=40)
    with pytest.raises(InputError, match="both right and wrong"):
        H.HallucinationDetector.fit(sig, np.ones(40, dtype=int), groups)


def test_save_load_roundtrip_and_damage(tmp_path):
    sig, y, groups = _planted_signals(n=120)
    det, _ = H.HallucinationDetector.fit(sig, y, groups)
    det.meta["heldout_auroc"] = {"combined": 0.9}
    folder = det.save(tmp_path / "det")
    assert sorted(p.name for p in folder.iterdir()) == ["detector.json", "detector.safetensors"]
    back = H.HallucinationDetector.load(folder)
    assert (back.layer_q, back.layer_a) == (det.layer_q, det.layer_a)
    assert np.allclose(back.risk(sig), det.risk(sig))
    assert back.meta["heldout_auroc"]["combined"] == 0.9
    raw = bytearray((folder / "detector.safetensors").read_bytes())
    raw[-5] ^= 0xFF
    (folder / "detector.safetensors").write_bytes(bytes(raw))
    with pytest.raises(CacheCorruptError, match="damaged"):
        H.HallucinationDetector.load(folder)
    (folder / "detector.json").write_text("{not json")
    with pytest.raises(CacheCorruptError):
        H.HallucinationDetector.load(folder)


def test_batched_generation_matches_one_at_a_time(tiny):
    qs = ["the cat is", "paris is the capital of", "one two three"]
    prompts = [D.prompt_text(tiny, q) for q in qs]
    batched = D.generate_answers(tiny, prompts, max_new_tokens=6, batch_size=3)
    # the tiny tokenizer has no chat template: both put the question in the base-model frame
    single = [tiny.generate(q, max_new_tokens=6) for q in qs]
    assert prompts[0] == "Question: the cat is\nAnswer:"
    assert batched == single
    assert D.generate_answers(tiny, prompts, max_new_tokens=6, batch_size=1) == single


def _tiny_examples(tiny):
    facts = D.select_facts(per_family=8, fabricated_per_family=6)
    # the tiny model knows nothing: label by whether the subject is fabricated so both classes exist
    return D.build_dataset(tiny, facts, labeler=lambda f, a: (int(f.fabricated), False, False))


def test_pipeline_train_save_detect(tiny, monkeypatch):
    exs = _tiny_examples(tiny)
    assert len(exs) == 70 and D.cache_path(tiny.name).exists()
    # answers come from the cache the second time: no generation
    monkeypatch.setattr(D, "generate_answers", lambda *a, **k: pytest.fail("regenerated cached answers"))
    again = _tiny_examples(tiny)
    assert [e.answer for e in again] == [e.answer for e in exs]
    monkeypatch.undo()
    sig = H.dataset_signals(tiny, exs)
    assert sig.resid_q.shape == (70, 2, 32) and np.isfinite(sig.unc).all()
    monkeypatch.setattr(H_cache, "compute_signals", lambda *a, **k: pytest.fail("recomputed cached signals"))  # where dataset_signals looks it up
    sig2 = H.dataset_signals(tiny, exs)
    assert np.array_equal(sig.resid_q, sig2.resid_q) and np.array_equal(sig.unc, sig2.unc)
    monkeypatch.undo()
    det, ev = H.train_and_evaluate(tiny, examples=exs, transfer=False)
    assert ev.n_train + ev.n_test == 70
    assert set(ev.auroc) >= {"combined", "probe_question", "probe_answer", "neg_mean_logprob", "uncertainty_combined"}
    assert all(0.0 <= v <= 1.0 for v in ev.auroc.values())
    assert sum(b.count for b in ev.reliability) == ev.n_test
    assert ev.saved_to and (H.detector_dir(tiny.name) / "detector.json").exists()
    tr = ev.to_tool_result()
    json.dumps(tr.model_dump(mode="json"))
    assert "AUROC" in tr.summary and len(tr.figures) >= 2

    H._LOADED.clear()  # next call loads from disk
    rep = H.detect(tiny, "what is the capital of france ?")
    assert rep.detector == "trained" and rep.detector_how == "loaded"
    assert 0.0 <= rep.risk <= 1.0 and rep.answer_source == "model"
    assert set(rep.signals) == set(H.HallucinationDetector.feature_names)
    contrib = sum(v.contribution for v in rep.signals.values()) + det.combiner.intercept
    assert abs(1 / (1 + np.exp(-contrib)) - rep.risk) < 1e-3  # contributions add up to the risk
    assert len(rep.tokens) == len(rep.token_logprobs) > 0
    out = rep.to_tool_result()
    json.dumps(out.model_dump(mode="json"))
    assert out.headline["risk"] == rep.risk

    given = H.detect(tiny, "what is the capital of france ?", answer="paris")
    assert given.answer_source == "given" and given.tokens == ["paris"]


def test_fallback_without_detector(tiny):
    rep = H.detect(tiny, "the cat is", answer="big", train=False)
    assert rep.detector == "fallback" and rep.detector_how == "fallback"
    lp = rep.token_logprobs
    assert abs(rep.risk - (1 - np.exp(np.mean(lp)))) < 1e-3
    assert any("falls back" in w for w in rep.warnings)


def test_damaged_detector_is_reported_not_crashing(tiny):
    folder = H.detector_dir(tiny.name)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "detector.json").write_text("garbage")
    (folder / "detector.safetensors").write_bytes(b"garbage")
    rep = H.detect(tiny, "the cat is", answer="big", train=False)
    assert rep.detector == "fallback"
    assert any("unreadable" in w or "damaged" in w for w in rep.warnings)


def test_bad_input(tiny, monkeypatch):
    with pytest.raises(InputError, match="empty"):
        H.detect(tiny, "   ")
    with pytest.raises(InputError, match="answer is empty"):
        H.detect(tiny, "the cat is", answer="  ")
    with pytest.raises(InputError, match="tokens") as e:
        H.detect(tiny, "the cat is", context="the dog " * 200, train=False)
    assert "context" in e.value.message and "Shorten" in e.value.fix
    monkeypatch.setattr(D, "generate_answers", lambda *a, **k: [""])
    with pytest.raises(NoAnswerError):
        H.detect(tiny, "the cat is", train=False)


def test_cli_rejects_empty_question(capsys):
    from gnothi.ui.cli import main

    assert main(["hallucination", "", "--json"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert out["error"] == "bad_input" and "empty" in out["message"]


def test_first_use_in_a_server_trains_in_the_background_and_answers_now(tiny, monkeypatch):
    """GNOTHI_BACKGROUND=1 (gnothi serve): the first question starts the training and is
    answered at once with the labelled fallback; a question while it runs does not start a
    second one; once it is saved, answers are calibrated; a failed run is reported and retried."""
    import threading
    from types import SimpleNamespace

    from gnothi.agents.toolkit import get_agent
    from gnothi.tools import jobs

    monkeypatch.setenv("GNOTHI_BACKGROUND", "1")
    monkeypatch.setattr(jobs, "_JOBS", {})
    gate, calls = threading.Event(), []

    def slow_training(handle, **kw):
        calls.append(kw)
        assert gate.wait(60)
        if len(calls) == 1:
            raise RuntimeError("out of disk")
        sig, y, groups = _planted_signals(n=120, d=handle.d_model, layers=(0, 1), planted_layer=1)
        det, _ = H.HallucinationDetector.fit(sig, y, groups)
        det.meta["heldout_auroc"] = {"combined": 0.9}
        det.save(H.detector_dir(handle.name))
        return det, SimpleNamespace(auroc={"combined": 0.9})

    monkeypatch.setattr(H_training, "train_and_evaluate", slow_training)  # where get_detector looks it up
    agent = get_agent("hallucination_detector")
    args = {"question": "the cat is", "answer": "big"}
    assert "background" in agent.notice(tiny, args)

    def wait_for_job():
        job = jobs.get(f"hallucination-detector:{tiny.name}")
        job.thread.join(60)
        return job

    r1 = agent.run(tiny, args)
    assert r1.ok and r1.headline["detector"] == "fallback" and any("running in the background" in w for w in r1.warnings)
    r2 = agent.run(tiny, args)  # still training: the same job, no second one
    assert r2.headline["detector"] == "fallback" and len(calls) == 1 and "running in the background" in agent.notice(tiny, args)
    gate.set()
    assert wait_for_job().error == "RuntimeError: out of disk"
    r3 = agent.run(tiny, args)  # the failure is said once, and the training starts again
    assert any("failed in the background: RuntimeError: out of disk" in w and "started again" in w for w in r3.warnings)
    assert wait_for_job().error is None and len(calls) == 2
    r4 = agent.run(tiny, args)
    assert r4.headline["detector"] == "trained" and not any("background" in w for w in r4.warnings)
    assert agent.notice(tiny, args) is None


def test_without_background_the_turn_trains_the_detector_itself(tiny, monkeypatch):
    from gnothi.agents.toolkit import get_agent

    class Reached(Exception):
        pass

    def fake_detect(*a, **k):
        raise Reached(k.get("train", True))

    monkeypatch.delenv("GNOTHI_BACKGROUND", raising=False)
    monkeypatch.setattr(H, "detect", fake_detect)
    agent = get_agent("hallucination_detector")
    assert "I train it first" in agent.notice(tiny, {"question": "q"})
    with pytest.raises(Reached) as e:
        agent.execute(tiny, agent.validate({"question": "the cat is"}))
    assert e.value.args == (True,)


def test_retrain_alone_trains_ahead_of_the_first_question(tiny, monkeypatch, capsys):
    """`gnothi hallucination --retrain` with no question trains and saves the detector (no
    transfer sets, no text-only controls: those are the evaluation's), then stops."""
    from types import SimpleNamespace

    from gnothi.ui import cli, cli_common

    seen = {}

    def fake_train(handle, **kw):
        seen.update(kw)
        return None, SimpleNamespace(auroc={"combined": 0.912})

    monkeypatch.setattr(cli_common, "handle_from_args", lambda args: tiny)
    monkeypatch.setattr(H, "train_and_evaluate", fake_train)
    assert cli.main(["hallucination", "--retrain"]) == 0
    out = capsys.readouterr().out
    assert "Trained the hallucination detector for tiny-llama: held-out AUROC 0.912" in out
    assert seen["save"] is True and seen["transfer"] is False and seen["controls"] is False
    assert cli.main(["hallucination"]) == 2  # without --retrain a question is still needed
