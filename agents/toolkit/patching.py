"""Activation patching and causal tracing: which layers, positions, heads or MLPs cause an answer."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from gnothi.tools import patching
from gnothi.tools.errors import InputError
from gnothi.tools.results import ToolResult

from ..extract import _QUOTE_RE, _SAID_RE, _STOP_ANSWERS, as_continuation, labelled_fields, strip_quoted
from .base import Args, Query, Row, ToolAgent, adopt, check_text, num, register

if TYPE_CHECKING:
    from gnothi.tools.model import ModelHandle


class PatchArgs(Args):
    """Activation patching / causal tracing between a clean and a corrupted prompt."""

    clean: str | None = Field(None, description="the clean prompt")
    corrupted: str | None = Field(None, description="the corrupted prompt (None: built automatically by swapping the subject)")
    answer: str | None = Field(None, description="the answer token the clean prompt should produce, with its leading space (' Paris')")
    alternative: str | None = Field(None, description="the competing answer, with its leading space")
    mode: Literal["all", "resid", "attn", "mlp", "heads", "trace"] = Field(
        "all", description="components to patch (all, resid, attn, mlp, heads), or trace: causal tracing with a noised subject"
    )

    @field_validator("clean", "corrupted", "answer", "alternative")
    @classmethod
    def _t(cls, v, info):
        return check_text(v, info.field_name)


_MODE_WORDS = [
    ("heads", r"\bheads?\b"),
    ("mlp", r"\bmlps?\b|\bfeed[- ]?forward\b"),
    ("attn", r"\battention[- ](?:layers?|outputs?|blocks?|sublayers?|only|patch\w*)\b|\battn\b|\bpatch\w*\s+(?:only\s+)?(?:the\s+)?attention\b(?![- ]heads?)"
             r"|\bonly\s+(?:the\s+)?attention\b(?![- ]heads?)"),
    ("resid", r"\bresid(?:ual)?(?:[- ]stream)?\b|\bpositions?\b|\blayer (?:by|x|×) position\b"),
    ("trace", r"\bcausal(?:ly)?\s+trac\w*|\btrac(?:e|ing)\b|\bnois(?:e|ing)\b|(?-i:\bROME\b)"),  # ROME the method, not the city
]


_MODE_VALUES = {"all": "all", "resid": "resid", "residual": "resid", "residual_stream": "resid", "attn": "attn", "attention": "attn",
                "mlp": "mlp", "mlps": "mlp", "heads": "heads", "head": "heads", "trace": "trace", "tracing": "trace"}
# one answer per prompt: "answer Tokyo for 'A' but Seoul for 'B'", "say Monday after 'A' but Saturday after 'B'"
_PER_PROMPT_RE = re.compile(
    r"(?P<a>[\w'-]+)\s+(?:for|after|with|given|from|on)\s+QUOTED\b.*?\b(?:but|and|while|whereas|yet)\s+(?:it\s+)?(?:says?\s+|gives?\s+|answers?\s+)?"
    r"(?P<b>[\w'-]+)\s+(?:for|after|with|given|from|on)\s+QUOTED\b", re.I | re.S)
# a bare lower-case answer at the end of a clause: "... lead the model to say yellow."
_SAY_END_RE = re.compile(r"\b(?:say|says|said|output|outputs|predict|predicts|produce|produces|give|gives|answer|answers)\s+(?P<a>[a-z][\w'-]*)\s*(?=[.?!,;]|$)")
_OVER_RE = re.compile(r"\b(?:decides?|yields?|produces?|prefers?|picks?|chooses?|gives?|says?|predicts?|outputs?|favou?rs?|makes? it say)\s+"
                      r"(?P<a>[\w'-]+)\s+(?:over|rather than|instead of|and not|but not|vs\.?|versus)\s+(?P<b>[\w'-]+)", re.I)
_DIFF_RE = re.compile(r"\b(?:logit|log[- ]prob(?:ability)?|probability|prob)\s+(?:diff(?:erence)?|gap|margin|ratio)\s+(?:between|of)\s+"
                      r"(?P<a>[\w'-]+)\s+(?:and|vs\.?|versus|over|minus)\s+(?P<b>[\w'-]+)", re.I)
_BEATS_RE = re.compile(r"(?P<a>(?<![\w'-])[\w'-]+)\s*,?\s*(?:beats?|should\s+(?:win|beat)(?:\s+over)?|wins?\s+over|wins?\s+against|>|not|rather than|instead of)\s+(?P<b>[\w'-]+)(?![\w'-])", re.I)
# unquoted prompts typed on a phone: "patch the sky is vs the grass is, blue vs green"
_LOWER_PAIR_RE = re.compile(r"\bpatch\w*\s+(?:pls\s+|please\s+)?(?P<a>[a-z][^,;?\n]{4,}?)\s+(?:vs\.?|versus|against)\s+(?P<b>[a-z][^,;?\n]{4,}?)\s*(?:,|\?|$)", re.I)
# unquoted prompts named by their role: "clean prompt Dogs say X vs corrupted Dogs say Y", "prompt is A, corrupted is B"
_ROLE_PAIR_RE = re.compile(r"\b(?:clean|prompt)(?:\s+prompt)?\s+(?:is\s+|=\s*|:\s*)?(?P<a>[A-Za-z0-9][^\n]{4,}?)\s*(?:,|;|\bvs\.?|\bversus|\band)?\s+"
                           r"(?:the\s+)?corrupt(?:ed|ion)?(?:\s+(?:prompt|one))?\s+(?:is\s+|=\s*|:\s*)?(?P<b>[A-Za-z0-9][^\n]{4,}?)\s*[?.]?\s*$", re.I)
_LOWER_AFTER_RE = re.compile(r"\b(?:after|finish(?:es)?|complete[sd]?|for)\s+(?P<p>(?:the|a|an|people|my|our|his|her|in)\s+[a-z][^?!,;\n]{6,}?)(?:\s+with\s+(?P<a>[\w'-]+))?\s*(?:[?,]|$|\s[-–—]\s)", re.I)  # " - can you ...": a dash between words ends the prompt
# an unquoted cloze prompt: the words after a lead-in, up to the clause's end, ending in a word that waits for the answer
_PROMPT_LEAD_RE = re.compile(r"\b(?:on|in|for|prompt|sentence|text|trac(?:e|ing)|patch(?:ing)?|recalls?)\s+", re.I)
_CLAUSE_END_RE = re.compile(r"\s*(?:[,;?!]|\s[-–—]\s|\s+(?:then|and\s+(?:then|tell|show|see|find|check|say))\b|$)", re.I)
MAX_LEADS = 40  # lead-ins looked at in one clause (a long hostile message costs no more than this)
_DANGLING = {"in", "of", "is", "was", "are", "were", "the", "a", "an", "by", "at", "from", "to", "for", "on", "called", "named", "as",
             "than", "with", "into", "has", "had", "like"}


def _before_answer_words(prompt: str) -> str:
    """An unquoted prompt without the words that name its answer ("... is — expects Jupiter not Saturn", "... was with answer")."""
    lead = r"(?:^\s*|\s*[-–—,;(]\s*(?:with\s+)?(?:the\s+)?|\s+(?:and\s+)?with\s+(?:the\s+)?|\s+and\s+(?:the\s+|an?\s+)?)"
    return re.sub(lead + r"(?:(?:expected|correct)\s+)?(?:answers?|expects?)\b.*$", "", prompt, flags=re.I | re.S).strip()


def unquoted_prompt(clause: str) -> str | None:
    """A prompt typed without quotes in a request ("run causal tracing on the Space Needle is located in the city of"):
    the last lead-in ("on", "the prompt", "trace") after which four words or more run to the clause's end and stop
    on a word that waits for its answer ("of", "in", "is"); None when there is none."""
    best = None
    ends = [m.start() for m in _CLAUSE_END_RE.finditer(clause)]  # the last one is the clause's own end
    for m in list(_PROMPT_LEAD_RE.finditer(clause))[:MAX_LEADS]:
        stop = next((e for e in ends if e >= m.end()), len(clause))
        text = clause[m.end():stop].strip()
        text = re.sub(r"^(?:the\s+)?(?:prompt|sentence|text)\s+", "", text, flags=re.I)
        words = text.split()
        if words and re.fullmatch(r"(?:where|what|how|why|which|who|when|whether|if|my|your|our)", words[0], re.I):
            continue  # "where the prediction comes from", "my question about ...": words about the prompt, not the prompt
        if len(words) >= 4 and words[-1].lower() in _DANGLING and not re.search(r"\b(?:layers?|heads?|neurons?|model)\b", text, re.I):
            best = text
    return best


# the fact a trace is about, stated in words: "... the fact that the Prado is in Madrid", "recall that insulin is made by the pancreas"
_FACT_RE = re.compile(r"\b(?:fact|recall\w*|know\w*|stor\w*)\s+that\s+[^?.,;]{3,60}?\s+(?:is|was|are|were)\s+(?:(?:made|produced|written|built|located|found|played|spoken)\s+(?:by|in|at)\s+|in\s+|at\s+)?(?:the\s+)?(?P<a>[\w'-]+)\s*(?=[?.,;]|$)", re.I)
# words about the model's answer, not a prompt to run: "the model's answer", "its output", "this prediction"
_ABOUT_THE_ANSWER_RE = re.compile(r"(?:the\s+)?(?:model'?s|its|their|this|that|the|an?|my)\s+(?:own\s+|final\s+|next\s+)?"
                                  r"(?:answers?|outputs?|predictions?|completions?|responses?|repl(?:y|ies)|behaviou?rs?|choices?|guess(?:es)?|tokens?)", re.I)
# the answer pair said in words beside two prompts: "the difference between Paris and Rome", "from English to German",
# "what drives yellow over purple"
_SHIFT_RE = re.compile(r"\b(?:between|from)\s+(?P<a>[\w'-]+)\s+(?:and|to|vs\.?|versus|or)\s+(?P<b>[\w'-]+)|(?P<c>(?<![\w'-])[\w'-]+)\s+over\s+(?P<d>[\w'-]+)", re.I)
_NOT_ANSWERS = {"layer", "layers", "head", "heads", "position", "positions", "token", "tokens", "one", "start", "beginning", "end", "here",
                "there", "them", "both", "each", "all", "left", "right", "top", "bottom", "time", "scratch", "across", "prompts", "mlp", "mlps",
                "attention", "residual", "corrupted", "clean"}
# the fact a trace is about, in words: "the knowledge that Lionel Messi plays football (is stored)"
_FACT_SAID_RE = re.compile(r"\b(?:fact|knowledge|info(?:rmation)?|idea|association)\s+that\s+(?P<f>[^?.;!]{5,80}?)"
                           r"(?:\s+(?:is\s+|are\s+|gets?\s+|being\s+)?(?:stored|kept|encoded|represented|held|located|recalled|retrieved|found)\b[^?.;!]*)?\s*(?=[?.;!]|$)", re.I)
_ARROW_TAIL_RE = re.compile(r"\s*(?:-+>|→|=>|⟶|➝)\s*$")


def _answer_pair_in_words(masked: str, prompts: list[str]) -> tuple[str, str] | None:
    """The answer and its alternative named in words beside two prompts, when neither word is a word of the prompts."""
    said = " ".join(prompts).lower()
    for m in _SHIFT_RE.finditer(masked):
        a, b = (m.group("a"), m.group("b")) if m.group("a") else (m.group("c"), m.group("d"))
        if any(w == "QUOTED" or w.lower() in _STOP or w.lower() in _NOT_ANSWERS or w.isdigit() or re.search(rf"\b{re.escape(w.lower())}\b", said) for w in (a, b)):
            continue
        return " " + a, " " + b  # two words, each as the model would write it after the prompt
    return None


def _fact_answer(masked: str, prompt: str | None) -> str | None:
    """The answer a fact said in words gives the prompt: the fact's last word when it is the only one the prompt lacks
    ("the knowledge that Lionel Messi plays football" on "Lionel Messi plays the sport of" -> " football")."""
    m = _FACT_SAID_RE.search(masked)
    if not m or not prompt:
        return None
    have = {w.lower() for w in re.findall(r"[\w'-]+", prompt)}
    words = re.findall(r"[\w'-]+", m.group("f"))
    new = [w for w in words if w.lower() not in have and w.lower() not in _STOP]
    if len(new) == 1 and words[-1] == new[0] and len(words) - len(new) >= 2:
        return as_continuation(new[0])
    return None


# a follow-up that replaces one answer: "try it with ' Berlin' instead of London", "use Madrid rather than Rome"
_INSTEAD_RE = re.compile(r"(?:[\"“'‘](?P<nq>[^\"”'’]{1,30})[\"”'’]|(?P<nw>[\w'-]+))\s+(?:instead\s+of|rather\s+than|in\s+place\s+of|replacing)\s+(?:the\s+)?"
                         r"(?:[\"“'‘](?P<oq>[^\"”'’]{1,30})[\"”'’]|(?P<ow>[\w'-]+))", re.I)


def _replaced_answer(clause: str, last: dict[str, Any]) -> tuple[str, str] | None:
    """(key, new value) when ``clause`` puts a new word in place of the last call's answer or alternative."""
    m = _INSTEAD_RE.search(clause)
    if not m:
        return None
    new = m.group("nq") if m.group("nq") is not None else " " + m.group("nw")
    old = (m.group("oq") or m.group("ow") or "").strip().lower()
    if not new or not new.strip() or new.strip().lower() in _STOP:
        return None
    for k in ("answer", "alternative"):
        if isinstance(last.get(k), str) and last[k].strip().lower() == old:
            return k, new if new[:1].isspace() else " " + new
    return None


_CHECKS_ANSWER_RE = re.compile(r"\b(?:right|correct|true|accurate|wrong|incorrect|made[- ]up|hallucinat\w*|real|legit|reliable|trust\w*|grounded|guess\w*|factual|supported|confabulat\w*)\b", re.I)
_PATCH_WORDS_RE = re.compile(r"\b(?:patch\w*|trac(?:e|ing)|layers?|heads?|mlps?|components?|positions?|logit)\b", re.I)
_NO_SPACE_RE = re.compile(r"\b(?:no|without(?:\s+(?:a|the|any))?)\s+(?:leading\s+)?(?:space|whitespace)\b|\bno[- ]space\b", re.I)
_SWAP_RE = re.compile(r"\b(?:swap|switch|flip|reverse|exchange)\b.{0,40}\b(?:them|prompts|clean|corrupted|roles|order|around)\b|\bthe other way (?:round|around)\b", re.I)


_STOP = _STOP_ANSWERS | {"and", "or", "but", "not", "to", "of", "for", "with", "up", "then", "here", "now", "more", "less", "first", "second",
                         "clean", "corrupted", "corrupt", "prompt", "prompts", "say", "says"}


_AGAINST_EARLIER_RE = re.compile(r"\b(?:it|that|this|the same|the)(?:\s+(?:prompt|sentence|one|input))?\s+(?:against|versus|vs\.?|with)\s+(?:the\s+)?"
                                 r"(?:corrupted\s+|counterfactual\s+)?(?:prompt\s+|sentence\s+|version\s+)?[\"“'‘„]", re.I)
_REQUEST_TAIL_RE = re.compile(r"(?:\s*,\s*|\s+)(?:and\s+(?:then\s+)?)?(?:tell|show|let|give|which|what|where|how|see|find|report|explain|check|list|plot)\b"
                              r"(?=[^.?!]*\b(?:layers?|positions?|heads?|tokens?|components?|matters?|me|us)\b).*$", re.I | re.S)
_BACK_REF = re.compile(r"\b(?:it|that|this|there|the same|the gap|the bias|the difference)\b", re.I)


def _prompt_like(s: str) -> bool:
    return len(s.split()) >= 2


# what the model does with a prompt, said next to it: "'A' leads to Tuesday", "'A' it says Rome", "'A' with woof", "'A' (rupee)"
_GIVES = (r"(?:says?|said|gets?|got|yields?|leads?\s+to|produces?|gives?|outputs?|predicts?|answers?|returns?|goes|"
          r"completes?(?:\s+(?:it|them))?\s+with|(?:is\s+|be\s+)?followed\s+by|ends?\s+(?:up\s+)?with|->|→|=>|with)")
_AFTER_PROMPT = re.compile(rf"^[\s,;:]*(?:(?:and|but|then|while|whereas|where|so)\s+)?(?:[\w']+\s+){{0,3}}?(?:{_GIVES})\s+(?P<w>[\w'-]+)"
                           r"|^\s*\((?P<p>[\w'-]+)\)", re.I)
_WHERE_SAYS = re.compile(r"\b(?:it|the model)\s+(?:says?|gives?|answers?|outputs?|predicts?|produces?)\s+(?P<w>[\w'-]+)", re.I)
_BEFORE_PROMPT = re.compile(r"(?:^|\b(?:say|says|answer|answers|gives?|outputs?|predicts?|produce|produces))\s+(?P<w>[\w'-]+)\s+(?:for|after|given|from|on)\s*$", re.I)


def per_prompt_answers(clause: str) -> tuple[str, str] | None:
    """One answer for each of two quoted prompts, read from the words next to each: "'A' leads to Tuesday while 'B'
    leads to Saturday", "it says Rome, but 'B' gets Madrid", "say Lisbon for 'A', compared with 'B' where it says
    Athens", "'A' to be followed by yen ... against 'B' (rupee)". None unless both are found and differ."""
    spans = [(m.start(), m.end(), next(g for g in m.groups() if g)) for m in _QUOTE_RE.finditer(clause)]
    spans = [x for x in spans if _prompt_like(x[2])]
    if len(spans) != 2:
        return None
    words: list[str] = []
    for i, (a, b, _) in enumerate(spans):
        after = clause[b: spans[i + 1][0] if i + 1 < len(spans) else len(clause)]
        before = clause[spans[i - 1][1] if i else 0: a]
        w = None
        if (m := _AFTER_PROMPT.match(after)):
            w = m.group("w") or m.group("p")
        elif (m := _BEFORE_PROMPT.search(before)):
            w = m.group("w")
        elif i == 1 and (m := _WHERE_SAYS.search(after)):
            w = m.group("w")
        elif i == 0 and (m := _WHERE_SAYS.search(after)) and not _WHERE_SAYS.search(clause[spans[1][1]:]):
            w = m.group("w")
        if not w or w.lower() in _STOP:
            return None
        words.append(w)
    if i == 1 and words[0] == words[1]:
        return None
    first, second = as_continuation(words[0]), as_continuation(words[1])
    return (first, second) if first and second and first != second else None


@register
class ActivationPatching(ToolAgent[PatchArgs]):
    name = "activation_patching"
    title = "Activation patching"
    description = ("Activation patching and causal tracing: find which layers, positions, heads or MLPs cause the model's answer "
                   "by patching between a clean and a corrupted prompt (or noising the subject).")
    examples = [
        "why does the model answer ' Paris' after 'The capital of France is'?",
        "'The Eiffel Tower is in the city of' versus 'The Colosseum is in the city of': which heads move the answer?",
        "causal tracing on 'The Space Needle is in the city of'",
    ]
    Args = PatchArgs
    next_steps_text = [
        "patch attention heads or MLPs only ('which heads matter?')",
        "try a different corrupted prompt to check the effect is about the fact, not the wording",
    ]

    def extract(self, q: Query) -> tuple[dict[str, Any], str | None]:
        e, w = q.parsed, q.whole
        args = {k: v for k, v in q.last_args.items() if k in ("clean", "corrupted", "answer", "alternative", "mode")} if q.followup else {}
        ans, alt = (e.answer, e.alternative) if e.answer else (w.answer, w.alternative)
        fields = labelled_fields(q.clause)
        if fields.get("clean"):  # "clean: `...`  corrupted: `...`  answer: `" China"`"
            args["clean"] = fields["clean"]
            if fields.get("corrupted"):
                args["corrupted"] = fields["corrupted"]
            ans = as_continuation(fields["answer"]) if fields.get("answer") else ans
            alt = as_continuation(fields["alternative"]) if fields.get("alternative") else alt
        noted = {k: bool(e.noted.get(k) or w.noted.get(k)) for k in ("answer", "alternative")}
        if not fields.get("answer") and (e.noted.get("answer") or w.noted.get("answer")):  # "ans=Mary", "(answer Au)"
            src = e if e.noted.get("answer") else w
            ans, alt = src.answer, src.alternative or alt
        pair = ans is not None and alt is not None  # "X rather than Y": the grammar's pair is the stronger reading
        learned = {} if pair else {k: q.span(k) for k in ("answer", "alternative") if not noted[k]}
        for k, hit in learned.items():
            if hit is None:
                continue
            text, was_quoted = hit
            if was_quoted and _prompt_like(text) and len(text.split()) > 3:
                continue  # a quoted prompt is never the answer
            prompt = e.prompt or w.prompt
            if not was_quoted and k == "answer" and ans is not None and prompt and re.search(rf"\b{re.escape(text.strip())}\b", prompt, re.I):
                continue  # a word of the unquoted prompt is not its answer: the grammar's reading stays
            v = text if was_quoted else as_continuation(text)
            if k == "answer":
                ans = v
            else:
                alt = v
        if alt == ans:
            alt = None
        masked = strip_quoted(q.clause)
        pp = per_prompt_answers(q.clause) if not fields.get("answer") and not noted["answer"] else None
        if pp and (ans is None or alt is None or {ans, alt} == set(pp)):
            ans, alt = pp  # each prompt's own answer, in the prompts' order
        if ans is None or alt is None:
            m = _PER_PROMPT_RE.search(masked)
            if m and len(q.quotes) >= 2 and m.group("a").lower() not in _STOP and m.group("b").lower() not in _STOP:
                ans, alt = ans or as_continuation(m.group("a")), alt or as_continuation(m.group("b"))
        if ans is None and len(q.quotes) >= 2:  # "which components decide avocado over chickpeas", "logit diff between Honolulu and Hamburg"
            m = _OVER_RE.search(masked) or _DIFF_RE.search(masked)
            if m and m.group("a").lower() not in _STOP and m.group("b").lower() not in _STOP:
                ans, alt = as_continuation(m.group("a")), as_continuation(m.group("b"))
        elif ans is not None and alt is None and (m := _DIFF_RE.search(masked)) and as_continuation(m.group("a")) == ans:
            alt = as_continuation(m.group("b"))
        if (ans is None or alt is None) and len(q.quotes) >= 2 and (said_pair := _answer_pair_in_words(masked, list(q.quotes))):
            if ans is None or ans in said_pair:  # "... where does the difference between Paris and Rome come from?"
                ans, alt = said_pair
        vs = e.pair or w.pair
        if ans is not None and alt is None and vs:  # "..., cold vs down": the pair that starts with the answer
            a, b = vs
            if as_continuation(a) == ans and b.lower() not in _STOP and a.lower() not in _STOP:
                alt = as_continuation(b)
        if (ans is None or alt is None) and (m := _BEATS_RE.search(masked)) and m.group("a").lower() not in _STOP and m.group("b").lower() not in _STOP:
            if ans is None or as_continuation(m.group("a")) == ans:  # "where Shakespeare beats Wordsworth", "(puppy, not kitten)", "bees > wasps"
                ans, alt = as_continuation(m.group("a")), as_continuation(m.group("b"))
        if ans is None and vs:  # "... - yen vs rupee"
            a, b = vs
            ans, alt = as_continuation(a), as_continuation(b)
        said = [m.group("a") for m in _SAID_RE.finditer(strip_quoted(q.clause))]
        if ans is None and len(said) >= 1 and len(said[0].split()) <= 2:
            ans = as_continuation(said[0])
        if alt is None and len(said) >= 2 and len(said[1].split()) <= 2 and as_continuation(said[1]) != ans:
            alt = as_continuation(said[1])  # "with 'A' it says sugar. With 'B' it says honey"
        if ans is None and (m := _FACT_RE.search(masked)) and m.group("a").lower() not in _STOP:
            ans = as_continuation(m.group("a"))  # "where is the fact stored that the Prado is in Madrid?"
        if ans is None and (fa := _fact_answer(masked, q.quotes[0] if len(q.quotes) == 1 else None)):
            ans = fa  # "where is the knowledge that Messi plays football? trace 'Lionel Messi plays the sport of'"
        if ans is None and (m := _SAY_END_RE.search(masked)) and m.group("a").lower() not in _STOP:
            ans = as_continuation(m.group("a"))  # "... lead the model to say yellow"
        if alt is not None and _prompt_like(alt) and len(alt.split()) > 3:  # a quoted prompt read as the alternative is the corrupted prompt
            alt = None
        if e.noted.get("clean") and not fields.get("clean"):  # clean='...' corrupt='...'
            args["clean"] = e.clean
            if e.corrupted:
                args["corrupted"] = e.corrupted
        elif fields.get("clean"):
            pass  # the labelled fields said it
        elif e.clean or w.clean:
            src = e if e.clean else w
            args["clean"], args["corrupted"] = src.clean, src.corrupted
        else:
            prompts = [x for x in q.quotes if as_continuation(x) not in (ans, alt) and x not in (ans, alt)]
            prompts = [x for x in prompts if _prompt_like(x)] or prompts
            earlier = q.entities.get("prompt") if isinstance(q.entities.get("prompt"), str) else None
            if (earlier and q.entities.get("last_tool") not in (None, self.name) and not q.last_args.get("clean") and _BACK_REF.search(q.clause)
                    and all(not _prompt_like(x) and x.lower() in earlier.lower() for x in prompts)):
                # "which layers carry it for 'nurse'?" after "The nurse said that": the earlier prompt, and its answer pair
                prompts = [earlier]
                named = re.search(r"\b(?:answer\w*|ans|target|expect\w*|says?|said)\b", q.clause, re.I)
                if ans is None or (ans.strip().lower() in earlier.lower() and not named):  # the quoted word names the prompt, not the answer
                    ans = q.entities.get("answer")
                if alt is None or alt.strip().lower() in earlier.lower() or alt == ans:
                    alt = q.entities.get("alternative") if q.entities.get("alternative") != ans else None
            if prompts:
                args["clean"] = prompts[0]
                if len(prompts) > 1:
                    args["corrupted"] = prompts[1]
                elif not q.followup:
                    args.pop("corrupted", None)
            elif (m := _ROLE_PAIR_RE.search(masked)) and "QUOTED" not in masked:
                args["clean"], args["corrupted"] = m.group("a").strip(" ,"), m.group("b").strip(" ,")
            elif len(_before_answer_words(str(e.prompt or w.prompt or "")).split()) >= 2:
                src = e if e.prompt else w
                args["clean"] = _before_answer_words(str(src.prompt))  # "... was with answer George": the prompt ends where the answer is named
                if src.corrupted and src.corrupted != src.prompt:
                    args["corrupted"] = src.corrupted  # "... after The Prime Minister lives in? patch it against The President lives in"
            elif (m := _LOWER_PAIR_RE.search(masked)) and "QUOTED" not in masked:
                args["clean"], args["corrupted"] = m.group("a").strip(), m.group("b").strip()
            elif (m := _LOWER_AFTER_RE.search(masked)) and "QUOTED" not in masked and not re.search(r"\b(?:layers?|heads?|neurons?)\b", m.group("p"), re.I):
                args["clean"] = m.group("p").strip()
                if m.group("a") and ans is None:
                    ans = as_continuation(m.group("a"))
                    args["answer"] = ans
            elif q.referred_prompt():
                args["clean"] = q.referred_prompt()
            elif "QUOTED" not in masked and (found := unquoted_prompt(masked)):
                args["clean"] = found
        if len(q.quotes) == 1 and _AGAINST_EARLIER_RE.search(q.clause):
            earlier = q.last_args.get("clean") or (q.entities.get("prompt") if isinstance(q.entities.get("prompt"), str) else None)
            if earlier and earlier != q.quotes[0]:  # "now patch that prompt against '...'": the earlier prompt is the clean one
                args["clean"], args["corrupted"] = earlier, q.quotes[0]
        if not q.quotes:  # an unquoted prompt ends where the request goes on ("... city of and tell me which positions matter")
            for k in ("clean", "corrupted"):
                if isinstance(args.get(k), str):
                    args[k] = _REQUEST_TAIL_RE.sub("", args[k]).strip(" /|-–—") or args[k]
                    args[k] = _before_answer_words(args[k]) or args[k]  # "... violets are and expected answer blue"
                    for x in (ans, alt):  # "... corrupted The author of Faust is, Shakespeare vs Goethe": the pair is no part of it
                        if x and (m := re.search(rf",\s*{re.escape(x.strip())}\s+(?:vs\.?|versus|over|not|or|rather than)\s+[\w'-]+\s*$", args[k])):
                            args[k] = args[k][:m.start()].rstrip()
        if ans:
            args["answer"] = ans
            tail = ans.strip()
            if args.get("clean", "").endswith(" " + tail) and not (e.clean or w.clean) and not q.quotes:  # "... is Paris" unquoted
                args["clean"] = args["clean"][: -len(ans.strip())].rstrip()
        if alt:
            args["alternative"] = alt
        if not q.quotes:
            for k in ("clean", "corrupted"):
                if isinstance(args.get(k), str):
                    args[k] = _ARROW_TAIL_RE.sub("", args[k]) or args[k]  # "... located in -> China": the arrow points at the answer
        low = q.clause
        modes = [mode for mode, pat in _MODE_WORDS if re.search(pat, low, re.I)]
        noted_mode = _MODE_VALUES.get((e.noted.get("mode") or [""])[0].lower().strip())
        if noted_mode:
            args["mode"] = noted_mode  # "mode=heads"
        elif re.search(r"\ball components\b|\bfull patching\b|\beverything\b|\b(?:all|every|each) (?:component|kind|type)s?\b", low, re.I) or len(modes) >= 3:
            args["mode"] = "all"  # "over all component types (resid, attn and mlp together)"
        elif modes:
            args["mode"] = modes[0]
        if q.followup and (swap := _replaced_answer(q.clause, q.last_args)):  # one answer replaced; the rest as before
            args = {**{k: v for k, v in q.last_args.items() if k in ("clean", "corrupted", "answer", "alternative", "mode")},
                    **({"mode": args["mode"]} if args.get("mode") else {}), swap[0]: swap[1]}
        if q.followup and _SWAP_RE.search(low) and args.get("clean") and args.get("corrupted") and not q.quotes:
            args["clean"], args["corrupted"] = args["corrupted"], args["clean"]  # "swap them"
            if args.get("answer") and args.get("alternative"):
                args["answer"], args["alternative"] = args["alternative"], args["answer"]
        if q.followup and q.last_args.get("clean") and args.get("clean") == args.get("corrupted") == q.last_args.get("corrupted"):
            args["corrupted"] = q.last_args["clean"]  # "and for the other prompt as clean": the two prompts change places
        if isinstance(args.get("clean"), str) and not q.quotes and _ABOUT_THE_ANSWER_RE.fullmatch(args["clean"].strip(" .?!")):
            args.pop("clean")  # "which layers are responsible for the model's answer?": no prompt named yet
        if _NO_SPACE_RE.search(low):  # 'answer "cold" with no leading space': the token as the user wrote it
            args.update({k: args[k].lstrip() for k in ("answer", "alternative") if isinstance(args.get(k), str)})
        args = {k: v for k, v in args.items() if v is not None}
        if not args.get("clean"):
            return args, ('Which prompt should I explain? Quote it, and a second prompt to compare if you have one: why does the model '
                          'answer " Paris" after "The capital of France is"?')
        return args, None

    def hand_over(self, q: Query) -> str | None:
        # "is 'Canberra' right for 'What is the capital of Australia?'": an answer checked against a question, not two prompts
        asked = [x for x in q.quotes if x.rstrip().endswith("?")]
        if asked and len(q.quotes) == 2 and _CHECKS_ANSWER_RE.search(strip_quoted(q.clause)) and not _PATCH_WORDS_RE.search(q.clause):
            return "hallucination_detector"
        return None

    def missing(self, args):
        return "clean" if not args.get("clean") else None

    def canonical(self, args):
        """An answer or alternative is the token the model writes next: a bare word gets its leading space,
        unless the prompt itself ends in a space."""
        out = dict(args)
        if not str(out.get("clean") or "").endswith(" "):
            for k in ("answer", "alternative"):
                if isinstance(out.get(k), str):
                    out[k] = as_continuation(out[k])
        return out

    def reformulate(self, a):
        ans = f" (answer {a['answer']!r}" + (f" against {a['alternative']!r})" if a.get("alternative") else ")") if a.get("answer") else " (answer: its own top prediction)"
        if a.get("mode") == "trace":
            return f"Causal tracing on {a.get('clean')!r}{ans}: noise the subject, restore one clean state at a time, by layer and position."
        what = {"all": "by layer and position, and per attention head and MLP", "resid": "in the residual stream by layer and position",
                "attn": "per attention layer", "mlp": "per MLP layer", "heads": "per attention head"}[a.get("mode", "all")]
        vs = f"against {a['corrupted']!r}" if a.get("corrupted") else "against an automatically corrupted prompt (the subject swapped)"
        return f"Patch {a.get('clean')!r}{ans} {vs}, {what}; causal tracing if the prompts cannot be lined up."

    def execute(self, handle: ModelHandle, a: PatchArgs, llm: Any = None) -> ToolResult:
        if not a.clean:
            raise InputError("Patching needs a prompt to explain.",
                             'Quote the prompt and, if you can, a second one: patch "The capital of France is" vs "The capital of Italy is".')
        rep: patching.PatchReport | patching.TraceReport
        if a.mode == "trace":
            rep = patching.causal_trace(handle, a.clean, answer=a.answer)
        else:
            kinds = patching.KINDS if a.mode == "all" else [a.mode]
            rep = patching.patch_or_trace(handle, a.clean, corrupted=a.corrupted, answer=a.answer, alternative=a.alternative, kinds=kinds)
        return adopt(rep.to_tool_result(), self.name)


    def answer(self, r):
        h = r.headline
        if "p_clean" in h:  # causal tracing
            peaks = [(k, v) for k, v in h.items() if k.startswith("peak_") and not k.endswith("_effect")]
            where = peaks[0][1] if peaks else "no single state"
            return (f"Noising the subject makes the model lose the answer, and restoring the hidden state at {where} brings it back most: "
                    "that is where the fact is read out.")
        if "clean_metric" not in h:
            return super().answer(r)
        top = h.get("top_component")
        a, b = r.data.get("answer_token"), r.data.get("alternative_token")
        what = f"The answer {a!r} (against {b!r})" if a and b else "The answer"
        return (f"{what} is carried most by {top}: patching it alone moves the logit difference furthest toward the clean run."
                if top else f"No single component moves {what[4:] if what != 'The answer' else 'the answer'} on its own.")

    def table(self, r):
        h = r.headline
        if "p_clean" in h:
            rows = [Row("Probability of the answer, clean run", num(h.get("p_clean")), f"{num(h.get('p_corrupted'))} with the subject noised")]
            for k, v in h.items():
                if k.startswith("peak_") and not k.endswith("_effect"):
                    word = {"peak_resid": "hidden state", "peak_mlp": "MLP output", "peak_attn": "attention output"}.get(k, k)
                    rows.append(Row(f"Best {word} to restore", str(v), f"recovers {num(h.get(k + '_effect'))} of the drop"))
            return rows
        if "clean_metric" not in h:
            return super().table(r)
        rows = [Row("Logit difference (answer minus alternative), clean prompt", num(h.get("clean_metric")),
                    f"{num(h.get('corrupted_metric'))} on the corrupted prompt")]
        if h.get("top_component"):
            rows.append(Row(f"Effect of patching {h['top_component']}", num(h.get("top_effect")), "1 = restores the clean answer fully, 0 = none"))
        for k, v in h.items():
            if k.startswith("attribution_vs_exact_r_"):
                rows.append(Row(f"Attribution vs exact patching ({k.rsplit('_', 1)[-1]})", num(v), "Pearson r; 1 = the fast estimate agrees"))
        return rows

    def evidence(self, r):
        out = []
        for e in r.evidence[:3]:
            if e.get("name") is not None and e.get("effect") is not None:
                out.append(f"{e['name']}: effect {num(e['effect'])}" + (f" ({e['method']})" if e.get("method") else ""))
            elif e.get("layer") is not None and e.get("token") is not None:
                out.append(f"{e.get('kind', 'state')} at layer {e['layer']} on {e['token']!r}: effect {num(e.get('effect'))}")
        return out

    def suggestions(self, r, args, n_layers=None):
        out = []
        if args.get("mode") != "heads":
            out.append(f"which heads matter for '{args.get('clean')}'?")
        if args.get("mode") != "mlp":
            out.append(f"patch only the MLPs for '{args.get('clean')}'")
        if args.get("mode") != "trace":
            out.append(f"causal tracing on '{args.get('clean')}'")
        return out[:3] if args.get("clean") else []

    def entities(self, args, result):
        return {"prompt": args.get("clean")} if args.get("clean") else {}
