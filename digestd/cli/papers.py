"""digestd papers: the stored papers."""

from __future__ import annotations

import argparse

from digestd.cli.common import Commands, open_store, print_json
from digestd.config import Config
from digestd.errors import UsageError


def cmd_papers(args: argparse.Namespace, config: Config) -> int:
    """List stored papers, newest first; with --topic, only the papers that topic matched."""
    with open_store(config) as store:
        if args.topic is not None and args.topic not in {t.slug for t in store.topics()}:
            raise UsageError(f"unknown topic {args.topic!r} (see: digestd topics list)")
        papers = store.papers(limit=args.limit, topic=args.topic)
        matches = store.paper_matches(p.id for p in papers)
    if args.json:
        print_json(
            [{**p.as_json(), "topics": [m.slug for m in matches[p.id]]} for p in papers]
        )
        return 0
    for paper in papers:
        meta = paper.organization or (
            f"{paper.authors_count} authors" if paper.authors_count else "-"
        )
        published = paper.published.isoformat() if paper.published else "-"
        upvotes = paper.upvotes if paper.upvotes is not None else "-"
        print(f"{published}  {upvotes!s:>4}  {paper.title}  [{meta}]")
    return 0


ORDER = 40


def register(commands: Commands) -> None:
    papers = commands.command("papers", cmd_papers)
    papers.add_argument("--json", action="store_true", help="print a JSON list")
    papers.add_argument("--limit", type=int, default=None, help="at most N papers")
    papers.add_argument("--topic", metavar="SLUG", help="only the papers this topic matched")
