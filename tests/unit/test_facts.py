"""The fact table: size, shape, checking answers, entities."""

from collections import Counter

from gnothi.tools import facts as F
from gnothi.tools import hallu_data as D


def test_table_size_and_shape():
    assert F.families() == ["capitals", "state_capitals", "chemical_symbols", "book_authors", "event_years"]
    real = [f for fam in F.families() for f in F.FACTS[fam]]
    assert len(real) >= 400
    assert len(F.fabricated()) >= 100
    for fam in F.families():
        subs = [f.subject for f in F.FACTS[fam]]
        assert not [s for s, c in Counter(subs).items() if c > 1], fam
        fake = {f.subject for f in F.FABRICATED[fam]}
        assert not fake & set(subs), fam
        for f in F.FACTS[fam]:
            assert f.answer and f.question.endswith("?") and f.answer in f.statement
            assert f.false_statement() != f.statement
            assert f.with_answer(f.answer) == f.statement
        for f in F.FABRICATED[fam]:
            assert f.fabricated and f.answer is None and f.subject in f.question
            assert not f.check(f"{f.subject} is real and the answer is 42.")


def _fact(family, subject):
    return next(f for f in F.FACTS[family] if f.subject == subject)


def test_check_answers():
    fr = _fact("capitals", "France")
    assert fr.check("The capital of France is Paris.")
    assert not fr.check("The capital of France is Lyon. Paris is nice too.")  # first sentence only
    assert _fact("capitals", "the United States").check("It is Washington, D.C. and it is large.")
    assert _fact("capitals", "Ukraine").check("The capital of Ukraine is Kiev.")  # alias
    assert _fact("capitals", "Colombia").check("Bogotá is the capital.")  # accents ignored
    ind = _fact("chemical_symbols", "indium")
    assert ind.check("The chemical symbol for indium is In.")
    assert not ind.check("In chemistry, indium is written Id.")  # the leading word is not the symbol
    h = _fact("chemical_symbols", "hydrogen")
    assert h.check("Hydrogen has the symbol H.") and not h.check("Hydrogen has the symbol He.")
    ww2 = _fact("event_years", "the end of World War II")
    assert ww2.check("World War II ended in 1945.")
    assert not ww2.check("It began in 1939 and ended in 1945.")  # the first year named counts
    assert _fact("book_authors", "The Hobbit").check("The Hobbit was written by J. R. R. Tolkien.")
    assert not _fact("book_authors", "The Hobbit").check("The Hobbit was written by C. S. Lewis.")


def test_refusals():
    assert F.is_refusal("I'm not aware of a country called Veltoria.")
    assert F.is_refusal("There is no such element.")
    assert not F.is_refusal("The capital of Veltoria is Nova Terra.")
    assert not F.is_refusal("The Ferrier Testament is a fictional work by John Ferrier.")  # still makes one up
    fake = F.fabricated("capitals")[0]
    assert D.label_answer(fake, "The capital of Veltoria is Nova Terra.") == (1, False, False)
    assert D.label_answer(fake, "I don't know of a country called Veltoria.") == (0, False, True)
    fr = _fact("capitals", "France")
    assert D.label_answer(fr, "The capital of France is Paris.")[0] == 0
    assert D.label_answer(fr, "The capital of France is Lyon.")[0] == 1


def test_entities_group_related_questions():
    e = {f.subject: D.entity_of(f) for f in F.all_facts()}
    assert e["the start of World War II"] == e["the end of World War II"]
    assert e["the start of World War I"] != e["the start of World War II"]
    assert e["Nelson Mandela's release from prison"] == e["Nelson Mandela's election as president of South Africa"]
    assert e["the Ostrevian Revolution"] == e["Ostrevia"]  # an invented country and its invented event
    assert e["France"] != e["Germany"]


def test_split_by_entity_is_disjoint_and_stratified():
    facts = F.all_facts()
    ents = [D.entity_of(f) for f in facts]
    fams = [f.family for f in facts]
    tr, te = D.split_by_entity(ents, test_frac=0.3, seed=1, strata=fams)
    assert sorted(tr + te) == list(range(len(facts)))
    assert not {ents[i] for i in tr} & {ents[i] for i in te}
    for fam in F.families():
        n_te = sum(1 for i in te if fams[i] == fam)
        n = fams.count(fam)
        assert 0.15 * n < n_te < 0.45 * n, fam
    tr2, te2 = D.split_by_entity(ents, test_frac=0.3, seed=1, strata=fams)
    assert (tr, te) == (tr2, te2)  # deterministic
    assert D.split_by_entity(ents, test_frac=0.3, seed=2, strata=fams)[1] != te
