"""digestd feedback: rate a paper for a subscriber, as the "more/less like this" links do."""

from __future__ import annotations

import argparse

from digestd.cli.common import Commands, open_runtime, print_json
from digestd.config import Config
from digestd.errors import UsageError


def cmd_feedback(args: argparse.Namespace, config: Config) -> int:
    """Record "more like this" (up), "less like this" (down) or no rating (clear) for a paper.

    PAPER is the paper's key (as `digestd papers --json` prints it) or its page slug. The
    subscriber's model is retrained at once; --list prints their ratings afterwards.
    """
    from digestd.feedback import Feedback, parse_rating
    from digestd.parse import paper_key
    from digestd.subscribers import find_subscriber

    try:
        value = parse_rating(args.rating)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    with open_runtime(config) as runtime:
        store = runtime.store
        subscriber = find_subscriber(store, args.email)
        if subscriber is None:
            raise UsageError(f"no subscriber with address {args.email!r}")
        paper = store.paper_by_slug(args.paper) or store.paper_by_key(args.paper)
        if paper is None:
            paper = store.paper_by_key(paper_key(args.paper))
        if paper is None:
            raise UsageError(f"no paper with key or slug {args.paper!r}")
        changed = Feedback(store, runtime.config.feedback).rate(subscriber.id, paper.id, value)
        ratings = store.ratings(subscriber.id)
    word = {1: "more like this", -1: "less like this", 0: "no rating"}[value]
    print(f"{subscriber.email}: {paper.title}: {word}{'' if changed else ' (unchanged)'}")
    if args.list:
        print_json(
            [{"paper": r.paper_slug, "title": r.paper_title, "rating": r.value} for r in ratings]
        )
    return 0


ORDER = 65


def register(commands: Commands) -> None:
    feedback = commands.command("feedback", cmd_feedback)
    feedback.add_argument("email", metavar="EMAIL", help="the subscriber's address")
    feedback.add_argument("paper", metavar="PAPER", help="the paper's key or page slug")
    feedback.add_argument("rating", metavar="up|down|clear", help="the rating")
    feedback.add_argument("--list", action="store_true", help="print their ratings as JSON")
