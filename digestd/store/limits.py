"""Hourly limits for the web's sign-up form, counted in the database.

In the database rather than in memory so a limit holds however many digestd processes (and
machines, on PostgreSQL) answer requests. What is limited (an address, a client IP) is stored
only as a keyed hash: the table says how often, never who.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import zlib

from sqlalchemy import delete, func, select, text

from digestd.store.db import Database
from digestd.store.models import RateEvent, utcnow

#: an arbitrary class id for PostgreSQL advisory locks taken per limited key
_LOCK_CLASS = 0x6C69  # "li"


def _hashed(kind: str, key: str) -> str:
    return hashlib.sha256(f"{kind}\0{key}".encode()).hexdigest()


class RateLimitStore(Database):
    def take_rate_slot(
        self,
        kind: str,
        key: str,
        *,
        limit: int,
        window: dt.timedelta,
        now: dt.datetime | None = None,
    ) -> int | None:
        """Count one `kind` action for `key`, unless `limit` were reached within `window`.

        Returns None when the action may go ahead (and is counted), else the whole seconds
        until the oldest counted action leaves the window: the Retry-After.
        """
        now = now or utcnow()
        hashed = _hashed(kind, key)
        with self.write() as session:
            if self.is_postgres:
                # Two requests for one key must not both see "one slot left"; SQLite writers
                # are serialised by BEGIN IMMEDIATE already.
                session.execute(
                    text("SELECT pg_advisory_xact_lock(:cls, :obj)"),
                    {"cls": _LOCK_CLASS, "obj": zlib.crc32(hashed.encode()) & 0x7FFFFFFF},
                )
            since = now - window
            count, oldest = session.execute(
                select(func.count(RateEvent.id), func.min(RateEvent.at)).where(
                    RateEvent.kind == kind, RateEvent.key == hashed, RateEvent.at > since
                )
            ).one()
            if count >= limit:
                return max(1, math.ceil((oldest + window - now).total_seconds()))
            session.add(RateEvent(kind=kind, key=hashed, at=now))
            return None

    def purge_rate_events(self, older_than: dt.datetime) -> int:
        with self.write() as session:
            result = session.execute(delete(RateEvent).where(RateEvent.at < older_than))
            return int(result.rowcount or 0)
