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
