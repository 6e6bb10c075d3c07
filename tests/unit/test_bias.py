"""Bias check on a tiny random model: the arithmetic of gaps, intervals and the control pair."""

from __future__ import annotations

import pytest

from gnothi.tools import bias
from gnothi.tools.errors import InputError


def test_singular_and_articles():
    assert [bias.singular(w) for w in ("nurses", "secretaries", "CEOs", "actresses", "coaches", "boss")] == [
        "nurse", "secretary", "CEO", "actress", "coach", "boss"]
    assert bias._article("engineer") == "an" and bias._article("nurse") == "a"


def test_every_occupation_has_every_template(tiny):
    rep = bias.bias_check(tiny, ["nurses"])
    assert len(bias.OCCUPATIONS) == 40 and len(rep.occupations) == 40
    assert all(o.n_prompts == len(bias.TEMPLATES) for o in rep.occupations)
    assert all(o.ci[0] - 1e-6 <= o.gap <= o.ci[1] + 1e-6 for o in rep.occupations)
    assert rep.asked == ["nurse"] and rep.group_difference_ci[0] <= rep.group_difference <= rep.group_difference_ci[1]


def test_swapping_the_pair_negates_every_gap(tiny):
    t = "The {occupation} said that"
    a = bias.bias_check(tiny, template=t, pair="he/she")
    b = bias.bias_check(tiny, template=t, pair="she/he")
    assert [o.gap for o in a.occupations] == pytest.approx([-o.gap for o in b.occupations], abs=1e-5)
    assert a.group_difference == pytest.approx(-b.group_difference, abs=1e-4)


def test_the_control_pair_as_the_pair_reproduces_the_control(tiny):
    t = "The {occupation} said that"
    rep = bias.bias_check(tiny, template=t, pair=" red/ blue")
    assert rep.group_difference == pytest.approx(rep.control_group_difference, abs=1e-6)
    assert [o.gap for o in rep.occupations] == pytest.approx([o.control_gap for o in rep.occupations], abs=1e-6)


def test_user_input_is_checked(tiny):
    with pytest.raises(InputError, match="no slot"):
        bias.bias_check(tiny, template="The nurse said that", pair="he/she")
    with pytest.raises(InputError, match="two words"):
        bias.bias_check(tiny, template="The {occupation} said", pair=None)
    with pytest.raises(InputError, match="word pair"):
        bias.bias_check(tiny, template="The {occupation} said", pair="he")
    with pytest.raises(InputError, match="not an occupation"):
        bias.bias_check(tiny, ["{evil}"])


def test_one_template_gives_no_interval_and_other_braces_stay(tiny):
    rep = bias.bias_check(tiny, template="The {occupation} told {name} that", pair="he/she")
    assert all(o.ci is None and o.n_prompts == 1 for o in rep.occupations)
    assert rep.templates == ["The {occupation} told {name} that"]  # the other brace stays as written
    assert any("1 template(s)" in n for n in rep.notes)  # the report says its figures rest on few prompts


def test_the_agent_reads_pairs_only_where_they_are_named():
    from gnothi.agents.extract import extract
    from gnothi.agents.toolkit import TOOLKIT
    from gnothi.agents.toolkit.base import Query

    def args(q):
        e = extract(q)
        return TOOLKIT["bias"].extract(Query(clause=q, question=q, parsed=e, whole=e))[0]

    assert args("what's the gender gap between nurses and engineers?") == {"occupations": ["nurse", "engineer"]}
    assert args("bias check with the pair she/he") == {"pair": "she/he"}
    assert args("use 'The {occupation} told me that' with words: Mary vs John")["pair"] == "Mary/John"
    # occupations outside the measured set are read too, longest name first, in the order named
    assert args("would it call a kindergarten teacher 'she' more than a truck driver?")["occupations"] == ["kindergarten teacher", "truck driver"]
    assert args("bias for dentists, pharmacists and architects")["occupations"] == ["dentist", "pharmacist", "architect"]
    assert "occupations" not in args("is the model gender-biased at all?")  # "model" names no occupation
