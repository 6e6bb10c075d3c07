import json

import numpy as np
import pytest

from gnothi.tools.corpus import Corpus, Document, load_corpus, token_windows
from gnothi.tools.errors import CorpusError
from gnothi.tools.testing import tiny_tokenizer


def test_default_corpus_has_several_offline_sources():
    c = load_corpus("default")
    desc = c.describe()
    assert {"pydoc", "stdlib-code", "kjv"} <= set(desc["sources"])
    assert c.n_chars() > 1_000_000
    assert c.fingerprint() == load_corpus().fingerprint()


def test_user_files(tmp_path):
    (tmp_path / "a.txt").write_text("the cat sat .\n\nthe dog ran .")
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "red car"}) + "\n" + json.dumps("blue car") + "\n")
    c = load_corpus(tmp_path)
    assert [d.text for d in c.documents] == ["the cat sat .\n\nthe dog ran .", "red car", "blue car"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{nope\n')
    with pytest.raises(CorpusError, match="line 2"):
        load_corpus(bad)
    (tmp_path / "c.jsonl").write_text(json.dumps({"body": "x"}) + "\n")
    with pytest.raises(CorpusError, match="text"):
        load_corpus(tmp_path / "c.jsonl")
    with pytest.raises(CorpusError, match="not found"):
        load_corpus(tmp_path / "missing.txt")
    (tmp_path / "x.pdf").write_text("x")
    with pytest.raises(CorpusError, match="Unsupported"):
        load_corpus(tmp_path / "x.pdf")


def test_windows_deterministic_and_mixed():
    tok = tiny_tokenizer()
    docs = [Document("the cat sat on the red car . " * 5, "a") for _ in range(10)]
    docs += [Document("def f ( x ) : return x + one " * 5, "b") for _ in range(10)]
    c = Corpus("t", docs)
    w1 = token_windows(c, tok, window=16, seed=1, bos_token_id=tok.bos_token_id)
    w2 = token_windows(c, tok, window=16, seed=1, bos_token_id=tok.bos_token_id)
    w3 = token_windows(c, tok, window=16, seed=2, bos_token_id=tok.bos_token_id)
    assert w1.shape[1] == 16 and (w1[:, 0] == tok.bos_token_id).all()
    assert np.array_equal(w1, w2)
    assert not np.array_equal(w1, w3)
    capped = token_windows(c, tok, window=16, n_tokens=40, seed=1)
    assert len(capped) == 3
    # round-robin: first two windows come from different sources
    ids_def = tok.convert_tokens_to_ids("def")
    srcs = [("b" if ids_def in row or tok.convert_tokens_to_ids("return") in row else "a") for row in capped[:2]]
    assert set(srcs) == {"a", "b"}
    with pytest.raises(CorpusError, match="shorter than one window"):
        token_windows(Corpus("s", [Document("the cat", "a")]), tok, window=16)
