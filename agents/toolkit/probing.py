"""Linear probes: which layers encode a property, on a built-in dataset or the user's own examples."""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, field_validator

from gnothi.tools import datasets, probing
from gnothi.tools.errors import InputError, check_range
from gnothi.tools.results import ToolResult

from ..extract import NOTATION_KEYS
from .base import Args, Query, Row, ToolAgent, adopt, num, register

if TYPE_CHECKING:
    from gnothi.tools.model import ModelHandle


class LabeledText(BaseModel):
    text: str
    label: str


class ProbeArgs(Args):
    """Train linear probes on each layer's residual stream: which layers know a property of the input."""

    dataset: str | None = Field(None, description="a built-in probing dataset: " + ", ".join(datasets.dataset_names()))
    examples: list[LabeledText] | None = Field(None, description="the user's own labelled examples (instead of a dataset)")
    layers: list[int] | None = Field(None, description="layers to probe (default: all)")
    position: Literal["last", "mean"] = "last"

    @field_validator("dataset")
    @classmethod
    def _known(cls, v):
        if v is None:
            return v
        names = datasets.dataset_names()
        if v not in names:
            raise ValueError(f"unknown dataset {v!r}; use one of {', '.join(names)}")
        return v


# the words people use for each built-in dataset's property
DATASET_WORDS = {
    "true_false": r"\btrue\s*(?:/|vs\.?|or|and)?\s*false\b|\btruefalse\b|\btru(?:e|th|thful\w*|ths)\b|\bfalse(?:hood)?\b|\bfactual\w*\b|\bcorrect(?:ness)?\b|\blies\b|\blying\b|\baccura(?:te|cy) (?:statement|fact|claim)s?\b|\bfacts? (?:are|is) (?:right|wrong)\b|\bwrong\b",
    "sentiment": r"\bsentiment\b|\bpositive\b|\bnegative\b|\breviews?\b|\bemotion\w*|\bhappy\b|\bsad\b|\bmood\b|\bpolarity\b|\btone\b|\bfeel(?:s|ing)? (?:good|bad)\b|\bpraise|\bcomplain",
    "question_vs_statement": r"\bq\s+vs\.?\s+statements?\b|\bq(?:uestion)?s?[- ]?(?:vs\.?|v|/)[- ]?(?:s|stmts?|stmnts?|statements?)\b|\bquestions?\b.{0,40}\bstatements?\b|\bstatements?\b.{0,40}\bquestions?\b|\bis\s+a\s+question\b|\bquestions?\s+(?:vs\.?|or|from|versus)\b|\binterrogative\b|\bstatements?\s+(?:vs\.?|or|from|versus)\s+questions?\b|\basking\s+(?:something|(?:a\s+)?questions?)\b|\b(?:asking|telling)\b.{0,30}\b(?:telling|asking|stating)\b|\bquestion[- ]ness\b|\bquestion or (?:a )?statement\b",
    "code_vs_prose": r"\bcode\b|\bprogramming\b|\bpython\b|\bsource\b|\bprose\b",
    "singular_vs_plural": r"\bplural\w*\b|\bsingular\b|\bgrammatical number\b|\bnumber agreement\b|\bagreement\b|\bsg[- ]?(?:vs\.?|v|/)[- ]?pl\b"
                          r"|\b(?:one|a single|single)\s+(?P<thing>[a-z]+)\b[^.?!]{0,20}\b(?:many|several|multiple|lots of|a lot of|two|more)\s+(?P=thing)(?:s|es)\b"
                          r"|\bone\s+or\s+(?:many|more|several)\b|\bmore than one\b",
}

_LABEL_WORD = r"[A-Za-z][\w-]{0,24}"
_Q = r"\"([^\"]+)\"|“([^”]+)”|'([^']+)'"
# "great movie" (positive) / "great movie" -> positive / "great movie" = positive / "great movie": positive
_PAIR_RE = re.compile(rf"(?:{_Q})\s*(?:\(\s*(?P<l1>{_LABEL_WORD})\s*\)|(?:->|=>|→|=|:|is|as|labelled|labeled)\s+(?P<l2>{_LABEL_WORD})\b|(?P<l3>{_LABEL_WORD})(?=\s*(?:[,;.?!)]|$|\s+(?:and|or)\b)))")
_ARROW_RE = re.compile(r"(?:^|[,;:?!|/\n]|\band\b|\.\s)\s*(?P<text>(?:[^,;:?!|/\n\"'“”.]|\.(?!\s))+?)\s*(?:->|=>|→)\s*(?P<label>[A-Za-z0-9][\w-]{0,24})\b")
# unquoted: I am furious (anger), what a lovely surprise (joy)
_PAREN_RE = re.compile(rf"(?:^|[,;:?!\n]|\band\b|\b\d{{1,2}}\))\s*(?P<text>[^,;:?!\n()\"“”]+?)\s*\(\s*(?P<label>{_LABEL_WORD})\s*\)")
# a table: Paris | city (one row a line, or "text | label" header first)
_PIPE_RE = re.compile(rf"^\s*\|?\s*(?P<text>[^|\n]+?)\s*\|\s*(?P<label>{_LABEL_WORD})\s*\|?\s*$", re.M)
# label=en text=good morning; text=... label=...
_KEYED_RE = re.compile(r"\blabel\d*\s*[=:]\s*(?P<l1>[\w-]{1,24})[\s,]+text\d*\s*[=:]\s*(?P<t1>\"[^\"]+\"|'[^']+'|[^;,\n]+?)\s*(?=[;,]|\n|$|\blabel\d*\s*[=:])"
                       r"|\btext\d*\s*[=:]\s*(?P<t2>\"[^\"]+\"|'[^']+'|[^;\n]+?)[\s,;]+label\d*\s*[=:]\s*(?P<l2>[\w-]{1,24})", re.I)
# a CSV pasted in: a "text,label" header, then one "text,label" row a line
_CSV_HEADER = re.compile(r"^\s*(?:text|sentence|example|input)\s*,\s*(?:label|class|tag|category)\s*$", re.I | re.M)
# "Group A (sarcastic): 'a', 'b'. Group B (sincere): 'c'"
_PAREN_GROUP_RE = re.compile(rf"\((?P<label>{_LABEL_WORD})\)\s*:\s*(?P<items>(?:(?:{_Q})\s*(?:,|and|or|;)?\s*)+)")
# inline labels: "1: you are an idiot 0: have a nice day" (each label used at least twice)
_INLINE_LABEL_RE = re.compile(r"(?:^|(?<=\s))(?P<label>[\w-]{1,12}):\s+(?P<text>.+?)\s*(?=\s[\w-]{1,12}:\s|$)", re.S)
_TRAILING_ASK = re.compile(r"[\s.?]+(?:which|what|where|how|does|can|could|probe|please|find|show|tell)\b.*$", re.I)
# positive: "a", "b"; negative: "c" / positive examples "a", "b" and negative ones "c"
_GROUP_RE = re.compile(rf"(?P<label>{_LABEL_WORD})(?:\s+(?:examples?|ones|sentences|texts|statements|class))?\s*(?::|=|are|is|like|such as|e\.g\.)?\s*(?P<items>(?:(?:{_Q})\s*(?:,|and|or|;)?\s*)+)", re.I)
_ITEM_RE = re.compile(_Q)
# tuples: ("2+2=4", correct), ('awful', negative)
_TUPLE_RE = re.compile(rf"\(\s*(?:{_Q})\s*,\s*(?P<label>{_LABEL_WORD})\s*\)")
# unquoted word=label lists: dog=animal, oak=plant (not the options of a call: dataset=sentiment, position=mean)
_NOT_EXAMPLE_KEYS = set(NOTATION_KEYS) | {"dataset", "data", "position", "pos", "pool", "pooling", "layers", "layer", "mode", "source", "probe", "k"}
_EQ_RE = re.compile(rf"(?:^|(?<=[\s,;:]))(?P<text>[A-Za-z][\w'-]{{0,30}})\s*=\s*(?P<label>{_LABEL_WORD})(?=\s*(?:[,;.?!)]|$|\s+(?:and|or)\b))")
_SKIP_LABELS = {"and", "or", "the", "like", "as", "e.g", "examples", "example", "sentences", "texts", "with", "on", "for", "probe", "vs", "versus", "about",
                "in", "of", "at", "to", "from", "into", "by", "token", "tokens", "word", "words", "neuron", "neurons", "feature", "features",
                "head", "heads", "layer", "layers", "string", "phrase", "sentence",
                "between", "q", "a", "question", "answer", "context", "text", "label", "prompt", "clean", "corrupted", "original",
                "counterfactual", "base", "source", "target"}
_BRACKET_RE = re.compile(rf"(?:^|[,;:\n])\s*(?P<text>[^,;:\n\[\]]+?)\s*\[(?P<label>{_LABEL_WORD})\]")


# a quote whose marks are not apostrophes inside words ("Here's ... 'She walked home'"); a word's own apostrophe may sit inside
_WHOLE_QUOTE_RE = re.compile(r"(?<![\w'])'(?P<a>(?:[^'\n]|(?<=\w)'(?=\w))+?)'(?![\w'])|\"(?P<b>[^\"\n]+)\"|“(?P<c>[^”\n]+)”")
# a label written right after a quote: 'a' (europe), 'a' label warm, 'a' -> past, 'a' = x, 'a': x
_LABEL_AFTER_RE = re.compile(rf"^\s*(?:\(\s*(?P<p>{_LABEL_WORD})\s*\)|(?:label(?:led|ed)?|class|tag|category|as|->|=>|→|=|:)\s*(?P<w>{_LABEL_WORD})\b)", re.I)
# ... or right before it: past: 'a', sarcastic - 'a', x = 'a', (x) 'a'
_LABEL_BEFORE_RE = re.compile(rf"(?:^|[\s,;(])(?P<l>(?:(?:not|non|no)[\s-]+)?{_LABEL_WORD})\s*(?::|-|–|—|=|->|=>|→|\))\s*$", re.I)  # "not food: 'a'"


def _labels_by_quotes(text: str) -> list[dict]:
    """Examples where every quote carries its label on the same side ('a' (x), 'b' (y) / x: 'a', y - 'b'): [] otherwise."""
    quotes = list(_WHOLE_QUOTE_RE.finditer(text))
    if len(quotes) < 2:
        return []
    gaps = [text[(quotes[i - 1].end() if i else 0):q.start()] for i, q in enumerate(quotes)] + [text[quotes[-1].end():]]
    for side in ("after", "before"):
        rows = []
        for i, q in enumerate(quotes):
            m = _LABEL_AFTER_RE.match(gaps[i + 1]) if side == "after" else _LABEL_BEFORE_RE.search(gaps[i])
            label = (m.group("p") or m.group("w")) if (m and side == "after") else (m.group("l") if m else None)
            if not label or label.lower() in _SKIP_LABELS or len(label) < 2:
                break
            rows.append({"text": next(g for g in q.group("a", "b", "c") if g is not None), "label": label.lower()})
        else:
            counts = Counter(r["label"] for r in rows)
            if len(counts) >= 2 and min(counts.values()) >= 2:  # "sentence X: 'a' sentence Y: 'b'" names prompts, not classes
                return rows
    return []


_LINE_RE = re.compile(rf"^\s*(?P<label>{_LABEL_WORD})\s*:\s*(?P<text>[^\n]+?)\s*$", re.M)


def _strip_request(t: str) -> str:
    """An example's text without the request typed before it ("Train a probe on: I am furious" -> "I am furious")."""
    t = t.strip().strip("\"'“”`")
    return re.sub(r"^(?:train|fit|run|probe|make)\b[^:]*:\s*", "", t, flags=re.I).strip()


def user_examples(text: str) -> list[dict]:
    """Labelled examples typed into a question, in the usual notations; [] when there are none."""
    m = re.search(r"\[\s*\{.*\}\s*\]", text, re.S)
    if m:  # a JSON list pasted in: [{"text": ..., "label": ...}, ...]
        import json

        try:
            data = json.loads(m.group(0))
            rows = [{"text": str(x["text"]), "label": str(x["label"]).lower()} for x in data if isinstance(x, dict) and "text" in x and "label" in x]
            if len({r["label"] for r in rows}) >= 2:
                return rows
        except (ValueError, TypeError):
            pass
    if (h := _CSV_HEADER.search(text)):
        rows = []
        for line in text[h.end():].splitlines():
            if not line.strip():
                continue
            if "," not in line:
                break
            t, _, lab = line.rpartition(",")
            if not t.strip() or not re.fullmatch(r"\s*[\w-]{1,24}\s*", lab):
                break
            rows.append({"text": t.strip().strip("\"'“”"), "label": lab.strip().lower()})
        if len(rows) >= 2 and len({r["label"] for r in rows}) >= 2:
            return rows
    brackets = [{"text": m.group("text").strip(), "label": m.group("label").lower()} for m in _BRACKET_RE.finditer(text)]
    if len(brackets) >= 2 and len({b["label"] for b in brackets}) >= 2:
        return brackets
    lines = [{"text": m.group("text").strip().strip("\"'“”"), "label": m.group("label").lower()} for m in _LINE_RE.finditer(text)
             if m.group("label").lower() not in _SKIP_LABELS | {"examples", "example"}]
    if len(lines) >= 2 and len({x["label"] for x in lines}) >= 2 and "\n" in text:
        return lines
    keyed = [{"text": (m.group("t1") or m.group("t2")).strip().strip("\"'“”"), "label": (m.group("l1") or m.group("l2")).lower()}
             for m in _KEYED_RE.finditer(text)]
    if len(keyed) >= 2 and len({x["label"] for x in keyed}) >= 2:
        return keyed
    piped = [{"text": m.group("text").strip().strip("\"'“”"), "label": m.group("label").lower()} for m in _PIPE_RE.finditer(text)]
    piped = [x for x in piped if not (x["text"].lower() in ("text", "sentence", "example", "input") and x["label"] in ("label", "class", "tag"))]
    if len(piped) >= 2 and len({x["label"] for x in piped}) >= 2:
        return piped
    quoted = _labels_by_quotes(text)
    if quoted:
        return quoted
    tuples = [{"text": next(g for g in m.groups()[:3] if g is not None), "label": m.group("label").lower()} for m in _TUPLE_RE.finditer(text)]
    if len(tuples) >= 2 and len({x["label"] for x in tuples}) >= 2:
        return tuples
    pairs = []
    for m in _PAIR_RE.finditer(text):
        t = next(g for g in m.groups()[:3] if g is not None)
        lab = m.group("l1") or m.group("l2") or m.group("l3")
        if lab.lower() not in _SKIP_LABELS:
            pairs.append({"text": t, "label": lab.lower()})
    if len(pairs) >= 2 and len({p["label"] for p in pairs}) >= 2:
        return pairs
    groups: list[dict[str, str]] = []  # "Group A (sarcastic): 'a', 'b'"
    for m in _PAREN_GROUP_RE.finditer(text):
        groups.extend({"text": next(g for g in x.groups() if g is not None), "label": m.group("label").lower()} for x in _ITEM_RE.finditer(m.group("items")))
    if len({g["label"] for g in groups}) >= 2:
        return groups
    for pat in (_ARROW_RE, _PAREN_RE):
        found = [{"text": _strip_request(m.group("text")), "label": m.group("label").lower()} for m in pat.finditer(text)
                 if pat is _ARROW_RE or m.group("label").lower() not in _SKIP_LABELS]  # "-> text" names its label
        found = [x for x in found if x["text"]]
        if len(found) >= 2 and len({a["label"] for a in found}) >= 2:
            return found
    eqs = [{"text": m.group("text"), "label": m.group("label").lower()} for m in _EQ_RE.finditer(text)
           if m.group("label").lower() not in _SKIP_LABELS and m.group("text").lower() not in _NOT_EXAMPLE_KEYS]
    if len(eqs) >= 2 and len({x["label"] for x in eqs}) >= 2:
        return eqs
    groups = []
    for m in _GROUP_RE.finditer(text):
        lab = m.group("label").lower()
        if lab in _SKIP_LABELS:
            continue
        items = [next(g for g in x.groups() if g is not None) for x in _ITEM_RE.finditer(m.group("items"))]
        groups.extend({"text": t, "label": lab} for t in items)
    if len({g["label"] for g in groups}) >= 2:
        return groups
    body = re.sub(r"^[^:]*?\b\w+\s*=\s*\w+(?:\s*,\s*\w+\s*=\s*\w+)*\s*[.;]\s*", "", text)  # a legend first: "1 = toxic, 0 = fine."
    inline = [{"text": m.group("text").strip(" ,;.\"'“”"), "label": m.group("label").lower()}
              for m in _INLINE_LABEL_RE.finditer(body) if m.group("label").lower() not in _SKIP_LABELS]
    if inline:  # the request typed after the last example is not part of it
        inline[-1]["text"] = _TRAILING_ASK.sub("", inline[-1]["text"]).strip(" ,;.\"'“”")
    counts = Counter(x["label"] for x in inline)
    if len(inline) >= 4 and len(counts) >= 2 and min(counts.values()) >= 2 and all(x["text"] for x in inline):
        return inline
    return []


def find_dataset(text: str, names: list[str] | None = None) -> str | None:
    """The built-in dataset a text names or describes."""
    low = text.lower()
    names = names or datasets.dataset_names()
    for n in names:
        if re.search(rf"\b{re.escape(n.lower())}\b", low):
            return n
    for n, pat in DATASET_WORDS.items():
        if n in names and re.search(pat, low):
            return n
    return None


@register
class Probing(ToolAgent[ProbeArgs]):
    name = "probing"
    title = "Linear probes"
    description = "Train linear probes on each layer's activations to find which layers encode a property (truth, sentiment, question vs statement, code, plural), on a built-in dataset or the user's own labelled examples."
    examples = [
        "which layers know whether a statement is true?",
        "probe layers 3 to 7 for sentiment",
        'probe for "I loved it" (positive), "awful film" (negative), ...',
    ]
    Args = ProbeArgs
    next_steps_text = [
        "explain a neuron in the best layer ('explain neuron N in layer L')",
        "probe another property to compare the layer profile",
    ]

    def extract(self, q: Query) -> tuple[dict[str, Any], str | None]:
        e = q.parsed
        args = {k: v for k, v in q.last_args.items() if k in ("dataset", "examples", "layers", "position")} if q.followup else {}
        exs = user_examples(q.clause) or user_examples(q.question)
        if exs:
            args["examples"] = exs
            args.pop("dataset", None)
        else:
            ds = find_dataset(q.clause, q.datasets) or (None if q.followup else find_dataset(q.question, q.datasets))
            if ds:
                args["dataset"] = ds
                args.pop("examples", None)
        if e.layers:
            args["layers"] = e.layers
        elif e.layer is not None:
            args["layers"] = [e.layer]
        noted_pos = (e.noted.get("position") or [""])[0].lower()
        if noted_pos in ("mean", "last"):
            args["position"] = noted_pos
        elif re.search(r"\b(?:mean|averag\w*)(?:d|-pooled|\s+pool(?:ed|ing)?)?\b|\ball (?:the )?(?:tokens|positions)\b", q.clause, re.I):
            args["position"] = "mean"
        elif re.search(r"\b(?:last|final|end)[- ](?:token|tok)\b|\b(?:last|final)[- ](?:token[- ])?position\b", q.clause, re.I):
            args["position"] = "last"
        if not args.get("dataset") and not args.get("examples"):
            names = ", ".join(q.datasets or datasets.dataset_names())
            return args, (f"Which property should the probes look for? Built in: {names}. Or type your own labelled examples, "
                          f"e.g. \"I loved it\" (positive), \"awful film\" (negative), ... (at least {datasets.MIN_EXAMPLES}, "
                          f"{datasets.MIN_PER_CLASS} per class).")
        return args, None

    def reformulate(self, a):
        ls = a.get("layers")
        where = f"layers {', '.join(map(str, ls))}" if ls else "every layer"
        what = (f"your {len(a['examples'])} labelled examples" if a.get("examples") else f"the built-in {a.get('dataset')!r} dataset")
        return (f"Train a linear probe on {where} ({a.get('position', 'last')} token) on {what}, and compare its test accuracy "
                "with a control task of shuffled labels.")

    def execute(self, handle: ModelHandle, a: ProbeArgs, llm: Any = None) -> ToolResult:
        for layer in a.layers or []:
            check_range("layer", layer, handle.n_layers)
        data: str | datasets.LabeledDataset
        if a.examples:
            data = datasets.from_examples([x.model_dump() for x in a.examples])
        elif a.dataset:
            data = a.dataset
        else:
            raise InputError("Which property should the probes look for?", f"Name a dataset: {', '.join(datasets.dataset_names())}, or give labelled examples.")
        rep = probing.run_probe(handle, data, layers=a.layers, position=a.position, save=not a.examples)
        return adopt(rep.to_tool_result(), self.name)


    def answer(self, r):
        h = r.headline
        if "best_accuracy" not in h:
            return super().answer(r)
        sel = h.get("selectivity")
        if sel is None and isinstance(h.get("control_accuracy"), float):
            sel = h["best_accuracy"] - h["control_accuracy"]
        verdict = ("clearly above the control task, so the layer encodes the property rather than the probe memorising labels"
                   if isinstance(sel, float) and sel >= 0.1 else
                   "only a little above the control task: weak evidence that the layer encodes it" if isinstance(sel, float) and sel > 0.02
                   else "no better than the control task: no layer shows that it encodes the property")
        first = h.get("first_layer_near_best")
        early = f" It is readable almost as well from layer {first} on." if isinstance(first, int) and first != h.get("best_layer") else ""
        return f"Layer {h.get('best_layer')} encodes it best: a linear probe reads it there {verdict}.{early}"

    def table(self, r):
        h = r.headline
        if "best_accuracy" not in h:
            return super().table(r)
        ci = h.get("ci") or [None, None]
        rows = [Row(f"Probe accuracy at layer {h.get('best_layer')} (held-out)", f"{num(h.get('best_accuracy'))} (95% CI {num(ci[0])}–{num(ci[1])})",
                    f"{num(h.get('control_accuracy'))} with shuffled labels (control task); chance {num(h.get('chance'))}"),
                Row("Selectivity (accuracy minus control)", num(h.get("selectivity")), "0 means no better than the control")]
        if h.get("best_selectivity_layer") is not None and h.get("best_selectivity_layer") != h.get("best_layer"):
            rows.append(Row("Most selective layer", f"layer {h['best_selectivity_layer']}"))
        if h.get("n_test"):
            rows.append(Row("Held-out examples", num(h.get("n_test"))))
        return rows

    def evidence(self, r):
        out = []
        for e in r.evidence:
            x = e.get("example")
            if isinstance(x, dict) and x.get("text") is not None:
                out.append(f"{x['text']!r} ({x.get('label')})")
            elif isinstance(x, str):
                out.append(repr(x))
        return out[:3]

    def suggestions(self, r, args, n_layers=None):
        b = r.headline.get("best_layer")
        top = b + 2 if n_layers is None else min(n_layers - 1, b + 2)
        out = [f"probe layers {max(0, b - 2)} to {top} with mean pooling"] if isinstance(b, int) else []
        other = next((d for d in ("true_false", "sentiment", "question_vs_statement") if d != args.get("dataset")), None)
        if other:
            out.append(f"probe {other.replace('_', ' ')} for comparison")
        return out[:3]
