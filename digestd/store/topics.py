"""Topics mirrored from the configuration, and which papers each topic matched."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from sqlalchemy import Select, delete, exists, func, insert, select
from sqlalchemy.orm import Session

from digestd.gcpause import collector_paused
from digestd.ranking import TopicNormaliser
from digestd.store.db import Database
from digestd.store.highlights import Highlighter, Wanted
from digestd.store.models import Batch, Paper, PaperTopic, Topic, utcnow
from digestd.store.terms import candidate_ids, refresh_terms, save_words, words_table
from digestd.topics.packed import paper_document as packed_document

if TYPE_CHECKING:
    from digestd.topics import Document, TopicDefinition, TopicMatch
    from digestd.topics.candidates import Condition, ScoreBound

#: (title, abstract) -> the topics that match, as the topics package computes them
#: ``classify(title, abstract, **fields)``: the topics a paper matches; ``fields`` holds the
#: text of the other fields queries can name (see ``match_fields``)
Classify = Callable[..., Sequence["TopicMatch"]]
#: a paper to match: id, title, abstract and the other fields' text
MatchRow = tuple[int, str, str, dict[str, str]]


def match_fields(paper: Any) -> dict[str, str]:
    """The text of a paper's other matchable fields, from a row or a parsed listing.

    List values are joined with "; " so that a phrase never runs from one name into the next.
    Keywords are searched like the abstract (by normal words), so they come as "keywords".
    """
    org = [value for value in (paper.organization_id, paper.organization) if value]
    fields = {
        "author": "; ".join(paper.authors or ()),
        "org": "; ".join(dict.fromkeys(org)),
        "category": "; ".join(paper.categories or ()),
        "keywords": "; ".join(paper.keywords or ()),
    }
    return {name: text for name, text in fields.items() if text}

#: a topic's scores are normalised against its this many newest matches
RECENT_MATCHES = 1000


@dataclass(frozen=True, slots=True)
class TopicRecord:
    id: int
    slug: str
    name: str
    description: str
    query: str
    active: bool
    min_score: float = 0.0


@dataclass(frozen=True, slots=True)
class PaperMatch:
    """Why a paper is in a topic."""

    slug: str
    score: float
    terms: tuple[str, ...]
    highlights: tuple[str, ...]
    #: the score's percentile among the topic's recent matches (digestd.ranking.normalise):
    #: comparable across topics, unlike the raw score
    normalised: float = 0.5


def _topic_record(topic: Topic) -> TopicRecord:
    return TopicRecord(
        topic.id, topic.slug, topic.name, topic.description, topic.query, topic.active,
        topic.min_score or 0.0,
    )


class TopicStore(Database):
    def sync_topics(self, definitions: Sequence[TopicDefinition]) -> list[str]:
        """Mirror the configured topics; return the slugs that are new or whose query changed.

        Topics no longer configured are deactivated, not deleted, so a subscriber following
        one keeps the subscription should the topic come back.
        """
        if not self._topics_differ(definitions):
            # Nothing to write: a read-only command on a read-only database works, and an
            # unchanged configuration costs no write transaction.
            return []
        changed = []
        with self.write() as session:
            rows = {t.slug: t for t in session.scalars(select(Topic))}
            for position, definition in enumerate(definitions):
                row = rows.pop(definition.slug, None)
                if row is None:
                    row = Topic(slug=definition.slug, query="")
                    session.add(row)
                if (
                    row.query != definition.query
                    or (row.min_score or 0.0) != definition.min_score
                    or not row.active
                ):
                    changed.append(definition.slug)
                row.name = definition.name
                row.description = definition.description
                row.query = definition.query
                row.min_score = definition.min_score
                row.position = position
                row.active = True
                row.updated_at = utcnow()
            for gone in rows.values():
                gone.active = False
        return changed

    def _topics_differ(self, definitions: Sequence[TopicDefinition]) -> bool:
        """Whether the stored topics differ from `definitions` in anything sync_topics sets."""
        with self.read() as session:
            rows = {
                t.slug: (t.name, t.description, t.query, t.min_score or 0.0, t.position, t.active)
                for t in session.scalars(select(Topic))
            }
        for position, definition in enumerate(definitions):
            stored = rows.pop(definition.slug, None)
            wanted = (definition.name, definition.description, definition.query,
                      definition.min_score, position, True)
            if stored != wanted:
                return True
        return any(stored[-1] for stored in rows.values())

    def topics(self, *, include_inactive: bool = False) -> list[TopicRecord]:
        query = select(Topic).order_by(Topic.position, Topic.slug)
        if not include_inactive:
            query = query.where(Topic.active.is_(True))
        with self.read() as session:
            return [_topic_record(t) for t in session.scalars(query)]

    def topic_paper_counts(self, since: dt.datetime | None = None) -> dict[str, int]:
        """Papers matched per topic; with `since`, only papers first stored since then."""
        query = (
            select(Topic.slug, func.count(PaperTopic.paper_id))
            .join(PaperTopic, PaperTopic.topic_id == Topic.id)
            .group_by(Topic.slug)
        )
        if since is not None:
            query = query.join(Paper, Paper.id == PaperTopic.paper_id).where(
                Paper.first_seen_at >= since
            )
        with self.read() as session:
            return {slug: count for slug, count in session.execute(query)}

    def rematch_topics(self, slugs: Iterable[str], classify: Classify, page: int = 2000) -> int:
        """Recompute the matches of these topics over every stored paper; returns matches.

        `classify` must match at least these topics. One that can narrow (a `Narrowing`, as
        the runtime passes) is run only on each topic's candidate papers from the full-text
        index when a few topics changed; the result is the same.
        """
        slugs = set(slugs)
        if not slugs:
            return 0
        total = 0
        with self.write() as session, collector_paused():
            topic_ids = _topic_ids(session)
            live = {s for s in slugs if s in topic_ids}
            # Most topics changed (a new database, a new topic set): nearly every paper is
            # some topic's candidate, so matching each paper directly is cheaper than building
            # the index first.
            narrow = isinstance(classify, Narrowing) and len(live) * 2 <= len(topic_ids)
            session.execute(
                delete(PaperTopic).where(PaperTopic.topic_id.in_([topic_ids[s] for s in live]))
            )
            for rows, wanted in _papers_to_match(session, classify, live, page, narrow=narrow):
                values = [
                    _match_row(paper_id, topic_ids[m.slug], m)
                    for paper_id, matches in _match_rows(session, classify, rows, wanted)
                    for m in matches
                    if m.slug in live
                ]
                if values:
                    session.execute(insert(PaperTopic.__table__), values)
                total += len(values)
        return total

    def newest_paper_ids(self, slugs: Iterable[str], limit: int) -> dict[str, list[int]]:
        """Each active topic's newest `limit` paper ids, newest first by first-seen time.

        Walks the papers newest first (ix_papers_first_seen) probing paper_topics' key: a common
        topic stops after a few hundred probes, a rare one reads the index once, and no topic
        sorts all of its papers. The feeds are built from this after every batch.
        """
        result: dict[str, list[int]] = {}
        with self.read() as session:
            topic_ids = _topic_ids(session)
            for slug in slugs:
                if slug not in topic_ids:
                    result[slug] = []
                    continue
                matched = exists().where(
                    PaperTopic.paper_id == Paper.id, PaperTopic.topic_id == topic_ids[slug]
                )
                query = (
                    select(Paper.id)
                    .where(matched)
                    .order_by(Paper.first_seen_at.desc(), Paper.id.desc())
                    .limit(limit)
                )
                result[slug] = list(session.scalars(query))
        return result

    def topic_normaliser(self) -> TopicNormaliser:
        """Each active topic's percentile function over its RECENT_MATCHES newest matches.

        Remembered until a batch arrives or the topics are synced (which is when matches
        change), so planning thousands of digests reads the scores once.
        """
        with self.read() as session:
            key = (
                session.scalar(select(func.max(Batch.id))),
                session.scalar(select(func.max(Topic.updated_at))),
            )
            cached: tuple[object, TopicNormaliser] | None = getattr(self, "_normaliser", None)
            if cached is not None and cached[0] == key:
                return cached[1]
            scores: dict[str, list[float]] = {}
            for slug, topic_id in _topic_ids(session).items():
                scores[slug] = list(
                    session.scalars(
                        select(PaperTopic.score)
                        .join(Paper, Paper.id == PaperTopic.paper_id)
                        .where(PaperTopic.topic_id == topic_id)
                        .order_by(Paper.first_seen_at.desc(), Paper.id.desc())
                        .limit(RECENT_MATCHES)
                    )
                )
        normaliser = TopicNormaliser(scores)
        self._normaliser = (key, normaliser)
        return normaliser

    def paper_matches(self, paper_ids: Iterable[int]) -> dict[int, list[PaperMatch]]:
        """The active topics each paper is in, best normalised score first.

        A match stored without highlights (re-matched in bulk) gets them here (.highlights).
        """
        ids = list(paper_ids)
        result: dict[int, list[PaperMatch]] = {i: [] for i in ids}
        normalise = self.topic_normaliser() if ids else None
        with self.read() as session:
            found: list[tuple[int, PaperMatch, Wanted | None]] = []
            for start in range(0, len(ids), 500):
                rows = session.execute(
                    select(PaperTopic, Topic.slug, Topic.query, Paper.updated_at)
                    .join(Topic, Topic.id == PaperTopic.topic_id)
                    .join(Paper, Paper.id == PaperTopic.paper_id)
                    .where(PaperTopic.paper_id.in_(ids[start : start + 500]))
                    .where(Topic.active.is_(True))
                )
                for match, slug, query, updated_at in rows:
                    assert normalise is not None
                    stored = match.highlights
                    found.append((
                        match.paper_id,
                        PaperMatch(
                            slug, match.score, tuple(match.terms),
                            () if stored is None else tuple(stored),
                            normalise(slug, match.score),
                        ),
                        (match.paper_id, updated_at, query) if stored is None else None,
                    ))
            wanted = {key for _, _, key in found if key is not None}
            made = self._highlighter(session, wanted) if wanted else {}
        for paper_id, paper_match, key in found:
            if key is not None:
                paper_match = replace(paper_match, highlights=made[key])
            result[paper_id].append(paper_match)
        for matches in result.values():
            matches.sort(key=lambda m: (-m.normalised, -m.score, m.slug))
        return result

    @cached_property
    def _highlighter(self) -> Highlighter:
        return Highlighter(match_fields)


def _topic_ids(session: Session) -> dict[str, int]:
    return dict(session.execute(select(Topic.slug, Topic.id).where(Topic.active.is_(True))).all())


def _match_row(paper_id: int, topic_id: int, match: TopicMatch) -> dict[str, object]:
    return {
        "paper_id": paper_id,
        "topic_id": topic_id,
        "score": match.score,
        "terms": list(match.terms),
        # None is stored as JSON null: made when the match is shown (.highlights)
        "highlights": None if match.highlights is None else list(match.highlights),
    }


def record_matches(session: Session, papers: Iterable[MatchRow], classify: Classify) -> None:
    """Store the topic matches of freshly inserted papers, inside the ingest's transaction.

    With a classify that matches prepared papers, each paper's packed words are kept too, so
    that re-matching it later does not cut its words again.
    """
    topic_ids = _topic_ids(session)
    with collector_paused():
        if isinstance(classify, MatchesDocuments):
            words: list[dict[str, Any]] = []
            values = []
            for paper_id, title, abstract, fields in papers:
                doc, packed = packed_document(None, title, abstract, **fields)
                words.append({"paper_id": paper_id, "words": packed})
                values += [
                    _match_row(paper_id, topic_ids[m.slug], m)
                    for m in classify.match_document(doc)
                    if m.slug in topic_ids
                ]
            save_words(session, words)
        else:
            values = [
                _match_row(paper_id, topic_ids[m.slug], m)
                for paper_id, title, abstract, fields in papers
                for m in classify(title, abstract, **fields)
                if m.slug in topic_ids
            ]
    for start in range(0, len(values), 2000):
        session.execute(insert(PaperTopic.__table__), values[start : start + 2000])


@runtime_checkable
class MatchesDocuments(Protocol):
    """A classify that also matches a paper prepared already (see digestd.topics.packed)."""

    def __call__(self, title: str, abstract: str, **fields: str) -> Sequence[TopicMatch]: ...

    def match_document(
        self, doc: Document, slugs: Collection[str] | None = None, *, highlight: bool = True
    ) -> Sequence[TopicMatch]: ...


def _match_rows(
    session: Session, classify: Classify, rows: Sequence[Any],
    wanted: Callable[[int], frozenset[str] | None],
) -> Iterator[tuple[int, Sequence[TopicMatch]]]:
    """Each row's paper id and matches; packed words are read from the rows, and those
    missing or made from other text are made again and kept."""
    fields_of = _plain_fields if _plain(classify) else match_fields
    if not isinstance(classify, MatchesDocuments):
        for row in rows:
            slugs = wanted(row.id)
            yield row.id, _classify(classify, row.title, row.abstract, slugs, fields_of(row))
        return
    fresh: list[dict[str, Any]] = []
    for row in rows:
        slugs = wanted(row.id)
        if slugs is not None and not slugs:
            continue
        doc, packed = packed_document(row.words, row.title, row.abstract, **fields_of(row))
        if packed is not None:
            fresh.append({"paper_id": row.id, "words": packed})
        # re-matched in bulk: highlights are made for the matches shown (.highlights)
        yield row.id, classify.match_document(doc, slugs, highlight=False)
    save_words(session, fresh)


@runtime_checkable
class Narrowing(Protocol):
    """A classify that can match only some topics, and says which papers each could match."""

    def __call__(self, title: str, abstract: str, **fields: str) -> Sequence[TopicMatch]: ...

    def match_some(
        self, title: str, abstract: str, slugs: Collection[str], **fields: str
    ) -> Sequence[TopicMatch]: ...

    @property
    def conditions(self) -> Mapping[str, Condition | None]: ...


def _classify(
    classify: Classify, title: str, abstract: str, slugs: frozenset[str] | None,
    fields: dict[str, str],
) -> Sequence[TopicMatch]:
    if slugs is None:
        return classify(title, abstract, **fields)
    if not slugs:
        return ()
    return classify.match_some(title, abstract, slugs, **fields)  # type: ignore[attr-defined]


class _Candidates:
    """paper id -> the topics it may match: the narrowed topics whose candidate it is, plus
    the topics that could not be narrowed (every paper is their candidate)."""

    def __init__(self, everywhere: frozenset[str], by_paper: dict[int, frozenset[str]]):
        self.everywhere = everywhere
        self.by_paper = by_paper

    def __call__(self, paper_id: int) -> frozenset[str]:
        return self.by_paper.get(paper_id, self.everywhere)


def _candidates(
    session: Session, classify: Narrowing, slugs: set[str], *, within: set[int] | None = None
) -> _Candidates:
    """Which of `slugs` each paper may match (call refresh_terms first)."""
    everywhere: set[str] = set()
    by_paper: dict[int, set[str]] = {}
    for slug in slugs:
        condition = classify.conditions.get(slug)
        if condition is None:
            everywhere.add(slug)
            continue
        found = candidate_ids(session, condition)
        if within is not None:
            found &= within
        bound = getattr(classify, "score_bounds", {}).get(slug)
        if bound is not None:
            found = _reaching(session, found, *bound)
        for paper_id in found:
            by_paper.setdefault(paper_id, set()).add(slug)
    fixed = frozenset(everywhere)
    return _Candidates(fixed, {paper_id: fixed | found for paper_id, found in by_paper.items()})


def _reaching(
    session: Session, papers: set[int], min_score: float, bound: ScoreBound
) -> set[int]:
    """The papers of `papers` that could score `min_score`: a topic that asks for two terms
    in the abstract or one in the title needs no exact match on a paper with one mention."""
    needed = min_score - bound.fixed
    if needed <= 0 or not papers:
        return papers
    most: dict[int, float] = dict.fromkeys(papers, 0.0)
    for condition, points in bound.parts:
        for paper_id in candidate_ids(session, condition) & papers:
            most[paper_id] += points
    return {paper_id for paper_id, points in most.items() if points >= needed}


#: what matching reads of a paper (see match_fields)
_MATCHED_COLUMNS = (
    Paper.id, Paper.title, Paper.abstract, Paper.authors, Paper.organization_id,
    Paper.organization, Paper.categories, Paper.keywords,
)
#: what it reads when no topic names a field other than the title and abstract: the keywords
#: are part of the abstract (decoding the other JSON lists costs)
_PLAIN_COLUMNS = (Paper.id, Paper.title, Paper.abstract, Paper.keywords)
#: the fields those columns hold; a query naming any other (author:, org:, or one registered
#: later) reads every column
_PLAIN_FIELDS = frozenset({"title", "abstract"})


def _plain(classify: Classify) -> bool:
    """Whether `classify` says its topics name only fields of `_PLAIN_COLUMNS` (one that does
    not say may look at all of them)."""
    fields = getattr(classify, "fields", None)
    return isinstance(fields, frozenset) and fields <= _PLAIN_FIELDS


def _plain_fields(row: Any) -> dict[str, str]:
    """match_fields of a row of _PLAIN_COLUMNS."""
    return {"keywords": "; ".join(row.keywords)} if row.keywords else {}


def _matched(classify: Classify) -> Select[Any]:
    """What matching reads of papers, with their packed words where kept."""
    columns = _PLAIN_COLUMNS if _plain(classify) else _MATCHED_COLUMNS
    return select(*columns, words_table.c.words).outerjoin(
        words_table, words_table.c.paper_id == Paper.id
    )


def _papers_to_match(
    session: Session, classify: Classify, slugs: set[str], page: int, *, narrow: bool
) -> Iterator[tuple[Sequence[Any], Callable[[int], frozenset[str] | None]]]:
    """Pages of paper rows to match, with the topics to match each against."""
    wanted: Callable[[int], frozenset[str] | None] = lambda _paper_id: None  # noqa: E731
    if slugs and narrow and isinstance(classify, Narrowing):
        refresh_terms(session)
        candidates = _candidates(session, classify, slugs)
        wanted = candidates
        if not candidates.everywhere:
            # every topic narrowed: only candidate papers are read at all
            ids = sorted(candidates.by_paper)
            for start in range(0, len(ids), page):
                rows = session.execute(
                    _matched(classify)
                    .where(Paper.id.in_(ids[start : start + page]))
                    .order_by(Paper.id)
                ).all()
                yield rows, wanted
            return
    last_id = 0
    while True:
        rows = session.execute(
            _matched(classify)
            .where(Paper.id > last_id)
            .order_by(Paper.id)
            .limit(page)
        ).all()
        if not rows:
            return
        yield rows, wanted
        last_id = rows[-1].id
