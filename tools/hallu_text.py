"""Model-free controls for the hallucination detector: what the question's text alone predicts.

A detector that reads the model's internals is only worth its AUROC above what a classifier
that never runs the model gets on the same split. The fact table mixes real and fabricated
subjects, and a made-up name ("West Tennabrook") can look made up; so can a hard question
look hard. Three text-only classifiers, each a logistic regression whose strength is chosen
by cross-validation grouped by entity inside the training side:

* ``text_minilm``: the question's MiniLM sentence embedding;
* ``text_surface``: hand-written surface features of the question (:data:`SURFACE_NAMES`);
* ``text_char_ngrams``: TF-IDF character 2-4-grams of the question (spots invented spellings).

:func:`text_only_scores` fits them on the training questions and scores the test ones. The
strongest of the three on the test side is reported as *the* text-only control; picking the
best on the test side favours the control, so the detector's margin over it is, if anything,
understated.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from .embeddings import embed
from .hallu_data import group_folds

SURFACE_NAMES = [
    "characters",
    "words",
    "capitalized words",
    "mean word length",
    "longest word",
    "digits",
    "non-ASCII characters",
    "vowel share of letters",
    "rare letters (j, q, x, z, k, w, y)",
    "repeated letters",
]
TEXT_CONTROLS = ("text_minilm", "text_surface", "text_char_ngrams")
CONTROL_LABELS = {
    "text_minilm": "the question's MiniLM embedding",
    "text_surface": "the question's surface features",
    "text_char_ngrams": "the question's character n-grams",
}
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*", re.UNICODE)
_CS = (0.01, 0.1, 1.0, 10.0)


def surface_features(questions: Sequence[str]) -> np.ndarray:
    """``[n, len(SURFACE_NAMES)]`` surface statistics of each question's text."""
    rows = []
    for q in questions:
        words = _WORD.findall(q)
        letters = [c.lower() for c in q if c.isalpha()]
        n_letters = max(1, len(letters))
        rows.append(
            [
                len(q),
                len(words),
                sum(1 for w in words if w[:1].isupper()),
                float(np.mean([len(w) for w in words])) if words else 0.0,
                max((len(w) for w in words), default=0),
                sum(c.isdigit() for c in q),
                sum(ord(c) > 127 for c in q),
                sum(c in "aeiou" for c in letters) / n_letters,
                sum(c in "jqxzkwy" for c in letters) / n_letters,
                sum(1 for a, b in zip(q, q[1:]) if a == b and a.isalpha()),
            ]
        )
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(SURFACE_NAMES))


def _fit_score(X_tr, y_tr, groups, X_te, seed: int) -> np.ndarray:
    """Logistic regression (standardized dense features, or sparse TF-IDF as is) with C chosen
    by grouped cross-validated log-loss on the training side; returns test probabilities."""
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    if not sparse.issparse(X_tr):
        mean, scale = X_tr.mean(0), X_tr.std(0)
        scale[scale < 1e-8] = 1.0
        X_tr, X_te = (X_tr - mean) / scale, (X_te - mean) / scale
    idx = np.arange(len(y_tr))
    folds = [(np.setdiff1d(idx, b), b) for b in group_folds(list(groups), 5, seed) if len(b)]
    folds = [(a, b) for a, b in folds if len(set(y_tr[a].tolist())) == 2]
    best_c, best_loss = 1.0, np.inf
    for c in _CS:
        losses = []
        for a, b in folds:
            m = LogisticRegression(C=c, max_iter=3000, random_state=seed).fit(X_tr[a], y_tr[a])
            losses.append(log_loss(y_tr[b], m.predict_proba(X_tr[b])[:, 1], labels=[0, 1]))
        if losses and float(np.mean(losses)) < best_loss:
            best_c, best_loss = c, float(np.mean(losses))
    m = LogisticRegression(C=best_c, max_iter=3000, random_state=seed).fit(X_tr, y_tr)
    return m.predict_proba(X_te)[:, 1]


def text_only_scores(
    train_questions: Sequence[str], y_train: np.ndarray, train_groups: Sequence[str], test_questions: Sequence[str], seed: int = 0
) -> dict[str, np.ndarray]:
    """Test-side probabilities of each text-only control (:data:`TEXT_CONTROLS`), trained on the
    training questions and labels only (``train_groups``: the entity of each, for grouped CV)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    y_train = np.asarray(y_train).astype(int)
    tr, te = list(train_questions), list(test_questions)
    emb = embed(tr + te).astype(np.float64)
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), lowercase=True, sublinear_tf=True, min_df=1)
    C_tr = vec.fit_transform(tr)
    C_te = vec.transform(te)
    return {
        "text_minilm": _fit_score(emb[: len(tr)], y_train, train_groups, emb[len(tr):], seed),
        "text_surface": _fit_score(surface_features(tr), y_train, train_groups, surface_features(te), seed),
        "text_char_ngrams": _fit_score(C_tr.tocsr(), y_train, train_groups, C_te.tocsr(), seed),
    }
