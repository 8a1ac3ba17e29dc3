"""The dump ledger: which path held which content, and what became of it."""

from __future__ import annotations

from sqlalchemy import select

from digestd.store.db import Database
from digestd.store.models import Dump, utcnow
from digestd.store.records import LedgerEntry


def ledger_entry(dump: Dump) -> LedgerEntry:
    return LedgerEntry(
        path=dump.path,
        content_hash=dump.content_hash,
        size=dump.size,
        mtime_ns=dump.mtime_ns,
        status=dump.status,
        error=dump.error,
        layout=dump.layout,
        papers_count=dump.papers_count,
        new_count=dump.new_count,
        updated_at=dump.updated_at,
        ingested_at=dump.ingested_at,
        skipped_count=dump.skipped_count or 0,
        skipped_notes=dump.skipped_notes,
    )


class DumpLedger(Database):
    def ledger_entry(self, path: str) -> LedgerEntry | None:
        with self.read() as session:
            dump = session.scalar(select(Dump).where(Dump.path == path))
            return ledger_entry(dump) if dump else None

    def ingested_content(self, content_hash: str) -> LedgerEntry | None:
        """The first dump whose content, ingested, had this hash (copies bring nothing new)."""
        with self.read() as session:
            dump = session.scalar(
                select(Dump)
                .where(Dump.content_hash == content_hash, Dump.status == "ingested")
                .order_by(Dump.id)
                .limit(1)
            )
            return ledger_entry(dump) if dump else None

    def list_dumps(self, limit: int | None = None) -> list[LedgerEntry]:
        with self.read() as session:
            query = select(Dump).order_by(Dump.updated_at.desc(), Dump.id.desc())
            if limit:
                query = query.limit(limit)
            return [ledger_entry(d) for d in session.scalars(query)]

    def record_failure(
        self, path: str, *, content_hash: str | None, size: int | None, mtime_ns: int | None,
        error: str,
    ) -> None:
        """Mark the path failed; papers it brought earlier stay stored."""
        with self.write() as session:
            dump = _dump_for_update(session, path)
            dump.status = "failed"
            dump.error = error
            dump.content_hash = content_hash
            dump.size = size
            dump.mtime_ns = mtime_ns
            dump.updated_at = utcnow()

    def record_copy(
        self, path: str, *, content_hash: str, size: int, mtime_ns: int, original: LedgerEntry
    ) -> None:
        """Record a path whose content was already ingested under another name."""
        with self.write() as session:
            dump = _dump_for_update(session, path)
            dump.status = "ingested"
            dump.error = None
            dump.content_hash = content_hash
            dump.size = size
            dump.mtime_ns = mtime_ns
            dump.layout = original.layout
            dump.papers_count = original.papers_count
            dump.new_count = 0
            dump.updated_at = dump.ingested_at = utcnow()

    def record_mtime(self, path: str, mtime_ns: int) -> None:
        """Same content, touched file: remember the new mtime so the next scan skips hashing."""
        with self.write() as session:
            dump = session.scalar(select(Dump).where(Dump.path == path))
            if dump is not None:
                dump.mtime_ns = mtime_ns


def _dump_for_update(session, path: str) -> Dump:  # type: ignore[no-untyped-def]
    dump = session.scalar(select(Dump).where(Dump.path == path))
    if dump is None:
        dump = Dump(path=path, status="failed", papers_count=0, new_count=0)
        session.add(dump)
    return dump
