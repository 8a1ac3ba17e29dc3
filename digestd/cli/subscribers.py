"""digestd subscribers: who gets digests."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from digestd.cli.common import Commands, open_runtime, open_store, print_json
from digestd.config import Config
from digestd.store import SubscriberRecord


def cmd_subscribers_add(args: argparse.Namespace, config: Config) -> int:
    """Add a subscriber, or update the one with this address.

    Someone who unsubscribed is not subscribed again unless --resubscribe is given (exit
    status 1 says so).
    """
    from digestd.subscribers import add_subscriber

    with open_runtime(config) as runtime:
        record, created = add_subscriber(
            runtime.store, args.email, args.topic or [], cadence=args.cadence,
            timezone=args.tz, name=args.name, resubscribe=args.resubscribe,
            rising=args.rising, rising_default=config.rising.section_default,
        )
    verb = "added" if created else "updated"
    print(
        f"{verb} {record.email}: topics {', '.join(record.topics)}; {record.cadence}, "
        f"{record.timezone}{'; rising section' if record.rising else ''}"
    )
    return 0


def cmd_subscribers_list(args: argparse.Namespace, config: Config) -> int:
    """List subscribers with their topics, cadence and state.

    A subscriber with a bounce score has it shown, with the pause threshold and when the score
    goes back to zero if no bounce comes (--json: bounces, bounce_score, bounce_resets).
    """
    with open_store(config) as store:
        records = store.subscribers(status=args.status)
    if args.json:
        print_json([r.as_json() for r in records])
        return 0
    for r in records:
        line = f"{r.email:<36} {r.status:<12} {r.cadence:<9} {r.timezone:<20} {' '.join(r.topics)}"
        if r.bounce_count:
            line += f"  [{bounce_summary(r, config)}]"
        print(line)
    return 0


def bounce_summary(record: SubscriberRecord, config: Config) -> str:
    """``bounce score 1.5 of 3 (2 bounces), resets 2026-12-08 10:00 UTC``"""
    resets = record.bounce_resets_at
    when = resets.strftime("%Y-%m-%d %H:%M UTC") if resets else "-"
    return (
        f"bounce score {record.bounce_score:g} of {config.delivery.pause_after_failures} "
        f"({record.bounce_count} bounces), resets {when}"
    )


def cmd_subscribers_remove(args: argparse.Namespace, config: Config) -> int:
    """Remove a subscriber and everything recorded about them."""
    from digestd.subscribers import remove_subscriber

    with open_store(config) as store:
        remove_subscriber(store, args.email)
    print(f"removed {args.email}")
    return 0


def cmd_subscribers_import(args: argparse.Namespace, config: Config) -> int:
    """Add or update subscribers from CSV (columns: email, topics, name, cadence, timezone).

    Also takes what `subscribers export` writes (CSV or JSON, with states and token hashes:
    the private links handed out before keep working). Topics are slugs separated by spaces,
    commas or semicolons. People who unsubscribed stay unsubscribed unless --resubscribe is
    given. Bad rows are reported with their line number and skipped; the exit status is 1 if
    any row was refused.
    """
    from digestd.subscribers_io import import_subscribers

    path = Path(args.csv)
    try:
        text = sys.stdin.read() if args.csv == "-" else path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        print(f"digestd: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 1
    with open_runtime(config) as runtime:
        report = import_subscribers(runtime.store, text, resubscribe=args.resubscribe)
    for line, message in report.errors:
        print(f"{args.csv}:{line}: {message}", file=sys.stderr)
    for address in report.kept_unsubscribed:
        print(f"kept unsubscribed: {address} (--resubscribe subscribes them again)")
    print(
        f"{report.added} added, {report.updated} updated, "
        f"{len(report.kept_unsubscribed)} kept unsubscribed, {len(report.errors)} refused"
    )
    return 1 if report.errors else 0


def cmd_subscribers_export(args: argparse.Namespace, config: Config) -> int:
    """Write every subscriber with topics, cadence, time zone and state, as CSV or JSON.

    With --token-hashes, also the SHA-256 hashes of their private-link tokens: importing the
    file into a new database keeps every manage, feed and unsubscribe link handed out working.
    The hashes do not give the links away, but keep the file as private as the database.
    """
    from digestd.subscribers_io import export_subscribers

    with open_store(config) as store:
        text = export_subscribers(
            store, fmt=args.format, token_hashes=args.token_hashes, status=args.status
        )
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


ORDER = 60


def register(commands: Commands) -> None:
    subscribers = commands.group(
        "subscribers", "Manage who gets digests: add, list, remove, import, export."
    )
    sub_add = subscribers.command("add", cmd_subscribers_add)
    sub_add.add_argument("email", metavar="EMAIL", help="the subscriber's address")
    sub_add.add_argument(
        "--topic", action="extend", nargs="+", metavar="SLUG",
        help="topic to follow (repeatable; needed for a new subscriber)",
    )
    sub_add.add_argument(
        "--cadence", choices=["immediate", "daily", "weekly"],
        help="right after a batch, at schedule.daily_time, or weekly (default daily)",
    )
    sub_add.add_argument("--tz", metavar="ZONE", help="IANA time zone, e.g. Europe/Berlin")
    sub_add.add_argument("--name", help="name shown in the To header")
    sub_add.add_argument(
        "--rising", action=argparse.BooleanOptionalAction, default=None,
        help="a section of the papers gaining upvotes in each digest (default: "
        "rising.section_default for a new subscriber, unchanged otherwise)",
    )
    sub_add.add_argument(
        "--resubscribe", action="store_true",
        help="subscribe again an address that unsubscribed (only with their consent)",
    )
    sub_list = subscribers.command("list", cmd_subscribers_list)
    sub_list.add_argument("--json", action="store_true", help="print a JSON list")
    sub_list.add_argument(
        "--status", choices=["pending", "active", "paused", "unsubscribed"],
        help="only subscribers in this state",
    )
    sub_remove = subscribers.command("remove", cmd_subscribers_remove)
    sub_remove.add_argument("email", metavar="EMAIL", help="the subscriber's address")
    sub_import = subscribers.command("import", cmd_subscribers_import)
    sub_import.add_argument(
        "csv", metavar="FILE", help="CSV or JSON (an export) file, or - for standard input"
    )
    sub_import.add_argument(
        "--resubscribe", action="store_true",
        help="subscribe again the addresses that unsubscribed (only with their consent)",
    )
    sub_export = subscribers.command("export", cmd_subscribers_export)
    sub_export.add_argument(
        "--format", choices=["csv", "json"], default="csv", help="file format (default csv)"
    )
    sub_export.add_argument(
        "--token-hashes", action="store_true",
        help="include the hashes of private-link tokens, so a restore keeps links working",
    )
    sub_export.add_argument(
        "--status", choices=["pending", "active", "paused", "unsubscribed"],
        help="only subscribers in this state",
    )
    sub_export.add_argument("--output", metavar="FILE", help="write here, not to stdout")
