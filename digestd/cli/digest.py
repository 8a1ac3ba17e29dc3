"""digestd digest: preview and send the e-mail digests."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from digestd.cli.common import Commands, open_runtime
from digestd.config import Config
from digestd.errors import UsageError


def cmd_digest_preview(args: argparse.Namespace, config: Config) -> int:
    """Show the digest a subscriber would get now, without sending it or touching the ledger.

    --format html (the HTML part), text (the plain-text part) or eml (the whole message, to open
    in a mail client). Written to standard output unless --output names a file. A digest that
    is planned but not yet sent is shown as it will go out; otherwise the papers waiting for the
    subscriber's next digest, whether or not its time has come.
    """
    import datetime as dt

    from digestd.delivery import preview_digest
    from digestd.subscribers import find_subscriber

    with open_runtime(config) as runtime:
        subscriber = find_subscriber(runtime.store, args.email)
        if subscriber is None:
            raise UsageError(f"no subscriber with address {args.email!r}")
        composed = preview_digest(runtime, subscriber, dt.datetime.now(dt.UTC))
    if composed is None:
        print(
            f"nothing due for {subscriber.email}: no new paper matches their topics "
            "since their last digest"
        )
        return 0
    if args.format == "html":
        data = composed.html.encode()
    elif args.format == "text":
        data = composed.text.encode()
    else:
        message = composed.message
        data = message.as_bytes(policy=message.policy.clone(linesep="\n"))
    if args.output:
        Path(args.output).write_bytes(data)
        print(
            f"wrote the {args.format} digest for {subscriber.email} "
            f"({composed.digest.total} papers) to {args.output}"
        )
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0


def cmd_digest_send(args: argparse.Namespace, config: Config) -> int:
    """Plan the digests that are due now and send them, with any retries whose time has come.

    Uses the configured transport (mail.transport: the Maildir outbox or SMTP). --dry-run
    prints who would get what and writes nothing: no ledger rows, no mail. The exit status is 1
    when a digest could not be sent (it is retried later unless it failed for good).
    """
    import datetime as dt

    from digestd.delivery import plan_digests, send_pending
    from digestd.delivery.identity import check_sender

    if not args.dry_run:
        for note in check_sender(config):
            print(f"digestd: note: {note}", file=sys.stderr)
    with open_runtime(config) as runtime:
        now = dt.datetime.now(dt.UTC)
        planned = plan_digests(runtime, now, dry_run=args.dry_run)
        sent = send_pending(runtime, now, dry_run=args.dry_run)
        # Every row still on its way, not only those this run claimed and gave back.
        counts = runtime.store.delivery_counts() if not args.dry_run else {}
    if args.dry_run:
        for digest in planned.digests:
            print(
                f"would send {digest.email}: {digest.papers} papers "
                f"(batches {digest.digest_key})"
            )
        for pending in sent.pending:
            print(
                f"would send {pending.email}: {pending.papers} papers "
                f"(batches {pending.digest_key}, planned earlier, {pending.attempts} attempts)"
            )
        print(
            f"dry run: {len(planned.digests) + len(sent.pending)} digests would be sent, "
            f"{planned.nothing_new} subscribers due with nothing new; nothing written"
        )
        return 0
    where = config.outbox_dir if config.mail.transport == "maildir" else (
        f"{config.smtp.host}:{config.smtp.port}"
    )
    queued = counts.get("pending", 0) + counts.get("sending", 0)
    print(
        f"{planned.planned} planned, {sent.sent} sent via {config.mail.transport} {where}, "
        f"{sent.failed} failed, {sent.expired} expired, {queued} still queued "
        f"({sent.retrying} to retry after a temporary reply); "
        f"{planned.nothing_new} subscribers due with nothing new"
    )
    if sent.transport_down:
        print(f"digestd: the transport is down: {sent.transport_down}", file=sys.stderr)
    unsent = sent.failed + sent.expired + queued
    if unsent:
        print(
            f"digestd: {unsent} digests not sent; see digestd deliveries list", file=sys.stderr
        )
        return 1
    return 0


ORDER = 80


def register(commands: Commands) -> None:
    digest = commands.group("digest", "Preview and send the e-mail digests.")
    digest_preview = digest.command(
        "preview", cmd_digest_preview, uses=("data_dir", "templates_dir")
    )
    digest_preview.add_argument("email", metavar="EMAIL", help="the subscriber's address")
    digest_preview.add_argument(
        "--format", choices=["html", "text", "eml"], default="html",
        help="the HTML part, the text part, or the whole message (default html)",
    )
    digest_preview.add_argument("--output", metavar="FILE", help="write here, not to stdout")
    digest_send = digest.command("send", cmd_digest_send, uses=("data_dir", "templates_dir"))
    digest_send.add_argument(
        "--dry-run", action="store_true", help="print who would get what; write nothing"
    )
