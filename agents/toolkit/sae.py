"""SAE feature search: features by meaning, one feature's page, or the features active on a text."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from gnothi.tools import features
from gnothi.tools.errors import InputError, OutOfRangeError, check_range
from gnothi.tools.results import ToolResult

from ..extract import words_to_digits
from .base import adds_while_writing, Args, Query, Row, ToolAgent, adopt, check_text, context_lines, described, num, pct, register

if TYPE_CHECKING:
    from gnothi.tools.model import ModelHandle


class SAEArgs(Args):
    """Search SAE features by meaning (``query``), look at one ``feature``, or the features active on a ``text``."""

    query: str | None = Field(None, description="what the feature should be about, in words")
    feature: int | None = Field(None, description="an SAE feature index")
    text: str | None = Field(None, description="a text whose active features to list")
    layer: int | None = Field(None, description="layer of the SAE (default: the tool's default SAE)")
    k: int = Field(10, ge=1, le=50, description="how many features (or top contexts) to show")

    @field_validator("query", "text")
    @classmethod
    def _t(cls, v, info):
        return check_text(v, info.field_name)


_ON_TEXT = re.compile(r"\b(?:run\w*\s+(?:the\s+)?(?:sae|sparse autoencoder)\s+(?:on|over)|fire|fires|firing|fired|active|activate[sd]?|light(?:s)? up|lit up|present|decompos\w*|over this (?:sentence|text|prompt)|encode this|on (?:this|the|my) (?:text|sentence|prompt|input)|in (?:this|the|my) (?:text|sentence)|when (?:it|the model) reads)\b", re.I)
_ON_UNQUOTED = re.compile(r"\b(?:fire|fires|firing|active|activate[sd]?|light(?:s)? up)\s+(?:on|for|in)\s*:?\s*(?!(?:that|this|the same|it)\b)(?P<t>.{3,}?)\s*\??\s*$", re.I)
_TOPIC_AFTER = r"features?:|latents?:|sae\s*:|re:|->|lookup\s*(?:->|:)|about|for|related (?:to|with)|relating to|representing|(?:that |which )?(?:detects?|represents?|tracks?|responds? to|encodes?|captures?|fires? on|reacts? to)|on|regarding|concerning|involving|to do with|tied to|linked to|covering|capturing|encoding|detecting|tracking"
_NOT_TOPIC = re.compile(r"^(?:(?:it|this|that|them|these|those|the same|the|its|any|some|a|an|but|and|too|also)\s*)*(?:sae\s+)?(?:features?|latents?|ones?|sae|the sae|directions?)?$"
                        r"|^(?:l|layer\s*)\d+$|^(?:it|that|this)\s+too$", re.I)
_FOR_SENTENCE = re.compile(r"\b(?:for|on|of|in)\s+the\s+(?:sentence|text|phrase|input|string)\s*:?\s+(?P<t>[^?\n]{3,}?)\s*[?.!]?\s*$", re.I)
_SAME_SEARCH = re.compile(r"\b(?:same|again)\b", re.I)
# "same for German?": the same search for a new topic (not "same but for layer 9", "same for the top 20")
_SAME_FOR_NEW = re.compile(r"\b(?:same|again)\s+(?:thing\s+|search\s+)?(?:for|with|about|on)\s+(?!(?:the\s+)?(?:top|first|layer|l\d|\d|that|this|it)\b)[A-Za-z]", re.I)
# what a follow-up says when it only changes how many results or which layer ("what about the top 20 there?")
_SETTINGS_WORDS = {"ok", "okay", "and", "so", "now", "then", "what", "how", "about", "the", "top", "first", "best", "most", "just", "only",
                   "there", "instead", "result", "results", "one", "ones", "feature", "features", "latent", "latents", "in", "layer", "l",
                   "of", "them", "please", "pls"}


def _settings_only(clause: str) -> bool:
    words = re.sub(r"[^\w\s]", " ", words_to_digits(clause)).lower().split()
    return bool(words) and all(w in _SETTINGS_WORDS or w.isdigit() for w in words)


def topic_after(t: str, words: str = _TOPIC_AFTER) -> str | None:
    """The topic phrase after a preposition ("features about emotions in layer 3" -> "emotions")."""
    m = re.search(rf"\b(?:{words})\s+(.+?)\s*(?:[?.!;]|$)", t, re.I)
    if not m:
        return None
    p = m.group(1).strip(" \"'“”")
    for _ in range(3):  # "a feature about emotions" -> "emotions"
        q = re.sub(rf"^(?:(?:a|an|the|any|some)\s+)?(?:sae\s+|sparse\s+)?(?:features?|latents?|directions?)\s+(?:{words})\s+", "", p, flags=re.I)
        if q == p:
            break
        p = q
    p = re.sub(r"^(?:the\s+)?(?:concept|idea|topic|notion|theme|subject)s?\s+(?:of\s+)?", "", p, flags=re.I)
    p = re.sub(r"^the\s+(.+?)\s+(?:topic|theme|concept|subject|domain)\b.*$", r"\1", p, flags=re.I)  # "the finance topic, ten of them"
    p = re.sub(r",\s*(?:\d+|top \d+)\s+of\s+them\s*$|,?\s*(?:show|give)\s+\d+.*$", "", p, flags=re.I)
    p = re.sub(r"\s+(?:in|at|on|from)\s+(?:the\s+)?(?:layer|l)\s*\d+.*$|\s+(?:in|from)\s+the\s+(?:sae|sparse autoencoder|dictionary).*$", "", p, flags=re.I)
    p = re.sub(r",?\s*(?:please|pls|thanks|thank you)\s*$", "", p, flags=re.I)
    p = re.sub(r",?\s*(?:(?:maybe|say|about|around|roughly|like)\s+)?\d{1,2}\s*(?:of them)?\s*$|,?\s*\b(?:in\s+)?[lL]\d+\b.*$", "", p)  # ", maybe 5", ", L14"
    p = re.sub(r"\s+(?:stuff|things|terms|words|text|content)$", "", p, flags=re.I) if len(p.split()) > 1 else p
    p = re.sub(r"\s+(?:at all|if any|if there are any|in (?:the|this) model)\s*$", "", p, flags=re.I)
    return p.strip() or None


@register
class SAEFeatureSearch(ToolAgent[SAEArgs]):
    name = "sae_feature_search"
    title = "SAE feature search"
    description = "Search sparse autoencoder (SAE) features by meaning, describe one SAE feature, or list the features active on a text."
    examples = [
        "find SAE features about French",
        "what does SAE feature 1234 represent",
        "which features fire on 'the cat sat on the mat'?",
    ]
    Args = SAEArgs
    next_steps_text = [
        "ask about one of the listed features ('what about feature N?')",
        "quote a text to see which features fire on it",
    ]

    def extract(self, q: Query) -> tuple[dict[str, Any], str | None]:
        e = q.parsed
        args = {k: v for k, v in q.last_args.items() if k in ("query", "feature", "text", "layer", "k")} if q.followup else {}
        anaphora = bool(re.search(r"\b(?:that|this|the same|it|its)\b", q.clause, re.I))
        if e.layer is not None:
            args["layer"] = e.layer
        if e.feature is not None:
            args["feature"] = e.feature
            args.pop("query", None)
            args.pop("text", None)
        elif anaphora and re.search(r"\b(?:feature|latent)\b", q.clause, re.I) and q.entities.get("feature") is not None:
            args["feature"] = q.entities["feature"]
            args.pop("query", None)
            args.pop("text", None)
        if q.followup and e.feature is None and q.bare_number() is not None:
            args["feature"] = q.bare_number()  # "and 812?" after feature 811
        sentences = [x for x in q.quotes if len(x.split()) >= 4]  # a quoted sentence is a text to decompose, not a topic
        if q.followup and q.last_args.get("text") and q.quotes and "feature" not in args:
            sentences = sentences or list(q.quotes)  # "and on 'I hate jazz'?" after features on a text: a new text
        if q.quotes and (_ON_TEXT.search(q.clause) or sentences) and "feature" not in args:
            args["text"] = max(q.quotes, key=len)
            args.pop("query", None)
        elif not q.quotes and "feature" not in args and q.referred_prompt() and (_ON_TEXT.search(q.clause) or q.last_args.get("text")):
            args["text"] = q.referred_prompt()  # "... active on that same text", "run the sae on it too"
            args.pop("query", None)
        elif not q.quotes and "feature" not in args and (m := _FOR_SENTENCE.search(q.clause)):
            args["text"] = m.group("t").strip()  # "activations for the sentence Das ist ein schöner Tag"
            args.pop("query", None)
        elif (q.followup and q.last_args.get("query") and _SAME_SEARCH.search(q.clause) and "feature" not in args
              and not _SAME_FOR_NEW.search(words_to_digits(q.clause))):
            pass  # "same search but only in layer 9": the query stays
        elif (q.followup and "feature" not in args and (q.last_args.get("query") or q.last_args.get("text"))
              and _settings_only(q.clause)):
            pass  # "what about the top 20?", "top twelve in layer 3 then": the same search with other settings
        elif e.prompt and _ON_TEXT.search(q.clause) and "feature" not in args:
            args["text"] = e.prompt  # "features firing on this text: ..."
            args.pop("query", None)
        elif not q.quotes and "feature" not in args and (m := _ON_UNQUOTED.search(q.clause)):
            args["text"] = m.group("t").strip()  # "sae features active on <html>...</html>"
            args.pop("query", None)
        elif "feature" not in args and (e.noted.get("query") or e.noted.get("text")):  # "query=negation", "text='...'"
            key = "query" if e.noted.get("query") else "text"
            args[key] = e.noted[key][0]
            args.pop("text" if key == "query" else "query", None)
        elif "feature" not in args:
            hit = q.span("query")
            phrase = topic_after(q.clause)
            qry = hit[0] if hit else (e.quotes[0] if e.quotes else phrase)
            if hit and not hit[1] and phrase and qry and phrase != qry and qry.lower() in phrase.lower() and len(phrase.split()) <= 4:
                qry = phrase  # the learned reading stopped short of the grammar's phrase ("legal" of "legal language")
            if qry and _NOT_TOPIC.match(qry) and phrase and not _NOT_TOPIC.match(phrase):
                qry = phrase  # the learned reading was a unit or a filler word ("L14"): the grammar's phrase instead
            if qry and not _NOT_TOPIC.match(qry):
                args["query"] = qry
                args.pop("text", None)
        if e.k:
            args["k"] = e.k
        if not any(args.get(x) is not None for x in ("query", "feature", "text")):
            if anaphora:
                return args, "Which feature do you mean? I have no feature from earlier in this conversation; give its number, e.g. 'feature 1234'."
            return args, "What should the features be about? Say e.g. 'find SAE features about French', or quote a text: 'which features fire on \"...\"'."
        return args, None

    def extract_all(self, q: Query):
        if len(set(q.parsed.features)) > 1:  # "describe feature 849 and feature 19765": one call each
            extra = {k: v for k, v in (("layer", q.parsed.layer), ("k", q.parsed.k)) if v is not None}
            return [({"feature": f, **extra}, None) for f in dict.fromkeys(q.parsed.features)]
        return [self.extract(q)]

    def hand_over(self, q: Query) -> str | None:
        # "amplify feature 1196 by 10 and sample some completions": adding the feature while the model writes is steering
        return "steering" if adds_while_writing(q.clause) else None

    def missing(self, args):
        if not any(args.get(k) for k in ("query", "text")) and args.get("feature") is None:
            return "feature"
        return None

    def reformulate(self, a):
        where = f" of the layer-{a['layer']} SAE" if a.get("layer") is not None else ""
        if a.get("feature") is not None:
            return f"Describe SAE feature {a['feature']}{where}: its top contexts, an explanation and its score."
        if a.get("text"):
            return f"List the SAE features{where} that fire most on {a['text']!r}."
        return f"Search the SAE features{where} whose explanations are closest in meaning to {a.get('query')!r}."

    sae: str | None = None  # an SAE chosen for the session (Assistant(sae=...)); None: the model's default SAE

    def execute(self, handle: ModelHandle, a: SAEArgs, llm: Any = None) -> ToolResult:
        if a.layer is not None:
            check_range("layer", a.layer, handle.n_layers)
        sae = self.sae if a.layer is None else None  # a layer named in the question picks that layer's SAE
        rep: features.FeaturesOnTextResult | features.FeaturePage | features.FeatureSearchResult
        if a.text and a.feature is None and not a.query:
            rep = features.features_on_text(handle, text=a.text, sae=sae, k=a.k, layer=a.layer)
        elif a.feature is not None and not a.query:
            if a.feature < 0:
                raise OutOfRangeError(f"feature {a.feature} is negative.", "Use a feature index from 0 up.")
            rep = features.explain_feature(handle, a.feature, sae=sae, layer=a.layer, llm=llm, k=a.k)
        elif a.query:
            rep = features.search_features(handle, query=a.query, sae=sae, k=a.k, layer=a.layer)
        else:
            raise InputError("What should the features be about?", "Say e.g. 'find features about French' or quote a text: 'which features fire on \"...\"'.")
        return adopt(rep.to_tool_result(handle=handle), self.name)


    def answer(self, r):
        h = r.headline
        if "top_similarity" in h:
            e = r.evidence[0] if r.evidence else {}
            return (f"Feature {h.get('top_feature')} matches best: {str(e.get('explanation') or '').rstrip('.')}." if h.get("top_feature") is not None
                    else "No feature's explanation matches that topic.")
        if "top_activation" in h:
            e = r.evidence[0] if r.evidence else {}
            what = f" ({str(e['explanation']).rstrip('.')})" if e.get("explanation") else ""
            return (f"Feature {h.get('top_feature')}{what} fires most on this text, at {e.get('token')!r}." if h.get("top_feature") is not None
                    else "No SAE feature fires on this text.")
        if "pearson" in h:
            p, c = h.get("pearson"), h.get("shuffled_pearson")
            fit = "well" if p >= 0.5 else "moderately" if p >= 0.3 else "weakly" if p >= 0.15 else "barely"
            beats = " (far better than a shuffled explanation)" if isinstance(c, float) and p - c >= 0.1 else ""
            return (f"Feature {r.provenance.get('unit', '')} {described(h.get('explanation'))}. "
                    f"That explanation predicts its activations {fit} on held-out text{beats}.")
        return super().answer(r)

    def table(self, r):
        rows = self._table(r)
        sae = r.provenance.get("sae")
        if sae and rows:
            rows.append(Row("SAE that answered", str(sae).rstrip("/").rsplit("/", 1)[-1], f"layer {r.provenance['layer']}" if r.provenance.get("layer") is not None else ""))
        return rows

    def _table(self, r):
        h = r.headline
        if "top_similarity" in h:
            return [Row(f"Feature {e.get('id')}: {str(e.get('explanation') or '')[:60]}", num(e.get("similarity")), "cosine similarity to your topic")
                    for e in r.evidence[:5]]
        if "top_activation" in h:
            rows = [Row(f"Feature {e.get('id')}" + (f": {str(e['explanation'])[:50]}" if e.get("explanation") else ""), num(e.get("activation")),
                        f"on {e.get('token')!r}" + (f"; fires on {pct(e['frequency'])} of tokens" if e.get("frequency") is not None else ""))
                    for e in r.evidence[:5]]
            if h.get("explained_variance") is not None:
                rows.append(Row("Variance of the activations the SAE reconstructs", num(h["explained_variance"]), "1 = all of it"))
            return rows
        if "pearson" in h:
            return [Row("Explanation score (Pearson r, simulated vs real, held-out)", num(h.get("pearson")),
                        f"{num(h.get('shuffled_pearson'))} for a shuffled explanation"),
                    Row("Fires on", pct(h.get("frequency")) + " of tokens" if h.get("frequency") is not None else "n/a")]
        return super().table(r)

    def evidence(self, r):
        return context_lines(r)

    def suggestions(self, r, args, n_layers=None):
        top = r.headline.get("top_feature")
        out = [f"what does SAE feature {top} do?"] if top is not None and args.get("feature") is None else []
        if args.get("query"):
            out.append(f"find 20 SAE features about {args['query']}")
        return out[:3]

    def entities(self, args, result):
        if args.get("feature") is not None:
            return {"feature": args["feature"]}
        r = result or {}
        h = r.get("headline") or {}
        ev = (r.get("evidence") or [{}])[0] if r.get("evidence") else {}
        for key in ("feature", "top_feature", "feature_id", "best_feature"):
            v = h.get(key, ev.get(key) if isinstance(ev, dict) else None)
            if isinstance(v, int) and not isinstance(v, bool):
                return {"feature": v}
        return {}
