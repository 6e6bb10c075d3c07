"""Token text for people: characters split over byte tokens are shown, not U+FFFD."""

import pytest

from gnothi.tools import tokens as T
from gnothi.tools.errors import InputError

TEXT = "the word 東京 café"


@pytest.fixture(scope="module")
def byte_bpe():
    """A byte-level BPE (the GPT-2 / SmolLM2 kind) that never saw CJK: 東 and 京 are 3 byte tokens each."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=["<eos>"],
                             show_progress=False)
    tk.train_from_iterator(["the word is here and there"] * 50, tr)
    return PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<eos>")


@pytest.fixture(scope="module")
def byte_fallback():
    """A SentencePiece-style vocabulary with byte fallback (the Gemma / Llama kind)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, **{f"<0x{b:02X}>": 1 + b for b in range(256)}, "▁the": 257, "▁word": 258, "▁": 259, "caf": 260}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[], byte_fallback=True, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="never")
    tk.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>")


@pytest.mark.parametrize("which", ["byte_bpe", "byte_fallback"])
def test_split_characters_are_shown_not_replacement_marks(which, request):
    tok = request.getfixturevalue(which)
    ids = tok(TEXT, add_special_tokens=False)["input_ids"]
    naive = [tok.decode([i]) for i in ids]
    assert sum("\ufffd" in t for t in naive) >= 6  # the control: decoding one id at a time loses them
    p = T.pieces(tok, ids)
    assert "".join(p) == tok.decode(ids) and "東京" in "".join(p)
    assert not any("\ufffd" in t for t in p)
    lab = T.labels(tok, ids)
    assert len(lab) == len(ids) and not any("\ufffd" in t for t in lab)
    assert lab.count("東(1/3)") == 1 and lab.count("東(3/3)") == 1 and lab.count("京(2/3)") == 1
    assert any(t.endswith("é(2/2)") for t in lab)
    # a byte token out of context: its bytes, written out
    first = next(i for i, t in zip(ids, naive) if "\ufffd" in t)
    assert T.label(tok, first) in ("\\xe6", "\\xe6\\x9d", "\\xe6\\x9d\\xb1") and T.token_bytes(tok, first).startswith(b"\xe6")


def test_whole_tokens_are_left_alone(byte_bpe):
    ids = byte_bpe("the word is here", add_special_tokens=False)["input_ids"]
    assert T.pieces(byte_bpe, ids) == T.labels(byte_bpe, ids) == [byte_bpe.decode([i]) for i in ids]


def test_find_matches_a_split_character_on_the_token_that_completes_it(byte_bpe):
    ids = byte_bpe(TEXT, add_special_tokens=False)["input_ids"]
    p = T.pieces(byte_bpe, ids)
    i = T.find(p, "東")
    assert p[i] == "東" and i == [j for j, t in enumerate(T.labels(byte_bpe, ids)) if t == "東(3/3)"][0]
    assert T.find(p, " word") == 1 and T.find(p, "WORD") == 1 and T.find(p, -1) == len(p) - 1
    with pytest.raises(InputError, match="out of range"):
        T.find(p, len(p))
    with pytest.raises(InputError, match="not a token of the text"):
        T.find(p, "Paris")
    # a word longer than any token is not matched by a short token inside it ("Parisian" is not " is")
    words = ["<s>", " The", " capital", " is", " Paris"]
    assert T.find(words, "Paris") == 4 and T.find(words, "capit") == 2
    with pytest.raises(InputError):
        T.find(words, "Parisian")
    east = p.index("東")
    assert p[east - 2:east] == ["", ""] and [T.completing(p, i) for i in (east - 2, east - 1, east, 0)] == [east, east, east, 0]


def test_context_lines_bold_the_completed_character():
    from gnothi.agents.toolkit.base import context_lines
    from gnothi.tools.results import TokenSpan, ToolResult

    # the unit peaks on the first byte token of 東: the bold goes to the character, the value stays the peak's
    r = ToolResult(tool="t", summary="s", spans=[TokenSpan(tokens=["the", " word", " ", "", "", "東", "", "", "京"],
                                                           values=[0, 0, 0, 5.0, 1, 2, 0, 0, 0])])
    assert context_lines(r) == ["«the word **東**京» (5.00)"]


def test_figures_write_characters_their_font_lacks_as_code_points():
    """The PNG fonts (matplotlib's DejaVu) have no CJK: such a label is drawn as <U+6771>,
    not as an empty box with a warning; characters the font has are kept."""
    import warnings

    from gnothi.tools.results import Figure, _drawable, render_png

    assert _drawable({"x": ["東京", " café"], "n": 3}) == {"x": ["<U+6771><U+4EAC>", " café"], "n": 3}
    fig = Figure(kind="heatmap", title="head 東", data={"z": [[0.1, 0.9], [0.5, 0.5]], "x": ["東", "京"], "y": ["a", "é"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph 26481 missing from font(s)" would raise
        assert render_png(fig)[:8] == b"\x89PNG\r\n\x1a\n"


def test_displays_fold_a_split_character_into_one_token():
    """Every display (reply contexts, the chat's highlights, PNG token rows) shows a split
    character once, on the token that completes it, with the larger value of its parts."""
    from gnothi.ui.app import spans_for_highlight, token_html
    from gnothi.tools.results import ToolResult, TokenSpan

    toks, vals = ["the", " ", "", "", "東", "", "京"], [0.0, 0.1, 5.0, -1.0, 2.0, -3.0, 1.0]
    assert T.merge_partial(toks, vals) == (["the", " ", "東", "京"], [0.0, 0.1, 5.0, -3.0])
    assert T.merge_partial(["a", "b"], [1, 2]) == (["a", "b"], [1.0, 2.0])
    assert T.merge_partial(["a", ""], [1, 2]) == (["a", ""], [1.0, 2.0])  # ends inside a character
    html = token_html(toks, vals)
    assert html.count('class="gn-tok"') == 4 and 'title="5">東<' in html
    r = ToolResult(tool="t", summary="s", spans=[TokenSpan(tokens=toks, values=vals)])
    assert [t for t, _ in spans_for_highlight([r])] == ["the", " ", "東", "京"]
