"""digestd topics: the configured topics, and trying queries against stored papers."""

from __future__ import annotations

import argparse

from digestd.cli.common import Commands, open_runtime, open_store, print_json
from digestd.config import Config
from digestd.errors import UsageError


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
    """Show which stored papers a query matches, best first: score, normalised score and why.

    The normalised score is the paper's percentile among every stored paper the query
    matches (see digestd.ranking.normalise); --topic tests a configured topic with its
    min_score, and --min-score applies one to QUERY.
    """
    from digestd.ranking import Percentiles
    from digestd.runtime import topic_definitions
    from digestd.store.matching import match_fields
    from digestd.topics import compile_query
    from digestd.topics.match import paper_document

    min_score = args.min_score
    source = args.query
    if args.topic is not None:
        found = {t.slug: t for t in topic_definitions(config)}.get(args.topic)
        if found is None:
            raise UsageError(f"unknown topic {args.topic!r} (see: digestd topics list)")
        if source is None:
            source = found.query
        if min_score is None:
            min_score = found.min_score
    if source is None:
        raise UsageError("expected a QUERY or --topic SLUG")
    min_score = min_score or 0.0
    query = compile_query(source)
    with open_store(config) as store:
        hits = []
        for paper in store.iter_papers():
            match = query.match(
                paper_document(paper.title, paper.abstract, **match_fields(paper))
            )
            if match is not None:
                hits.append((match, paper))
    percentile = Percentiles(match.score for match, _ in hits if match.score >= min_score)
    hits.sort(key=lambda hit: (-hit[0].score, -(hit[1].upvotes or 0), hit[1].title))
    kept = [hit for hit in hits if hit[0].score >= min_score]
    under = len(hits) - len(kept)
    if args.limit:
        kept = kept[: args.limit]
    if args.json:
        print_json(
            [
                {
                    "slug": paper.slug,
                    "title": paper.title,
                    "score": match.score,
                    "normalised": round(percentile(match.score), 4),
                    "terms": list(match.terms),
                    "points": dict(match.points),
                    "title_terms": list(match.title_terms),
                    "abstract_terms": list(match.abstract_terms),
                }
                for match, paper in kept
            ]
        )
        return 0
    print("score  norm  title")
    for match, paper in kept:
        print(f"{match.score:5.1f}  {percentile(match.score):4.2f}  {paper.title}")
        why = ", ".join(f"{label} {points:g}" for label, points in match.points)
        where = []
        if match.title_terms:
            where.append("title: " + ", ".join(match.title_terms))
        if match.abstract_terms:
            where.append("abstract: " + ", ".join(match.abstract_terms))
        print(f"             why: {why} ({'; '.join(where)})")
    print(f"{len(hits) - under} papers match {source}")
    if under:
        print(f"{under} more match with a score under min_score {min_score:g}")
    return 0


ORDER = 50


def register(commands: Commands) -> None:
    topics = commands.group(
        "topics", "Show the topics and try queries against the stored papers."
    )
    topics_list = topics.command("list", cmd_topics_list)
    topics_list.add_argument("--json", action="store_true", help="print a JSON list")
    topics_test = topics.command("test", cmd_topics_test)
    topics_test.add_argument(
        "query", metavar="QUERY", nargs="?", default=None,
        help='e.g. \'"kv cache" OR title:quantiz*\'; with --topic, defaults to its query',
    )
    topics_test.add_argument(
        "--topic", metavar="SLUG", default=None,
        help="test a configured topic (its query and min_score)",
    )
    topics_test.add_argument(
        "--min-score", type=float, default=None, help="leave out papers scoring under this"
    )
    topics_test.add_argument("--json", action="store_true", help="print a JSON list")
    topics_test.add_argument("--limit", type=int, default=None, help="at most N papers")
