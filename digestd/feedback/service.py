"""Feedback wired to the store: record ratings, retrain a reader's model, personalise a digest.

The model itself is pure (.model); this module reads papers and ratings and writes models.
A reader's model is retrained whenever their ratings change, from their ratings alone, and is
only ever applied to their own digests: nothing learned from one reader reaches another.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sqlalchemy import func, select

from digestd.config import FeedbackConfig
from digestd.feedback.model import ReaderModel, Vectoriser, closest, paper_text, train
from digestd.store import PaperRecord, SelectedPaper, Store, StoredModel
from digestd.store.models import Paper

__all__ = ["AlsoLike", "Feedback", "Personalisation", "parse_rating"]

#: the IDF is fitted on at most this many of the newest papers
CORPUS_PAPERS = 20_000
#: unrated papers drawn as the background class when training
BACKGROUND_PAPERS = 40
#: from this many ratings on, the model moves papers by the full feedback.weight
FULL_WEIGHT_RATINGS = 10
#: "less like this" on this many papers of one topic (and no "more") suggests muting it
MUTE_AFTER = 3

_VALUES = {"up": 1, "more": 1, "down": -1, "less": -1, "clear": 0}


def parse_rating(word: str) -> int:
    """"up"/"more" -> 1, "down"/"less" -> -1, "clear" -> 0; ValueError otherwise."""
    try:
        return _VALUES[word.lower()]
    except KeyError:
        raise ValueError(f"a rating is up, down or clear, not {word!r}") from None


@dataclass(frozen=True)
class AlsoLike:
    item: SelectedPaper
    #: the title of the liked paper it is closest to
    close_to: str


@dataclass(frozen=True)
class Personalisation:
    #: paper id -> adjustment of its normalised score within its topic
    boost: Mapping[int, float]
    also_like: tuple[AlsoLike, ...]

    @property
    def key(self) -> tuple[object, ...]:
        """What tells two personalisations apart (for caching rendered digests)."""
        return (
            tuple(sorted((k, round(v, 4)) for k, v in self.boost.items())),
            tuple((a.item.paper.id, a.close_to) for a in self.also_like),
        )


class Feedback:
    def __init__(self, store: Store, config: FeedbackConfig) -> None:
        self.store = store
        self.config = config
        self._matrices: OrderedDict[tuple[int, ...], sparse.csr_matrix] = OrderedDict()

    # Vectors --------------------------------------------------------------------------------

    def vectoriser(self) -> Vectoriser:
        """The shared IDF, fitted on the newest papers; refitted once the corpus grew by 10 %."""
        with self.store.read() as session:
            count = session.scalar(select(func.count(Paper.id))) or 0
        cached: Vectoriser | None = getattr(self.store, "_feedback_vectoriser", None)
        if cached is not None and count <= max(cached.fitted_on * 1.1, cached.fitted_on + 50):
            return cached
        papers = self.store.papers(limit=CORPUS_PAPERS)
        vectoriser = Vectoriser([paper_text(p.title, p.abstract) for p in papers])
        self.store._feedback_vectoriser = vectoriser  # type: ignore[attr-defined]
        self._matrices.clear()
        return vectoriser

    def vectors(self, papers: Sequence[PaperRecord]) -> sparse.csr_matrix:
        """The papers' TF-IDF rows, remembered per set of papers (readers share selections)."""
        key = tuple(p.id for p in papers)
        found = self._matrices.get(key)
        if found is None:
            found = self.vectoriser().transform([paper_text(p.title, p.abstract) for p in papers])
            if len(self._matrices) >= 256:
                self._matrices.popitem(last=False)
            self._matrices[key] = found
        return found

    # Ratings and models ---------------------------------------------------------------------

    def rate(self, subscriber_id: int, paper_id: int, value: int) -> bool:
        """Record a rating (0 clears it) and retrain when it changed anything."""
        changed = self.store.set_rating(subscriber_id, paper_id, value)
        if changed or self.store.feedback_model(subscriber_id) is None:
            self.retrain(subscriber_id)
        return changed

    def retrain(self, subscriber_id: int, *, now: dt.datetime | None = None) -> ReaderModel | None:
        ratings = self.store.ratings(subscriber_id)
        if len(ratings) < max(1, self.config.min_ratings):
            self.store.drop_model(subscriber_id)
            return None
        rated = {r.paper_id: r.value for r in ratings}
        papers = {p.id: p for p in self.store.papers_by_ids(list(rated))}
        liked = [papers[i] for i, v in rated.items() if v > 0 and i in papers]
        disliked = [papers[i] for i, v in rated.items() if v < 0 and i in papers]
        recent = [p for p in self.store.papers(limit=BACKGROUND_PAPERS * 5) if p.id not in rated]
        # seeded by the reader, so the same ratings always give the same model
        background = random.Random(subscriber_id).sample(
            recent, min(BACKGROUND_PAPERS, len(recent))
        )
        vectoriser = self.vectoriser()

        def rows(items: list[PaperRecord]) -> sparse.csr_matrix:
            return vectoriser.transform([paper_text(p.title, p.abstract) for p in items])

        model = train(rows(liked), rows(disliked), rows(background))
        indexes, weights = model.to_bytes()
        self.store.save_model(
            StoredModel(
                subscriber_id, indexes, weights, model.intercept, model.ratings,
                now or dt.datetime.now(dt.UTC),
            )
        )
        return model

    def model(self, subscriber_id: int) -> ReaderModel | None:
        stored = self.store.feedback_model(subscriber_id)
        if stored is None:
            return None
        return ReaderModel.from_bytes(
            stored.indexes, stored.weights, stored.intercept, stored.ratings
        )

    # Digests --------------------------------------------------------------------------------

    def personalise(
        self,
        subscriber_id: int,
        selected: Sequence[SelectedPaper],
        candidates: Sequence[PaperRecord] = (),
    ) -> Personalisation | None:
        """How the reader's model re-ranks `selected`, and which `candidates` (papers outside
        their topics) it offers as "you might also like"; None without a model."""
        if not self.config.enabled or not selected:
            return None
        model = self.model(subscriber_id)
        if model is None:
            return None
        scores = model.scores(self.vectors([item.paper for item in selected]))
        # Relative to this digest's papers: a model's raw margins can sit far from 0 for every
        # paper (few ratings, many background papers), and only their order says anything.
        spread = float(scores.std()) or 1.0
        centre = float(np.median(scores))
        # a model of a handful of ratings moves papers less than one of dozens
        weight = self.config.weight * min(1.0, model.ratings / FULL_WEIGHT_RATINGS)
        boost = {
            item.paper.id: float(weight * math.tanh((score - centre) / spread))
            for item, score in zip(selected, scores, strict=True)
        }
        return Personalisation(boost, self._also_like(subscriber_id, model, selected, candidates))

    def _also_like(
        self,
        subscriber_id: int,
        model: ReaderModel,
        selected: Sequence[SelectedPaper],
        candidates: Sequence[PaperRecord],
    ) -> tuple[AlsoLike, ...]:
        shown = {item.paper.id for item in selected}
        pool = [p for p in candidates if p.id not in shown]
        if self.config.also_like <= 0 or not pool:
            return ()
        liked_ids = [r.paper_id for r in self.store.ratings(subscriber_id) if r.value > 0]
        liked = self.store.papers_by_ids(liked_ids)
        if not liked:
            return ()
        pool_vectors = self.vectors(pool)
        scores = model.scores(pool_vectors)
        order = [i for i in scores.argsort()[::-1] if scores[i] > 0][: self.config.also_like]
        if not order:
            return ()
        nearest = closest(pool_vectors[order], self.vectors(liked))
        return tuple(
            AlsoLike(SelectedPaper(pool[i], ()), liked[j].title)
            for i, j in zip(order, nearest, strict=True)
        )

    def mute_suggestions(self, subscriber_id: int, topics: Sequence[str]) -> list[tuple[str, int]]:
        """Topics the reader keeps rating "less" (and never "more"): (slug, how many)."""
        ratings = self.store.ratings(subscriber_id)
        matches = self.store.paper_matches(r.paper_id for r in ratings)
        wanted = set(topics)
        down: Counter[str] = Counter()
        up: Counter[str] = Counter()
        for rating in ratings:
            found = matches.get(rating.paper_id, [])
            home = next((m.slug for m in found if m.slug in wanted), None)
            if home is not None:
                (up if rating.value > 0 else down)[home] += 1
        return [(slug, n) for slug, n in down.most_common() if n >= MUTE_AFTER and not up[slug]]


