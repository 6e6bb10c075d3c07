"""The offline planner (the default): rules plus routing by meaning, no LLM.

1. Guards: empty or enormous input and prompt-injection attempts get a help reply.
2. The question is split into clauses ("... and then ...", "; also ..."); each clause is
   routed to a tool agent by keyword rules, with ties and rule-less clauses decided by
   cosine similarity to each agent's examples under the bundled MiniLM. Off-topic
   requests (nearest to the off-topic examples, or similar to nothing) get a help reply.
3. Arguments are pulled out by :mod:`gnothi.agents.extract` and validated by the agent's
   schema. Follow-ups ("now layer 5", "what about that feature?") fill the gaps from the
   previous turn.
4. When something needed is still missing, the plan carries a clarifying question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .extract import Extracted, extract, is_followup, looks_like_injection, quoted, words_to_digits
from .tool_agents import AGENTS
from .types import Plan, ToolCall

MAX_QUESTION = 8000  # characters
MAX_CALLS = 4

OFF_TOPIC_EXAMPLES = [
    "what's the weather like today?",
    "write me a poem about the sea",
    "tell me a joke",
    "what is the capital of Australia?",
    "translate this sentence into Spanish",
    "book me a flight to Paris",
    "who won the football world cup",
    "give me a recipe for pancakes",
    "write python code that sorts a list",
    "what is the meaning of life",
    "recommend a good movie",
    "how do I fix my car's engine",
    "what's the stock price of Apple",
    "summarize the news for me",
]

RULES: dict[str, re.Pattern] = {
    "neuron_explainer": re.compile(
        r"\bneurons?\b|\bmlp\s+units?\b|\bunits?\s+\d|\bl\s*\d+\s*[,/ ]?\s*n\s*\d+\b|(?:^|\s)\d{1,3}[.:/]\d{1,6}(?:\s|\?|$|,)", re.I
    ),
    "sae_feature_search": re.compile(
        r"\bsae\b|\bsparse\s+auto-?encoders?\b|\bfeatures?\b|\blatents?\b|\bdictionary\s+(?:features|directions)\b|\bf#?\d+\b", re.I
    ),
    "probing": re.compile(
        r"\bprob(?:e|es|ed|ing)\b|\bwhich\s+layers?\s+(?:know|encode|represent|store|tell|can tell|distinguish)|"
        r"\blinear(?:ly)?\s+(?:decod|encod|represent|separab|readout|classif)|\b(?:decode|read out)\b.*\bfrom\s+(?:the\s+)?(?:layers|activations|residual)|"
        r"\bwhere\b.{0,40}\b(?:represent|encode)s?\b|\bhow early\b.{0,60}\b(?:represent|encod|know)|\bat what (?:depth|layer)\b|"
        r"\bwhich layers?\s+(?:best\s+)?(?:separat|distinguish|tell|differentiat)",
        re.I,
    ),
    "activation_patching": re.compile(
        r"\bpatch(?:ing|ed|es)?\b|\bcausal(?:ly)?\s+(?:trac|effect|mediat)|\bcausal trace\b|\bclean\b.*\bcorrupt|\bcorrupt(?:ed|ion)?\s+prompt|"
        r"\bwhy\s+did\s+(?:it|the model|smollm2?|the llm|you)\s+(?:say|answer|predict|output|choose|pick|complete|respond)|"
        r"\bwhich\s+(?:layers?|heads?|components?|positions?|attention heads?|mlps?)\s+(?:are\s+|is\s+)?(?:responsible|matter|cause|drive|important|store|carry)|"
        r"\bwhat\s+(?:component|layer|head|part)s?\s+(?:causes?|drives?|is responsible)|\bresponsible for (?:predicting|the answer|saying)|"
        r"\bwhere\s+is\s+the\s+fact\b|\binformation flow\b|\bmakes?\s+(?:it|the model)\s+(?:answer|say|predict|output|complete)\b",
        re.I,
    ),
    "hallucination_detector": re.compile(
        r"\bhallucinat\w*|\bmak(?:ing|es?)\s+(?:it|this|that|things|stuff|facts?)\s+up\b|\bmade\s+(?:it\s+|this\s+|that\s+)?up\b|\bconfabulat\w*|"
        r"\bfabricat\w*|\b(?:is|was|are)\s+(?:it|the model|he|she|they)\s+lying\b|\bguessing\b|\bgrounded\b|\bcan\s+i\s+trust\b|\btrustworthy\b|"
        r"\bknow\s+the\s+answer\b|\bmaking\s+up\b",
        re.I,
    ),
    "help": re.compile(
        r"^\s*(?:hi|hello|hey|hiya|howdy|good\s+(?:morning|afternoon|evening)|thanks?(?:\s+you)?|thank\s+you|cheers)\b[\s!.,]*(?:there|gnothi|again)?[\s!.,]*$|"
        r"\bwhat\s+can\s+you\s+do\b|\bwhat\s+(?:tools|can i ask)\b|^\s*help\b|\bhow\s+do\s+i\s+use\b|\bwho\s+are\s+you\b|\bwhat\s+are\s+you\b",
        re.I,
    ),
}

# datasets the probing tool usually offers, by the words people use
DATASET_WORDS = {
    "truth": r"\btru(?:e|th|thful\w*)\b|\bfalse(?:hood)?\b|\bfactual\w*\b|\bcorrect(?:ness)?\b|\blies?\b",
    "sentiment": r"\bsentiment\b|\bpositive\b|\bnegative\b|\breviews?\b|\bemotion\w*|\bhappy\b|\bsad\b|\bmood\b",
    "question": r"\bis\s+a\s+question\b|\bquestions?\s+(?:vs|or)\b|\binterrogative\b",
    "language": r"\blanguages?\b|\bfrench\b|\benglish\b|\bgerman\b|\bspanish\b",
    "code": r"\bcode\b|\bprogramming\b|\bpython\b",
    "tense": r"\btense\b|\bpast\b|\bfuture\b",
    "plural": r"\bplural\w*\b|\bsingular\b",
    "negation": r"\bnegat(?:ion|ed)\b",
}

DATASET_ALIASES = {
    "truth": ["true_false", "truth", "true", "fact"],
    "question": ["question"],
    "code": ["code"],
    "plural": ["plural", "singular"],
}

FOLLOWUP_NUMBER_RE = re.compile(r"^\s*(?:and|now|what about|how about)?\s*(?:layer|l)\s*\d+\s*\??\s*$", re.I)


@dataclass
class PlanContext:
    """What the planner may know besides the question."""

    history: list[dict] = field(default_factory=list)  # earlier turns (oldest first): {question, plan: [{tool,args}], entities}
    n_layers: int | None = None
    d_mlp: int | None = None
    datasets: list[str] | None = None

    def last_calls(self) -> list[dict]:
        for turn in reversed(self.history):
            calls = [c for c in turn.get("plan") or [] if c.get("tool") != "help"]
            if calls:
                return calls
            if turn.get("pending"):  # a clarifying question: its half-built call
                return [turn["pending"]]
        return []

    def pending(self) -> dict | None:
        """The half-built call of the last turn, when that turn asked a clarifying question."""
        if self.history and self.history[-1].get("pending"):
            return self.history[-1]["pending"]
        return None

    def entities(self) -> dict[str, Any]:
        ent: dict[str, Any] = {}
        for turn in self.history:
            for c in turn.get("plan") or []:
                for k, v in (c.get("args") or {}).items():
                    if v is not None:
                        ent[f"{c['tool']}.{k}"] = v
            for k, v in (turn.get("entities") or {}).items():
                if v is not None:
                    ent[k] = v
        return ent


class OfflinePlanner:
    name = "offline"

    def __init__(self, embedder: Any = "auto", threshold: float = 0.30, margin: float = 0.02):
        """``embedder``: "auto" (the bundled MiniLM if installed), ``None`` (rules only), or an object with ``encode``."""
        if embedder == "auto":
            import os

            if os.environ.get("GNOTHI_ROUTER_EMBEDDINGS", "1").lower() in ("0", "false", "no", "off"):
                embedder = None  # rules only (fast start; tests)
            else:
                from .embed import get_embedder

                embedder = get_embedder()
        self.embedder = embedder
        self.threshold = threshold
        self.margin = margin
        self._bank = None

    # --------------------------------------------------------------- routing by meaning

    def _examples(self) -> list[tuple[str, str]]:
        ex = []
        for ag in AGENTS.values():
            ex.append((ag.name, ag.description))
            ex.extend((ag.name, e) for e in ag.examples)
        ex.extend(("off_topic", e) for e in OFF_TOPIC_EXAMPLES)
        return ex

    def similarities(self, text: str) -> dict[str, float]:
        """Max cosine similarity of ``text`` to each agent's examples (and the off-topic set)."""
        if self.embedder is None:
            return {}
        import numpy as np

        if self._bank is None:
            ex = self._examples()
            self._bank = ([n for n, _ in ex], self.embedder.encode([t for _, t in ex]))
        names, bank = self._bank
        q = self.embedder.encode([text[:1000]])[0]
        sims = bank @ q
        out: dict[str, float] = {}
        for n, s in zip(names, sims):
            out[n] = max(out.get(n, -1.0), float(s))
        return out

    def route(self, clause: str) -> tuple[list[str], dict[str, float]]:
        """Tools for one clause, best first (rules first, meaning breaks ties)."""
        t = words_to_digits(clause)
        fired = [n for n, pat in RULES.items() if pat.search(t)]
        sims = self.similarities(clause)
        if "help" in fired and len(fired) > 1:
            fired.remove("help")
        if len(fired) > 1:
            fired = self._resolve_conflicts(t, fired, sims)
        if fired:
            return fired, sims
        if sims:
            best = max(sims, key=sims.get)
            if best != "off_topic" and sims[best] >= self.threshold and sims[best] - sims.get("off_topic", -1) >= self.margin:
                return [best], sims
        return [], sims

    def _resolve_conflicts(self, t: str, fired: list[str], sims: dict[str, float]) -> list[str]:
        # specific beats generic: "SAE feature" beats "neuron"; hallucination/patching words are strong
        low = t.lower()
        if "sae_feature_search" in fired and "neuron_explainer" in fired:
            if re.search(r"\bfeatures?\b|\bsae\b|\blatents?\b", low) and not re.search(r"\bneurons?\b", low):
                fired.remove("neuron_explainer")
            elif re.search(r"\bneurons?\b", low) and not re.search(r"\bsae\b|\blatents?\b|\bfeature\s*#?\d", low):
                fired.remove("sae_feature_search")
        if "probing" in fired and "hallucination_detector" in fired and re.search(r"\bprob(?:e|es|ing)\b", low):
            fired.remove("hallucination_detector")
        if len(fired) > 1 and sims:
            fired.sort(key=lambda n: -sims.get(n, 0.0))
            return fired[:1]
        if len(fired) > 1:
            prio = ["hallucination_detector", "activation_patching", "probing", "sae_feature_search", "neuron_explainer", "help"]
            fired.sort(key=prio.index)
            return fired[:1]
        return fired

    # --------------------------------------------------------------- plan

    def plan(self, question: str, ctx: PlanContext | None = None) -> Plan:
        ctx = ctx or PlanContext()
        q = (question or "").strip()
        if not q:
            return Plan(reformulated="", calls=[ToolCall(tool="help", args={"reason": "empty"})], planner=self.name)
        if len(q) > MAX_QUESTION:
            return Plan(
                reformulated="",
                clarify=f"Your message is {len(q):,} characters long; I plan from questions up to {MAX_QUESTION:,}. "
                "Ask the question in a sentence or two and quote only the prompt you want measured.",
                planner=self.name,
                notes=["The question was too long."],
            )
        if looks_like_injection(q):
            return Plan(reformulated="(request to change my instructions: declined)", calls=[ToolCall(tool="help", args={"reason": "injection"})],
                        planner=self.name, notes=["The question tried to change my instructions; I only run the measurement tools."])

        calls: list[ToolCall] = []
        clarify: list[str] = []
        notes: list[str] = []
        pending_calls: list[dict] = []
        followup = is_followup(q)
        pend = ctx.pending()
        if pend:
            m = BARE_ANSWER_RE.match(words_to_digits(q))
            if m and pend.get("missing"):  # "7" in answer to "which layer?": the half-built call is complete
                call = ToolCall(tool=pend["tool"], args={**(pend.get("args") or {}), pend["missing"]: int(m.group(1))})
                return Plan(reformulated=reformulate([call], q), calls=[call], planner=self.name)
            followup = True
        for clause in split_clauses(q):
            tools, sims = self.route(clause)
            if not tools and (followup or FOLLOWUP_NUMBER_RE.match(clause)) and ctx.last_calls():
                last = ctx.last_calls()[-1]
                tools = [last["tool"]]
            if not tools:
                continue
            for tool in tools:
                args, need = build_args(tool, clause, q, ctx, followup)
                if need:
                    clarify.append(need)
                    pending_calls.append({"tool": tool, "args": args, "missing": missing_field(tool, args)})
                    continue
                if tool == "help" and any(c.tool != "help" for c in calls):
                    continue
                call = ToolCall(tool=tool, args=args)
                same = next((c for c in calls if c.tool == tool and all(c.args.get(k2) == v for k2, v in args.items() if k2 in c.args)), None)
                if same is not None:  # "...? probe it": one call, with everything either clause said
                    same.args = {**args, **same.args}
                elif call not in calls:
                    calls.append(call)
        if not calls and not clarify:
            calls = [ToolCall(tool="help", args={"reason": "off_topic"})]
            notes.append("The question did not match any tool.")
        if len(calls) > 1:
            calls = [c for c in calls if c.tool != "help"] or calls[:1]
        if len(calls) > MAX_CALLS:
            notes.append(f"Planned only the first {MAX_CALLS} of {len(calls)} tool calls.")
            calls = calls[:MAX_CALLS]
        plan = Plan(
            reformulated=reformulate(calls, q),
            calls=calls,
            clarify=" ".join(dict.fromkeys(clarify)) if clarify and not calls else None,
            planner=self.name,
            notes=notes,
        )
        if clarify and calls:
            plan.notes.append("Not planned: " + " ".join(dict.fromkeys(clarify)))
        if plan.clarify and pending_calls:
            plan.pending = pending_calls[0]
        return plan


BARE_ANSWER_RE = re.compile(r"^\s*(?:it'?s\s+|in\s+|at\s+|use\s+|try\s+)?(?:the\s+)?(?:layer|neuron|unit|feature|number|n|l)?\s*#?(\d{1,6})(?:st|nd|rd|th)?\s*(?:layer|neuron)?\s*[.!?]?\s*$", re.I)


def missing_field(tool: str, args: dict) -> str | None:
    """The one argument a half-built call lacks, when a bare number can supply it."""
    if tool == "neuron_explainer":
        if args.get("neuron") is not None and args.get("layer") is None:
            return "layer"
        if args.get("layer") is not None and args.get("neuron") is None:
            return "neuron"
    if tool == "sae_feature_search" and not any(args.get(k) for k in ("query", "text")) and args.get("feature") is None:
        return "feature"
    return None


_SPLIT_RE = re.compile(
    r"\s*(?:;|,\s*then\b|\band\s+then\b|\bthen\s+also\b|\band\s+also\b|\balso\b,?|\bafter\s+that\b|\bplus\b|\.\s+(?=[A-Z])|\?\s+(?=[A-Za-z]))\s*",
    re.I,
)


def split_clauses(q: str) -> list[str]:
    """Split on clause connectors outside quotes ("X; and then Y")."""
    masked = re.sub(r"\"[^\"]*\"|“[^”]*”|'[^']*'", lambda m: "\0" * len(m.group(0)), q)
    parts, start = [], 0
    for m in _SPLIT_RE.finditer(masked):
        if m.start() > start:
            parts.append(q[start:m.start()])
        start = m.end()
    parts.append(q[start:])
    parts = [p.strip(" ,.;") for p in parts if p.strip(" ,.;")]
    return parts or [q]


# ----------------------------------------------------------------------------- arguments


def _k(t: str) -> int | None:
    m = re.search(r"\btop[\s-]*(\d{1,2})\b|\b(\d{1,2})\s+(?:top\s+)?(?:examples|contexts|features|neurons|results)\b", words_to_digits(t), re.I)
    if m:
        return int(m.group(1) or m.group(2))
    return None


def _phrase_after(t: str, words: str) -> str | None:
    m = re.search(rf"\b(?:{words})\s+(.+?)\s*(?:[?.!;]|$)", t, re.I)
    if not m:
        return None
    p = m.group(1).strip(" \"'“”")
    for _ in range(3):  # "a feature about emotions" -> "emotions"
        q = re.sub(rf"^(?:(?:a|an|the|any|some)\s+)?(?:sae\s+|sparse\s+)?(?:features?|latents?|directions?)\s+(?:{words})\s+", "", p, flags=re.I)
        if q == p:
            break
        p = q
    p = re.sub(r"^(?:the\s+)?(?:concept|idea|topic|notion|word|token)s?\s+(?:of\s+)?", "", p, flags=re.I)
    p = re.sub(r"\s+(?:in|at|on)\s+layer\s+\d+.*$", "", p, flags=re.I)
    return p or None


def _find_dataset(t: str, ctx: PlanContext) -> str | None:
    low = t.lower()
    names = ctx.datasets or []
    for n in names:  # a dataset named outright
        if re.search(rf"\b{re.escape(n.lower())}\b", low):
            return n
    for canon, pat in DATASET_WORDS.items():
        if re.search(pat, low):
            if names:
                hit = next((n for n in names for al in DATASET_ALIASES.get(canon, [canon]) if al in n.lower()), None)
                return hit or canon
            return canon
    return None


def build_args(tool: str, clause: str, question: str, ctx: PlanContext, followup: bool) -> tuple[dict, str | None]:
    """Arguments for ``tool`` from the clause (whole question as fallback) and memory; or a clarifying question."""
    e = extract(clause, ctx.n_layers)
    whole = extract(question, ctx.n_layers) if clause != question else e
    quotes = e.quotes or whole.quotes
    ent = ctx.entities()
    last = next((c for c in reversed(ctx.last_calls()) if c["tool"] == tool), None)
    base = dict(last["args"]) if (last and followup) else {}
    anaphora = bool(re.search(r"\b(?:that|this|the same|it|its|previous)\b", clause, re.I))
    nl = f" This model has {ctx.n_layers} layers (0 to {ctx.n_layers - 1})." if ctx.n_layers else ""
    k = _k(clause)

    if tool == "help":
        reason = "greeting" if re.search(r"^\s*(?:hi|hello|hey|hiya|howdy|good\s+\w+|thanks?|thank\s+you|cheers)\b", clause, re.I) else "capabilities"
        return {"reason": reason}, None

    if tool == "neuron_explainer":
        args = {k2: v for k2, v in base.items() if k2 in ("layer", "neuron", "token", "text", "k")}
        if e.layer is not None:
            args["layer"] = e.layer
        elif e.last_layer:
            args["layer"] = -1 if ctx.n_layers is None else ctx.n_layers - 1
        if e.neuron is not None:
            args["neuron"] = e.neuron
            args.pop("token", None)
            args.pop("text", None)
        if "neuron" not in args and anaphora and "neuron_explainer.neuron" in ent:
            args["neuron"] = ent["neuron_explainer.neuron"]
            args.setdefault("layer", ent.get("neuron_explainer.layer"))
        if "neuron" not in args:
            tok = None
            if re.search(r"\b(?:token|word|promot|predict|fire|fires|activate|respond|push|boost|saying|say|output)\w*\b", clause, re.I):
                tok = quotes[0] if quotes else None
                if tok is None:
                    m = re.search(r"\b(?:token|word|for|on)\s+([A-Z][\w'-]*|\w+)\s*\??$", clause)
                    tok = m.group(1) if m else None
            if tok:
                args["token"] = tok
                others = [x for x in quotes if x != tok and tok in x]
                if others:  # 'neurons for "Paris" in "The capital of France is Paris"'
                    args["text"] = others[0]
        if k:
            args["k"] = k
        if "neuron" not in args and "token" not in args:
            if args.get("layer") is not None:
                return args, f"Which neuron in layer {args['layer']}? Give its index, e.g. 'neuron 340 in layer {args['layer']}'."
            return args, "Which neuron? Give a layer and an index, e.g. 'L7 N340', '7.340' or 'neuron 340 in layer 7'." + nl
        if "neuron" in args and args.get("layer") is None:
            return args, f"Which layer is neuron {args['neuron']} in? Say e.g. 'neuron {args['neuron']} in layer 7'." + nl
        return args, None

    if tool == "sae_feature_search":
        args = {k2: v for k2, v in base.items() if k2 in ("query", "feature", "text", "layer", "k")}
        if e.layer is not None:
            args["layer"] = e.layer
        if e.feature is not None:
            args["feature"] = e.feature
            args.pop("query", None)
            args.pop("text", None)
        elif anaphora and re.search(r"\bfeature\b", clause, re.I) and ent.get("feature") is not None:
            args["feature"] = ent["feature"]
            args.pop("query", None)
            args.pop("text", None)
        text_words = re.search(r"\b(?:fire|fires|firing|active|activate|light up|lights up|lit up|on this|on the text|in this text|on the sentence|on the prompt)\b", clause, re.I)
        if quotes and text_words and "feature" not in args:
            args["text"] = quotes[0]
            args.pop("query", None)
        elif "feature" not in args or (e.feature is None and not anaphora):
            qry = e.quotes[0] if e.quotes else _phrase_after(clause, r"about|for|related to|representing|that (?:detect|represent|track|respond to)s?|on|regarding|concerning|involving")
            if not qry and whole.quotes:
                qry = whole.quotes[0]
            if qry and not re.fullmatch(r"(?:(?:it|this|that|them|these|those|the same|the|its)\s*)?(?:features?|latents?|ones?|sae|the sae)?", qry, re.I):
                args["query"] = qry
                args.pop("feature", None)
                args.pop("text", None)
        if k:
            args["k"] = k
        if not any(args.get(x) is not None for x in ("query", "feature", "text")):
            if anaphora:
                return args, "Which feature do you mean? I have no feature from earlier in this conversation; give its number, e.g. 'feature 1234'."
            return args, "What should the features be about? Say e.g. 'find SAE features about French', or quote a text: 'which features fire on \"...\"'."
        return args, None

    if tool == "probing":
        args = {k2: v for k2, v in base.items() if k2 in ("dataset", "layers", "position")}
        ds = _find_dataset(clause, ctx) or (None if followup else _find_dataset(question, ctx))
        if ds:
            args["dataset"] = ds
        if e.layers:
            args["layers"] = e.layers
        elif e.layer is not None:
            args["layers"] = [e.layer]
        if re.search(r"\b(?:mean|average)(?:d|-pooled|\s+pool)?\b", clause, re.I):
            args["position"] = "mean"
        if not args.get("dataset"):
            names = ", ".join(ctx.datasets) if ctx.datasets else "truth, sentiment"
            return args, f"Which property should the probes look for? For example: {names}."
        return args, None

    if tool == "activation_patching":
        args = {k2: v for k2, v in base.items() if k2 in ("clean", "corrupted", "answer", "alternative", "mode")}
        if e.clean:
            args["clean"], args["corrupted"] = e.clean, e.corrupted
        elif whole.clean and not e.quotes:
            args["clean"], args["corrupted"] = whole.clean, whole.corrupted
        else:
            qs = [x for x in quotes if x not in (e.answer, whole.answer)]
            if qs:
                args["clean"] = qs[0]
                args["corrupted"] = qs[1] if len(qs) > 1 else (None if not followup else args.get("corrupted"))
        ans, alt = (e.answer, e.alternative) if e.answer else (whole.answer, whole.alternative)
        if ans:
            args["answer"] = ans
        if alt:
            args["alternative"] = alt
        low = clause.lower() if re.search(r"\bheads?\b|\bmlps?\b|\battention\b|\battn\b|\btrac", clause, re.I) else question.lower()
        if re.search(r"\bheads?\b", low):
            args["mode"] = "heads"
        elif re.search(r"\bmlps?\b", low):
            args["mode"] = "mlp"
        elif re.search(r"\battention\b|\battn\b", low):
            args["mode"] = "attn"
        elif re.search(r"\bcausal\s+trac|\btrace\b|\btracing\b", low) and not args.get("corrupted"):
            args["mode"] = "trace"
        args = {k2: v for k2, v in args.items() if v is not None}
        if not args.get("clean"):
            return args, 'Which prompt should I explain? Quote it, and a corrupted version if you have one: patch "The capital of France is" vs "The capital of Italy is".'
        return args, None

    if tool == "hallucination_detector":
        args = {k2: v for k2, v in base.items() if k2 in ("question", "answer", "context")}
        m_ctx = re.search(r"\bcontext\s*[:=]\s*(\"[^\"]+\"|“[^”]+”|.+)$", clause, re.I | re.S)
        qs = list(quotes)
        if m_ctx:
            c = m_ctx.group(1).strip()
            c = c[1:-1] if c[:1] in "\"“" else c
            args["context"] = c
            qs = [x for x in qs if x != c]
        qa_re = r"\bq(?:uestion)?\s*[:=]\s*(.+?)\s*\b(?:a|answer)\s*[:=]\s*(.+?)\s*$"
        m_q = re.search(qa_re, clause, re.I | re.S) or re.search(qa_re, question, re.I | re.S)
        if m_q:
            args["question"], args["answer"] = m_q.group(1).strip(" \"'“”"), m_q.group(2).strip(" \"'“”")
        elif qs:
            args["question"] = qs[0]
            if len(qs) > 1:
                args["answer"] = qs[1]
        else:
            m = re.search(r"\b(?:asked|asks|question|about|when asked|on|answering|says?|said|claims?)\s+(?:if\s+|whether\s+|that\s+)?(.{6,}?)\s*\??\s*$", clause, re.I)
            if m and not re.fullmatch(r"(?:this|that|it|this answer|that answer|the answer)", m.group(1).strip(), re.I):
                args["question"] = m.group(1).strip()
        if not args.get("question"):
            return args, 'Which question (and answer) should I check? Quote them: is the model making it up on "Who wrote Hamlet?" answer "Dickens"?'
        return args, None

    return args, None


def reformulate(calls: list[ToolCall], question: str) -> str:
    """One plain sentence per planned call, in the assistant's own words."""
    parts = []
    for c in calls:
        a = c.args
        if c.tool == "neuron_explainer":
            if a.get("neuron") is not None:
                lay = "the last layer" if a.get("layer") == -1 else f"layer {a.get('layer')}"
                parts.append(f"What does MLP neuron {a['neuron']} in {lay} respond to, and how well does an explanation predict it?")
            else:
                parts.append(f"Which MLP neurons most promote the token {a.get('token')!r}?")
        elif c.tool == "sae_feature_search":
            where = f" (layer {a['layer']} SAE)" if a.get("layer") is not None else ""
            if a.get("feature") is not None:
                parts.append(f"What does SAE feature {a['feature']}{where} represent?")
            elif a.get("text"):
                parts.append(f"Which SAE features{where} are active on {a['text']!r}?")
            else:
                parts.append(f"Which SAE features{where} are about {a.get('query')!r}?")
        elif c.tool == "probing":
            ls = a.get("layers")
            where = f" among layers {', '.join(map(str, ls))}" if ls else ""
            parts.append(f"Which layers{where} linearly encode the {a.get('dataset')!r} property ({a.get('position', 'last')} token)?")
        elif c.tool == "activation_patching":
            vs = f" versus {a['corrupted']!r}" if a.get("corrupted") else ""
            ans = f" for the answer {a['answer']!r}" if a.get("answer") else ""
            parts.append(f"Which parts of the model cause its completion of {a.get('clean')!r}{vs}{ans}?")
        elif c.tool == "hallucination_detector":
            ans = f" when it answers {a['answer']!r}" if a.get("answer") else ""
            parts.append(f"Is the model making up its answer to {a.get('question')!r}{ans}?")
        elif c.tool == "help":
            parts.append("What can this assistant do?" if a.get("reason") in ("capabilities", "greeting") else "(not a question about the model)")
    return " Then: ".join(parts) if parts else question.strip()
