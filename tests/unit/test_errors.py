"""Every error a user can hit is in the README's error catalogue, with a message and a fix."""

import inspect
from pathlib import Path

from gnothi.tools import errors

README = Path(__file__).resolve().parents[2] / "README.md"


def _error_classes():
    return [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, errors.GnothiError) and c is not errors.GnothiError]


def test_every_error_class_is_in_the_catalogue():
    text = README.read_text(encoding="utf-8")
    catalogue = text.split("## Error catalogue", 1)[1]
    missing = [c.__name__ for c in _error_classes() if f"`{c.__name__}`" not in catalogue]
    assert not missing, f"add these to the README's error catalogue: {missing}"


def test_error_codes_unique_and_serializable():
    codes = [c.code for c in _error_classes()]
    assert len(codes) == len(set(codes))
    e = errors.OutOfRangeError("layer 40 is out of range", "Pick a layer from 0 to 29.")
    assert e.to_dict() == {"error": "out_of_range", "message": "layer 40 is out of range", "fix": "Pick a layer from 0 to 29."}


def test_check_range_messages():
    import pytest

    with pytest.raises(errors.OutOfRangeError, match="0 to 29"):
        errors.check_range("layer", 30, 30)
    with pytest.raises(errors.OutOfRangeError, match="integer"):
        errors.check_range("layer", "3", 30)
    assert errors.check_range("layer", 0, 30) == 0


def test_messages_are_cut_at_a_word_never_mid_word():
    from gnothi.tools.errors import GnothiError, describe_failure, shorten

    long = "The LLM endpoint http://127.0.0.1:9/v1 could not be reached after 2 attempts because the connection was refused " * 3
    out = shorten(long, 80)
    assert len(out) <= 80 and out.endswith("…") and long.startswith(out[:-1]) and long[len(out) - 1] == " "
    assert shorten("short text", 80) == "short text"
    assert describe_failure(GnothiError("A gnothi message.", "fix")) == "A gnothi message."
    assert describe_failure(ValueError("bad value")) == "ValueError: bad value"
