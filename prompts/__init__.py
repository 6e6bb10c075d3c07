"""Prompt templates as markdown files, loaded by name: ``load("explain_neuron", **vars)``.

Placeholders use ``{name}``; literal braces are written ``{{`` and ``}}``.
"""

from __future__ import annotations

from pathlib import Path

_DIR = Path(__file__).parent


def names() -> list[str]:
    return sorted(p.stem for p in _DIR.glob("*.md"))


def path(name: str) -> Path:
    """The file of template ``name`` (FileNotFoundError naming the templates there are)."""
    p = _DIR / f"{name}.md"
    if not p.exists():
        raise FileNotFoundError(f"no prompt template {name!r} in {_DIR} (have: {', '.join(names())})")
    return p


def load(name: str, **vars) -> str:
    text = path(name).read_text(encoding="utf-8")
    return text.format(**vars) if vars else text
