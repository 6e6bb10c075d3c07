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


def test_a_huge_file_is_read_only_as_far_as_needed(tmp_path):
    """A corpus far larger than the tokens asked for: only the budget is read (memory stays
    bounded), and the windows come from that part."""
    import tracemalloc

    from gnothi.tools.corpus import bytes_for_tokens

    big = tmp_path / "big.txt"
    para = ("The river flows quietly through the old town, past the mill and the church. " * 4 + "\n\n").encode()
    with open(big, "wb") as f:
        for _ in range(200_000 // 4):  # ~64 MB
            f.write(para * 4)
    assert big.stat().st_size > 50 * 2**20
    tracemalloc.start()
    c = load_corpus(big, max_bytes=bytes_for_tokens(256))
    peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    assert sum(len(d.text) for d in c.documents) <= bytes_for_tokens(256)
    assert peak_mb < 10, peak_mb  # reading it whole allocates over 60 MB
    jl = tmp_path / "big.jsonl"
    jl.write_text("\n".join('{"text": "line %d of a long file"}' % i for i in range(100_000)))
    c = load_corpus(jl, max_bytes=4096)
    assert 0 < len(c.documents) < 200 and all(d.text.startswith("line ") for d in c.documents)


def test_binary_files_are_refused(tmp_path):
    nul = tmp_path / "zeros.txt"
    nul.write_bytes(b"\x00" * 10_000)
    with pytest.raises(CorpusError, match="looks binary") as e:
        load_corpus(nul)
    assert "UTF-8" in e.value.fix
    png = tmp_path / "folder"
    png.mkdir()
    (png / "notes.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(CorpusError, match="looks binary"):
        load_corpus(png)


def test_a_one_token_window_is_an_input_error_not_the_corpus(tmp_path):
    from gnothi.tools.errors import InputError
    from gnothi.tools.testing import tiny_tokenizer

    f = tmp_path / "t.txt"
    f.write_text("the cat sat on the mat " * 50)
    with pytest.raises(InputError, match="window of 1 token"):
        token_windows(load_corpus(f), tiny_tokenizer(), window=1)
