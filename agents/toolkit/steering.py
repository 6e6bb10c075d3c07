"""Steering: add a concept's, neuron's, SAE feature's or probe's direction while the model writes; effect and cost beside controls."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from gnothi.tools import steering
from gnothi.tools.results import ToolResult

from ..extract import strip_quoted, words_to_digits
from .probing import find_dataset
from .base import Args, Query, Row, ToolAgent, adopt, check_text, num, register

if TYPE_CHECKING:
    from gnothi.tools.model import ModelHandle

# "talk (more) about France", "steer it towards pirates", "obsessed with cooking", "sound like a pirate"
_CONCEPT_RE = re.compile(
    r"\b(?:talk(?:s|ing)?|writ(?:e|es|ing)|speak(?:s|ing)?|think(?:s|ing)?|focus(?:es|ing)?|rant(?:s|ing)?|rambl(?:e|es|ing)|babbl(?:e|es|ing)|go\s+on|care)\s+(?:a\s+lot\s+|much\s+|more\s+|less\s+|only\s+|constantly\s+)*(?:about|of|on)\s+(?P<a>[^.,;:!?()\n]+)"
    r"|\b(?:towards?|toward|in the direction of)\s+(?P<b>[^.,;:!?()\n]+)"
    r"|\b(?:obsessed with|mention(?:s|ing)?|bring(?:s|ing)? up|interest in|tendency to bring up|lean(?:s|ing)? towards|away from|avoid(?:s|ing)?|less about)\s+(?P<c>[^.,;:!?()\n]+)"
    r"|\b(?:sound|act|write|talk)\s+like\s+(?P<d>[^.,;:!?()\n]+)"
    r"|\b(?:the|a|an)\s+(?P<e>['\"“‘]?[A-Za-z][\w'-]*(?:[ -](?!(?:the|a|an|with|add|prompt|and|to)\b)[\w'-]+){0,3}['\"”’]?)\s+(?:concept|direction|vector|steering vector)\b"
    r"|\b(?:be|being|get|become|is|are)\s+(?:all|entirely|only|mostly|totally|completely|just)\s+about\s+(?P<j>[^.,;:!?()\n]+)"
    r"|\bsteer\w*\s+(?:it\s+|the\s+model\s+|generation\s+|the\s+output\s+)?(?:to|into|at)\s+(?!be\b|layer\b|strength\b)(?P<k>[^.,;:!?()\n]+)"
    r"|\b(?:concept|topic|theme|subject)\s+(?:of\s+)?(?P<i>['\"“‘][^'\"”’]{1,40}['\"”’]|[A-Za-z][\w-]*(?:\s+[a-z][\w-]*)?)"
    r"|\b(?:activation addition|caa|actadd|steering vector|direction|vector)\s+(?:for|of|towards?)\s+(?P<h>[^.,;:!?()\n]+)"
    r"|\bmore\s+(?P<f>[a-z]+)\b(?=[^.?!]*\b(?:direction|inside|internals|activations|steer|dial|intervening)\b)"
    r"|\bless\s+(?P<g>[a-z]+)\b(?=[^.?!]*\b(?:direction|dial|internals|activations|steer)\b)",
    re.I)
_STOP_TAIL = re.compile(r"\s+(?:at|in|on|from|with|by|using|for|when|while|during|whenever|every|all|so|and then|then|strength|layer|scale)\b.*$"
                        r"|\s+(?:please|pls|plz|thanks|thx|lol|haha|ok|no matter|regardless|whatever|every time|always)\b.*$|\s+[-–—(]\s*.*$|\s+[-+]?\d.*$", re.I)
_NEGATIVE = re.compile(r"\b(?:less|never|stop|negative(?:ly)?|suppress\w*|remove|subtract\w*|dial\w* down|reduce|away from|not to|avoid)\b", re.I)
_STRENGTH_RE = re.compile(r"\b(?:strength|coefficient|coeff|alpha|scale|multiplier|magnitude|factor of|times|amount)\s*(?:of\s*)?[=:]?\s*(?P<s>[-+]?\d+(?:\.\d+)?)\b"
                          r"|\b(?P<t>[-+]?\d+(?:\.\d+)?)\s*(?:x|times)\b"
                          # a verb of amount, then "by N" / "to N": "amplify L8N77 by 10", "crank it up to 10"
                          r"|\b(?:amplif\w*|boost\w*|scal\w*|multipl\w*|crank\w*|turn\w*\s+(?:it\s+)?up|dial\w*\s+(?:it\s+)?up|push\w*|increas\w*|rais\w*|bump\w*)"
                          r"\b[^.?!]{0,30}?\b(?:by|to)\s+(?P<u>[-+]?\d+(?:\.\d+)?)\b(?!\s*(?:layers?|neurons?|tokens?|words?)\b)"
                          # an amount after "at" ("toward chess at 4.5", "the probe at -2"), not a layer or a percentage
                          r"|\bat\s+(?P<v>[-+]?\d+(?:\.\d+)?)\b(?!\s*(?:%|layers?|neurons?|tokens?|words?|heads?)\b)"
                          r"|,\s*(?P<w>[-+]\d+(?:\.\d+)?)\s*$", re.I)  # a signed amount at the end: "the concept 'sadness', -8"
_PROBE_RE = re.compile(r"\bprob(?:e|e's|es|ing)\b", re.I)  # the property itself is read as probing reads it (find_dataset)
_WORDS_RE = re.compile(r"\bwords?\s*[:=]\s*(?P<w>[A-Za-z][\w ,'-]+)", re.I)


def concept_in(text: str) -> str | None:
    m = _CONCEPT_RE.search(text)
    if not m:
        return None
    c = next(g for g in m.groups() if g)
    c = _STOP_TAIL.sub("", c).strip(" '\"“”‘’")
    c = re.sub(r"^(?:the model|it|its outputs?|generations?|replies|answers|text)\s+", "", c, flags=re.I)
    c = re.sub(r"^(?:more|less|only)\s+", "", c, flags=re.I)
    # "towards talking about dogs", "to be all about X": the topic after the words that carry it
    c = re.sub(r"^(?:(?:be|being|get|become)\s+)?(?:(?:all|only|mostly|entirely|more|just)\s+)?(?:(?:talk|writ|speak|think|focus|rambl)\w*\s+)?(?:about|of|on)\s+",
               "", c, flags=re.I)
    c = re.sub(r"\s+(?:instead|more|direction|again|too)$", "", c, flags=re.I)
    if not c or len(c) > 40 or re.fullmatch(r"(?:it|this|that|them|something|things|layer \d+|\d+|(?:that|this|the same|the)\s+(?:topic|concept|thing|subject|one|direction|word))", c, re.I):
        return None
    return c


_ANAPHOR_RE = re.compile(r"\b(?:it|that|this|them|the same|its|their)\b", re.I)


def _has_source(args: dict[str, Any]) -> bool:
    return bool(args.get("concept") or args.get("neuron") is not None or args.get("feature") is not None or args.get("probe"))


def earlier_direction(ent: dict[str, Any]) -> dict[str, Any]:
    """The direction "it" / "that probe" points back to: what the last earlier call (this message or a previous turn) named."""
    last = ent.get("last_tool")

    def said(key: str) -> Any:  # what that call's arguments named, else what its result named
        return ent.get(f"{last}.{key}", ent.get(key))

    if last == "neuron_explainer" and said("neuron") is not None:
        return {"source": "neuron", "layer": said("layer"), "neuron": said("neuron")}
    if last == "sae_feature_search" and said("feature") is not None:
        return {"source": "feature", "feature": said("feature")}
    if last == "sae_feature_search" and isinstance(ent.get("sae_feature_search.query"), str):
        return {"source": "concept", "concept": ent["sae_feature_search.query"]}  # "now make it talk about that topic"
    if last == "probing" and isinstance(ent.get("probing.dataset"), str):
        return {"source": "probe", "probe": ent["probing.dataset"]}
    return {}


class SteeringArgs(Args):
    """Steer generation along a direction and measure the effect, its cost and two controls."""

    source: Literal["concept", "neuron", "feature", "probe"] = Field("concept", description="where the direction comes from")
    concept: str | None = Field(None, description="the topic to steer towards (contrastive activation addition), e.g. 'France'")
    layer: int | None = Field(None, description="the layer to add the direction after (default: an early layer)")
    neuron: int | None = Field(None, description="with source=neuron: the neuron index at `layer`")
    feature: int | None = Field(None, description="with source=feature: the SAE feature index")
    probe: str | None = Field(None, description="with source=probe: the dataset of a saved probe")
    strength: float | None = Field(None, description="how much of the direction to add (negative: steer away); default a sweep")
    prompt: str | None = Field(None, description="a prompt to continue (default: six everyday prompts)")
    words: list[str] | None = Field(None, description="words whose probability measures the effect (default: the concept)")

    @field_validator("prompt", "concept")
    @classmethod
    def _t(cls, v, info):
        return check_text(v, info.field_name)


@register
class Steering(ToolAgent[SteeringArgs]):
    name = "steering"
    title = "Steering"
    description = ("Steer what the model writes: add a direction (a concept such as 'France', a neuron, an SAE feature or a probe) to its "
                   "activations while it generates; default and steered text side by side, the effect and its cost in loss, beside a "
                   "random direction and a prompting baseline.")
    examples = ["make the model talk more about France", "add neuron 12.400 with strength 5 to 'My favourite food is'",
                "steer it towards pirates at layer 4"]
    Args = SteeringArgs
    next_steps_text = [
        "try another layer or strength ('at layer 8', 'strength 3')",
        "steer with an SAE feature about the topic ('find features about France', then 'steer with feature N')",
    ]

    def extract(self, q: Query) -> tuple[dict[str, Any], str | None]:
        e, text = q.parsed, q.clause
        args: dict[str, Any] = {k: v for k, v in q.last_args.items() if k in SteeringArgs.model_fields} if q.followup else {}
        units = e.units or ([(e.layer, e.neuron)] if e.layer is not None and e.neuron is not None else [])  # "neuron 12 in the last layer"
        if not units and e.neuron is not None and e.layer is None and q.followup and isinstance(q.last_args.get("layer"), int) \
                and q.last_args.get("source") == "neuron":
            units = [(q.last_args["layer"], e.neuron)]  # "and with neuron 13?" after steering with neuron 5.12: the same layer
        amount_only = False
        amount = re.search(r"\b(?:at|strength|by|to|of)\s+(\d+)\.(\d+)\b", text, re.I)
        if units == [(int(amount[1]), int(amount[2]))] if amount else False:
            if not re.search(r"\b(?:neurons?|units?|mlp)\b", text, re.I):
                units, amount_only = [], True  # "toward chess at 4.5": an amount, not neuron 4.5
        if units:
            args.update(source="neuron", layer=units[0][0], neuron=units[0][1])
            args.pop("concept", None)
        elif feats := e.features or [int(x) for x in re.findall(r"\bfeature\s*#?(\d+)", text, re.I)]:
            args.update(source="feature", feature=feats[0])
            args.pop("concept", None)
        elif (ds := find_dataset(strip_quoted(text), q.datasets)) and (_PROBE_RE.search(text) or re.search(rf"\b{re.escape(ds)}\s+direction\b", text, re.I)):
            args.update(source="probe", probe=ds)  # "steer with the sentiment probe", "the truth probe's direction"
            args.pop("concept", None)
        else:
            c = concept_in(re.sub(r"(['\"“‘]).*?(['\"”’])", " ", text) if q.quotes else text) or concept_in(text)
            if c:
                args.update(source="concept", concept=c)
        if not _has_source(args) and _ANAPHOR_RE.search(text):
            args.update(earlier_direction(q.entities))  # "then steer with it", "steer with that probe now", "talk less about that topic"
        if e.layer is not None and args.get("source") != "neuron" and not amount_only:
            args["layer"] = e.layer
        bare = words_to_digits(strip_quoted(text))  # a quoted prompt's words ("I can never decide", "3 times") are not the request's
        m = _STRENGTH_RE.search(bare)
        if m:
            args["strength"] = float(next(g for g in m.groups() if g is not None))
        if _NEGATIVE.search(bare) and args.get("source", "concept") == "concept" and args.get("concept"):
            args["strength"] = -abs(args["strength"]) if args.get("strength") is not None else None
            args["negative"] = True
        prompts = [x for x in q.quotes if x.strip().lower() != str(args.get("concept") or "").lower()]  # "the concept 'sadness'"
        if prompts:
            args["prompt"] = max(prompts, key=len)
        w = _WORDS_RE.search(text)
        if w:
            args["words"] = [x.strip() for x in re.split(r",|\band\b", w.group("w")) if x.strip()][:10]
        neg = args.pop("negative", False)
        if not _has_source(args):
            return args, ("What should I steer towards? Name a concept ('make it talk about France'), a neuron ('add neuron 12.400 "
                          "with strength 5') or an SAE feature ('steer with feature 123').")
        if neg and args.get("strength") is None:
            args["strength"] = -8.0  # away from the concept: a moderate push in the opposite direction
        if args.get("strength") is None:
            args.pop("strength", None)
        return args, None

    def missing(self, args):
        return None if _has_source(args) else "concept"

    def reformulate(self, a):
        src = a.get("source", "concept")
        what = {"concept": f"the concept {a.get('concept')!r}", "neuron": f"neuron {a.get('layer')}.{a.get('neuron')}'s output direction",
                "feature": f"SAE feature {a.get('feature')}", "probe": f"the {a.get('probe')} probe's direction"}[src]
        s = a.get("strength")
        how = f"with strength {s:g} (and half and double it)" if isinstance(s, (int, float)) else "for a sweep of strengths"
        on = f" on {a['prompt']!r}" if a.get("prompt") else ""
        at = f" at layer {a['layer']}" if a.get("layer") is not None and src != "neuron" else ""
        return (f"Add {what} to the model's activations{at} {how} while it writes{on}; compare with no steering, a random direction "
                f"of the same norm and a prompting baseline, and measure the cost on corpus text.")

    def notice(self, handle: ModelHandle, args: dict[str, Any]) -> str | None:
        return "Steering runs about a dozen generations side by side; on a CPU this takes up to a minute."

    def execute(self, handle: ModelHandle, a: SteeringArgs, llm: Any = None) -> ToolResult:
        rep = steering.steer(handle, a.source, layer=a.layer, concept=a.concept, neuron=a.neuron, feature=a.feature, probe=a.probe,
                             strength=a.strength, prompts=[a.prompt] if a.prompt else None, words=a.words)
        return adopt(rep.to_tool_result(), self.name)

    # ------------------------------------------------------------------ reply

    def _shown(self, d: dict) -> dict | None:
        """The sweep point the reply shows: the strength asked for, else the best trade-off, else the strongest effect."""
        pts = d.get("sweep") or []
        for want in (d.get("asked_strength"), d.get("best_strength")):
            for p in pts:
                if want is not None and p["strength"] == want:
                    return p
        return ((min if d.get("goal") == "away" else max)(pts, key=lambda p: p["relevance"])) if pts else None

    def answer(self, r):
        d = r.data
        p = self._shown(d)
        if p is None:
            return r.summary
        topic, away = d.get("topic"), d.get("goal") == "away"
        more, better = ("less", lambda a, b: a < b) if away else ("more", lambda a, b: a > b)
        refs = (f"(similarity to {topic!r} {num(p['relevance'])} against {num(d['base_relevance'])} unsteered and {num(p['random_relevance'])} for a random "
                f"direction of the same norm)")
        if d.get("asked_strength") is not None and p["strength"] == d["asked_strength"]:
            s = f"At strength {num(p['strength'])} the continuations' {refs[1:-1]}, for a loss rise of {num(p['cost'])} nats/token on corpus text."
            s += (f" The best trade-off in the sweep is strength {num(d['best_strength'])}." if d.get("best_strength") not in (None, p["strength"])
                  else " No strength tried did better than both references within the cost limit." if d.get("best_strength") is None else "")
        elif d.get("best_strength") is not None:
            gap = abs(p["relevance"] - (min if away else max)(d["base_relevance"], p["random_relevance"]))
            s = (f"{'Yes' if gap >= 0.1 else 'Only slightly'}: at strength {num(p['strength'])} the continuations become {more} about {topic} "
                 f"{refs}, costing {num(p['cost'])} nats/token of loss on corpus text.")
            stronger = [q for q in d.get("sweep") or [] if better(q["relevance"], p["relevance"]) and q["cost"] > d["max_cost"]]
            if stronger:
                q = min(stronger, key=lambda q: q["cost"])
                s += (f" At strength {num(q['strength'])} it is {more} about {topic} ({num(q['relevance'])}) but costs {num(q['cost'])} "
                      f"nats/token, over the {num(d['max_cost'])} limit.")
        else:
            within = [q for q in d.get("sweep") or [] if q["cost"] <= d["max_cost"]]
            if not within:
                s = (f"Not within the cost limit: even the weakest strength tried ({num(min(q['strength'] for q in d['sweep']))}) costs "
                     f"{num(min(q['cost'] for q in d['sweep']))} nats/token, over the {num(d['max_cost'])} limit.")
            else:
                q = (min if away else max)(within, key=lambda q: q["relevance"])
                s = (f"No: within the cost limit the continuations are at best {num(q['relevance'])} similar to {topic!r} (strength "
                     f"{num(q['strength'])}), not {more} so than unsteered ({num(d['base_relevance'])}) and a random direction "
                     f"({num(q['random_relevance'])}) together.")
        if d.get("prompting_relevance") is not None:
            wins = not better(p["relevance"], d["prompting_relevance"])
            s += (f" Simply prompting ({d['prompting_instruction']!r}) {'does as well or better' if wins else 'does less'}: "
                  f"{num(d['prompting_relevance'])}.")
        return s

    def table(self, r):
        d = r.data
        rows = []
        for p in d.get("sweep") or []:
            rows.append(Row(f"Strength {num(p['strength'])} ({num(p['relative_norm'])}x the residual norm): similarity to {d.get('topic')!r}",
                            num(p["relevance"]), f"random direction {num(p['random_relevance'])}; loss rise {num(p['cost'])} "
                            f"(random {num(p['random_cost'])})"))
        rows.append(Row("No steering: similarity", num(d.get("base_relevance")), f"loss {num(d.get('base_loss'))} nats/token"))
        if d.get("prompting_relevance") is not None:
            rows.append(Row(f"Prompting baseline {d.get('prompting_instruction')!r}: similarity", num(d["prompting_relevance"]),
                            f"loss rise {num(d.get('prompting_cost'))}"))
        return rows

    def evidence(self, r):
        d = r.data
        p = self._shown(d)
        out = []
        base = d.get("base_generations") or []
        if p and base:
            for b, g in list(zip(base, p["generations"]))[:3]:
                out.append(f"«{b['prompt']}» unsteered: «{b['text'][:120].strip()}» / steered ({num(p['strength'])}): «{g['text'][:120].strip()}»")
        out.append(f"concept words measured: {', '.join(d.get('concept_words') or [])}")
        return out

    def sure(self, r):
        d = r.data
        p = self._shown(d)
        if p is None:
            return None
        n = len(d.get("base_generations") or [])
        gap = p["relevance"] - p["random_relevance"]
        return (f"{'moderately sure' if gap >= 0.1 and n >= 4 else 'not very sure'}: steered similarity {num(p['relevance'])} against "
                f"{num(p['random_relevance'])} for the random direction, on {n} prompt{'s' if n != 1 else ''} with greedy decoding; "
                "read the generations below.")

    def suggestions(self, r, args, n_layers=None):
        d = r.data
        out = []
        l = d.get("layer")
        if isinstance(l, int) and args.get("source", "concept") == "concept" and args.get("concept"):
            nl = l + 3 if n_layers is None or l + 3 < n_layers else max(0, l - 3)
            out.append(f"make the model talk about {args['concept']} at layer {nl}")
        if args.get("concept"):
            out.append(f"find features about {args['concept']}")
        return out

    def entities(self, args, result):
        return {"concept": args.get("concept")} if args.get("concept") else {}
