"""The full-text index of papers' words, used to pick candidate papers for a topic query.

SQLite keeps the words in an FTS5 table without content of its own (the papers table has the
text), PostgreSQL in a ``tsvector`` column with a GIN index; both hold, per paper, the tokens
`digestd.topics.candidates.paper_tokens` makes, and both answer a candidate condition with
the ids of the papers that meet it. The exact matcher then runs on those papers only.

Freshness does not depend on every code path that writes papers remembering the index:
``paper_terms_state`` holds a row per paper indexed as it is now, triggers on ``papers``
(migration 0020) delete a paper's row when its title, abstract or keywords change or the paper
is deleted, by whatever writer, and `refresh_terms` indexes every paper without a row before
candidates are read: finding them is an anti-join on ids, not a read of every paper's text,
and a paper whose upvotes changed stays indexed. On SQLite a changed paper's old tokens stay
in the index next to the new ones (a contentless FTS5 table cannot delete); that only adds
candidates.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    Select,
    Table,
    Text,
    cast,
    delete,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.orm import Session

from digestd.store.models import Paper, UtcDateTime
from digestd.topics.candidates import Condition, document_tokens, to_fts5, to_tsquery
from digestd.topics.packed import paper_document as packed_document

#: every table of the index starts with this (schema comparisons leave them out: the SQLite
#: FTS5 table and its shadow tables have no model)
TABLE_PREFIX = "paper_terms"

_metadata = MetaData()
#: the papers indexed as they are now; ``updated_at`` and ``size`` are what was indexed, which
#: versions before migration 0020 compared with the paper to tell (still written, so that a
#: downgrade finds them right)
state_table = Table(
    "paper_terms_state",
    _metadata,
    Column("paper_id", Integer, primary_key=True),
    Column("updated_at", UtcDateTime),
    Column("size", Integer),
)

#: each paper's words as the matcher reads them (digestd.topics.packed), so that matching
#: and re-matching stored papers never cut and stem them again; a kept string made from other
#: text is not used (its stamp says so), and is replaced when the paper is next matched
words_table = Table(
    "paper_terms_words",
    _metadata,
    Column("paper_id", Integer, primary_key=True),
    Column("words", Text, nullable=False),
)

#: papers indexed per statement
_CHUNK = 1000


def _size() -> object:
    return (
        func.length(Paper.title) + func.length(Paper.abstract)
        + func.coalesce(func.length(cast(Paper.keywords, Text)), 0)
    )


def _tokens(row: Any, fresh: list[dict[str, Any]]) -> set[str]:
    """A paper's index tokens, from its kept words where they fit its text.

    The text is the matcher's (keywords after the abstract, see topics.match.paper_document);
    words made here are added to ``fresh``, to be kept.
    """
    keywords = "; ".join(row.keywords or ())
    fields = {"keywords": keywords} if keywords else {}
    doc, packed = packed_document(row.words, row.title, row.abstract, **fields)
    if packed is not None:
        fresh.append({"paper_id": row.id, "words": packed})
    return document_tokens(doc)


def _unindexed() -> Select[Any]:
    """Ids of the papers the index does not hold as they are now (new, or changed since)."""
    state = state_table
    # no ORDER BY: SQLite then reads the ids from a small index instead of the whole table
    return (
        select(Paper.id)
        .outerjoin(state, state.c.paper_id == Paper.id)
        .where(state.c.paper_id.is_(None))
    )


def mostly_indexed(session: Session) -> bool:
    """Whether the index holds all but at most one paper in fifty as it is now.

    Indexing a paper costs twenty times or more what narrowing saves on it when every topic
    is matched again (50,000 papers: indexed in 37-45 s; re-matched against 20 topics in
    7.8 s narrowed, 9.4 s not), so a bulk re-match narrows only when little is left to index.
    """
    papers = session.scalar(select(func.count()).select_from(Paper)) or 0
    stale = session.scalar(select(func.count()).select_from(_unindexed().subquery())) or 0
    return stale * 50 <= papers


def refresh_terms(session: Session) -> int:
    """Index every paper that is new or changed since it was indexed; returns how many."""
    state = state_table
    ids = sorted(session.scalars(_unindexed()))
    papers = select(
        Paper.id, Paper.title, Paper.abstract, Paper.keywords, words_table.c.words
    ).outerjoin(words_table, words_table.c.paper_id == Paper.id)
    postgres = session.get_bind().dialect.name == "postgresql"
    done = 0
    # a page at a time: the kept words are a few times the size of the text
    for start in range(0, len(ids), _CHUNK):
        chunk = session.execute(
            papers.where(Paper.id.in_(ids[start : start + _CHUNK])).order_by(Paper.id)
        ).all()
        if not chunk:
            continue  # deleted since
        done += len(chunk)
        fresh: list[dict[str, Any]] = []
        tokens = [_tokens(row, fresh) for row in chunk]
        if postgres:
            session.execute(
                text(
                    "INSERT INTO paper_terms (paper_id, terms) "
                    "VALUES (:id, array_to_tsvector(CAST(:tokens AS text[]))) "
                    "ON CONFLICT (paper_id) DO UPDATE SET terms = excluded.terms"
                ),
                [
                    {"id": row.id, "tokens": list(found)}
                    for row, found in zip(chunk, tokens, strict=True)
                ],
            )
        else:
            session.execute(
                text("INSERT INTO paper_terms (rowid, terms) VALUES (:id, :terms)"),
                [
                    {"id": row.id, "terms": " ".join(found)}
                    for row, found in zip(chunk, tokens, strict=True)
                ],
            )
        save_words(session, fresh)
        indexed = [row.id for row in chunk]
        # a row is there only if another process indexed the paper meanwhile: replaced
        session.execute(state.delete().where(state.c.paper_id.in_(indexed)))
        # copied in SQL, so the stored updated_at is the same value, byte for byte
        session.execute(
            state.insert().from_select(
                ["paper_id", "updated_at", "size"],
                select(Paper.id, Paper.updated_at, _size()).where(Paper.id.in_(indexed)),
            )
        )
    return done


def candidate_ids(session: Session, condition: Condition) -> set[int]:
    """Ids of the indexed papers that meet `condition` (call `refresh_terms` first).

    Asked hundreds of times per bulk re-match (see matching._reaching) for up to every paper
    each: the ids are read with the driver's own cursor, in one fetch, not row by row
    through result objects (a third of the time).
    """
    if session.get_bind().dialect.name == "postgresql":
        sql = "SELECT paper_id FROM paper_terms WHERE terms @@ CAST(%s AS tsquery)"
        query = to_tsquery(condition)
    else:
        sql = "SELECT rowid FROM paper_terms WHERE paper_terms MATCH ?"
        query = to_fts5(condition)
    cursor = session.connection().connection.cursor()
    try:
        cursor.execute(sql, (query,))
        return {row[0] for row in cursor.fetchall()}
    finally:
        cursor.close()


def save_words(session: Session, rows: list[dict[str, Any]]) -> None:
    """Keep papers' packed words: ``{"paper_id": id, "words": packed}`` rows, replacing any."""
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        session.execute(
            delete(words_table).where(words_table.c.paper_id.in_([r["paper_id"] for r in chunk]))
        )
        session.execute(insert(words_table), chunk)
