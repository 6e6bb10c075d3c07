"""The model-free text-only controls of the hallucination detector."""

from __future__ import annotations

import random

import numpy as np
import pytest

from gnothi.tools import hallu_data as D
from gnothi.tools import hallu_text as HT
from gnothi.tools import hallucination as H
from gnothi.tools.hallucination import training as H_training
from gnothi.tools.stats import auroc


def test_surface_features_known_values():
    x = HT.surface_features(["Who wrote Jazz Quizzes 12?"])[0]
    got = dict(zip(HT.SURFACE_NAMES, x))
    assert got["characters"] == 26 and got["words"] == 4 and got["capitalized words"] == 3
    assert got["longest word"] == 7 and got["digits"] == 2 and got["non-ASCII characters"] == 0
    assert got["repeated letters"] == 2  # "zz" twice
    assert got["vowel share of letters"] == pytest.approx(7 / 19)  # o, o, e, a, u, i, e


def _fact_questions():
    facts = D.select_facts(per_family=20, fabricated_per_family=10)
    return [f.question for f in facts], np.array([int(f.fabricated) for f in facts]), [f.key for f in facts]


def test_controls_find_what_the_text_gives_away_and_not_noise():
    """Labelled by 'the subject is made up', the text alone must find it (invented names);
    the same classifiers on the same questions with shuffled labels stay near chance."""
    qs, y, groups = _fact_questions()
    idx = list(range(len(qs)))
    random.Random(0).shuffle(idx)
    tr, te = idx[: len(idx) * 2 // 3], idx[len(idx) * 2 // 3:]
    sc = HT.text_only_scores([qs[i] for i in tr], y[tr], [groups[i] for i in tr], [qs[i] for i in te])
    assert set(sc) == set(HT.TEXT_CONTROLS)
    real = {k: auroc(v, y[te]) for k, v in sc.items()}
    y_shuf = np.random.default_rng(0).permutation(y)
    sc0 = HT.text_only_scores([qs[i] for i in tr], y_shuf[tr], [groups[i] for i in tr], [qs[i] for i in te])
    noise = {k: auroc(v, y_shuf[te]) for k, v in sc0.items()}
    assert max(real.values()) >= max(noise.values()) + 0.2, (real, noise)


def test_eval_reports_the_control_beside_the_detector(tiny):
    facts = D.select_facts(per_family=8, fabricated_per_family=6)
    # the tiny model knows nothing: label by whether the subject is fabricated
    exs = D.build_dataset(tiny, facts, labeler=lambda f, a: (int(f.fabricated), False, False))
    det, ev = H.train_and_evaluate(tiny, examples=exs, transfer=False, save=False)
    tc = ev.text_control["all"]
    assert set(HT.TEXT_CONTROLS) <= set(ev.auroc)
    assert tc["auroc"] == max(ev.auroc[k] for k in HT.TEXT_CONTROLS)
    assert tc["detector"] == ev.auroc["combined"]
    assert tc["margin"] == pytest.approx(tc["detector"] - tc["auroc"], abs=1e-3)
    assert tc["margin_ci"][0] <= tc["margin"] <= tc["margin_ci"][1]
    # on real subjects every label is 0 here: there is nothing to separate, and it says so
    assert "note" in ev.text_control["real"] and ev.auroc_real == {}
    assert 0 < ev.n_test_real < ev.n_test
    assert "model-free classifier" in ev.to_tool_result().summary


def test_a_detector_trained_inside_a_turn_skips_the_controls(tiny, monkeypatch):
    facts = D.select_facts(per_family=8, fabricated_per_family=6)
    exs = D.build_dataset(tiny, facts, labeler=lambda f, a: (int(f.fabricated), False, False))
    monkeypatch.setattr(HT, "text_only_scores", lambda *a, **k: pytest.fail("fitted the text-only controls"))
    _, ev = H.train_and_evaluate(tiny, examples=exs, transfer=False, save=False, controls=False)
    assert "not measured" in ev.text_control["all"]["note"] and not set(HT.TEXT_CONTROLS) & set(ev.auroc)
    real = H.train_and_evaluate
    # get_detector looks both up in the training module
    monkeypatch.setattr(H_training, "load_detector", lambda name: None)
    monkeypatch.setattr(H_training, "train_and_evaluate", lambda handle, **kw: real(handle, examples=exs, save=False, **kw))
    det, how, _ = H.get_detector(tiny, train=True)
    assert how == "trained" and det is not None
