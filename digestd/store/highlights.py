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
from collections.abc import Collection
from functools import lru_cache

from sqlalchemy.orm import Session

from digestd.errors import QueryError
from digestd.store.matching import match_fields, papers_with_words
from digestd.store.models import Paper
from digestd.topics.match import highlights
from digestd.topics.packed import paper_document
from digestd.topics.query import CompiledQuery, compile_query

__all__ = ["Highlighter", "Wanted"]

#: a match without highlights: its paper, when the paper last changed, the topic's query
Wanted = tuple[int, dt.datetime, str]

#: highlights remembered per process before the memory is emptied (a few MiB)
_REMEMBERED = 50_000
#: papers read per query
_CHUNK = 500


class Highlighter:
    """Makes and remembers the highlights of matches stored without them."""

    def __init__(self) -> None:
        self._made: dict[Wanted, tuple[str, ...]] = {}

    def __call__(
        self, session: Session, wanted: Collection[Wanted]
    ) -> dict[Wanted, tuple[str, ...]]:
        """The highlights of each of ``wanted`` (a paper no longer stored has none)."""
        found: dict[Wanted, tuple[str, ...]] = {}
        missing: dict[int, list[Wanted]] = {}
        for key in wanted:
            if key in self._made:
                found[key] = self._made[key]
            else:
                missing.setdefault(key[0], []).append(key)
        ids = sorted(missing)
        for start in range(0, len(ids), _CHUNK):
            rows = session.execute(
                papers_with_words().where(Paper.id.in_(ids[start : start + _CHUNK]))
            ).all()
            for row in rows:
                doc, _ = paper_document(row.words, row.title, row.abstract, **match_fields(row))
                for key in missing[row.id]:
                    query = _compiled(key[2])
                    found[key] = () if query is None else highlights(doc, query)
        if len(self._made) + len(found) > _REMEMBERED:
            self._made.clear()
        self._made.update(found)
        return found


@lru_cache(maxsize=256)
def _compiled(text: str) -> CompiledQuery | None:
    """A stored topic query, compiled; None for one this version cannot read (nothing to
    highlight)."""
    try:
        return compile_query(text)
    except QueryError:
        return None
