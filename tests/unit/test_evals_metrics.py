"""Scoring functions: known values and the label-corruption sanity check."""

import numpy as np
import pytest

from gnothi.evals import metrics as M


def test_known_values():
    assert M.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert M.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert M.pearson([1, 1, 1], [1, 2, 3]) == 0.0
    assert M.auroc([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0]) == 1.0
    assert M.auroc([0.5, 0.5], [1, 0]) == 0.5
    assert M.auroc([0.1, 0.9], [1, 0]) == 0.0
    assert M.auprc([0.9, 0.1, 0.8], [1, 0, 1]) == pytest.approx(1.0)
    assert M.auprc([0.1, 0.9], [1, 0]) == pytest.approx(0.5)
    assert M.balanced_accuracy([1, 0, 0, 0], [1, 1, 0, 0]) == pytest.approx(0.75)
    assert M.recall([1, 0, 0, 0], [1, 1, 0, 0]) == pytest.approx(0.5)
    lo, hi = M.bootstrap_ci([0.1, 0.2, 0.3, 0.4, 0.5], n=500)
    assert lo < 0.3 < hi


def _word_sim(expl, toks):
    w = expl.split()[-1]
    return [1.0 if t == w else 0.0 for t in toks]


def test_record_scores_tell_right_from_wrong_explanations():
    rng = np.random.default_rng(0)
    words = ["cat", "dog", "sun", "sea", "red", "big"]
    recs = []
    for _ in range(20):
        toks = list(rng.choice(words, size=12))
        recs.append((toks, [2.0 if t == "cat" else 0.0 for t in toks]))
    quiet = [(list(rng.choice(words[1:], size=12)), [0.0] * 12) for _ in range(10)]
    right, wrong = "fires on cat", "fires on sea"
    assert M.score_explanation(_word_sim, right, recs) == pytest.approx(1.0)
    assert abs(M.score_explanation(_word_sim, wrong, recs)) < 0.3
    recs = [r for r in recs if "cat" in r[0]]
    det, det_w = M.detection_scores(_word_sim, right, recs, quiet), M.detection_scores(_word_sim, wrong, recs, quiet)
    assert det == {"auroc": 1.0, "balanced_accuracy": 1.0}
    assert det_w["auroc"] < 0.8 and det_w["balanced_accuracy"] < 0.8
    fuz, fuz_w = M.fuzzing_scores(_word_sim, right, recs), M.fuzzing_scores(_word_sim, wrong, recs)
    assert fuz["auroc"] > 0.95 and fuz["balanced_accuracy"] > 0.9  # a random marking can land on "cat" too
    assert fuz_w["auroc"] == pytest.approx(0.5, abs=0.2) and fuz_w["balanced_accuracy"] == pytest.approx(0.5, abs=0.2)


def test_half_max_calls():
    assert M.half_max_calls([10, 5, 4.9, 0, -3]).tolist() == [True, True, False, False, False]
    assert M.half_max_calls([0, 0, -1]).tolist() == [False, False, False]  # nothing predicted: no "yes"
    assert M.balanced_accuracy(M.half_max_calls([8, 6, 1, 2]), [1, 1, 0, 0]) == 1.0


def test_label_corruption_curves_fall_for_a_good_prediction():
    rng = np.random.default_rng(1)
    t = np.where(rng.random(2000) < 0.1, rng.random(2000) * 3 + 1, 0.0)
    pred = t + rng.normal(0, 0.3, size=t.size)
    out = M.label_corruption(t, pred, seed=0)
    c = out["curves"]
    assert c["pearson"][0] > 0.8 and abs(c["pearson"][-1]) < 0.1
    assert c["auprc"][0] > 0.8 and c["auprc"][-1] < 0.3
    assert out["passes"]["pearson"] and out["passes"]["auprc"]
    # a prediction with no signal never passes
    noise = M.label_corruption(t, rng.normal(size=t.size), seed=0)
    assert not noise["passes"]["pearson"]


def test_fuzzing_calls_each_record_on_its_own_scale():
    """A weak record whose marked tokens are exactly where its simulation peaks is called
    right, however strong another record is (a call pooled over records would say no)."""
    def sim(_expl, toks):
        return [float(t[1:]) if t.startswith("y") else 0.0 for t in toks]

    strong = (["a"] * 5 + ["y10"] + ["a"] * 14, [0.0] * 5 + [10.0] + [0.0] * 14)
    weak = (["a"] * 12 + ["y1"] + ["a"] * 7, [0.0] * 12 + [1.0] + [0.0] * 7)
    out = M.fuzzing_scores(sim, "", [strong, weak], seed=1)  # (seed 0 draws a random marking onto the true token)
    assert out["balanced_accuracy"] == 1.0 and out["auroc"] == 1.0
    pooled = M.balanced_accuracy(M.half_max_calls([10.0, 0.0, 1.0, 0.0]), [1, 0, 1, 0])
    assert pooled == 0.75  # what the pooled call would have said
