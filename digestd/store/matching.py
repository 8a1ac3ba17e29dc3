"""Matching stored papers against topics: at ingest, and again when topics change.

`record_matches` stores the matches of papers just inserted; `TopicStore.rematch_topics`
reads the papers to match again (`papers_to_match`: every paper, or each narrowed topic's
candidates from the full-text index and its score bound) and matches them (`match_rows`),
from each paper's kept words where the classifier can use them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from digestd.gcpause import collector_paused
from digestd.store.db import json_text
from digestd.store.models import Paper, Topic
from digestd.store.terms import candidate_ids, refresh_terms, save_words, words_table
from digestd.topics.packed import paper_document as packed_document

if TYPE_CHECKING:
    from digestd.topics import Document, TopicMatch
    from digestd.topics.candidates import Condition, ScoreBound

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


def active_topic_ids(session: Session) -> dict[str, int]:
    return dict(session.execute(select(Topic.slug, Topic.id).where(Topic.active.is_(True))).all())


#: a paper_topics row as insert_matches writes it: ids, score, and the JSON columns' text
MatchValues = tuple[int, int, float, str, str]


def match_row(paper_id: int, topic_id: int, match: TopicMatch) -> MatchValues:
    return (
        paper_id,
        topic_id,
        match.score,
        json_text(match.terms),  # a tuple: its JSON text is remembered
        # None is stored as JSON null: made when the match is shown (.highlights)
        "null" if match.highlights is None else json.dumps(list(match.highlights)),
    )


_COLUMNS = "paper_topics (paper_id, topic_id, score, terms, highlights)"
#: the driver's own statement, by whether the database is PostgreSQL (else SQLite, as the
#: full-text index assumes); the JSON columns get the text SQLAlchemy's JSON type writes
_INSERT_MATCHES = {
    True: f"INSERT INTO {_COLUMNS} VALUES (%s, %s, %s, CAST(%s AS JSON), CAST(%s AS JSON))",
    False: f"INSERT INTO {_COLUMNS} VALUES (?, ?, ?, ?, ?)",
}


def insert_matches(session: Session, rows: Sequence[MatchValues]) -> None:
    """Write match rows: a bulk re-match writes a hundred thousand, and SQLAlchemy's work
    per row (parameters, JSON processing) costs more than the database's."""
    connection = session.connection()
    sql = _INSERT_MATCHES[connection.dialect.name == "postgresql"]
    for start in range(0, len(rows), 2000):
        connection.exec_driver_sql(sql, list(rows[start : start + 2000]))


def record_matches(session: Session, papers: Iterable[MatchRow], classify: Classify) -> None:
    """Store the topic matches of freshly inserted papers, inside the ingest's transaction.

    With a classify that matches prepared papers, each paper's packed words are kept too, so
    that re-matching it later does not cut its words again, and its matches are stored without
    highlights: they are made when a match is read (.highlights), for the few papers of a big
    dump that a feed or a digest shows.
    """
    topic_ids = active_topic_ids(session)
    with collector_paused():
        if isinstance(classify, MatchesDocuments):
            words: list[dict[str, Any]] = []
            values = []
            for paper_id, title, abstract, fields in papers:
                doc, packed = packed_document(None, title, abstract, **fields)
                words.append({"paper_id": paper_id, "words": packed})
                values += [
                    match_row(paper_id, topic_ids[m.slug], m)
                    for m in classify.match_document(doc, highlight=False)
                    if m.slug in topic_ids
                ]
            save_words(session, words)
        else:
            values = [
                match_row(paper_id, topic_ids[m.slug], m)
                for paper_id, title, abstract, fields in papers
                for m in classify(title, abstract, **fields)
                if m.slug in topic_ids
            ]
    insert_matches(session, values)


@runtime_checkable
class MatchesDocuments(Protocol):
    """A classify that also matches a paper prepared already (see digestd.topics.packed)."""

    def __call__(self, title: str, abstract: str, **fields: str) -> Sequence[TopicMatch]: ...

    def match_document(
        self, doc: Document, slugs: Collection[str] | None = None, *, highlight: bool = True
    ) -> Sequence[TopicMatch]: ...


def match_rows(
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
    session: Session, classify: Narrowing, slugs: set[str]
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
    """What matching reads of papers for `classify`, with their packed words where kept."""
    return papers_with_words(_PLAIN_COLUMNS if _plain(classify) else _MATCHED_COLUMNS)


def papers_with_words(columns: Sequence[Any] = _MATCHED_COLUMNS) -> Select[Any]:
    """Papers' `columns` (by default all that `match_fields` reads) and their packed words
    where kept: what a paper is matched, or highlighted, from."""
    return select(*columns, words_table.c.words).outerjoin(
        words_table, words_table.c.paper_id == Paper.id
    )


def papers_to_match(
    session: Session, classify: Classify, slugs: set[str], page: int, *, narrow: bool
) -> Iterator[tuple[Sequence[Any], Callable[[int], frozenset[str] | None]]]:
    """Pages of paper rows to match, with the topics to match each against."""
    # plain rows, read without the ORM's result handling: tens of thousands of them
    connection = session.connection()
    wanted: Callable[[int], frozenset[str] | None] = lambda _paper_id: None  # noqa: E731
    if slugs and narrow and isinstance(classify, Narrowing):
        refresh_terms(session)
        candidates = _candidates(session, classify, slugs)
        wanted = candidates
        if not candidates.everywhere:
            # every topic narrowed: only candidate papers are read at all
            ids = sorted(candidates.by_paper)
            for start in range(0, len(ids), page):
                rows = connection.execute(
                    _matched(classify)
                    .where(Paper.id.in_(ids[start : start + page]))
                    .order_by(Paper.id)
                ).all()
                yield rows, wanted
            return
    last_id = 0
    while True:
        rows = connection.execute(
            _matched(classify)
            .where(Paper.id > last_id)
            .order_by(Paper.id)
            .limit(page)
        ).all()
        if not rows:
            return
        yield rows, wanted
        last_id = rows[-1].id
