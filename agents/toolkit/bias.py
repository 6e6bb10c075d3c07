"""Bias: counterfactual gender gaps per occupation, with a neutral-pair control."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from gnothi.tools import bias
from gnothi.tools.results import ToolResult

from .base import Args, Query, Row, ToolAgent, adopt, check_text, num, register

if TYPE_CHECKING:
    from gnothi.tools.model import ModelHandle

_KNOWN = {o.lower(): o for o in bias.OCCUPATIONS + bias.OTHER_OCCUPATIONS + bias.NAMED_OCCUPATIONS}


def _plurals(word: str) -> list[str]:
    """The ways an occupation is written in the plural: "nurses", "secretaries", "firemen", "CEOs"."""
    forms = [word + "s", word + "es"]
    if re.search(r"[^aeiou]y$", word):
        forms.append(word[:-1] + "ies")
    if word.endswith("man"):
        forms.append(word[:-3] + "men")
    return forms


_FORMS = {f: k for k in _KNOWN for f in [k, *_plurals(k)]}
_OCC_RE = re.compile(r"\b(" + "|".join(sorted((re.escape(f) for f in _FORMS), key=len, reverse=True)) + r")\b", re.I)
# a word pair named as one: "pair she/he", "words: Mary vs John", or written with a slash ("he/she")
_PAIR_RE = re.compile(r"\b(?:pair|words?)\s*[:=]?\s*['\"“‘]?(?P<a>[A-Za-z]+)['\"”’]?\s*(?:/|\s(?:vs\.?|versus|and|or)\s)\s*['\"“‘]?(?P<b>[A-Za-z]+)\b", re.I)
_SLASH_RE = re.compile(r"\b(?P<a>[A-Za-z]+)/(?P<b>[A-Za-z]+)\b")


class BiasArgs(Args):
    """Measure the model's gender gap per occupation (built-in templates or the user's own)."""

    occupations: list[str] | None = Field(None, description="occupations the question names (singular), e.g. ['nurse', 'engineer']")
    template: str | None = Field(None, description="the user's own sentence, with {occupation} where the occupation goes")
    pair: str | None = Field(None, description="the two words to compare, e.g. 'he/she' (required with a template)")

    @field_validator("template")
    @classmethod
    def _t(cls, v, info):
        return check_text(v, info.field_name)


# a word listed beside a known occupation is one too ("the cook and the builder", "teachers n cops", "nurses, pilots & cooks")
_CONJ = r"(?:\s*,\s*(?:and\s+|or\s+|&\s*)?|\s+(?:and|or|n|&|\+|vs\.?|versus)\s+)(?:(?:the|a|an)\s+)?"
_NEXT_RE = re.compile(rf"^{_CONJ}(?P<w>[A-Za-z][a-z-]{{2,}})\b")
_PREV_RE = re.compile(rf"\b(?P<w>[A-Za-z][a-z-]{{2,}}){_CONJ}$")
_NOT_OCCUPATION = {"he", "she", "him", "his", "her", "hers", "they", "them", "men", "women", "man", "woman", "people", "person", "gender",
                   "genders", "model", "bias", "biased", "also", "both", "other", "others", "all", "more", "less", "see", "check", "test",
                   "measure", "compare", "show", "tell", "which", "what", "how", "then", "one", "ones", "jobs", "job", "occupation",
                   "occupations", "professions", "profession", "stereotypes", "stereotype", "female", "male", "gendered", "try", "use",
                   "with", "for", "about", "like", "this", "that", "these", "those", "you", "your", "not", "but", "now", "too", "please",
                   "and", "after", "before", "while", "when", "next", "run", "make", "find", "give", "same", "any", "some"}
_HE_SHE_RE = re.compile(r"\b(?P<a>he|she|his|her|him|man|woman|male|female)\s+(?:or|vs\.?|versus|over)\s+(?P<b>he|she|his|her|him|man|woman|male|female)\b", re.I)


def occupations_in(text: str) -> list[str]:
    found: list[tuple[int, str]] = []
    for m in _OCC_RE.finditer(text):
        found.append((m.start(), _KNOWN[_FORMS[m.group(1).lower()]]))
        for side, pat, s in (("next", _NEXT_RE, text[m.end():]), ("prev", _PREV_RE, text[:m.start()])):
            pos = m.end()
            while (n := pat.search(s)) and n.group("w").lower() not in _NOT_OCCUPATION and n.group("w").lower() not in _FORMS:
                w = bias.singular(n.group("w").lower())
                found.append((pos + n.start("w") if side == "next" else n.start("w"), w))
                if side == "prev":
                    break
                pos += n.end()
                s = s[n.end():]
    out: list[str] = []
    for _, o in sorted(found):
        if o not in out and not any(x != o and x.startswith(o + " ") for _, x in found):  # "flight" of "flight attendants"
            out.append(o)
    return out


@register
class Bias(ToolAgent[BiasArgs]):
    name = "bias"
    title = "Bias check"
    description = ("Measure gender bias: whether the model prefers he or she, his or her, man or woman after sentences about 40 "
                   "occupations (nurse, engineer, CEO ...), with confidence intervals and a neutral control pair.")
    examples = ["is the model biased about nurses and engineers?", "does the model assume a CEO is a man?",
                "measure the gender gap in occupation completions"]
    Args = BiasArgs
    next_steps_text = [
        "find which layers carry the gap: patch 'The nurse said that' with the answer ' she' against ' he'",
        "give your own template: bias template 'The {occupation} told me that' pair he/she",
    ]

    def extract(self, q: Query) -> tuple[dict[str, Any], str | None]:
        # a follow-up ("try it with my sentence '...'", "and for pilots?") keeps what it does not change
        args: dict[str, Any] = {k: v for k, v in q.last_args.items() if k in ("occupations", "template", "pair")} if q.followup else {}
        occ = occupations_in(q.clause)
        if occ:
            args["occupations"] = occ
        quoted = [x for x in q.quotes if "{" in x or "occupation" in x.lower()]
        if quoted:
            args["template"] = quoted[0].replace("{}", "{occupation}")
            args.pop("pair", None)  # a new template: its pair is read below (he/she unless named)
        m = _PAIR_RE.search(q.clause) or _SLASH_RE.search(q.clause)
        if m and not {m.group("a").lower(), m.group("b").lower()} & (set(_KNOWN) | {"occupation", "occupations", "and", "or"}):
            args["pair"] = f"{m.group('a')}/{m.group('b')}"
        if not args.get("pair") and (m := _HE_SHE_RE.search(q.clause)) and m.group("a").lower() != m.group("b").lower():
            args["pair"] = f"{m.group('a').lower()}/{m.group('b').lower()}"  # "does it prefer he or she for pilots?"
        if args.get("template") and not args.get("pair"):
            args["pair"] = "he/she"
        return args, None

    def reformulate(self, a):
        who = f" (highlighting {', '.join(a['occupations'])})" if a.get("occupations") else ""
        if a.get("template"):
            return f"Compare {a.get('pair')} after {a['template']!r} for 40 occupations{who}, beside a neutral word pair."
        return (f"Measure how much more likely the model finds he/his/man than she/her/woman after sentences about 40 occupations{who}, "
                "with 95% intervals and a neutral word pair as the control.")

    def execute(self, handle: ModelHandle, a: BiasArgs, llm: Any = None) -> ToolResult:
        rep = bias.bias_check(handle, a.occupations, template=a.template, pair=a.pair)
        return adopt(rep.to_tool_result(), self.name)

    # ------------------------------------------------------------------ reply

    def answer(self, r):
        d = r.data
        a, b = (w.strip() for w in (d.get("pair_label") or "he/she").split(",")[0].split("/"))
        asked = [o for o in d.get("occupations", []) if o["occupation"] in (d.get("asked") or [])]
        parts = []
        for o in asked[:4]:
            lean = a if o["gap"] > 0 else b
            sure = o["ci"] is not None and (o["ci"][0] > 0 or o["ci"][1] < 0)
            parts.append(f"after sentences about {bias._article(o['occupation'])} {o['occupation']} it leans to {lean!r} by {num(abs(o['gap']))} nats"
                         + ("" if sure else " (one prompt: no interval)" if o["ci"] is None else " (the interval includes 0)"))
        gd, cd = d.get("group_difference"), d.get("control_group_difference")
        if gd is not None:
            ci = d["group_difference_ci"]
            clear = (ci[0] > 0 or ci[1] < 0) and abs(gd) > abs(cd or 0)
            verdict = ("Yes" if gd > 0 else "Yes, against the stereotype") if clear else "Not clearly"
            head = (f"{verdict}: across WinoBias's 40 occupations, the male-dominated ones get a {a}-over-{b} gap {num(gd)} nats larger than "
                    f"the female-dominated ones (95% CI {num(ci[0])} to {num(ci[1])}), where a neutral word pair gives {num(cd)}.")
        else:
            head = f"Gaps for the pair {d.get('pair_label')}."
        tail = "; ".join(parts)
        return head + (" " + tail[:1].upper() + tail[1:] + "." if parts else "")

    def table(self, r):
        d = r.data
        rows = []
        if d.get("group_difference") is not None:
            rows.append(Row("Gap difference, male- minus female-dominated occupations (nats)", num(d["group_difference"]),
                            f"neutral pair {d.get('control_label')}: {num(d.get('control_group_difference'))}"))
            rows.append(Row("Correlation of the gap with the occupation group", num(d.get("correlation")),
                            f"neutral pair: {num(d.get('control_correlation'))}"))
        rows.append(Row("Mean gap over all occupations (the model's overall lean)", num(d.get("mean_gap")), ""))
        for o in r.evidence[:6]:
            ci = f" [{num(o['ci'][0])}, {num(o['ci'][1])}]" if o.get("ci") else ""
            rows.append(Row(f"{o['occupation']} ({o['group']})", f"{num(o['gap'])}{ci}",
                            f"neutral pair {num(o['control_gap'])}; {o['n_prompts']} prompts"))
        return rows

    def evidence(self, r):
        d = r.data
        occ = sorted(d.get("occupations", []), key=lambda o: o["gap"])
        out = []
        if occ:
            out.append("most 'she'-leaning: " + ", ".join(f"{o['occupation']} ({num(o['gap'])})" for o in occ[:3]))
            out.append("most 'he'-leaning: " + ", ".join(f"{o['occupation']} ({num(o['gap'])})" for o in occ[-3:][::-1]))
        out.append(f"{d.get('n_templates')} templates, e.g. {(d.get('templates') or [''])[0]!r}; groups as in {d.get('citation')}")
        return out

    def sure(self, r):
        d = r.data
        ci, cci = d.get("group_difference_ci"), d.get("control_group_difference_ci")
        if not ci:
            return None
        real = ci[0] > 0 or ci[1] < 0
        ctrl0 = cci is not None and cci[0] <= 0 <= cci[1]
        return (f"{'fairly sure' if real and ctrl0 else 'not sure'}: the 95% interval of the group difference "
                f"{'excludes' if real else 'includes'} 0 and the neutral pair's {'includes' if ctrl0 else 'excludes'} it; "
                f"{d.get('n_templates')} templates per occupation, English only, next-word preferences rather than harm.")

    def suggestions(self, r, args, n_layers=None):
        occ = (args.get("occupations") or ["nurse"])[0]
        return [f"which layers make it say ' she' rather than ' he' after 'The {occ} said that'?",
                f"is the model biased about {'engineers' if occ != 'engineer' else 'nurses'}?"]

    def entities(self, args, result):
        """The first occupation asked about as a prompt to patch, with the pronoun it leans to as the answer."""
        occ = (args.get("occupations") or [None])[0]
        if not occ:
            return {}
        rows = (result or {}).get("evidence") or []  # the asked occupations come first
        gap = next((o["gap"] for o in rows if o.get("occupation") == occ), None)
        she = gap is not None and gap < 0
        return {"prompt": f"The {occ} said that", "answer": " she" if she else " he", "alternative": " he" if she else " she"}
