"""Word lists for automatic corruption and subject guessing, and the regexes that find words."""

from __future__ import annotations

import re


# Words that automatic corruption may swap for one another (same category, same token length).
ENTITIES: dict[str, list[str]] = {
    "country": (
        "France Italy Germany Spain Japan China India Russia Brazil Canada Egypt Greece Poland Sweden Norway "
        "Mexico Turkey Ireland Portugal Austria Kenya Peru Chile Cuba Iran Iraq Israel Belgium Denmark Finland "
        "Hungary Vietnam Thailand Argentina Australia Nigeria Morocco Switzerland Netherlands England Scotland"
    ).split(),
    "city": (
        "Paris Rome London Berlin Madrid Tokyo Moscow Vienna Athens Cairo Dublin Lisbon Warsaw Prague Oslo "
        "Beijing Delhi Sydney Toronto Chicago Boston Seattle Amsterdam Brussels Stockholm Helsinki Budapest "
        "Istanbul Mumbai Shanghai Munich Milan Venice Barcelona Lyon Geneva Ottawa Lima Havana"
    ).split(),
    "first_name": (
        "John Mary James Anna David Sarah Michael Emma Tom Lisa Paul Kate Mark Alice Peter Laura George "
        "Susan Robert Helen Daniel Jane Steven Emily Richard Linda Thomas Julia Chris Rachel Brian Amy "
        "Kevin Claire Eric Sophie Adam Grace Sam Lucy"
    ).split(),
    "animal": "cat dog bird fish horse cow sheep pig mouse lion tiger bear wolf fox rabbit duck goat deer".split(),
    "object": "car house tree book table chair door ball cup box pen phone bike boat key hat shoe bag".split(),
}
_WORD_CATEGORY = {w.lower(): c for c, ws in ENTITIES.items() for w in ws}


def _word_case(template: str, word: str) -> str:
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word.lower()



_WORD_RE = re.compile(r"[A-Za-z]+")


_CAP_RUN = re.compile(r"[A-Z][\w'\-]*(?:\s+[A-Z][\w'\-]*)*")
