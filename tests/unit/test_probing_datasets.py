"""Built-in probing datasets: balanced, deterministic, sized as asked, with groups that keep
near-duplicates together; true/false statements come from the project's fact table."""

from __future__ import annotations

import pytest

from gnothi.tools import facts
from gnothi.tools.datasets import BUILTIN, check_dataset, load_dataset
from gnothi.tools.errors import InputError


@pytest.mark.parametrize("name", list(BUILTIN))
def test_builtin_balanced_deterministic(name):
    a = load_dataset(name, n=200, seed=0)
    b = load_dataset(name, n=200, seed=0)
    c = load_dataset(name, n=200, seed=1)
    assert a.texts == b.texts and a.labels == b.labels  # deterministic
    assert a.texts != c.texts  # the seed matters
    assert len(a.examples) == 200
    counts = a.class_counts()
    assert len(counts) == 2 and len(set(counts.values())) == 1  # balanced
    assert len(set(a.texts)) >= 0.95 * len(a.texts)  # varied
    assert len({e.group for e in a.examples}) >= 12  # enough groups for a grouped split
    check_dataset(a)
    full = load_dataset(name, n=400)
    assert len(full.examples) == 400


def test_true_false_uses_fact_table():
    ds = load_dataset("true_false", n=400)
    true_statements = {f.statement for fam in facts.families() for f in facts.FACTS[fam] if f.answer}
    for e in ds.examples:
        if e.label == 1:
            assert e.text in true_statements
        else:
            assert e.text not in true_statements
    # a fact's true and false versions share a group
    by_group = {}
    for e in load_dataset("true_false", n=2000).examples:
        by_group.setdefault(e.group, set()).add(e.label)
    assert sum(1 for v in by_group.values() if v == {0, 1}) > 50


def test_singular_plural_last_word_is_not_the_label():
    ds = load_dataset("singular_vs_plural", n=400)
    plural_last = [e.control_key.endswith("s") for e in ds.examples]
    agree = sum(int(p) == e.label for p, e in zip(plural_last, ds.examples)) / len(ds.examples)
    assert 0.3 < agree < 0.7  # the attractor's number is independent of the subject's


def test_question_statement_have_no_punctuation_shortcut():
    ds = load_dataset("question_vs_statement", n=400)
    assert not any(t.rstrip().endswith(("?", ".")) for t in ds.texts)


def test_bad_names_and_sizes():
    with pytest.raises(InputError, match="Unknown dataset"):
        load_dataset("nope")
    with pytest.raises(InputError):
        load_dataset("")
    with pytest.raises(InputError, match="too few"):
        load_dataset("sentiment", n=5)
    assert load_dataset("truth").name == "true_false"  # alias
