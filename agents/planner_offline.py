"""The offline planner (the default): routing learned from data, arguments from a grammar, no LLM.

1. Guards (rules that guard, never route): empty or enormous input and prompt-injection
   attempts get a help reply or a clarifying question.
2. A pending clarifying question is completed only by an answer to it ("7" after "which
   layer?"); a new full question starts afresh.
3. The question is split into clauses ("... and then ...", "; also ..."); each clause is
   routed by the learned :mod:`~gnothi.agents.router` to a tool agent, a help reason,
   or "follow-up" (carry on with the previous turn's tool).
4. Each agent in the :mod:`~gnothi.agents.toolkit` pulls its own arguments out of the clause
   with the grammar of :mod:`gnothi.agents.extract`; a follow-up starts from the previous
   call's arguments. When something needed is missing the plan carries a clarifying question.
5. The reformulation the user sees is each agent's own sentence of what will be measured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from gnothi.tools.config import env_flag

from .extract import (
    _QUOTE_RE, explicit_args, extract, fix_typos, is_followup, labelled_fields, looks_like_injection, squeeze, strip_invisible, strip_quoted,
    words_to_digits,
)
from .router import get_router
from .toolkit import TOOLKIT, Query
from .toolkit.methods import defines, judges
from .toolkit.probing import user_examples
from .types import Plan, ToolCall

MAX_QUESTION = 8000  # characters
MAX_CALLS = 4
# when the routed tool has nothing to work on, another runnable reading at least this fraction as likely wins over a
# clarifying question (family-grouped cross-validation on the dev corpus)
ALT_RATIO = 0.2
ALT_MAX_P = 0.9  # ... unless the router is at least this sure of the tool: then ask for what is missing
MULTI_MIN_P = 0.5  # a clause is a request of its own when the router is at least this sure of its tool
MULTI_SURE_P = 0.9  # ... and a two-word clause ("probe sentiment") when it is this sure
INJECTION_CLAUSE_P = 0.8  # one clause read as an injection this surely declines the whole message
REFUSE_P = 0.6  # an off-topic or injection reading less sure than this gives way to a tool reading ...
REFUSE_ALT_P = 0.15  # ... that has at least this probability
TEXT_ANSWERS = ("clean", "corrupted", "prompt", "question", "text", "query", "concept", "context")  # what a bare reply to a clarifying question can be, as typed
BARE_ANSWER_RE = re.compile(r"^\s*(?:it'?s\s+|in\s+|at\s+|use\s+|try\s+|make it\s+|how about\s+)?(?:the\s+)?(?:layer|neuron|unit|feature|head|number|n|l|h|f)?\s*#?(\d{1,6})(?:st|nd|rd|th)?\s*(?:layer|neuron|one|please)?\s*[.!?]?\s*$", re.I)


# "the other prompt", "the second sentence", "and for B?" (after "prompt A: '...' prompt B: '...'")
_PROMPT_NOUN = r"(?:prompt|sentence|text|input|question|example|string)"
_OTHER_PROMPT_RE = re.compile(rf"\b(?:the\s+)?(?:(?P<other>other)\s+(?:{_PROMPT_NOUN}|one)|(?:second|2nd)\s+{_PROMPT_NOUN})\b", re.I)
_PROMPT_LABEL_RE = re.compile(rf"\b{_PROMPT_NOUN}\s+(?P<label>[A-Za-z]|[1-9])\s*[:=]?\s*(?=[\"“«‘'`])", re.I)
_LABEL_REF_RE = re.compile(rf"\b(?i:for|on|with|to|do|try|use)\s+(?:(?i:{_PROMPT_NOUN})\s+(?P<a>[A-Za-z]|[1-9])|(?P<b>[A-Z]))\b(?!['.]\w)")


def name_earlier_prompt(q: str, ctx: "PlanContext") -> str:
    """``q`` with "the other prompt" (or a label such as "B") replaced by that prompt, quoted, when the last
    turn quoted it; unchanged otherwise (a question with quotes of its own names its prompt itself)."""
    if _QUOTE_RE.search(q) or not ctx.history:
        return q
    quotes, others, labels = ctx.earlier_prompts()
    m = _OTHER_PROMPT_RE.search(q)
    pick = (others[0] if others else None) if m and m.group("other") else (quotes[1] if m and len(quotes) > 1 else None)
    if m and pick:  # "the other ...": the one not measured; "the second ...": the second one typed
        return q[:m.start()] + _quoted(pick) + q[m.end():]
    m = _LABEL_REF_RE.search(q)
    label = m and (m.group("a") or m.group("b")).upper()
    if m and label in labels:
        start = m.start("a") if m.group("a") else m.start("b")
        head = re.search(r"(?:(?:prompt|sentence|text|input|question|example|string)\s+)?$", q[:start], re.I)
        return q[:head.start() if head else start] + _quoted(labels[label]) + q[m.end():]
    return q


def _quoted(text: str) -> str:
    """``text`` in quotes the grammar reads back whole, whatever quote marks it holds itself."""
    for a, b in (('"', '"'), ("“", "”"), ("«", "»"), ("`", "`")):
        if a not in text and b not in text:
            return f"{a}{text}{b}"
    return f"'{text}'"


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

    def earlier_prompts(self) -> tuple[list[str], list[str], dict[str, str]]:
        """The prompts the last turn quoted (in the order typed), those besides the one its call measured, and the
        labels it gave them ("prompt B: '...'"): what "the second prompt", "the other prompt" and "B" point back to.
        Quoted answers (" Paris") are no prompts."""
        for turn in reversed(self.history):
            calls = [c for c in turn.get("plan") or [] if c.get("tool") != "help"]
            if not calls:
                continue
            text = str(turn.get("question") or "")
            a = calls[-1].get("args") or {}
            answers = {str(a[k]).strip() for k in ("answer", "alternative") if a.get(k)}
            quotes = [x for x in dict.fromkeys(extract(text).quotes) if x.strip() not in answers and not x.startswith(" ")]
            main = a.get("clean") or a.get("prompt") or a.get("text") or a.get("question") or a.get("query")
            labels = {}
            for m in _PROMPT_LABEL_RE.finditer(text):
                qm = _QUOTE_RE.match(text, m.end())
                if qm:
                    labels[m.group("label").upper()] = next(g for g in qm.groups() if g is not None)
            return quotes, [x for x in quotes if x != main], labels
        return [], [], {}

    def pending(self) -> dict | None:
        """The half-built call of the last turn, when that turn asked a clarifying question."""
        if self.history and self.history[-1].get("pending"):
            return self.history[-1]["pending"]
        return None

    def entities(self, earlier: list | None = None) -> dict[str, Any]:
        """What "it" / "that prompt" may point back to: the earlier turns' calls and results, then ``earlier``
        (the calls already planned for this message: "explain L3N5, then steer with it")."""
        ent: dict[str, Any] = {}
        turns = self.history + ([{"plan": [{"tool": c.tool, "args": c.args} for c in earlier]}] if earlier else [])
        for turn in turns:
            for c in turn.get("plan") or []:
                for k, v in (c.get("args") or {}).items():
                    if v is not None:
                        ent[f"{c['tool']}.{k}"] = v
                a = c.get("args") or {}
                prompt = a.get("clean") or a.get("prompt") or a.get("text") or a.get("question")
                if isinstance(prompt, str):
                    ent["prompt"] = prompt  # what "that prompt" refers to
                ent["last_tool"] = c["tool"]  # what "that number" came from
            for k, v in (turn.get("entities") or {}).items():
                if v is not None:
                    ent[k] = v
        return ent


# a short question about the last result ("why that layer?", "how come this head?")
_WHY_THAT_RE = re.compile(r"^\s*(?:(?:but|and|so|ok(?:ay)?|hm+|wait)\b[,.]?\s*)*(?:why|how\s+come)\s+(?:is\s+it\s+|was\s+it\s+)?(?:that|this|those|these|the)\s+"
                          r"(?:layer|head|neuron|feature|one|number|score|value|position|token|result|word|answer)s?\b[^.?!]{0,30}[.?!]*\s*$", re.I)
# "the same head / neuron / feature" points back at the previous call's unit, when that tool takes one
_SAME_UNIT_RE = re.compile(r"\b(?:same|that|this)\s+(head|neuron|feature|latent)\b", re.I)
_UNIT_WORD_RE = re.compile(r"\b(head|neuron|feature|latent)s?\b", re.I)
_UNIT_TOOLS = {"head": ("attention",), "neuron": ("neuron_explainer", "steering"), "feature": ("sae_feature_search", "steering"),
               "latent": ("sae_feature_search", "steering")}
_NAMES_A_TOOL_RE = re.compile(r"\b(?:patch\w*|steer\w*|prob(?:e|es|ing)\b|trac(?:e|ing)\b|hallucinat\w*|ablat\w*|amplif\w*|boost\w*)", re.I)


# words of a request about a method itself, even when it is not asked as a question ("patching pitfalls", "probing basics")
_ABOUT_A_METHOD_RE = re.compile(r"\b(?:pitfalls?|caveats?|limitations?|card|papers?|citations?|cite|references?|definitions?|intro\w*|overview|"
                                r"explained|explanation|tutorial|basics|101|theory|background|meaning|difference|vs\.?|versus|compared?)\b", re.I)


class OfflinePlanner:
    name = "offline"

    def __init__(self, embedder: Any = "auto", router: Any = None, taggers: dict | None = None):
        """``embedder``: "auto" (the bundled MiniLM if installed), ``None`` (character n-grams only), or an object with ``encode``.
        ``router``: a trained :class:`~gnothi.agents.router.Router` and ``taggers`` the free-text argument
        readers of :mod:`~gnothi.agents.spans` (default: both trained on the dev corpus)."""
        if embedder == "auto":
            if not env_flag("GNOTHI_ROUTER_EMBEDDINGS", True):
                embedder = None  # character n-grams only (fast start; unit tests)
            else:
                from .embed import get_embedder

                embedder = get_embedder()
        self.embedder = embedder
        self._router = router
        self.taggers = taggers

    @property
    def router(self):
        if self._router is None:
            self._router = get_router(self.embedder)
        return self._router

    def warm(self) -> "OfflinePlanner":
        """Train the router and the argument taggers now (seconds) instead of on the first question."""
        from .spans import get_taggers

        _ = self.router
        if self.taggers is None:
            get_taggers()
        return self

    # --------------------------------------------------------------- routing

    def route(self, clause: str, last_tool: str | None) -> tuple[str, float]:
        """The best label for one clause ("followup" is folded into the previous tool).

        Declining (off-topic, injection) needs the router to be sure: below :data:`REFUSE_P` the best
        tool reading wins (the injection guard's rules still decline what they recognise)."""
        if last_tool and _WHY_THAT_RE.match(clause):
            return "methods", 1.0  # "why that layer?": a question about the result just shown
        m = _SAME_UNIT_RE.search(clause) or (_UNIT_WORD_RE.search(clause) if is_followup(clause) and len(strip_quoted(clause).split()) <= 6 else None)
        if last_tool in _UNIT_TOOLS.get(m.group(1).lower() if m else "", ()) and not _NAMES_A_TOOL_RE.search(clause):
            return last_tool, 1.0  # "same head, but on the prompt '...'", "what about neuron 41?": the previous tool, on something new
        label, p = self.router.decide(clause, last_tool)
        if label == "methods" and not TOOLKIT["methods"].asks_on_its_own(clause) and not _ABOUT_A_METHOD_RE.search(clause):
            # "run activation patching", "activation patching on the MLPs only": an order to run a method, not a question about it
            runs = {l: x for l, x in self.router.folded(clause, last_tool).items() if l in TOOLKIT and l not in ("help", "methods")}
            if runs:
                return max(runs.items(), key=lambda kv: kv[1])
        if label in ("help:off_topic", "help:injection") and p < REFUSE_P:
            tools = [(l, x) for l, x in self.router.folded(clause, last_tool).items() if l in TOOLKIT and l != "help"]
            if tools:
                best = max(tools, key=lambda kv: kv[1])
                if best[1] >= REFUSE_ALT_P:
                    return best
        return label, p

    def segments(self, q: str, last_tool: str | None) -> list[tuple[str, str]]:
        """(clause, label) pairs: the whole question, or its clauses when they are separate requests.

        A question is split only when at least two of its clauses, each a request of its own
        (three or more words outside quotes), route to different tools; otherwise the
        sentences are one request with its context ("Who wrote Hamlet? Is it making that up?")."""
        whole = self.route(q, last_tool)
        whole = (_handed(whole[0], q, q), whole[1])
        fields = labelled_fields(q)
        clauses = split_clauses(q) if len(fields) < 2 or not {"context", "question"} & set(fields) else [q]  # "Context: ... Question: ...": one request
        if len(clauses) > 1:
            routed = [(c, (_handed(lab, c, q), p)) for c in clauses for lab, p in [self.route(c, last_tool)]]
            if any(lab == "help:injection" and p >= INJECTION_CLAUSE_P for _, (lab, p) in routed):
                return [(q, "help:injection")]  # an instruction hidden in one clause declines the whole message
            examples = user_examples(q) if whole[0] == "probing" else []
            if examples:  # labelled examples are one probing request, however many sentences they run over
                return self._with_examples(q, routed, examples)
            def words(c: str) -> int:
                return len([w for w in strip_quoted(c).split() if w != "QUOTED"])

            real = [(c, lab) for c, (lab, p) in routed if lab in TOOLKIT and lab != "help" and p >= MULTI_MIN_P
                    and (words(c) >= 3 or _names_a_unit(c) or (words(c) >= 2 and ("QUOTED" in strip_quoted(c) or p >= MULTI_SURE_P)))
                    and TOOLKIT[lab].asks_on_its_own(c) and not _only_context(c)]
            if len({lab for _, lab in real}) >= 2 or (len(real) >= 2 and all(_names_a_unit(c) for c, _ in real)):
                return real
            strong = [lab for _, (lab, p) in routed if lab in TOOLKIT and lab != "help" and p >= MULTI_MIN_P]
            if whole[0].startswith("help:") and not whole[0].endswith("injection") and strong:
                return [(q, strong[0])]  # context that reads as off-topic around one request: the request decides
        return [(q, whole[0])]

    @staticmethod
    def _with_examples(q: str, routed: list[tuple[str, tuple[str, float]]], examples: list[dict]) -> list[tuple[str, str]]:
        """The segments of a message that types labelled examples: one probing request (the message as typed, less
        the clauses that are requests of their own for another tool), and those requests, in the order asked."""
        def holds(c: str) -> bool:
            return any(re.search(rf"(?<!\w){re.escape(x['text'])}(?!\w)", c) for x in examples)

        others = {c: lab for c, (lab, p) in routed if not holds(c) and lab in TOOLKIT and lab not in ("help", "probing")
                  and p >= MULTI_MIN_P and len(strip_quoted(c).split()) >= 3}
        probe = q
        for c in others:
            probe = probe.replace(c, " ", 1)
        out: list[tuple[str, str]] = []
        for c, _ in routed:
            if c in others:
                out.append((c, others[c]))
            elif (probe.strip(), "probing") not in out:
                out.append((probe.strip(), "probing"))
        return out

    # --------------------------------------------------------------- plan

    def plan(self, question: str, ctx: PlanContext | None = None) -> Plan:
        ctx = ctx or PlanContext()
        q, n_invisible = strip_invisible(question or "")
        q = squeeze(q.strip())
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
        done = self._complete_pending(q, ctx)
        if done is not None:
            return done

        q = fix_typos(q)  # "nueron 200 in layr 14": the agents read the corrected words (quotes stay as typed)
        q = name_earlier_prompt(q, ctx)  # "and for the other prompt?": the prompt the last turn quoted besides the one it measured
        last_calls = ctx.last_calls()
        calls: list[ToolCall] = []
        clarify: list[str] = []
        pending_calls: list[dict] = []
        notes: list[str] = []
        whole = extract(q, ctx.n_layers)
        last_tool = last_calls[-1]["tool"] if last_calls else None
        segments = self.segments(q, last_tool)
        for clause, label in segments:
            call = help_call(label)
            if call is not None:
                if call not in calls:
                    calls.append(call)
                continue
            tool = label
            followup = tool == last_tool and is_followup(clause)
            agent = TOOLKIT[tool]
            last = next((c for c in reversed(last_calls) if c["tool"] == tool), None)
            parsed = extract(clause, ctx.n_layers)
            query = Query(clause=clause, question=q if len(segments) == 1 else clause, parsed=parsed,
                          whole=whole if len(segments) == 1 else parsed, followup=followup,
                          last_args=dict(last["args"]) if (last and followup) else {}, entities=ctx.entities(calls),
                          n_layers=ctx.n_layers, d_mlp=ctx.d_mlp, datasets=ctx.datasets, taggers=self.taggers, tool=tool,
                          message_quotes=whole.quotes)
            readings = _shift_layers(agent.extract_all(query), parsed, last if followup else None)
            # "tok='bank' txt='...'": when the agent's own reading lacks something, arguments typed by name are read as if
            # a previous call had set them
            explicit = explicit_args(clause, agent.scalar_fields())
            if explicit and any(need for _, need in readings):
                query.followup, query.last_args = True, {**query.last_args, **explicit}
                readings = _shift_layers(agent.extract_all(query), parsed, last if followup else None)
            if tool == last_tool and not followup and all(need for _, need in readings):
                # not marked as a follow-up, but incomplete on its own: the previous call supplies the rest
                query.followup, query.last_args = True, dict(last["args"]) if last else {}
                readings = _shift_layers(agent.extract_all(query), parsed, last)
            if all(need for _, need in readings):
                other = self._runnable_instead(clause, tool, last_tool, query)
                if other is not None:  # nothing to measure for this tool, and another reading the router rates close can run
                    for call in other:
                        if call not in calls:
                            calls.append(call)
                    continue
            for args, need in readings:
                if need:
                    clarify.append(need)
                    pending_calls.append({"tool": tool, "args": args, "missing": agent.missing(args)})
                    continue
                call = ToolCall(tool=tool, args=args)
                shared = lambda c, args=args: [k for k in args if k in c.args]  # noqa: E731
                same = next((c for c in calls if c.tool == tool and shared(c) and all(c.args[k] == args[k] for k in shared(c))), None)
                if same is not None:  # "...? probe it": one call, with everything either clause said
                    same.args = {**args, **same.args}
                elif call not in calls:
                    calls.append(call)
        real = [c for c in calls if c.tool != "help"]
        if real or clarify:
            calls = real  # a greeting or an aside next to a real request is not a second answer
        elif len(calls) > 1:
            calls = calls[:1]
        if len(calls) > MAX_CALLS:
            notes.append(f"Planned only the first {MAX_CALLS} of {len(calls)} tool calls.")
            calls = calls[:MAX_CALLS]
        if n_invisible:
            notes.append(f"Removed {n_invisible} invisible character{'s' if n_invisible > 1 else ''} (zero-width or direction marks) from the question.")
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

    def _runnable_instead(self, clause: str, tool: str, last_tool: str | None, query: Query) -> list[ToolCall] | None:
        """When ``tool`` cannot be called on ``clause``: the calls of the next reading the router rates at least
        :data:`ALT_RATIO` as likely that can run (a help answer, or another tool whose arguments are all there)."""
        ranked = self.router.folded(clause, last_tool)
        p_tool = ranked.get(tool, 0.0)
        if p_tool >= ALT_MAX_P:
            return None  # sure it is this tool: ask for what is missing
        for label, p in sorted(ranked.items(), key=lambda kv: -kv[1]):
            if label == tool or p < ALT_RATIO * p_tool:
                continue
            if label in ("help:off_topic", "help:injection") and p < REFUSE_P:
                continue  # as in route(): an unsure decline does not replace asking for what the tool needs
            if label == "methods" and not TOOLKIT["methods"].asks_on_its_own(clause) and not _ABOUT_A_METHOD_RE.search(clause):
                continue  # "run activation patching": an order to run it, which asks for its prompt, not a question about it
            call = help_call(label)
            if call is not None:
                return [call]
            other = replace(query, tool=label, followup=False, last_args={})
            readings = TOOLKIT[label].extract_all(other)
            if readings and not any(need for _, need in readings):
                return [ToolCall(tool=label, args=a) for a, _ in readings]
        return None

    def _complete_pending(self, q: str, ctx: PlanContext) -> Plan | None:
        """The plan when ``q`` answers the last turn's clarifying question; None when it is a question of its own."""
        pend = ctx.pending()
        if not pend or pend.get("tool") not in TOOLKIT:
            return None
        agent = TOOLKIT[pend["tool"]]
        missing = pend.get("missing")
        m = BARE_ANSWER_RE.match(words_to_digits(q))
        quotes = _QUOTE_RE.findall(q)
        if missing == "layer" and ctx.n_layers and re.match(r"^\s*(?:the\s+)?(?:last|final|top)(?:\s+(?:one|layer))?\s*[.!]?\s*$", q, re.I):
            args = {**(pend.get("args") or {}), "layer": ctx.n_layers - 1}  # "the last one"
        elif m and missing and missing not in TEXT_ANSWERS:  # "7" in answer to "which layer?"
            args = {**(pend.get("args") or {}), missing: int(m.group(1))}
        elif missing in TEXT_ANSWERS and len(quotes) == 1 and len(strip_quoted(q).split()) <= 4 and not q.rstrip().endswith("?"):
            args = {**(pend.get("args") or {}), missing: next(g for g in quotes[0] if g)}  # "use 'Serena Williams plays the sport of'"
        elif missing in TEXT_ANSWERS and not q.rstrip().endswith("?") and self.route(q, agent.name)[0] in (agent.name, "help:off_topic"):
            # the answer as typed ("The Arc de Triomphe stands in"), unless the agent reads the missing part out of a longer
            # reply ("Oh sorry, the prompt is 'X' and I expect Vienna.", "q was how many legs does a spider have, it said 6")
            read = self._read_answer(q, ctx, agent, pend)
            if read is not None and read.get(missing):
                args = read
            elif len(quotes) == 1:  # "Thanks for asking. The text is 'Winter is coming'."
                args = {**(pend.get("args") or {}), missing: next(g for g in quotes[0] if g)}
            else:
                args = {**(pend.get("args") or {}), missing: bare_reply(q)}
        else:
            parsed = extract(q, ctx.n_layers)
            query = Query(clause=q, question=q, parsed=parsed, whole=parsed, followup=True, last_args=dict(pend.get("args") or {}),
                          entities=ctx.entities(), n_layers=ctx.n_layers, d_mlp=ctx.d_mlp, datasets=ctx.datasets,
                          taggers=self.taggers, tool=agent.name)
            args, need = agent.extract(query)
            if missing in TEXT_ANSWERS and not args.get(missing) and len(quotes) == 1:
                quote = next(g for g in quotes[0] if g)  # the quote answers what was asked for, whatever the agent read it as
                args = {k: v for k, v in args.items() if v != quote} | {missing: quote}
                need = None
            if need:
                return None  # not an answer that completes the call: plan the message as it stands
            label, p = self.route(q, agent.name)
            if label != agent.name and label in TOOLKIT and p >= 0.5:
                other = replace(query, tool=label, followup=False, last_args={})
                if not TOOLKIT[label].extract(other)[1]:
                    return None  # a complete question for another tool: plan it afresh
        call = ToolCall(tool=agent.name, args=args)
        return Plan(reformulated=reformulate([call], q), calls=[call], planner=self.name)

    def _read_answer(self, q: str, ctx: PlanContext, agent, pend: dict) -> dict | None:
        """The pending call completed by the agent's own reading of a reply, when that reading needs nothing more and
        differs from taking the reply whole."""
        parsed = extract(q, ctx.n_layers)
        query = Query(clause=q, question=q, parsed=parsed, whole=parsed, followup=True, last_args=dict(pend.get("args") or {}),
                      entities=ctx.entities(), n_layers=ctx.n_layers, d_mlp=ctx.d_mlp, datasets=ctx.datasets,
                      taggers=self.taggers, tool=agent.name)
        args, need = agent.extract(query)
        missing = pend.get("missing")
        if need or not isinstance(args.get(missing), str) or _squash(args[missing]) == _squash(q):
            return None
        return args


_REPLY_LEAD_RE = re.compile(r"^(?:(?:ok(?:ay)?|sure|yes|yeah|um+|hmm+|well|so)\b[,!.]?\s*)*(?:let'?s\s+(?:go|try)\s+(?:with\s+)?|how about\s+|what about\s+"
                            r"|maybe\s+|i'?d say\s+|go with\s+|try\s+|use\s+)?", re.I)
_REPLY_TAIL_RE = re.compile(r"(?:[\s,]+(?:please|pls|plz|thanks|thx|ty|ofc|lol|then|i guess|maybe))+\s*[.!]*\s*$|\s*[.!]+\s*$", re.I)


def bare_reply(q: str) -> str:
    """A short reply to a clarifying question without its conversational wrapping: "Let's go with space exploration." ->
    "space exploration", "dinosaurs plz" -> "dinosaurs" (a prompt typed as the reply keeps its own words)."""
    s = q.strip()
    core = _REPLY_TAIL_RE.sub("", _REPLY_LEAD_RE.sub("", s, count=1)).strip()
    return (core or s).strip("\"'“”‘’`")


def _squash(s: str) -> str:
    return re.sub(r"\W+", " ", s).strip().lower()


# a list of requests, "X, check Y, and Z": a comma before a request's opening word, in a message whose list ends
# with ", and" (segments() keeps a split only when the parts route to different tools)
_LIST_COMMA_RE = re.compile(
    r",\s+(?=(?:please\s+)?(?:find|search|show|probe|explain|describe|check|patch|look\s+up|tell\s+me|run|trace|list|give|steer|amplify"
    r"|is\s+(?:the\s+)?(?:model|it)|does\s+(?:the\s+)?(?:model|it)|what(?:'s|\s+is|\s+are|\s+does)|which\s+(?:sae\s+)?(?:neurons?|features?|heads?|layers?|latents?))\b)",
    re.I)
_LIST_END_RE = re.compile(r",\s*(?:and|&)\s+(?:then\s+)?\w", re.I)
_SPLIT_RE = re.compile(
    r"\s*(?:;|,\s*then\b|\band\s+then\b|\bthen\s+also\b|\band\s+also\b|\balso\b,?|\bafter\s+that\b|\bplus\b|\.\s+(?=[A-Z])|\?\s+(?=[A-Za-z])"
    r"|,?\s+and\s+(?=(?:please\s+)?(?:find|search|show|probe|explain|describe|check|patch|look|tell|is|are|does|do|what|which|why|how|where|can|could|run|trace|list|give"
    r"|steer|amplify|add|inject|boost|generate|make\s+(?:it|the\s+model))\b)"
    r"|,?\s*(?:and\s+)?while\s+you(?:'re|\s+are)\s+at\s+it\b,?"
    r"|,?\s+(?:and\s+)?(?:once|when|after)\s+(?:that(?:'s|\s+is)|it(?:'s|\s+is)|this\s+is)\s+(?:done|finished|over)\b,?"
    r"|,?\s+and\s+(?=(?:sae\s+)?(?:neuron|feature|head|latent)\s+#?\d|L\d+[NH]\d)"
    r"|\s+[+&]\s+|\s+(?:n|&|and|,)?\s*then\s+"
    r"|(?:^|\s)\(?\d{1,2}\)\s*|(?:^|\n)\s*[-*•]\s+|(?:^|\n)\s*\d{1,2}\s*[-–.:]\s+|(?:^|\s)\(?(?:i|ii|iii|iv|v|vi)\)\s+"
    r"|\s[-–]\s+(?=then\b)|^\s*(?:first(?:ly)?|initially)\b,?|[,;]?\s+(?:second(?:ly)?|third(?:ly)?|finally|lastly|afterwards?|subsequently"
    r"|next(?=\s*,|\s+(?:please\s+)?(?:show|find|search|probe|explain|describe|check|patch|run|trace|list|give|steer|tell|do|try|look|what|which|is|can|could)\b))\b,?)\s*",
    re.I,
)


_LETTER_ITEM_RE = re.compile(r"(?:^|\s)\(?(?P<l>[a-fA-F])\)\s+")


def split_clauses(q: str) -> list[str]:
    """Split on clause connectors outside quotes ("X; and then Y")."""
    masked = _QUOTE_RE.sub(lambda m: "\0" * len(m.group(0)), q)  # the grammar's own quotes (apostrophes are not quotes)
    parts, start = [], 0
    seps = list(_SPLIT_RE.finditer(masked))
    if (end := list(_LIST_END_RE.finditer(masked))):
        # (not after a leading phrase: "For the prompt '...', show ..., and ..." / "In layer 5, which neurons ...")
        lead = re.match(r"\s*(?:for|in|on|at|with|about|from|given|using|after|before|regarding)\b[^,]*,", masked, re.I)
        commas = [m for m in _LIST_COMMA_RE.finditer(masked) if m.start() < end[-1].start() and not (lead and m.start() < lead.end())]
        seps = sorted(seps + commas, key=lambda m: m.start())
    letters = list(_LETTER_ITEM_RE.finditer(masked))
    if [m.group("l").lower() for m in letters][:2] == ["a", "b"]:  # "a) ... b) ...": lettered items, when they run a, b, ...
        seps = sorted(seps + letters, key=lambda m: m.start())
    for m in seps:
        if m.start() < start:
            continue
        if m.start() > start:
            parts.append(q[start:m.start()])
        start = m.end()
    parts.append(q[start:])
    parts = [p.strip(" ,.;") for p in parts if p.strip(" ,.;")]
    parts = [p for p in parts if not re.fullmatch(r"[\w ]{1,20}:", p)] or parts  # a heading ("Tasks:") is no request
    return parts or [q]


def _shift_layers(readings: list, parsed, last: dict | None) -> list:
    """"One layer up" in a follow-up: the previous call's layer moved by the delta the grammar read."""
    if parsed.layer_delta is None or parsed.layer is not None or not last or not isinstance((last.get("args") or {}).get("layer"), int):
        return readings
    out = []
    for args, need in readings:
        args = {**args, "layer": last["args"]["layer"] + parsed.layer_delta}
        out.append((args, need))
    return out


def help_call(label: str) -> ToolCall | None:
    """The help call a router label stands for ("help:off_topic"), or None for a tool label."""
    kind, _, what = label.partition(":")
    return ToolCall(tool="help", args={"reason": what}) if kind == "help" else None


# a sentence about the asker, with no request in it: context for the request beside it ("So I'm trying to build some
# intuition for attention.", "I've heard heads can track pronouns.")
_ABOUT_ME_RE = re.compile(r"^(?:(?:so|well|ok(?:ay)?|basically|hi|hey)\b[,!]?\s*)*(?:i'?m|i\s+am|i'?ve|i\s+have|i\s+was|i\s+keep|i\s+heard|i\s+read"
                          r"|i\s+think|i\s+saw|i\s+know|we'?re|we\s+are|we'?ve|my|our|someone|people)\b", re.I)
_REQUEST_CUE_RE = re.compile(r"\?|\b(?:can|could|would|will)\s+(?:you|we|i)\b|\bplease\b|\b(?:want|need|like|wondering|curious|looking\s+for|searching\s+for|interested\s+in)\b|\bshow\b|\btell\s+me\b", re.I)


def _only_context(clause: str) -> bool:
    return bool(_ABOUT_ME_RE.match(clause.strip())) and not _REQUEST_CUE_RE.search(clause)


def _handed(label: str, clause: str, message: str) -> str:
    """The agent that measures what ``clause`` (of ``message``) asks, when the routed one hands it over
    ("which heads matter for '...'?": heads on one prompt are found by patching them)."""
    if label not in TOOLKIT:
        return label
    if label not in ("methods", "help") and (defines(clause) or judges(clause)):
        return "methods"  # "What's an induction head?", "is it misleading to call it a cat neuron?": the method, not a run of it
    e = extract(clause)
    handed = TOOLKIT[label].hand_over(Query(clause=clause, question=message, parsed=e, whole=extract(message) if message != clause else e, tool=label))
    return handed if handed in TOOLKIT else label


def _names_a_unit(clause: str) -> bool:
    """The clause names a neuron, head or feature of its own ("and L1H0 on the same prompt")."""
    e = extract(clause)
    return bool(e.units or e.head is not None or e.features)


def reformulate(calls: list[ToolCall], question: str) -> str:
    """What will be measured: each planned call's own sentence."""
    parts = [TOOLKIT[c.tool].reformulate(c.args) for c in calls if c.tool in TOOLKIT]
    return " Then: ".join(parts) if parts else question.strip()
