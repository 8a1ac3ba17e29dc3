"""digestd topics: the configured topics, and trying queries against stored papers."""

from __future__ import annotations

import argparse

from digestd.cli.common import Commands, open_runtime, open_store, print_json
from digestd.config import Config


def cmd_topics_list(args: argparse.Namespace, config: Config) -> int:
    """Show the configured topics, their queries and how many stored papers each matches."""
    with open_runtime(config) as runtime:
        topics = runtime.store.topics()
        counts = runtime.store.topic_paper_counts()
    if args.json:
        print_json(
            [
                {
                    "slug": t.slug,
                    "name": t.name,
                    "description": t.description,
                    "query": t.query,
                    "papers": counts.get(t.slug, 0),
                }
                for t in topics
            ]
        )
        return 0
    for topic in topics:
        print(f"{topic.slug:<24} {counts.get(topic.slug, 0):>5} papers  {topic.name}")
        print(f"{'':<24} query: {topic.query}")
    return 0


def cmd_topics_test(args: argparse.Namespace, config: Config) -> int:
    """Show which stored papers a query matches, best first, and the terms that matched."""
    from digestd.topics import Document, compile_query

    query = compile_query(args.query)
    with open_store(config) as store:
        hits = []
        for paper in store.iter_papers():
            match = query.match(Document.from_text(paper.title, paper.abstract))
            if match is not None:
                hits.append((match, paper))
    hits.sort(key=lambda hit: (-hit[0].score, -(hit[1].upvotes or 0), hit[1].title))
    if args.limit:
        hits = hits[: args.limit]
    if args.json:
        print_json(
            [
                {
                    "slug": paper.slug,
                    "title": paper.title,
                    "score": match.score,
                    "terms": list(match.terms),
                    "title_terms": list(match.title_terms),
                    "abstract_terms": list(match.abstract_terms),
                }
                for match, paper in hits
            ]
        )
        return 0
    for match, paper in hits:
        print(f"{match.score:6.1f}  {paper.title}")
        where = []
        if match.title_terms:
            where.append("title: " + ", ".join(match.title_terms))
        if match.abstract_terms:
            where.append("abstract: " + ", ".join(match.abstract_terms))
        print(f"        matched {', '.join(match.terms)} ({'; '.join(where)})")
    print(f"{len(hits)} papers match {args.query}")
    return 0


ORDER = 50


def register(commands: Commands) -> None:
    topics = commands.group(
        "topics", "Show the topics and try queries against the stored papers."
    )
    topics_list = topics.command("list", cmd_topics_list)
    topics_list.add_argument("--json", action="store_true", help="print a JSON list")
    topics_test = topics.command("test", cmd_topics_test)
    topics_test.add_argument("query", metavar="QUERY", help='e.g. \'"kv cache" OR quantiz*\'')
    topics_test.add_argument("--json", action="store_true", help="print a JSON list")
    topics_test.add_argument("--limit", type=int, default=None, help="at most N papers")
