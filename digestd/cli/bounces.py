"""digestd bounces: read the envelope sender's mailbox now, list what was kept."""

from __future__ import annotations

import argparse
import sys

from digestd.cli.common import Commands, open_runtime, open_store, print_json
from digestd.config import Config
from digestd.errors import ConfigError, DigestdError


def cmd_bounces_check(args: argparse.Namespace, config: Config) -> int:
    """Read the bounce mailbox (bounces.maildir or bounces.imap_*) now and act on each mail.

    Hard bounces count towards pausing the subscriber, complaints and mailed unsubscribe
    requests unsubscribe them, and what cannot be classified is kept for `bounces list`.
    The daemon does the same every bounces.check_interval seconds. Exit status 1 when a
    message had to be left in the mailbox for the next read.
    """
    from digestd.delivery.intake import read_bounces

    if not config.reads_bounces:
        raise ConfigError(
            "no bounce mailbox is configured: set mail.envelope_sender and bounces.maildir "
            "or bounces.imap_host"
        )
    with open_runtime(config) as runtime:
        report = read_bounces(runtime)
    if args.json:
        print_json({
            "read": report.read, "bounces": report.bounces, "paused": report.paused,
            "unsubscribed": report.unsubscribed, "ignored": report.ignored,
            "kept": report.kept, "left": report.left, "errors": report.errors,
        })
    else:
        print(
            f"{report.read} read: {report.bounces} bounces ({report.paused} paused), "
            f"{report.unsubscribed} unsubscribed, {report.ignored} ignored, "
            f"{report.kept} kept for an operator, {report.left} left for the next read"
        )
    return 1 if report.left else 0


def cmd_bounces_list(args: argparse.Namespace, config: Config) -> int:
    """List subscribers with a bounce score, and the mail that could not be classified.

    Each score is shown with the pause threshold (delivery.pause_after_failures) and when it
    goes back to zero if no bounce comes (delivery.bounce_window_days after the last one).
    Kept messages are in the Maildir <data_dir>/bounces-kept (read them with any mail
    client, e.g. mutt -f); each carries an X-Digestd-Kept header saying why it was kept.
    """
    from digestd.cli.subscribers import bounce_summary
    from digestd.delivery.intake import kept_messages

    try:
        with open_store(config) as store:
            # a score whose window has passed reads as zero: not listed
            scored = [r for r in store.subscribers(bouncing=True) if r.bounce_count]
        unread = None
    except DigestdError as exc:
        # the kept mail is on disk: still worth showing while the database is away
        scored, unread = [], exc
        print(f"digestd: bounce scores not shown: {exc}", file=sys.stderr)
    kept = kept_messages(config)
    if args.json:
        print_json({
            "scores": None if unread else [
                {
                    "email": r.email, "status": r.status, "bounces": r.bounce_count,
                    "bounce_score": r.bounce_score,
                    "pause_at": config.delivery.pause_after_failures,
                    "bounce_resets": r.bounce_resets_at.isoformat()
                    if r.bounce_resets_at else None,
                    "last_error": r.last_error,
                }
                for r in scored
            ],
            "kept": [m.as_json() for m in kept],
        })
        return 1 if unread else 0
    for record in scored:
        print(f"{record.email:<36} {record.status:<12} {bounce_summary(record, config)}")
        print(f"{'':<36} last: {record.last_error or '-'}")
    if not unread:
        print(f"{len(scored)} with a bounce score")
    for message in kept:
        print(f"{message.date or '-':<25}  {message.sender[:40]:<40}  {message.subject[:60]}")
        print(f"{'':<25}  kept: {message.reason}")
    print(f"{len(kept)} kept in {config.bounces_kept_dir}")
    return 1 if unread else 0


ORDER = 85


def register(commands: Commands) -> None:
    bounces = commands.group(
        "bounces", "Read bounces, complaints and unsubscribe mails; list what was kept."
    )
    check = bounces.command("check", cmd_bounces_check)
    check.add_argument("--json", action="store_true", help="print one JSON object")
    listing = bounces.command("list", cmd_bounces_list)
    listing.add_argument(
        "--json", action="store_true", help="print one JSON object: scores and kept"
    )
