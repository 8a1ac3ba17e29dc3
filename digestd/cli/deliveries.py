"""digestd deliveries: see the delivery queue and put failed or expired digests back in it."""

from __future__ import annotations

import argparse
import datetime as dt
import re

from digestd.cli.common import Commands, open_store, print_json
from digestd.config import Config
from digestd.errors import UsageError

_AGO = re.compile(r"(\d+(?:\.\d+)?)\s*([mhd])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str, now: dt.datetime) -> dt.datetime:
    """An ISO date or time (UTC unless it says otherwise), or an age: 30m, 12h, 2d."""
    match = _AGO.fullmatch(value.strip().lower())
    if match:
        return now - dt.timedelta(**{_UNITS[match[2]]: float(match[1])})
    try:
        when = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise UsageError(
            f"--since {value!r}: give a date or time (2026-11-30, 2026-11-30T08:00) "
            "or an age (30m, 12h, 2d)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _when(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def cmd_deliveries_list(args: argparse.Namespace, config: Config) -> int:
    """List deliveries, newest first: subscriber, digest, status, attempts, last reply, next try.

    --status narrows to pending, sending, sent, failed or expired. Without --limit the 50
    newest are shown (0 shows all).
    """
    with open_store(config) as store:
        rows = store.delivery_listing(status=args.status, limit=args.limit or None)
    if args.json:
        print_json([
            {
                "id": record.id,
                "subscriber": email,
                "digest": record.digest_key,
                "status": record.status,
                "attempts": record.attempts,
                "last_error": record.last_error,
                "next_attempt": _when(record.next_attempt_at),
                "created": _when(record.created_at),
                "sent": _when(record.sent_at),
                "papers": len(record.paper_ids),
            }
            for record, email in rows
        ])
        return 0
    for record, email in rows:
        when = (
            f"sent {_when(record.sent_at)}" if record.status == "sent"
            else f"next {_when(record.next_attempt_at) or 'now'}"
            if record.status in ("pending", "sending") else ""
        )
        line = (
            f"{record.id:>6} {email:<32} {record.digest_key:<12} {record.status:<8} "
            f"{record.attempts:>2} {when}"
        )
        if record.last_error and record.status != "sent":
            line += f"  {record.last_error}"
        print(line.rstrip())
    return 0


def cmd_deliveries_retry(args: argparse.Namespace, config: Config) -> int:
    """Queue failed or expired digests again, as if planned now (attempts start over).

    --failed, --expired or both (neither: both). --since limits it to digests planned since a
    date or time, or within an age (12h, 2d). Digests of subscribers who are no longer active
    are settled as failed again by the next send, not mailed.
    """
    now = dt.datetime.now(dt.UTC)
    statuses = [s for s, wanted in (("failed", args.failed), ("expired", args.expired)) if wanted]
    statuses = statuses or ["failed", "expired"]
    since = parse_since(args.since, now) if args.since else None
    with open_store(config) as store:
        count = store.retry_deliveries(statuses, now=now, since=since)
    print(f"{count} {' and '.join(statuses)} deliveries queued again; the next send takes them")
    return 0


ORDER = 85


def register(commands: Commands) -> None:
    deliveries = commands.group(
        "deliveries", "See the delivery queue and retry failed or expired digests."
    )
    listing = deliveries.command("list", cmd_deliveries_list)
    listing.add_argument(
        "--status", choices=["pending", "sending", "sent", "failed", "expired"],
        help="only deliveries in this state",
    )
    listing.add_argument(
        "--limit", type=int, default=50, metavar="N", help="the N newest (default 50; 0: all)"
    )
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    retry = deliveries.command("retry", cmd_deliveries_retry)
    retry.add_argument("--failed", action="store_true", help="failed deliveries")
    retry.add_argument("--expired", action="store_true", help="expired deliveries")
    retry.add_argument(
        "--since", metavar="WHEN", help="planned since: a date or time, or an age (12h, 2d)"
    )
