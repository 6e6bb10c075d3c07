"""Labelled text datasets for probing, built offline by code, plus user files.

Every built-in dataset is generated from templates and word lists in this module (the
true/false statements from the project's fact table,
:mod:`gnothi.tools.facts`), deterministically from a seed, and
balanced between its two classes::

    from gnothi.tools.datasets import load_dataset, list_datasets
    ds = load_dataset("sentiment")          # LabeledDataset: .texts, .labels, .label_names
    ds = load_dataset("my_labels.csv")      # a user file with text,label columns

Each example carries two keys that keep probing honest:

* ``group``: examples sharing it are near-duplicates (the same fact said as true and as
  false, the same content as a question and as a statement, the same sentiment word in
  several templates). A probe's train/test split never puts one group on both sides, so
  held-out accuracy measures generalisation, not recall of a seen template.
* ``control_key``: the word type a lexical shortcut would use (the answer filled into a
  fact, the last word). The word-type control task (Hewitt & Liang 2019) gives every
  control key a random label; how well a probe fits those labels is how far it can get
  by memorising word identity.

User files: ``.csv`` (header row) or ``.jsonl`` (one object a line) with columns ``text``
and ``label`` (any two or more distinct values), optionally ``group``. Mistakes raise
:class:`~gnothi.tools.errors.InputError` with what to change.
"""

from __future__ import annotations

import csv
import json
import random
import re
from pathlib import Path
from typing import Callable, Sequence

from pydantic import BaseModel

from .errors import InputError

MIN_EXAMPLES = 20
MIN_PER_CLASS = 5
MAX_EXAMPLES = 20000


class Example(BaseModel):
    text: str
    label: int
    group: str
    control_key: str


class LabeledDataset(BaseModel):
    """A list of labelled texts with the names of its classes."""

    name: str
    description: str
    label_names: list[str]
    examples: list[Example]
    source: str = "built-in"

    @property
    def texts(self) -> list[str]:
        return [e.text for e in self.examples]

    @property
    def labels(self) -> list[int]:
        return [e.label for e in self.examples]

    def class_counts(self) -> dict[str, int]:
        out = {n: 0 for n in self.label_names}
        for e in self.examples:
            out[self.label_names[e.label]] += 1
        return out


def _last_word(text: str) -> str:
    words = re.findall(r"[A-Za-z0-9_']+|[^\sA-Za-z0-9_']", text.lower())
    for w in reversed(words):
        if re.match(r"[a-z0-9_']", w):
            return w
    return words[-1] if words else ""


def _a(word: str) -> str:
    return "an" if word[0].lower() in "aeiou" else "a"


# ============================================================================ true_false

def build_true_false(n: int = 400, seed: int = 0) -> LabeledDataset:
    """True and false statements from the project's fact table (:mod:`gnothi.tools.facts`):
    each fact's statement with its real answer, and the same frame with another answer of
    the same family (a wrong capital, symbol, author or year). Group: the fact (its true
    and false versions never cross the split). Control key: the answer filled in."""
    from . import facts as F

    rng = random.Random(seed)
    exs: list[Example] = []
    for fam in F.families():
        rows = [(f, f.answer) for f in F.FACTS[fam] if f.answer]
        pool = sorted({a for _, a in rows})
        for f, answer in rows:
            wrong = [a for a in pool if a not in f.answers()]
            if not wrong or "{answer}" not in f.frame:
                continue
            bad = rng.choice(wrong)
            exs.append(Example(text=f.with_answer(answer), label=1, group=f.key, control_key=answer.lower()))
            exs.append(Example(text=f.with_answer(bad), label=0, group=f.key, control_key=bad.lower()))
    return LabeledDataset(
        name="true_false",
        description="Factual statements (capitals, U.S. state capitals, chemical symbols, book authors, event years), "
        "true vs false (a wrong answer of the same family). Split by fact, so a fact's true and false versions stay "
        "on one side.",
        label_names=["false", "true"],
        examples=_balanced_sample(exs, n, rng),
        source="built-in (gnothi.tools.facts)",
    )


# ============================================================================ sentiment

_POS_ADJ = ["wonderful", "excellent", "delightful", "great", "lovely", "brilliant", "fantastic", "superb", "charming",
            "pleasant", "amazing", "beautiful", "enjoyable", "marvelous", "perfect", "outstanding", "good", "splendid",
            "terrific", "heartwarming", "impressive", "fun", "gorgeous", "fabulous"]
_NEG_ADJ = ["terrible", "awful", "dreadful", "horrible", "boring", "disappointing", "dull", "bad", "poor", "miserable",
            "unpleasant", "disgusting", "mediocre", "painful", "ugly", "annoying", "tedious", "lousy", "pathetic",
            "frustrating", "depressing", "clumsy", "bland", "atrocious"]
_POS_VERB = ["loved", "enjoyed", "adored", "liked", "admired", "treasured", "appreciated", "relished"]
_NEG_VERB = ["hated", "disliked", "despised", "loathed", "regretted", "resented", "detested", "endured"]
_TOPICS = ["movie", "meal", "book", "hotel", "concert", "game", "trip", "show", "restaurant", "class", "album", "party",
           "phone", "car", "play", "service", "coffee", "weekend", "lecture", "garden", "museum", "song", "novel", "flight"]
_SENT_ADJ_T = ["The {t} was {w}.", "I thought the {t} was {w}.", "Honestly, this {t} is {w}.", "What {a} {w} {t}.",
               "My friends said the {t} was {w}.", "Overall, the {t} felt {w}.", "It was {a} {w} {t}.",
               "Our {t} yesterday was {w}."]
_SENT_VERB_T = ["I {w} this {t}.", "We really {w} the {t}.", "Everyone {w} the {t} last night.", "She {w} every minute of the {t}."]


def build_sentiment(n: int = 400, seed: int = 0) -> LabeledDataset:
    """Short reviews, positive vs negative. Group and control key: the sentiment word, so
    held-out sentiment words were never seen in training."""
    rng = random.Random(seed)
    exs = []
    for label, adjs, verbs in ((1, _POS_ADJ, _POS_VERB), (0, _NEG_ADJ, _NEG_VERB)):
        for w in adjs:
            for t in _SENT_ADJ_T:
                topic = rng.choice(_TOPICS)
                exs.append(Example(text=t.format(t=topic, w=w, a=_a(w)), label=label, group=w, control_key=w))
        for w in verbs:
            for t in _SENT_VERB_T:
                topic = rng.choice(_TOPICS)
                exs.append(Example(text=t.format(t=topic, w=w), label=label, group=w, control_key=w))
    return LabeledDataset(
        name="sentiment",
        description="Short reviews, positive vs negative, from templates. Split by sentiment word.",
        label_names=["negative", "positive"],
        examples=_balanced_sample(exs, n, rng),
    )


# ============================================================================ question vs statement

_QS_NOUNS = ["cat", "dog", "teacher", "river", "house", "doctor", "train", "garden", "bridge", "baby", "window",
             "soup", "market", "engine", "painting", "student", "road", "letter", "phone", "ship", "forest", "kitchen"]
_QS_ADJS = ["ready", "open", "closed", "broken", "safe", "quiet", "warm", "new", "full", "empty", "clean", "heavy",
            "busy", "far", "late", "old"]
_QS_NAMES = ["Anna", "Tom", "Maria", "David", "Sara", "John", "Lena", "Omar", "Mia", "Peter", "Kate", "Ravi"]
_QS_VP = [("finish", "finished", "the report"), ("visit", "visited", "the museum"), ("fix", "fixed", "the bike"),
          ("call", "called", "her mother"), ("cook", "cooked", "dinner"), ("read", "read", "the letter"),
          ("paint", "painted", "the fence"), ("watch", "watched", "the game"), ("clean", "cleaned", "the room"),
          ("open", "opened", "the door"), ("answer", "answered", "the phone"), ("sell", "sold", "the car")]
_QS_MODALS = ["can", "will", "should", "could", "would"]


def build_question_vs_statement(n: int = 400, seed: int = 0) -> LabeledDataset:
    """Yes/no questions vs statements with the same words, WITHOUT final punctuation, so
    word order (not a '?' token) tells them apart. Group: the content shared by a
    question and its statement. Control key: the last word."""
    rng = random.Random(seed)
    exs: list[Example] = []

    def add(q: str, s: str, grp: str):
        exs.append(Example(text=q, label=1, group=grp, control_key=_last_word(q)))
        exs.append(Example(text=s, label=0, group=grp, control_key=_last_word(s)))

    for noun in _QS_NOUNS:
        for adj in rng.sample(_QS_ADJS, 4):
            d = rng.choice(["the", "this", "that", "your"])
            add(f"Is {d} {noun} {adj}", f"{d.capitalize()} {noun} is {adj}", f"be:{noun}:{adj}")
            add(f"Was {d} {noun} {adj} yesterday", f"{d.capitalize()} {noun} was {adj} yesterday", f"was:{noun}:{adj}")
    for name in _QS_NAMES:
        for base, past, obj in rng.sample(_QS_VP, 5):
            m = rng.choice(_QS_MODALS)
            add(f"{m.capitalize()} {name} {base} {obj}", f"{name} {m} {base} {obj}", f"modal:{name}:{base}")
            add(f"Did {name} {base} {obj} today", f"{name} {past} {obj} today", f"did:{name}:{base}")
            add(f"Has {name} {past} {obj}", f"{name} has {past} {obj}", f"has:{name}:{base}")
    return LabeledDataset(
        name="question_vs_statement",
        description="Yes/no questions vs statements made of the same words, without final punctuation. "
        "Split by content pair.",
        label_names=["statement", "question"],
        examples=_balanced_sample(exs, n, rng),
    )


# ============================================================================ code vs prose

_VARS = ["x", "y", "total", "count", "items", "name", "value", "result", "data", "index", "user", "price", "text",
         "scores", "path", "size", "row", "line", "key", "node"]
_FUNCS = ["compute", "load", "parse", "update", "render", "check", "merge", "split", "count", "save", "fetch", "build"]
_CODE_T = [
    "def {f}({v}):\n    return {v} + {k}",
    "for {v} in range({k}):\n    print({v})",
    "{v} = [{k}, {k2}, {k3}]",
    "if {v} > {k}:\n    {w} = {v} - {k}",
    "import {m}\n{v} = {m}.{f}({w})",
    "while {v} < {k}:\n    {v} += 1",
    "{w} = {{'{v}': {k}, '{f}': {k2}}}",
    "class {C}:\n    def {f}(self, {v}):\n        self.{v} = {v}",
    "{v} = {f}({w}, {k})\nprint({v})",
    "try:\n    {v} = int({w})\nexcept ValueError:\n    {v} = {k}",
    "return [{v} * {k} for {v} in {w}]",
    "with open('{v}.txt') as f:\n    {w} = f.read()",
    "{v}.append({w})\n{v}.sort()",
    "assert len({v}) == {k}",
]
_MODS = ["os", "sys", "json", "math", "re", "time", "random", "csv"]
_PROSE_NOUNS = ["farmer", "river", "village", "teacher", "storm", "children", "market", "old man", "city", "garden",
                "doctor", "soldier", "ship", "mountain", "library", "train", "bakery", "council", "musician", "forest"]
_PROSE_T = [
    "The {n} waited by the {n2} until the evening came.",
    "After the {n} left, the {n2} grew quiet again.",
    "She told the {n} that the {n2} would open in {k} days.",
    "Nobody in the {n} remembered the {n2} from before the war.",
    "In the morning the {n} walked slowly toward the {n2}.",
    "He wrote a long letter about the {n} and the {n2}.",
    "The {n} was larger than anyone near the {n2} expected.",
    "For {k} years the {n} had kept the {n2} a secret.",
    "They argued about the {n} while the {n2} burned in the distance.",
    "It rained all week, and the {n} never reached the {n2}.",
    "Every summer the {n} visits the {n2} with {k} friends.",
    "The report says the {n} helped the {n2} recover quickly.",
    "When the {n} finally spoke, the {n2} listened carefully.",
    "My grandmother once described the {n} as kind to the {n2}.",
]


def build_code_vs_prose(n: int = 400, seed: int = 0) -> LabeledDataset:
    """Python snippets vs English prose, from templates with varied names and numbers.
    Group: the template (held-out templates were never seen). Control key: the last word."""
    rng = random.Random(seed)
    exs: list[Example] = []
    per = max(1, (n // 2) // min(len(_CODE_T), len(_PROSE_T)) + 1)
    for i, t in enumerate(_CODE_T):
        for _ in range(per):
            v, w = rng.sample(_VARS, 2)
            text = t.format(f=rng.choice(_FUNCS), v=v, w=w, k=rng.randint(0, 99), k2=rng.randint(0, 99),
                            k3=rng.randint(0, 99), m=rng.choice(_MODS), C=rng.choice(_FUNCS).capitalize() + "er")
            exs.append(Example(text=text, label=1, group=f"code{i}", control_key=_last_word(text)))
    for i, t in enumerate(_PROSE_T):
        for _ in range(per):
            n1, n2 = rng.sample(_PROSE_NOUNS, 2)
            text = t.format(n=n1, n2=n2, k=rng.choice(["two", "three", "five", "seven", "ten", "twelve"]))
            exs.append(Example(text=text, label=0, group=f"prose{i}", control_key=_last_word(text)))
    exs = list({e.text: e for e in exs}.values())
    return LabeledDataset(
        name="code_vs_prose",
        description="Python code snippets vs English prose sentences. Split by template.",
        label_names=["prose", "code"],
        examples=_balanced_sample(exs, n, rng),
    )


# ============================================================================ singular vs plural

_NOUN_PAIRS = [("cat", "cats"), ("dog", "dogs"), ("teacher", "teachers"), ("child", "children"), ("man", "men"),
               ("woman", "women"), ("box", "boxes"), ("city", "cities"), ("student", "students"), ("doctor", "doctors"),
               ("bird", "birds"), ("house", "houses"), ("farmer", "farmers"), ("mouse", "mice"), ("key", "keys"),
               ("baby", "babies"), ("knife", "knives"), ("leaf", "leaves"), ("nurse", "nurses"), ("singer", "singers"),
               ("car", "cars"), ("tree", "trees"), ("boy", "boys"), ("girl", "girls"), ("player", "players"),
               ("pilot", "pilots"), ("horse", "horses"), ("lawyer", "lawyers"), ("painter", "painters"), ("goose", "geese")]
_ATTRACTORS = [("table", "tables"), ("window", "windows"), ("bridge", "bridges"), ("lake", "lakes"), ("tower", "towers"),
               ("shop", "shops"), ("wall", "walls"), ("hill", "hills"), ("road", "roads"), ("statue", "statues"),
               ("garden", "gardens"), ("gate", "gates"), ("building", "buildings"), ("fence", "fences")]
_SP_T = ["The {s} near the {a}", "The {s} behind the old {a}", "The {s} next to the {a}", "The {s} beside the {a}",
         "The {s} that walked past the {a}", "The {s} from the village by the {a}", "The {s} in front of the {a}",
         "The {s} who liked the {a}"]


def build_singular_vs_plural(n: int = 400, seed: int = 0) -> LabeledDataset:
    """Noun phrases whose head (the subject) is singular or plural, ending in an attractor
    noun of random number ("The keys near the table"), so the last token does not give the
    answer away. Group: the subject's lemma. Control key: the attractor."""
    rng = random.Random(seed)
    exs = []
    for sing, plur in _NOUN_PAIRS:
        for t in _SP_T:
            for label, subj in ((0, sing), (1, plur)):
                a = rng.choice(rng.choice(_ATTRACTORS))
                exs.append(Example(text=t.format(s=subj, a=a), label=label, group=sing, control_key=a))
    return LabeledDataset(
        name="singular_vs_plural",
        description="Noun phrases with a singular vs plural subject and an attractor noun of random number last. "
        "Split by subject noun.",
        label_names=["singular", "plural"],
        examples=_balanced_sample(exs, n, rng),
    )


# ============================================================================ registry

def _balanced_sample(exs: list[Example], n: int, rng: random.Random) -> list[Example]:
    """Up to ``n`` examples, the same number per class, in a seeded random order."""
    by_label: dict[int, list[Example]] = {}
    for e in exs:
        by_label.setdefault(e.label, []).append(e)
    k = min(len(v) for v in by_label.values())
    k = min(k, max(1, n // len(by_label)))
    out: list[Example] = []
    for lab in sorted(by_label):
        pool = by_label[lab]
        idx = sorted(rng.sample(range(len(pool)), k))
        out.extend(pool[i] for i in idx)
    rng.shuffle(out)
    return out


BUILTIN: dict[str, tuple[Callable[..., LabeledDataset], str]] = {
    "true_false": (build_true_false, "true vs false factual statements (capitals, symbols, authors, years)"),
    "sentiment": (build_sentiment, "positive vs negative short reviews"),
    "question_vs_statement": (build_question_vs_statement, "yes/no question vs statement, same words, no punctuation"),
    "code_vs_prose": (build_code_vs_prose, "Python code vs English prose"),
    "singular_vs_plural": (build_singular_vs_plural, "singular vs plural subject, with an attractor noun last"),
}

_ALIASES = {"truth": "true_false", "facts": "true_false", "true_vs_false": "true_false", "question": "question_vs_statement",
            "questions": "question_vs_statement", "code": "code_vs_prose", "number": "singular_vs_plural",
            "plural": "singular_vs_plural", "agreement": "singular_vs_plural"}


def list_datasets() -> list[dict]:
    """Built-in datasets: name, description, size and class names."""
    out = []
    for name, (fn, desc) in BUILTIN.items():
        ds = fn()
        out.append({"name": name, "description": desc, "n_examples": len(ds.examples), "label_names": ds.label_names,
                    "example": ds.examples[0].text, "source": ds.source})
    return out


def dataset_names() -> list[str]:
    return list(BUILTIN)


def load_dataset(name_or_path: str, n: int = 400, seed: int = 0) -> LabeledDataset:
    """A built-in dataset by name (``n`` examples, balanced), or a user ``.csv``/``.jsonl`` file."""
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise InputError("No dataset given.", f"Pass a dataset name ({', '.join(BUILTIN)}) or a .csv/.jsonl file.")
    key = name_or_path.strip()
    norm = key.lower().replace("-", "_").replace(" ", "_")
    norm = _ALIASES.get(norm, norm)
    if norm in BUILTIN:
        if not isinstance(n, int) or n < MIN_EXAMPLES:
            raise InputError(f"n={n!r} examples is too few for a probe.", f"Use n >= {MIN_EXAMPLES} (default 400).")
        return BUILTIN[norm][0](n=n, seed=seed)
    p = Path(key).expanduser()
    if p.suffix.lower() in (".csv", ".jsonl", ".json", ".tsv") or p.exists():
        return load_file(p)
    raise InputError(
        f"Unknown dataset {key!r}.",
        f"Use one of: {', '.join(BUILTIN)} (see `gnothi probe --list`), or a .csv/.jsonl file with text,label columns.",
    )


def load_file(path: str | Path) -> LabeledDataset:
    """A user file: ``.csv`` with a header row, or ``.jsonl``; columns ``text``, ``label``
    and optionally ``group`` (examples sharing a group stay on one side of the split)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"File {str(p)!r} does not exist.", "Check the path.")
    if p.is_dir():
        raise InputError(f"{str(p)!r} is a folder, not a file.", "Pass a .csv or .jsonl file.")
    suffix = p.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".tsv"):
        raise InputError(
            f"Cannot read {p.name!r}: only .csv, .tsv and .jsonl files are supported.",
            "Save it as CSV (header text,label) or JSON Lines ({\"text\": ..., \"label\": ...} per line).",
        )
    try:
        raw = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{p.name} is not UTF-8 text.", "Save the file as UTF-8.") from None
    rows: list[dict] = []
    if suffix == ".jsonl":
        for i, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{p.name} line {i} is not valid JSON ({e.msg}).", "Write one JSON object per line.") from None
            if not isinstance(obj, dict):
                raise InputError(f"{p.name} line {i} is not a JSON object.", 'Write lines like {"text": "...", "label": "..."}.')
            rows.append({str(k).strip().lower(): v for k, v in obj.items()})
    else:
        try:
            reader = csv.DictReader(raw.splitlines(), delimiter="\t" if suffix == ".tsv" else ",")
            for r in reader:
                if None in r:
                    raise InputError(f"{p.name} line {reader.line_num} has more fields than the header.",
                                     "Quote texts that contain commas (\"like, this\").")
                rows.append({str(k).strip().lower(): v for k, v in r.items() if k is not None})
        except csv.Error as e:
            raise InputError(f"{p.name} is not valid CSV ({e}).", "Save it as CSV with a header row text,label.") from None
    if not rows:
        raise InputError(f"{p.name} holds no examples.", "Add rows with text and label columns.")
    cols = set().union(*(r.keys() for r in rows))
    missing = [c for c in ("text", "label") if c not in cols]
    if missing:
        raise InputError(
            f"{p.name} has no {' or '.join(repr(m) for m in missing)} column (found: {', '.join(sorted(cols)) or 'none'}).",
            "Name the columns text and label (and optionally group).",
        )
    return from_rows(rows, name=_safe_name(p.stem), description=f"user file {p.name}", source=str(p), what=p.name)


def from_examples(examples: Sequence[dict], name: str = "your_examples") -> LabeledDataset:
    """A dataset from examples typed into a question: ``[{"text": ..., "label": ...}, ...]``."""
    return from_rows([{"text": x.get("text"), "label": x.get("label")} for x in examples], name=name,
                     description="examples given in the question", source="question", what="Your examples")


def from_rows(rows: Sequence[dict], name: str, description: str, source: str, what: str) -> LabeledDataset:
    """Check and number ``{text, label[, group]}`` rows (labels become class indices)."""
    if not rows:
        raise InputError(f"{what} hold no examples.", "Add rows with text and label columns.")
    texts, labels, groups = [], [], []
    for i, r in enumerate(rows, 1):
        t, lab = r.get("text"), r.get("label")
        if not isinstance(t, str) or not t.strip():
            raise InputError(f"{what}: example {i} has an empty or non-text 'text'.", "Give every row a non-empty text.")
        if lab is None or (isinstance(lab, str) and not lab.strip()):
            raise InputError(f"{what}: example {i} has no label.", "Give every row a label.")
        texts.append(t)
        labels.append(str(lab).strip().lower() if isinstance(lab, bool) else str(lab).strip())
        g = r.get("group")
        groups.append(str(g) if g not in (None, "") else f"row{i}")
    names = sorted(set(labels), key=_label_sort_key)
    if len(rows) > MAX_EXAMPLES:
        raise InputError(f"{what} has {len(rows)} examples; the limit is {MAX_EXAMPLES}.", "Use a sample of the file.")
    idx = {n: i for i, n in enumerate(names)}
    exs = [Example(text=t, label=idx[l], group=g, control_key=_last_word(t)) for t, l, g in zip(texts, labels, groups)]
    ds = LabeledDataset(name=name, description=description, label_names=names, examples=exs, source=source)
    check_dataset(ds)
    return ds


def _label_sort_key(s: str):
    order = {"false": 0, "no": 0, "negative": 0, "neg": 0, "true": 1, "yes": 1, "positive": 1, "pos": 1}
    try:
        return (0, float(s), "")
    except ValueError:
        return (1, order.get(s.lower(), 2), s)


def _safe_name(s: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("._") or "dataset"
    return s[:64]


def check_dataset(ds: LabeledDataset) -> None:
    """Raise InputError if ``ds`` cannot give a meaningful probe (too few examples, one class)."""
    n = len(ds.examples)
    counts = ds.class_counts()
    present = {k: v for k, v in counts.items() if v > 0}
    if len(present) < 2:
        only = next(iter(present), "?")
        raise InputError(
            f"Dataset {ds.name!r} has only one class ({only!r}, {n} examples): a probe needs at least two.",
            "Add examples with a different label.",
        )
    if n < MIN_EXAMPLES:
        raise InputError(
            f"Dataset {ds.name!r} has {n} examples; a probe needs at least {MIN_EXAMPLES} to be trained and tested.",
            f"Add {MIN_EXAMPLES - n} more (at least {MIN_PER_CLASS} per class; a few hundred give tight confidence intervals).",
        )
    small = {k: v for k, v in present.items() if v < MIN_PER_CLASS}
    if small:
        desc = ", ".join(f"{k!r}: {v}" for k, v in small.items())
        raise InputError(
            f"Dataset {ds.name!r} has too few examples of some classes ({desc}); each needs at least {MIN_PER_CLASS}.",
            "Add examples of the rare classes, or drop them.",
        )
