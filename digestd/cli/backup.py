"""digestd backup and cleanup: a copy of the database, and retention applied now."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sqlite3
from pathlib import Path

from digestd.cli.common import Commands, open_store
from digestd.config import Config
from digestd.errors import DigestdError, UsageError

ORDER = 85


def cmd_backup(args: argparse.Namespace, config: Config) -> int:
    """Write a consistent copy of the SQLite database to PATH while digestd runs.

    Uses SQLite's online backup, so the daemon may keep working meanwhile. To restore: stop
    digestd, put the copy in place of the database file, start digestd. Private links keep
    working (the copy holds their hashes); keep <data_dir>/link.key too, or new mails carry
    new links. On PostgreSQL this says how to use pg_dump instead.
    """
    target = Path(args.path)
    with open_store(config) as store:
        if not store.is_sqlite:
            from digestd.store.schema import display_url

            raise DigestdError(
                f"backup copies SQLite databases; for PostgreSQL use pg_dump, e.g. "
                f"pg_dump --format=custom --file={target} '{display_url(store.engine)}' "
                "(all of digestd's tables, subscriber_tokens and site_keys included; restore "
                "with pg_restore), and keep <data_dir>/link.key next to it"
            )
        source = store.engine.url.database
    if target.exists():
        raise UsageError(f"{target} exists; backup writes a new file")
    if not target.parent.is_dir():
        raise UsageError(f"the directory of {target} does not exist")
    partial = target.with_name(target.name + ".part")
    src, dst = sqlite3.connect(source), sqlite3.connect(partial)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    os.replace(partial, target)
    print(f"backed up {source} to {target} ({target.stat().st_size} bytes)")
    return 0


def cmd_cleanup(args: argparse.Namespace, config: Config) -> int:
    """Apply the retention keys now, as the daemon's hourly housekeeping does.

    Removes finished deliveries and sightings older than retention.deliveries_days and
    retention.sightings_days, outbox mails older than retention.outbox_days and, with
    retention.dumps = "move", moves ingested dumps to seeds/.done/. --dry-run counts only.
    """
    from digestd.retention import apply_retention

    with open_store(config) as store:
        report = apply_retention(config, store, dt.datetime.now(dt.UTC), dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    moved = "would move" if args.dry_run else "moved"
    print(
        f"{verb} {report.deliveries} deliveries, {report.sightings} sightings, "
        f"{report.outbox_files} outbox mails; {moved} {report.dumps_moved} dumps"
    )
    return 0


def register(commands: Commands) -> None:
    backup = commands.command("backup", cmd_backup)
    backup.add_argument("path", metavar="PATH", help="the new file to write the copy to")
    cleanup = commands.command("cleanup", cmd_cleanup, uses=("seeds_dir", "data_dir"))
    cleanup.add_argument(
        "--dry-run", action="store_true", help="count what would go; change nothing"
    )
