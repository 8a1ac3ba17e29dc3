"""A reader's taste as a linear model over TF-IDF features of title and abstract.

As arxiv-sanity does it: each paper is a TF-IDF vector of its title and abstract (words and
word pairs), and each reader a linear classifier (logistic regression) separating the papers
they rated "more like this" from those they rated "less like this". Pure: no I/O.

What keeps 100 000 readers cheap:

- One shared feature space for everybody: words are *hashed* into 2^18 columns
  (HashingVectorizer), so there is no vocabulary to store or to keep in step as papers arrive,
  and only the IDF weights (one vector for all readers) are fitted on the stored papers.
- A reader's model is sparse: a linear model trained on a few dozen sparse vectors has non-zero
  weights only on the features those papers contain (it is trained on those columns alone),
  and only the strongest MAX_WEIGHTS of them are kept. It is stored as int32 indexes and
  float32 weights: 8 bytes a feature, at most 16 kB a reader.
- Scoring a digest is one sparse matrix-vector product over the papers due, vectorised once per
  run for every reader.

Ratings alone rarely hold both classes early on, so a few unrated papers act as a weak
background class: with "more" ratings they are mild negatives (what an ordinary paper looks
like), with only "less" ratings mild positives. Nothing is shared between readers but the IDF.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.linear_model import LogisticRegression

__all__ = ["N_FEATURES", "ReaderModel", "Vectoriser", "closest", "paper_text", "train"]

N_FEATURES = 2**18
#: weights kept per reader (by magnitude): 2 000 x 8 bytes = 16 kB a reader
MAX_WEIGHTS = 2000
#: weight of a background (unrated) paper relative to a rated one
BACKGROUND_WEIGHT = 0.3


def paper_text(title: str, abstract: str) -> str:
    # the title twice: it says what the paper is about more surely than any abstract sentence
    return f"{title}. {title}. {abstract}"


class Vectoriser:
    """Hashed word and word-pair counts, weighted by IDF fitted on a corpus, L2-normalised."""

    def __init__(self, corpus: Sequence[str] = ()) -> None:
        self._hashing = HashingVectorizer(
            n_features=N_FEATURES, alternate_sign=False, norm=None, ngram_range=(1, 2),
            stop_words="english", dtype=np.float32,
        )
        self._tfidf = TfidfTransformer(sublinear_tf=True)
        self.fitted_on = len(corpus)
        self._tfidf.fit(self._hashing.transform(list(corpus) or ["empty"]))

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        if not texts:
            return sparse.csr_matrix((0, N_FEATURES), dtype=np.float32)
        return self._tfidf.transform(self._hashing.transform(list(texts))).astype(np.float32)


@dataclass(frozen=True)
class ReaderModel:
    """Sparse weights over the hashed features, and the intercept."""

    indexes: np.ndarray  # int32, sorted
    weights: np.ndarray  # float32
    intercept: float
    ratings: int

    def scores(self, vectors: sparse.csr_matrix) -> np.ndarray:
        """The decision value of each row: > 0 leans "more", < 0 leans "less"."""
        if not len(self.indexes):
            return np.full(vectors.shape[0], self.intercept, dtype=np.float32)
        # scattering the weights into one dense vector and multiplying costs O(non-zeros of
        # the rows); slicing the rows' columns by the model's indexes costs far more
        full = np.zeros(vectors.shape[1], dtype=np.float32)
        full[self.indexes] = self.weights
        return vectors @ full + self.intercept

    def to_bytes(self) -> tuple[bytes, bytes]:
        return (
            self.indexes.astype("<i4").tobytes(), self.weights.astype("<f4").tobytes(),
        )

    @classmethod
    def from_bytes(
        cls, indexes: bytes, weights: bytes, intercept: float, ratings: int
    ) -> ReaderModel:
        return cls(
            np.frombuffer(indexes, dtype="<i4").astype(np.int32),
            np.frombuffer(weights, dtype="<f4").astype(np.float32),
            float(intercept), ratings,
        )


def train(
    liked: sparse.csr_matrix, disliked: sparse.csr_matrix, background: sparse.csr_matrix
) -> ReaderModel:
    """A model from the rated papers' vectors; `background` holds unrated papers' vectors."""
    rated = liked.shape[0] + disliked.shape[0]
    if rated == 0:
        raise ValueError("a model needs at least one rating")
    background_label = 0 if liked.shape[0] else 1
    parts = [liked, disliked, background]
    labels = np.concatenate(
        [
            np.ones(liked.shape[0]), np.zeros(disliked.shape[0]),
            np.full(background.shape[0], background_label),
        ]
    )
    weights = np.concatenate(
        [np.ones(rated), np.full(background.shape[0], BACKGROUND_WEIGHT)]
    )
    if len(set(labels)) < 2:
        # all the same class (e.g. only "less" and no background): a constant model
        sign = 1.0 if labels[0] == 1 else -1.0
        return ReaderModel(np.zeros(0, np.int32), np.zeros(0, np.float32), sign, rated)
    matrix = sparse.vstack(parts).tocsr()
    # Only the features these papers contain can get a weight: train on those columns alone
    # (a few thousand of 2^18), which is what makes training take milliseconds.
    columns = np.unique(matrix.indices).astype(np.int32)
    classifier = LogisticRegression(
        C=10.0, class_weight="balanced", solver="liblinear", max_iter=200
    )
    classifier.fit(matrix[:, columns], labels, sample_weight=weights)
    coef = classifier.coef_.ravel()
    # the strongest MAX_WEIGHTS weights carry the model; the rest is storage
    keep = np.argsort(-np.abs(coef))[:MAX_WEIGHTS]
    keep = np.sort(keep[np.abs(coef[keep]) > 1e-6])
    return ReaderModel(
        columns[keep], coef[keep].astype(np.float32), float(classifier.intercept_[0]), rated
    )


def closest(candidates: sparse.csr_matrix, references: sparse.csr_matrix) -> np.ndarray:
    """For each candidate row, the index of the most similar reference row (cosine)."""
    similarity = (candidates @ references.T).toarray()
    return similarity.argmax(axis=1)
