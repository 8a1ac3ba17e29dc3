"""Topics: the query language and matching papers against topics. Pure: no I/O, no database.

Compile once, match many::

    topics = compile_topics(definitions)            # QueryError names the bad topic
    for paper in papers:
        for m in match_paper(paper.title, paper.abstract, topics):
            print(m.slug, m.score, m.terms, m.highlights)

The language is described in :mod:`digestd.topics.query`, the scoring in
:mod:`digestd.topics.match`, and a starter set of topics is in :mod:`digestd.topics.starter`.
"""

from __future__ import annotations

from digestd.topics.match import (
    SLUG_RE,
    CompiledTopic,
    Document,
    TopicDefinition,
    TopicMatch,
    compile_topics,
    match_document,
    match_paper,
)
from digestd.topics.query import CompiledQuery, QueryMatch, compile_query, format_query_error
from digestd.topics.starter import STARTER_TOPICS

__all__ = [
    "SLUG_RE",
    "STARTER_TOPICS",
    "CompiledQuery",
    "CompiledTopic",
    "Document",
    "QueryMatch",
    "TopicDefinition",
    "TopicMatch",
    "compile_query",
    "compile_topics",
    "format_query_error",
    "match_document",
    "match_paper",
]
