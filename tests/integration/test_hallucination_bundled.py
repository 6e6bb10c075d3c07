"""Hallucination detector on the bundled SmolLM2: held-out AUROC clearly above chance.

A cold run asks the model 100 questions (about two minutes on two CPU cores); the answers
are cached per model, so later runs only re-read the internals and retrain.
"""

import json

import pytest

from gnothi.tools import hallu_data as D
from gnothi.tools import hallucination as H

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trained(bundled):
    facts = D.select_facts(per_family=14, fabricated_per_family=6, seed=0)
    return H.train_and_evaluate(bundled, facts=facts, test_frac=0.4, save=False, transfer=False)


def test_heldout_auroc_clearly_above_chance(trained):
    det, ev = trained
    assert ev.n_train + ev.n_test == 100 and ev.n_test >= 30
    # both classes are there: the model gets some facts right and makes some up
    assert 0.2 < ev.test_positive_rate < 0.95
    assert ev.auroc["combined"] >= 0.7, ev.auroc
    assert ev.auroc_ci["combined"][0] > 0.5, ev.auroc_ci
    assert set(ev.layers) == {"probe_question", "probe_answer"}
    # above what the question's text alone predicts (a classifier that never runs the model),
    # also with the fabricated subjects left out, where made-up names cannot give it away
    for part in ("all", "real"):
        tc = ev.text_control[part]
        assert tc["margin_ci"][0] > 0, (part, tc)
    assert ev.auroc_real["combined"] > ev.text_control["real"]["auroc"]
    json.dumps(ev.to_tool_result().model_dump(mode="json"))


def test_detect_one_question(bundled, trained):
    det, _ = trained
    real = H.detect(bundled, "What is the capital of France?", detector=det)
    assert "Paris" in real.answer and real.answer_source == "model"
    fake = H.detect(bundled, "What is the capital of the Republic of Quenvaria?", detector=det)
    assert 0.0 <= real.risk <= 1.0 and 0.0 <= fake.risk <= 1.0
    assert fake.risk > real.risk, (real.risk, fake.risk)
    given = H.detect(bundled, "What is the capital of France?", answer="The capital of France is Marseille.", detector=det)
    assert given.answer_source == "given" and given.scored_text.endswith("Marseille.")
    assert given.signals["neg_min_logprob"].value > real.signals["neg_min_logprob"].value  # a wrong city is less likely
