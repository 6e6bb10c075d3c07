"""Neuron explainer: what one MLP neuron responds to, or which neurons fire on a token."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from gnothi.tools import neurons
from gnothi.tools.errors import InputError
from gnothi.tools.results import ToolResult

from ..extract import _AFTER_COLON_RE, strip_quoted

from .base import adds_while_writing, Args, Query, Row, ToolAgent, adopt, check_text, context_lines, described, num, pct, register

if TYPE_CHECKING:
    from gnothi.tools.model import ModelHandle


class NeuronArgs(Args):
    """Explain an MLP neuron (``layer``, ``neuron``), or find the neurons most active on a ``token``."""

    layer: int | None = Field(None, description="layer index (0-based; -1 = the last layer)")
    neuron: int | None = Field(None, description="neuron index within the layer's MLP (0-based)")
    token: str | None = Field(None, description="a token: find the neurons most active on it")
    text: str | None = Field(None, description="a text containing the token (default: the token alone)")
    k: int = Field(10, ge=1, le=50, description="how many top contexts (or neurons) to show")

    @field_validator("token", "text")
    @classmethod
    def _tok(cls, v, info):
        return check_text(v, info.field_name)


_TOKEN_CUE = re.compile(r"\b(?:token|word|fire|fires|firing|activate|activates|active|respond|responds|light up|lights up|promot\w*|push\w*|boost\w*|excit\w*)\b"
                        r"|\bneurons\s+(?:for|on|about|by)\b|\bneurons\b.{0,30}\b(?:on|by|for)\s+QUOTED", re.I)


@register
class NeuronExplainer(ToolAgent[NeuronArgs]):
    name = "neuron_explainer"
    title = "Neuron explainer"
    description = ("Explain what a single MLP neuron (layer and index) responds to, with its top activating contexts and "
                   "an explanation score; or find the neurons most active on a token.")
    examples = [
        "what does neuron 340 in layer 7 respond to?",
        "explain L7 N340",
        "show the top activating examples of neuron 12.345",
        "which neurons fire on the token 'Paris'?",
    ]
    Args = NeuronArgs
    next_steps_text = [
        "look at a neighbouring layer ('now layer N')",
        "check the explanation on your own text: quote a prompt that should make it fire",
        "ask which neurons fire on a token from the top contexts",
    ]

    def extract(self, q: Query) -> tuple[dict[str, Any], str | None]:
        e = q.parsed
        args = {k: v for k, v in q.last_args.items() if k in ("layer", "neuron", "token", "text", "k")} if q.followup else {}
        if e.layer is not None:
            args["layer"] = e.layer
        elif e.last_layer:
            args["layer"] = q.n_layers - 1 if q.n_layers else -1
        if e.neuron is not None:
            args["neuron"] = e.neuron
            args.pop("token", None)
            args.pop("text", None)
        if "neuron" not in args and q.entities.get("neuron") is not None and re.search(r"\b(?:that|this|the same|it|its)\b", q.clause, re.I):
            args["neuron"] = q.entities["neuron"]
            args.setdefault("layer", q.entities.get("layer"))
        if "neuron" not in args and _TOKEN_CUE.search(strip_quoted(q.clause)):
            tok, text = None, None
            hit = q.span("token")
            if hit:
                tok = hit[0]
                longer = [x for x in q.quotes if x != tok and tok.strip() in x]
                text = longer[0] if longer else None
            elif q.quotes:
                short = [x for x in q.quotes if len(x.split()) <= 2]
                tok = short[0] if short else None
                longer = [x for x in q.quotes if x != tok and tok and tok.strip() in x]
                text = longer[0] if longer else None
            if tok is None:
                m = re.search(r"\b(?:token|word)\s+(\w[\w'-]*)", q.clause) or re.search(r"\b(?:on|for|by)\s+(?:the\s+)?([A-Z][\w'-]*)\s*\??\s*$", q.clause)
                if m is None and e.prompt:  # "In the sentence The quantum computer overheated, ... most active on quantum?"
                    m = re.search(r"\b(?:on|for|by)\s+(?:the\s+)?(\w[\w'-]*)\s*\??\s*$", q.clause)
                    m = m if m and m.group(1).lower() in e.prompt.lower().split() else None
                tok = m.group(1) if m else None
            if tok:
                args["token"] = tok
                if text:
                    args["text"] = text
                elif e.prompt and tok.strip().lower() in e.prompt.lower():
                    args["text"] = e.prompt  # "... for the word dog when the text is: the dog barked"
                elif (m := _AFTER_COLON_RE.search(strip_quoted(q.clause))) and "QUOTED" not in m.group("p") and tok.strip().lower() in m.group("p").lower():
                    args["text"] = m.group("p").strip()  # "which neurons light up for 'def' here: def parse(args): return args"
        if q.followup and args.get("token") and q.quotes and not e.neuron and q.last_args.get("token"):
            longer = [x for x in q.quotes if args["token"].strip().lower() in x.lower() and x != args["token"]]
            if longer:
                args["text"] = longer[0]  # "what about in 'we fished from the bank'": the same token in a new text
        if q.followup and args.get("layer") is not None and e.neuron is None and e.layer is None and not e.k and q.bare_number() is not None:
            args["neuron"] = q.bare_number()  # "and 341?" after neuron 7.340
        if "token" in args and not args.get("text") and q.referred_prompt():
            args["text"] = q.referred_prompt()  # "... on 'pizza' in that sentence"
        if e.k:
            args["k"] = e.k
        args = {k: v for k, v in args.items() if v is not None}
        nl = f" This model has {q.n_layers} layers (0 to {q.n_layers - 1})." if q.n_layers else ""
        if "neuron" not in args and "token" not in args:
            if args.get("layer") is not None:
                return args, f"Which neuron in layer {args['layer']}? Give its index, e.g. 'neuron 340 in layer {args['layer']}'."
            return args, "Which neuron? Give a layer and an index, e.g. 'L7 N340', '7.340' or 'neuron 340 in layer 7'." + nl
        if "neuron" in args and args.get("layer") is None:
            return args, f"Which layer is neuron {args['neuron']} in? Say e.g. 'neuron {args['neuron']} in layer 7'." + nl
        return args, None

    def extract_all(self, q: Query):
        if q.parsed.negative_units:
            l, n = q.parsed.negative_units[0]
            return [({}, f"Layers and neurons are numbered from 0, so -{l}.{n} names no neuron. Did you mean neuron {l}.{n}?")]
        if len(q.parsed.units) > 1:  # "what do L23N461 and L21N1254 do?": one call per unit
            out = []
            for layer, neuron in q.parsed.units:
                args = {"layer": layer, "neuron": neuron}
                if q.parsed.k:
                    args["k"] = q.parsed.k
                out.append((args, None))
            return out
        return [self.extract(q)]

    def hand_over(self, q: Query) -> str | None:
        # "inject L20N101 during decoding, scale 10", "amplify neuron 8.77 by 10 while it writes": adding the unit's
        # direction while the model generates is steering
        return "steering" if adds_while_writing(q.clause) else None

    def missing(self, args):
        if args.get("neuron") is not None and args.get("layer") is None:
            return "layer"
        if args.get("layer") is not None and args.get("neuron") is None and not args.get("token"):
            return "neuron"
        return None

    def reformulate(self, a):
        if a.get("neuron") is not None:
            lay = "the last layer" if a.get("layer") == -1 else f"layer {a.get('layer')}"
            return (f"Explain MLP neuron {a['neuron']} in {lay}: its top {a.get('k', 10)} activating contexts from the activation store, "
                    "an explanation, and how well that explanation predicts the neuron on held-out text.")
        where = f" in {a['text']!r}" if a.get("text") else ""
        return f"Rank the MLP neurons by how strongly they fire on the token {a.get('token')!r}{where}."

    def execute(self, handle: ModelHandle, a: NeuronArgs, llm: Any = None) -> ToolResult:
        layer = handle.n_layers - 1 if a.layer == -1 else a.layer
        if a.neuron is None and a.token:
            top = neurons.top_neurons_for_token(handle, text=a.text or a.token, token=a.token, layer=layer, k=a.k)
            return adopt(top.to_tool_result(handle=handle), self.name)
        if layer is None or a.neuron is None:
            raise InputError("Which neuron? I need a layer and a neuron index.", "Say e.g. 'what does neuron 340 in layer 7 do?' (or 'L7 N340', '7.340').")
        rep = neurons.explain_neuron(handle, layer, a.neuron, llm=llm, n_contexts=a.k)
        return adopt(rep.to_tool_result(handle=handle), self.name)


    def answer(self, r):
        h = r.headline
        if "pearson" not in h and "top" not in h:
            return super().answer(r)
        if "pearson" not in h:  # neurons ranked on a token
            top = h.get("top") or []
            return (f"Neuron {top[0]} fires most on that token; {len(r.evidence)} neurons are ranked by "
                    f"{'activation relative to their own maximum' if h.get('ranked_by') == 'relative' else 'raw activation'}." if top
                    else "No neuron fires above zero on that token.")
        label = r.provenance.get("unit") or ""
        p, c = h.get("pearson"), h.get("shuffled_pearson")
        fit = ("predicts its activations well" if p >= 0.5 else "predicts its activations moderately" if p >= 0.3
               else "predicts its activations only weakly" if p >= 0.15 else "barely predicts its activations") if isinstance(p, float) else ""
        beats = " (far better than a shuffled explanation)" if isinstance(c, float) and isinstance(p, float) and p - c >= 0.1 else ""
        who = f"Neuron {r.provenance.get('layer')}.{label}" if label != "" else "The neuron"
        return f"{who} {described(h.get('explanation'))}. That explanation {fit} on held-out text{beats}."

    def table(self, r):
        h = r.headline
        if "pearson" not in h and "top" not in h:
            return super().table(r)
        if "pearson" not in h:
            return [Row(f"Neuron {e.get('layer')}.{e.get('neuron')}", num(e.get("activation")),
                        f"{pct(e.get('relative'))} of its maximum" if e.get("relative") is not None else "")
                    for e in r.evidence[:6] if e.get("kind") == "neuron"]
        rows = [Row("Explanation score (Pearson r, simulated vs real activations, held-out)", num(h.get("pearson")),
                    f"{num(h.get('shuffled_pearson'))} for a shuffled explanation")]
        if h.get("max_activation") is not None:
            rows.append(Row("Largest activation in the store", num(h.get("max_activation"))))
        if h.get("frequency") is not None:
            rows.append(Row("Fires on", pct(h.get("frequency")) + " of tokens"))
        if h.get("promotes"):
            rows.append(Row("Output tokens it promotes", ", ".join(repr(t) for t in h["promotes"][:5]),
                            "suppresses " + ", ".join(repr(t) for t in (h.get("suppresses") or [])[:5])))
        if h.get("n_modes"):
            rows.append(Row(f"{h['n_modes']} modes together (Pearson r)", num(h.get("modes_pearson")),
                            "better than one explanation" if h.get("modes_beat_single") else "no better than one explanation"))
        return rows

    def evidence(self, r):
        return context_lines(r)

    def suggestions(self, r, args, n_layers=None):
        if args.get("neuron") is None:
            top = (r.headline.get("top") or [None])[0]
            return [f"explain neuron {top}"] if top else []
        l, n = args.get("layer"), args.get("neuron")
        out = [f"explain neuron {n} in layer {l + 1}"] if isinstance(l, int) and l >= 0 and (n_layers is None or l + 1 < n_layers) else []
        toks = [e for e in r.spans[:1] if e.tokens]
        if toks:
            best = max(range(len(toks[0].values)), key=lambda i: toks[0].values[i])
            word = toks[0].tokens[best].strip()
            if word:
                out.append(f"which neurons fire on the token '{word}'?")
        out.append(f"show the top 20 examples of neuron {l}.{n}")
        return out[:3]

    def entities(self, args, result):
        if args.get("neuron") is not None:
            return {"neuron": args["neuron"], "layer": args.get("layer")}
        ev = ((result or {}).get("evidence") or [{}])[0]
        if isinstance(ev, dict) and isinstance(ev.get("neuron"), int):
            return {"neuron": ev["neuron"], "layer": ev.get("layer")}
        return {}
