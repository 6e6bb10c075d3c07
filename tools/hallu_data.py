"""The hallucination dataset, built offline by the project's own code.

Every question of the fact table (:mod:`gnothi.tools.facts`) is put to the model (chat
template, greedy decoding); its answer is labelled automatically:

* real fact, answer names the true answer (or an alias) in its first sentence -> 0 (right);
* real fact, answer names something else                                     -> 1 (wrong);
* fabricated subject (no true answer), answer makes one up                   -> 1 (made up);
* the answer declines or says the subject is not real (:func:`facts.is_refusal`) -> 0.

The split is by entity (:func:`entity_of`): questions about the same entity (the start
and the end of the same war, two events about one person, an invented country and an
event named after it) always land on the same side, so no entity is seen in both
training and test. Generated answers are cached per model in
``model_cache_dir(model)/hallucination/answers.jsonl`` so later runs skip generation.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from . import facts as F
from .config import model_cache_dir
from .errors import InputError

MAX_NEW_TOKENS = 32
PROMPT_VERSION = "chat-v4"  # bump when the prompt format changes (invalidates cached answers)


@dataclass
class Example:
    key: str  # family/subject
    family: str
    subject: str
    entity: str
    question: str
    fabricated: bool
    answer: str  # the model's own answer
    correct: bool
    refusal: bool
    label: int  # 1 = wrong or made up, 0 = right or declined


# ----------------------------------------------------------------------------- prompts


def user_message(question: str, context: str | None = None) -> str:
    """The user turn put to the model: the question, after the context when there is one."""
    q = (question or "").strip()
    if context and context.strip():
        return f"Context:\n{context.strip()}\n\nQuestion: {q}"
    return q


def prompt_text(handle, question: str, context: str | None = None) -> str:
    """The full prompt (chat template when the model has one)."""
    return handle.chat_prompt(user_message(question, context))


def prompt_ids(handle, text: str) -> list[int]:
    """Token ids of a prompt as generation sees it (BOS only when there is no chat template)."""
    ids = handle.tokenizer(text, add_special_tokens=False)["input_ids"]
    if not getattr(handle.tokenizer, "chat_template", None) and handle.bos_token_id is not None:
        ids = [handle.bos_token_id] + ids
    return ids


def generate_answers(
    handle,
    prompts: Sequence[str],
    max_new_tokens: int = MAX_NEW_TOKENS,
    batch_size: int = 16,
    progress: bool = False,
    desc: str = "generating answers",
    first_sentence_only: bool = False,
) -> list[str]:
    """Greedy answers to full prompt strings, batched (left-padded, KV cache).

    Batched greedy decoding gives the same text as one prompt at a time; prompts are
    sorted by length so batches carry little padding. With ``first_sentence_only`` a
    sequence stops at the end of its first sentence (what the labels check), which makes
    building the dataset about twice as fast; a period inside initials or abbreviations
    ("J. R. R.", "D.C.") does not end it.
    """
    prompts = list(prompts)
    out: list[str] = [""] * len(prompts)
    if not prompts:
        return out
    stop = handle.stop_ids(chat=True)
    ends = _sentence_end_ids(handle) if first_sentence_only else []
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    bar = _bar(len(prompts), desc, progress)
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        toks = [prompt_ids(handle, prompts[i]) for i in idx]
        L = max(len(t) for t in toks)
        if L + max_new_tokens > handle.shape.n_ctx:
            raise InputError(
                f"A prompt is {L} tokens; with {max_new_tokens} new tokens that passes the model's context of {handle.shape.n_ctx}.",
                "Shorten the question or the context.",
            )
        gen: list[list[int]] = [[] for _ in idx]
        live = list(range(len(idx)))
        while live:
            budget = max_new_tokens - max(len(gen[j]) for j in live)
            if budget <= 0:
                break
            new = handle.generate_ids([toks[j] + gen[j] for j in live], budget, stop + ends)
            still = []
            for j, ids in zip(live, new):
                done = False
                for t in ids:
                    if t in stop:
                        done = True
                        break
                    gen[j].append(t)
                    if t in ends:
                        break
                else:
                    done = True  # ran out of tokens
                if not done and len(gen[j]) < max_new_tokens:
                    text = handle.tokenizer.decode(gen[j], skip_special_tokens=True).strip()
                    if text.endswith(".") and _abbrev_end(text):
                        still.append(j)  # a period inside initials/abbreviations: go on
            live = still
        for j, i in enumerate(idx):
            out[i] = handle.tokenizer.decode(gen[j], skip_special_tokens=True).strip()
        bar.update(len(idx))
    bar.close()
    return out


def _abbrev_end(text: str) -> bool:
    """Whether ``text`` ends in a period that belongs to initials or an abbreviation."""
    return bool(re.search(r"(\b[A-Z]|\b[A-Z][a-z]|St|Dr|Mr)\.$", text))


def _sentence_end_ids(handle) -> list[int]:
    """Vocabulary ids of pure punctuation tokens that end a sentence (".", "?", ".\n" ...)."""
    from .model import decoded_vocab

    ids = []
    for tid, t in enumerate(decoded_vocab(handle.tokenizer)):
        st = t.strip()
        if st and any(c in st for c in ".!?") and all(c in ".!?\"')" for c in st) and "..." not in st:
            ids.append(tid)
    return ids


def _bar(total: int, desc: str, enabled: bool):
    try:
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, disable=not enabled, file=sys.stderr, leave=False)
    except Exception:  # pragma: no cover
        class _N:
            def update(self, n):
                pass

            def close(self):
                pass

        return _N()


# ----------------------------------------------------------------------------- labels and entities


def label_answer(fact: F.Fact, answer: str) -> tuple[int, bool, bool]:
    """``(label, correct, refusal)`` for a model's answer to ``fact.question``."""
    refusal = F.is_refusal(F.first_sentence(answer)) if answer else False
    correct = fact.check(answer)
    if correct:
        return 0, True, refusal
    if refusal:
        return 0, False, True
    return 1, False, False


_EVENT_PREFIX = re.compile(r"^(the )?(start|end|beginning|outbreak) of (the )?", re.I)
_FAKE_ROOTS = sorted(
    {w.lower()[:6] for s in F._FAKE_COUNTRIES + F._FAKE_STATES + F._FAKE_ELEMENTS for w in s.split() if len(w) >= 6},
)


def entity_of(fact: F.Fact) -> str:
    """The entity a question is about; questions with one entity share a split side."""
    s = F.strip_accents(fact.subject).strip()
    s = _EVENT_PREFIX.sub("", s)
    m = re.match(r"^(?:the )?([A-Z][\w.\- ]+?)'s ", s)
    if m:  # "Nelson Mandela's release from prison" -> nelson mandela
        s = m.group(1)
    low = s.lower()
    if fact.fabricated:
        for w in re.findall(r"[a-z]+", low):
            if len(w) >= 6 and w[:6] in _FAKE_ROOTS:
                return "fake:" + w[:6]
    low = re.sub(r"^the ", "", low)
    return low


def split_by_entity(entities: Sequence[str], test_frac: float = 0.3, seed: int = 0, strata: Sequence[str] | None = None) -> tuple[list[int], list[int]]:
    """Indices ``(train, test)`` with every entity on one side only.

    Entities are shuffled with ``seed`` and assigned within each stratum (e.g. family) so
    the test side has about ``test_frac`` of every stratum.
    """
    if not 0.0 < test_frac < 1.0:
        raise InputError(f"test_frac must be between 0 and 1, got {test_frac}.", "Use e.g. 0.3.")
    strata = list(strata) if strata is not None else [""] * len(entities)
    by_stratum: dict[str, list[str]] = {}
    ent_stratum: dict[str, str] = {}
    for e, st in zip(entities, strata):
        if e not in ent_stratum:
            ent_stratum[e] = st
            by_stratum.setdefault(st, []).append(e)
    rng = random.Random(seed)
    test_ents: set[str] = set()
    for st in sorted(by_stratum):
        ents = sorted(by_stratum[st])
        rng.shuffle(ents)
        k = max(1, round(test_frac * len(ents))) if len(ents) > 1 else 0
        test_ents.update(ents[:k])
    train = [i for i, e in enumerate(entities) if e not in test_ents]
    test = [i for i, e in enumerate(entities) if e in test_ents]
    return train, test


def group_folds(groups: Sequence[str], k: int, seed: int) -> list[np.ndarray]:
    """``k`` folds (test indices) with every group (entity) in one fold."""
    uniq = sorted(set(groups))
    rng = np.random.default_rng(seed)
    rng.shuffle(uniq)
    fold_of = {g: i % k for i, g in enumerate(uniq)}
    f = np.array([fold_of[g] for g in groups])
    return [np.where(f == i)[0] for i in range(k)]


# ----------------------------------------------------------------------------- dataset


def select_facts(per_family: int | None = None, fabricated_per_family: int | None = None, seed: int = 0, families: Sequence[str] | None = None) -> list[F.Fact]:
    """Facts for the dataset: all of them, or a deterministic sample per family."""
    rng = random.Random(seed)
    out: list[F.Fact] = []
    for fam in families or F.families():
        real = list(F.FACTS[fam])
        fake = list(F.FABRICATED[fam])
        if per_family is not None and per_family < len(real):
            real = rng.sample(real, per_family)
        if fabricated_per_family is not None and fabricated_per_family < len(fake):
            fake = rng.sample(fake, fabricated_per_family)
        out += real + fake
    return out


def cache_path(model_name: str) -> Path:
    d = model_cache_dir(model_name) / "hallucination"
    d.mkdir(parents=True, exist_ok=True)
    return d / "answers.jsonl"


def _cache_key(fact: F.Fact) -> str:
    h = hashlib.sha1(f"{PROMPT_VERSION}|{MAX_NEW_TOKENS}|{fact.question}".encode()).hexdigest()[:16]
    return h


def load_answer_cache(model_name: str) -> dict[str, str]:
    """Cached answers ``{cache key: answer}``; damaged lines are skipped (and regenerated)."""
    p = cache_path(model_name)
    out: dict[str, str] = {}
    if not p.exists():
        return out
    for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
            if isinstance(rec.get("k"), str) and isinstance(rec.get("a"), str):
                out[rec["k"]] = rec["a"]
        except (json.JSONDecodeError, AttributeError):
            continue
    return out


def save_answer_cache(model_name: str, answers: dict[str, str]) -> None:
    """Merge ``answers`` into the cache file (atomic: temp file + rename)."""
    p = cache_path(model_name)
    merged = load_answer_cache(model_name)
    merged.update(answers)
    tmp = p.with_suffix(f".tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        for k in sorted(merged):
            f.write(json.dumps({"k": k, "a": merged[k]}, ensure_ascii=False) + "\n")
    os.replace(tmp, p)


def build_dataset(
    handle,
    facts: Sequence[F.Fact] | None = None,
    use_cache: bool = True,
    progress: bool = False,
    labeler: Callable[[F.Fact, str], tuple[int, bool, bool]] = label_answer,
    batch_size: int = 16,
) -> list[Example]:
    """Ask the model every question, label its answers, return the examples.

    ``facts`` defaults to the whole table. Answers come from the per-model cache when
    present; new ones are generated (batched, greedy) and added to it.
    """
    facts = list(facts) if facts is not None else F.all_facts()
    if not facts:
        raise InputError("No facts to build a dataset from.", "Pass at least a few facts (or none for the whole table).")
    cache = load_answer_cache(handle.name) if use_cache else {}
    keys = [_cache_key(f) for f in facts]
    todo = [i for i, k in enumerate(keys) if k not in cache]
    if todo:
        # shortest prompts first (little padding); saved every few batches so an interrupted
        # run keeps what it has done
        todo.sort(key=lambda i: len(facts[i].question))
        bar = _bar(len(todo), "generating answers", progress)
        step = batch_size * 4
        for s in range(0, len(todo), step):
            part = todo[s : s + step]
            new = generate_answers(handle, [prompt_text(handle, facts[i].question) for i in part], batch_size=batch_size, first_sentence_only=True)
            fresh = {keys[i]: a for i, a in zip(part, new)}
            cache.update(fresh)
            if use_cache:
                save_answer_cache(handle.name, fresh)
            bar.update(len(part))
        bar.close()
    out = []
    for f, k in zip(facts, keys):
        a = cache[k]
        lab, corr, ref = labeler(f, a)
        out.append(
            Example(
                key=f.key, family=f.family, subject=f.subject, entity=entity_of(f), question=f.question,
                fabricated=f.fabricated, answer=a, correct=corr, refusal=ref, label=int(lab),
            )
        )
    return out


def summarize(examples: Sequence[Example]) -> dict:
    """Counts per family: questions, right, wrong, made up, declined."""
    fams: dict[str, dict[str, int]] = {}
    for e in examples:
        d = fams.setdefault(e.family, {"n": 0, "right": 0, "wrong": 0, "made_up": 0, "declined": 0})
        d["n"] += 1
        if e.correct:
            d["right"] += 1
        elif e.refusal:
            d["declined"] += 1
        elif e.fabricated:
            d["made_up"] += 1
        else:
            d["wrong"] += 1
    return fams


def to_records(examples: Sequence[Example]) -> list[dict]:
    return [asdict(e) for e in examples]
