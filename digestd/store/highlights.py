"""The pieces of a paper to highlight for a topic, made when a match is shown.

Finding the verbatim pieces a query matched costs as much as deciding the match. Matching a
dump of tens of thousands of papers, or re-matching the stored papers after a query changed,
decides thousands of matches of which a few hundred are ever shown (a feed's newest papers, a
digest's batch), so matches are stored without highlights (JSON ``null``) and
:class:`Highlighter` makes them when they are read, from the paper's kept words and the
topic's query as stored next to the match.

What is made is remembered per process, keyed by the paper's ``updated_at`` and the query
text, so a paper whose text changed, or a topic whose query did, is highlighted afresh.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from digestd.errors import QueryError
from digestd.store.models import Paper
from digestd.store.terms import words_table
from digestd.topics.match import highlights
from digestd.topics.packed import paper_document
from digestd.topics.query import compile_query

if TYPE_CHECKING:
    from digestd.topics.query import CompiledQuery

__all__ = ["Highlighter", "Wanted"]

#: a match without highlights: its paper, when the paper last changed, the topic's query
Wanted = tuple[int, dt.datetime, str]

#: highlights remembered per process before the memory is emptied (a few MiB)
_REMEMBERED = 50_000
#: papers read per query
_CHUNK = 500


class Highlighter:
    """Makes and remembers the highlights of matches stored without them."""

    def __init__(self, fields_of: Callable[[Any], dict[str, str]]) -> None:
        #: a paper row's other matchable fields (see digestd.store.matching.match_fields)
        self._fields_of = fields_of
        self._made: dict[Wanted, tuple[str, ...]] = {}
        self._queries: dict[str, CompiledQuery | None] = {}

    def __call__(
        self, session: Session, wanted: Collection[Wanted]
    ) -> dict[Wanted, tuple[str, ...]]:
        """The highlights of each of ``wanted``."""
        found = {key: self._made[key] for key in wanted if key in self._made}
        missing: dict[int, list[Wanted]] = {}
        for key in wanted:
            if key not in found:
                missing.setdefault(key[0], []).append(key)
        ids = sorted(missing)
        for start in range(0, len(ids), _CHUNK):
            rows = session.execute(
                select(*_COLUMNS, words_table.c.words)
                .outerjoin(words_table, words_table.c.paper_id == Paper.id)
                .where(Paper.id.in_(ids[start : start + _CHUNK]))
            ).all()
            for row in rows:
                doc = None
                for key in missing[row.id]:
                    query = self._query(key[2])
                    if query is None:
                        found[key] = ()
                        continue
                    if doc is None:
                        doc, _ = paper_document(
                            row.words, row.title, row.abstract, **self._fields_of(row)
                        )
                    found[key] = highlights(doc, query)
        if len(self._made) + len(found) > _REMEMBERED:
            self._made.clear()
        self._made.update(found)
        return found

    def _query(self, text: str) -> CompiledQuery | None:
        if text not in self._queries:
            try:
                self._queries[text] = compile_query(text)
            except QueryError:
                # a stored query this version cannot read: nothing to highlight
                self._queries[text] = None
        return self._queries[text]


_COLUMNS = (
    Paper.id, Paper.title, Paper.abstract, Paper.authors, Paper.organization_id,
    Paper.organization, Paper.categories, Paper.keywords,
)

