"""digestd bounces: read the envelope sender's mailbox now, list what was kept."""

from __future__ import annotations

import argparse

from digestd.cli.common import Commands, open_runtime, print_json
from digestd.config import Config
from digestd.errors import ConfigError


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
    """List the mail to the envelope sender that could not be classified, kept for you.

    Kept messages are in the Maildir <data_dir>/bounces-kept (read them with any mail
    client, e.g. mutt -f); each carries an X-Digestd-Kept header saying why it was kept.
    """
    from digestd.delivery.intake import kept_messages

    kept = kept_messages(config)
    if args.json:
        print_json([m.as_json() for m in kept])
        return 0
    for message in kept:
        print(f"{message.date or '-':<25}  {message.sender[:40]:<40}  {message.subject[:60]}")
        print(f"{'':<25}  kept: {message.reason}")
    print(f"{len(kept)} kept in {config.bounces_kept_dir}")
    return 0


ORDER = 85


def register(commands: Commands) -> None:
    bounces = commands.group(
        "bounces", "Read bounces, complaints and unsubscribe mails; list what was kept."
    )
    check = bounces.command("check", cmd_bounces_check)
    check.add_argument("--json", action="store_true", help="print one JSON object")
    listing = bounces.command("list", cmd_bounces_list)
    listing.add_argument("--json", action="store_true", help="print a JSON list")
