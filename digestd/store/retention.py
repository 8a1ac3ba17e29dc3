"""Old rows that retention lets go: finished deliveries and past sightings."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, select

from digestd.store.db import Database
from digestd.store.models import Delivery, Dump, Sighting

#: ledger rows that are over; a pending, sending or queued row is never removed
FINISHED_DELIVERIES = ("sent", "failed", "expired")


class RetentionStore(Database):
    def purge_deliveries(self, before: dt.datetime, *, dry_run: bool = False) -> int:
        """Forget finished deliveries older than `before`; returns how many (would) go.

        Safe for exactly-once: planning moves a subscriber past its papers in the same
        transaction as the ledger row, so a removed row is never planned again.
        """
        where = (
            Delivery.status.in_(FINISHED_DELIVERIES),
            func.coalesce(Delivery.sent_at, Delivery.created_at) < before,
        )
        return self._purge(Delivery, where, dry_run)

    def purge_sightings(self, before: dt.datetime, *, dry_run: bool = False) -> int:
        """Forget which dump listed which paper when that was before `before`."""
        return self._purge(Sighting, (Sighting.seen_at < before,), dry_run)

    def _purge(self, model: type, where: tuple, dry_run: bool) -> int:  # type: ignore[type-arg]
        if dry_run:
            with self.read() as session:
                return int(session.scalar(select(func.count()).select_from(model).where(*where)))
        with self.write() as session:
            return int(session.execute(delete(model).where(*where)).rowcount or 0)

    def ingested_dumps(self) -> list[tuple[str, int | None, int | None]]:
        """(path, size, mtime_ns) of every dump whose content was ingested."""
        with self.read() as session:
            return [
                (path, size, mtime)
                for path, size, mtime in session.execute(
                    select(Dump.path, Dump.size, Dump.mtime_ns).where(Dump.status == "ingested")
                )
            ]
