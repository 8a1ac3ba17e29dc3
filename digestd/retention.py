"""Retention: what housekeeping (and `digestd cleanup`) lets go, by the ``retention`` keys.

Finished deliveries and sightings older than their days leave the database, mails older than
``outbox_days`` leave the Maildir outbox, and with ``dumps = "move"`` ingested dumps move to
``seeds/.done/`` (the scan does not look there). 0 days keeps everything of that kind.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from digestd.config import Config
from digestd.store import Store

log = logging.getLogger(__name__)

DONE_DIR = ".done"


@dataclass
class RetentionReport:
    deliveries: int = 0
    sightings: int = 0
    outbox_files: int = 0
    dumps_moved: int = 0

    def summary(self) -> str:
        return (
            f"deliveries={self.deliveries} sightings={self.sightings} "
            f"outbox_files={self.outbox_files} dumps_moved={self.dumps_moved}"
        )


def apply_retention(
    config: Config, store: Store, now: dt.datetime, *, dry_run: bool = False
) -> RetentionReport:
    keys = config.retention
    report = RetentionReport()
    if keys.deliveries_days:
        report.deliveries = store.purge_deliveries(
            now - dt.timedelta(days=keys.deliveries_days), dry_run=dry_run
        )
    if keys.sightings_days:
        report.sightings = store.purge_sightings(
            now - dt.timedelta(days=keys.sightings_days), dry_run=dry_run
        )
    if keys.outbox_days:
        report.outbox_files = _purge_outbox(
            config.outbox_dir, now - dt.timedelta(days=keys.outbox_days), dry_run
        )
    if keys.dumps == "move":
        report.dumps_moved = _move_dumps(config.paths.seeds_dir, store, dry_run)
    if not dry_run and any(vars(report).values()):
        log.info("retention applied %s", report.summary())
    return report


def _purge_outbox(outbox: Path, before: dt.datetime, dry_run: bool) -> int:
    cutoff = before.timestamp()
    count = 0
    for folder in ("new", "cur"):
        try:
            entries = list(os.scandir(outbox / folder))
        except FileNotFoundError:
            continue
        for entry in entries:
            try:
                if entry.is_file() and entry.stat().st_mtime < cutoff:
                    if not dry_run:
                        os.unlink(entry.path)
                    count += 1
            except FileNotFoundError:  # read or removed meanwhile
                continue
    return count


def _move_dumps(seeds: Path, store: Store, dry_run: bool) -> int:
    """Move ingested dumps still exactly as ingested (same size and mtime) to seeds/.done/."""
    done = seeds / DONE_DIR
    root = seeds.resolve()
    count = 0
    for path_text, size, mtime_ns in store.ingested_dumps():
        path = Path(path_text)
        try:
            stat = path.stat()
        except OSError:
            continue
        if path.parent.resolve() != root or (stat.st_size, stat.st_mtime_ns) != (size, mtime_ns):
            continue
        if not dry_run:
            done.mkdir(exist_ok=True)
            os.replace(path, done / path.name)
        count += 1
    return count
