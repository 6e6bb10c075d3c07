"""Argument extraction from plain words, in the notations people use.

* units: ``L7 N340``, ``L7N340``, ``7.340``, ``7:340``, ``7/340``, ``neuron 340 in layer 7``,
  ``layer 7 neuron 340``, ``layer seven``, ``the seventh layer``, ``the last layer``;
* SAE features: ``feature 123``, ``f123``, ``feature #123``;
* quoted prompts: ``"..."``, ``'...'``, ``“...”``, ``«...»``;
* clean vs corrupted: ``clean "A" corrupted "B"``, ``"A" vs "B"``, ``"A" instead of "B"``;
* answers: ``answer "Paris"``, ``why did it say Rome``, ``Paris rather than Rome``.

Everything here is deterministic rules; routing by meaning lives in ``planner_offline``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_ORD = {
    "zeroth": 0, "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
    "nineteenth": 19, "twentieth": 20, "thirtieth": 30, "fortieth": 40,
}
_WORDNUM = "|".join(sorted(list(_UNITS) + list(_TENS), key=len, reverse=True))
_ORDNUM = "|".join(sorted(_ORD, key=len, reverse=True))
# "twenty one", "twenty-one", "seven", "twenty-first"
_WORD_RE = re.compile(
    rf"\b(?:(?P<tens>{'|'.join(_TENS)})[\s-]+(?:(?P<unit>{'|'.join(k for k in _UNITS if _UNITS[k] < 10 and _UNITS[k] > 0)})|(?P<uord>{'|'.join(k for k in _ORD if 0 < _ORD[k] < 10)}))"
    rf"|(?P<ord>{_ORDNUM})|(?P<word>{_WORDNUM}))\b",
    re.I,
)


def words_to_digits(text: str) -> str:
    """Replace number words ("seven", "twenty-one", "seventh") with digits ("7", "21", "7th")."""

    def sub(m: re.Match) -> str:
        if m.group("tens"):
            base = _TENS[m.group("tens").lower()]
            if m.group("unit"):
                return str(base + _UNITS[m.group("unit").lower()])
            return f"{base + _ORD[m.group('uord').lower()]}th"
        if m.group("ord"):
            return f"{_ORD[m.group('ord').lower()]}th"
        return str({**_UNITS, **_TENS}[m.group("word").lower()])

    return _WORD_RE.sub(sub, text)


_QUOTE_RE = re.compile(r"\"([^\"]+)\"|“([^”]+)”|«([^»]+)»|‘([^’]+)’|(?<![A-Za-z0-9])'([^']+?)'(?![A-Za-z0-9])|`([^`]+)`")


def quoted(text: str) -> list[str]:
    """Every quoted string, in order (double, curly, guillemet, back-tick or single quotes)."""
    out = []
    for m in _QUOTE_RE.finditer(text):
        s = next(g for g in m.groups() if g is not None)
        if s.strip():
            out.append(s)
    return out


def strip_quoted(text: str) -> str:
    return _QUOTE_RE.sub(" QUOTED ", text)


@dataclass
class Extracted:
    layer: int | None = None
    neuron: int | None = None
    layers: list[int] = field(default_factory=list)  # every layer mentioned (ranges expanded)
    feature: int | None = None
    quotes: list[str] = field(default_factory=list)
    clean: str | None = None
    corrupted: str | None = None
    answer: str | None = None
    alternative: str | None = None
    last_layer: bool = False
    numbers: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None and v is not False and v != []}


_UNIT_PATTERNS = [
    # L7 N340 / L7N340 / l7/n340 / layer7 neuron340
    re.compile(r"\bl(?:ayer)?\s*#?(?P<l>\d+)\s*[,/:._\- ]?\s*(?:n|neuron|unit)\s*#?(?P<n>\d+)\b", re.I),
    # neuron 340 in/of/at/on layer 7
    re.compile(r"\b(?:neuron|unit|n)\s*#?(?P<n>\d+)\s*(?:,\s*)?(?:in|of|at|on|from)?\s*(?:the\s+)?(?:layer|l)\s*#?(?P<l>\d+)\b", re.I),
    # neuron 340 in the 7th layer
    re.compile(r"\b(?:neuron|unit)\s*#?(?P<n>\d+)\s*(?:in|of|at|on|from)\s+the\s+(?P<l>\d+)(?:st|nd|rd|th)\s+layer\b", re.I),
    # layer 7, neuron 340 / layer 7's neuron 340 / 7th layer neuron 340
    re.compile(r"\b(?:layer|l)\s*#?(?P<l>\d+)(?:'s)?\s*(?:,|\s)\s*(?:mlp\s+)?(?:neuron|unit)\s*#?(?P<n>\d+)\b", re.I),
    re.compile(r"\b(?P<l>\d+)(?:st|nd|rd|th)\s+layer(?:'s)?\s*,?\s*(?:mlp\s+)?(?:neuron|unit)\s*#?(?P<n>\d+)\b", re.I),
    # 7.340 / 7:340 / 7/340 (not a decimal like 0.5 in "scale 0.5": require neuron-ish words or ints)
    re.compile(r"(?<![\w.])(?P<l>\d{1,3})[.:/](?P<n>\d{1,6})(?![\w.]|\.\d)"),
]
_LAYER_RE = [
    re.compile(r"\b(?:layer|l)\s*#?(?P<l>\d+)\b", re.I),
    re.compile(r"\b(?P<l>\d+)(?:st|nd|rd|th)\s+layer\b", re.I),
    re.compile(r"\blayer\s+number\s+(?P<l>\d+)\b", re.I),
]
_LAYER_RANGE_RE = re.compile(r"\blayers?\s+(?P<a>\d+)\s*(?:-|–|to|through|thru|\.\.)\s*(?P<b>\d+)\b", re.I)
_LAYER_LIST_RE = re.compile(r"\blayers\s+(?P<list>\d+(?:\s*(?:,|and|&)\s*\d+)+)\b", re.I)
_NEURON_RE = re.compile(r"\b(?:neuron|unit)\s*#?(?P<n>\d+)\b", re.I)
_FEATURE_RE = re.compile(r"\b(?:sae\s+)?(?:feature|latent|f)\s*#?(?P<f>\d+)\b", re.I)
_LAST_LAYER_RE = re.compile(r"\b(?:last|final|top)\s+layer\b", re.I)

_CLEAN_CORRUPT = [
    re.compile(r"clean(?:\s+prompt)?\s*[:=]?\s*(?P<q1>\"[^\"]+\"|“[^”]+”|'[^']+').*?(?:corrupt(?:ed|ion)?|counterfactual|dirty)(?:\s+prompt)?\s*[:=]?\s*(?P<q2>\"[^\"]+\"|“[^”]+”|'[^']+')", re.I | re.S),
    re.compile(r"(?:corrupt(?:ed|ion)?|counterfactual|dirty)(?:\s+prompt)?\s*[:=]?\s*(?P<q2>\"[^\"]+\"|“[^”]+”|'[^']+').*?clean(?:\s+prompt)?\s*[:=]?\s*(?P<q1>\"[^\"]+\"|“[^”]+”|'[^']+')", re.I | re.S),
    re.compile(r"(?P<q1>\"[^\"]+\"|“[^”]+”)\s*(?:vs\.?|versus|instead of|compared (?:to|with)|against|->|→|and)\s*(?P<q2>\"[^\"]+\"|“[^”]+”)", re.I),
]
_ANSWER_RE = [
    re.compile(r"\banswer(?:ed|s)?\s*(?:token)?\s*[:=]?\s*(?P<a>\"[^\"]+\"|“[^”]+”|'[^']+')", re.I),
    re.compile(r"\b(?:say|said|says|answer|answered|predict|predicted|output|outputs|choose|chose|pick|picked|prefer|preferred)\s+(?P<a>[A-Z][\w-]*|\"[^\"]+\"|'[^']+')(?:\s+(?:rather than|instead of|over|not|vs\.?|versus)\s+(?P<b>[A-Z][\w-]*|\"[^\"]+\"|'[^']+'))?", re.S),
    re.compile(r"\b(?P<a>[A-Z][\w-]*)\s+(?:rather than|instead of|over)\s+(?P<b>[A-Z][\w-]*)\b"),
]
_ALT_RE = re.compile(r"\b(?:alternative|instead of|rather than|versus|vs\.?|over|not)\s*[:=]?\s*(?P<b>\"[^\"]+\"|“[^”]+”|'[^']+')", re.I)


def _unq(s: str | None) -> str | None:
    if s is None:
        return None
    s = s.strip()
    if len(s) >= 2 and s[0] in "\"'“‘«" and s[-1] in "\"'”’»":
        s = s[1:-1]
    return s


def extract(text: str, n_layers: int | None = None) -> Extracted:
    """Pull units, layers, features, prompts and answers out of ``text``."""
    e = Extracted()
    e.quotes = quoted(text)
    bare = words_to_digits(strip_quoted(text))
    for pat in _UNIT_PATTERNS:
        m = pat.search(bare)
        if m:
            e.layer, e.neuron = int(m.group("l")), int(m.group("n"))
            break
    m = _LAYER_RANGE_RE.search(bare)
    if m:
        a, b = int(m.group("a")), int(m.group("b"))
        if a <= b and b - a <= 200:
            e.layers = list(range(a, b + 1))
    else:
        m = _LAYER_LIST_RE.search(bare)
        if m:
            e.layers = [int(x) for x in re.findall(r"\d+", m.group("list"))]
    if e.layer is None:
        for pat in _LAYER_RE:
            m = pat.search(bare)
            if m:
                e.layer = int(m.group("l"))
                break
    if _LAST_LAYER_RE.search(bare):
        e.last_layer = True
        if e.layer is None and n_layers:
            e.layer = n_layers - 1
    if e.neuron is None:
        m = _NEURON_RE.search(bare)
        if m:
            e.neuron = int(m.group("n"))
    m = _FEATURE_RE.search(bare)
    if m and not re.search(r"\bl\s*\d", m.group(0), re.I):
        e.feature = int(m.group("f"))
    if e.layer is not None and not e.layers:
        pass
    e.numbers = [int(x) for x in re.findall(r"(?<![\w.])\d+(?![\w])", bare)]
    # clean vs corrupted
    for pat in _CLEAN_CORRUPT:
        m = pat.search(text)
        if m:
            e.clean, e.corrupted = _unq(m.group("q1")), _unq(m.group("q2"))
            break
    for pat in _ANSWER_RE:
        m = pat.search(text)
        if m:
            a = _unq(m.group("a"))
            if a and a.lower() not in {"the", "a", "an", "it", "this", "that", "i", "what", "something"} and a != e.clean and a != e.corrupted:
                e.answer = a
                b = m.groupdict().get("b")
                if b:
                    e.alternative = _unq(b)
                break
    if e.answer and not e.alternative:
        m = _ALT_RE.search(text)
        if m:
            b = _unq(m.group("b"))
            if b not in (e.clean, e.corrupted, e.answer):
                e.alternative = b
    return e


_FOLLOWUP_RE = re.compile(
    r"^\s*(?:ok(?:ay)?[,.]?\s+|and\s+|so\s+|then\s+|great[,.!]?\s+|thanks[,.!]?\s+)?"
    r"(?:now\b|what about\b|how about\b|and\s+(?:for|in|at|with)\b|same\b|again\b|instead\b|try\b|do the same\b|repeat\b|also\b|and layer\b|and neuron\b)",
    re.I,
)
_ANAPHORA_RE = re.compile(r"\b(?:that|this|the same|it|its|those|these|previous|last one|same one)\s*(?:feature|neuron|unit|one|layer|prompt|probe|result)?\b", re.I)


def is_followup(text: str) -> bool:
    """Does the question lean on an earlier turn ("now layer 5", "what about that feature")?"""
    t = text.strip()
    if _FOLLOWUP_RE.search(t):
        return True
    return bool(re.search(r"\b(?:that|this|the same|previous)\s+(?:feature|neuron|unit|layer|prompt|probe|one)\b", t, re.I))


_INJECTION_RE = re.compile(
    r"ignore\s+(?:all\s+|any\s+|the\s+|your\s+)?(?:previous|prior|above|earlier|preceding|system|safety)?\s*(?:instructions|rules|prompts?|guidelines)"
    r"|disregard\s+(?:all\s+|the\s+|your\s+)?(?:previous|prior|above|earlier|system)?\s*(?:instructions|rules|prompts?)"
    r"|forget\s+(?:all\s+|your\s+)?(?:previous\s+)?(?:instructions|rules)"
    r"|(?:reveal|print|show|repeat|leak)\s+(?:me\s+)?(?:your|the)\s+(?:system\s+prompt|instructions|hidden|api\s*key|secret)"
    r"|\bsystem\s+prompt\b|\bjailbreak|\bdeveloper\s+mode\b|\bDAN\b|you\s+are\s+now\s+(?:a|an|in)\b"
    r"|\bact\s+as\s+(?:a|an)\s+(?:unrestricted|different|evil)|pretend\s+(?:you\s+are|to\s+be)\s+(?:a|an)?\s*(?:unrestricted|different|evil|hacker)"
    r"|\brm\s+-rf\b|\bapi[_\s-]?key\b|\bos\.system\b|\bexec\(|<\s*/?\s*(?:system|instructions?)\s*>",
    re.I,
)


def looks_like_injection(text: str) -> bool:
    return bool(_INJECTION_RE.search(text))
