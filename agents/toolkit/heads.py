"""Head finder: which heads of the whole model show induction, previous-token, duplicate-token or first-token behaviour."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from gnothi.tools import heads
from gnothi.tools.errors import check_range
from gnothi.tools.results import ToolResult

from ..extract import strip_quoted
from .base import Args, Query, Row, ToolAgent, adopt, num, register

if TYPE_CHECKING:
    from gnothi.tools.model import ModelHandle

Behaviour = Literal["previous_token", "induction", "duplicate_token", "first_token"]

# words for each behaviour, most specific first ("duplicate-token" before "token before")
_WORDS: list[tuple[str, re.Pattern]] = [
    # (in lay words: "copy patterns the model saw earlier", "continue a sequence it has seen before")
    ("induction", re.compile(r"\binduct\w*|\bin-?context cop\w*|\bcopy\w* (?:the )?(?:next|continuation)|\b(?:repeated|repeating) (?:sequence|pattern|text)s?\b"
                             r"|\b(?:cop(?:y|ies|ying)|continu\w*|complet\w*|repeat\w*)\b[^.?!]{0,30}\b(?:patterns?|sequences?|phrases?|what came next)\b"
                             r"[^.?!]{0,40}\b(?:earlier|before|previously|already|seen|saw|again)\b", re.I)),
    # (in lay words: "notice when a word has been repeated", "spot a word it has already seen")
    ("duplicate_token", re.compile(r"\bdup\w*|\b(?:same|repeated|earlier occurrences? of the same) tokens?\b|\bdetect\w* repeat\w*|\brepeated tokens?\b"
                                   r"|\b(?:notic|detect|spot|flag|track|recogni[sz]|realis|realiz|catch|see|tell)\w*\b[^.?!]{0,30}\b(?:word|token|name)s?\b"
                                   r"[^.?!]{0,30}\b(?:repeated|repeats?|again|twice|already (?:seen|appeared|been seen|shown up)|appeared before|seen before)\b", re.I)),
    ("previous_token", re.compile(r"\bprev(?:ious)?[- ](?:token|word|position)s?\b|\bprev-?tok\w*|\bpreceding (?:token|word)s?\b|\b(?:token|word) (?:just |right |immediately )?before\b|\bone (?:token|position) back\b|\blast token before\b", re.I)),
    ("first_token", re.compile(r"\b(?:very\s+)?(?:first|opening|initial|starting)[- ](?:token|position|word)\b|\bbos\b|\b(?:attention )?sinks?\b|\bstart of (?:the )?(?:text|sequence|prompt)\b|\bbeginning of (?:the )?(?:text|sequence)\b|\bposition 0\b", re.I)),
]
_NOT_SCORED = re.compile(r"\b(?:(?:negative|backup)\s+)?name[- ]?movers?\b|\bcopy[- ]suppression\b|\bsuccessor\b|\bpunctuation\b|\bpositional\b|\bS-?inhibition\b|\bbackup\b", re.I)

# "<role> heads" for a role not among the scored behaviours: "retrieval heads", "negative heads"
_ROLE_HEADS = re.compile(r"\b(?P<role>[a-z][a-z-]{3,}(?:\s+[a-z][a-z-]{3,})?)\s+heads?\b", re.I)
_NOT_A_ROLE = {"which", "what", "these", "those", "there", "their", "some", "many", "most", "more", "other", "important", "interesting",
               "attention", "individual", "specific", "particular", "main", "top", "best", "strongest", "biggest", "different", "certain",
               "about", "find", "show", "list", "rank", "score", "scores", "give", "tell", "have", "with", "from", "into", "over", "like",
               "previous-token", "previous", "token", "induction", "duplicate", "duplicate-token", "first-token", "first", "layer",
               "model", "model's", "your", "does", "kind", "kinds", "type", "types", "sort", "sorts", "much", "every", "each", "same",
               "look", "looking", "anything", "know", "known", "famous", "good", "real", "actual", "special", "named", "called"}


def behaviours_in(text: str) -> list[str]:
    """The behaviours a text names, in the order it names them."""
    at = {b: m.start() for b, rx in _WORDS if (m := rx.search(text))}
    if "duplicate_token" in at and "induction" in at and not re.search(r"\bdup\w*|same token", text, re.I):
        del at["duplicate_token"]  # "repeated sequences" is the induction test, not the duplicate one
    return sorted(at, key=lambda b: (at[b], heads.BEHAVIOURS.index(b)))


class HeadsArgs(Args):
    """Score every head of the model for known behaviours and rank them."""

    behaviours: list[Behaviour] | None = Field(None, description="behaviours to rank heads by (default: all four)")
    layer: int | None = Field(None, description="only rank the heads of this layer")
    k: int = Field(10, ge=1, le=50, description="how many heads to list per behaviour")
    unscored: str | None = Field(None, description="a head role asked for that is not scored here (name mover, successor ...)")


@register
class Heads(ToolAgent[HeadsArgs]):
    name = "heads"
    title = "Head finder"
    description = ("Find attention heads by what they do across the whole model: induction heads, previous-token heads, "
                   "duplicate-token heads and attention sinks (first token), each head scored with its control, as a ranked table "
                   "and a layer x head heatmap.")
    examples = ["are there induction heads?", "which heads attend to the previous token?", "find the attention sink heads"]
    Args = HeadsArgs
    next_steps_text = [
        "look at the top head's pattern on a prompt ('show head L.H on \"...\"')",
        "patch the heads of a prompt to see which ones cause its answer",
    ]

    def extract(self, q: Query) -> tuple[dict[str, Any], str | None]:
        args: dict[str, Any] = {k: q.last_args[k] for k in ("layer", "k") if q.followup and q.last_args.get(k) is not None}
        if re.search(r"\b(?:all|every|each|any)\s+layers?\b|\bwhole model\b", q.clause, re.I):
            args.pop("layer", None)  # "and across all layers?"
        bs = behaviours_in(q.clause) or (list(q.last_args.get("behaviours") or []) if q.followup else [])
        if bs:
            args["behaviours"] = bs
        if q.parsed.layer is not None and q.parsed.head is None:
            args["layer"] = q.parsed.layer
        if q.parsed.k:
            args["k"] = q.parsed.k
        m = _NOT_SCORED.search(q.clause)
        if m:  # a role the finder does not score, asked for alone or beside scored ones
            args["unscored"] = m.group(0).lower()
        elif not bs and (m := _ROLE_HEADS.search(strip_quoted(q.clause))) and not set(m.group("role").lower().split()) & _NOT_A_ROLE:
            args["unscored"] = m.group("role").lower()  # "any retrieval heads?": a role named by the user, not one scored here
        return args, None

    def hand_over(self, q: Query) -> str | None:
        # "which heads matter for 'The Amazon river flows through'?": heads on one prompt are found by patching them
        prompts = [x for x in q.quotes if len(x.split()) >= 3]
        causal = re.search(r"\b(?:matter\w*|important|responsible|contribut\w*|driv\w*|caus\w*|mov\w*|affect\w*|influenc\w*|effect|impact\w*|"
                           r"patch\w*|decid\w*|promot\w*|necessary|needed)\b", strip_quoted(q.question or q.clause), re.I)
        if prompts and causal and q.parsed.head is None and not behaviours_in(q.clause) and not _NOT_SCORED.search(q.clause):
            return "activation_patching"
        return None

    def reformulate(self, a):
        bs = a.get("behaviours") or list(heads.BEHAVIOURS)
        where = f" in layer {a['layer']}" if a.get("layer") is not None else ""
        return (f"Score every attention head{where} for {', '.join(heads.LABEL[b] for b in bs)} behaviour and rank them, "
                f"each score beside its control.")

    def execute(self, handle: ModelHandle, a: HeadsArgs, llm: Any = None) -> ToolResult:
        if a.layer is not None:
            check_range("layer", a.layer, handle.n_layers)
        s = heads.head_scores(handle)
        tr = s.to_tool_result(list(a.behaviours) if a.behaviours else None, k=a.k)
        if a.layer is not None:
            for ev in tr.evidence:  # that layer's heads, ranked; the count of clear heads is the layer's own
                ev["top"] = [h.model_dump() for h in s.ranked(ev["behaviour"], s.n_layers * s.n_heads) if h.layer == a.layer][:a.k]
                ev["n_clear"] = sum(1 for h in s.clear(ev["behaviour"]) if h.layer == a.layer)
            tr.data["layer"] = a.layer
        if a.unscored:
            tr.data["unscored"] = a.unscored
        return adopt(tr, self.name)

    # ------------------------------------------------------------------ reply

    def answer(self, r):
        parts = []
        layer = r.data.get("layer")
        for ev in r.evidence:
            b, top = ev["behaviour"], ev.get("top") or []
            if not top:
                continue
            t = top[0]
            n = ev["n_clear"]
            where = f" in layer {layer}" if layer is not None else ""
            if n:
                parts.append(f"Yes, {n} head{'s' if n != 1 else ''}{where} clearly show{'s' if n == 1 else ''} {heads.LABEL[b]} behaviour; "
                             f"the strongest is {t['head']} (score {num(t['score'])} against a control of {num(t['control'])}).")
            else:
                parts.append(f"No head{where} clearly shows {heads.LABEL[b]} behaviour: the best, {t['head']}, scores {num(t['score'])} "
                             f"against a control of {num(t['control'])}.")
        if r.data.get("unscored"):
            parts.insert(0, f"{r.data['unscored'].capitalize()} heads are not among the behaviours scored over the whole model (finding them "
                            "needs a task prompt: patch the heads of one). The four that are scored:")
        return " ".join(parts) or super().answer(r)

    def table(self, r):
        rows = []
        per = max(2, 8 // max(1, len(r.evidence)))
        for ev in r.evidence:
            for t in (ev.get("top") or [])[:per]:
                rows.append(Row(f"Head {t['head']}: {heads.LABEL[ev['behaviour']]} score", num(t["score"]),
                                f"control {num(t['control'])}, uniform head {num(ev['uniform'])}, median head {num(ev['median'])}"))
        return rows

    def evidence(self, r):
        out = []
        for ev in r.evidence:
            where = f" in layer {r.data['layer']}" if r.data.get("layer") is not None else " in the whole model"
            out.append(f"{heads.LABEL[ev['behaviour']]}: {ev['n_clear']} heads{where} score at least {heads.CLEAR_MIN} and "
                       f"{heads.CLEAR_MARGIN} above their control")
        if r.data.get("cached"):
            out.append("scores read from this model's cache (measured once per model)")
        return out

    def sure(self, r):
        ev = r.evidence[0] if r.evidence else None
        top = (ev or {}).get("top") or []
        if not top:
            return None
        m = top[0]["score"] - top[0]["control"]
        return (f"{'fairly sure' if m >= heads.CLEAR_MARGIN else 'not sure'} that head {top[0]['head']} shows it: score {num(top[0]['score'])} "
                f"against a control of {num(top[0]['control'])}; attention shows where a head reads, not that the model needs it (patch or ablate the head to test that).")

    def next_steps(self, result):
        return list(self.next_steps_text) + ["name mover, successor and copy-suppression heads are not scored here: patch the heads of a prompt to find the heads a task needs"]

    def suggestions(self, r, args, n_layers=None):
        out = []
        for ev in r.evidence[:1]:
            top = (ev.get("top") or [])[:1]
            if top:
                l, h = top[0]["layer"], top[0]["index"]
                prompt = "The cat sat on the mat. The cat sat on the" if ev["behaviour"] == "induction" else "The quick brown fox jumps over the lazy dog"
                out.append(f"show head {h} in layer {l} on '{prompt}'")
        shown = set(args.get("behaviours") or [])
        for b in heads.BEHAVIOURS:
            if shown and b not in shown:
                out.append(f"which heads are {heads.LABEL[b].split(' (')[0]} heads?")
                break
        return out[:3]

    def entities(self, args, result):
        ev = ((result or {}).get("evidence") or [{}])[0]
        top = (ev.get("top") or [{}])[0]
        return {"layer": top.get("layer"), "head": top.get("index")} if top.get("layer") is not None else {}
