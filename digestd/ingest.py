"""Ingest: find dumps, consult the ledger, parse, store; one dump is one transaction.

The same `ingest_paths` serves `digestd ingest` and the daemon's scan of the seeds directory.
A bad dump is recorded as failed in the ledger and logged; the next one goes on regardless.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from digestd.errors import DumpError, StoreError
from digestd.parse import decode_dump, parse_dump
from digestd.store import Store
from digestd.store.matching import Classify

log = logging.getLogger(__name__)

Status = Literal["ingested", "unchanged", "failed"]

#: how many causes of skipped items one dump writes to the log (the count is always logged)
_LOGGED_NOTES = 5

# Editors, downloaders and copy tools write these before renaming into place.
PARTIAL_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".swp", "~")


@dataclass(frozen=True)
class IngestSettings:
    #: a file modified less than this many seconds ago is still being written: left for later
    settle_seconds: float = 0.0
    max_dump_bytes: int = 256 * 1024 * 1024


@dataclass(frozen=True)
class DumpResult:
    path: str
    status: Status
    papers: int = 0
    new: int = 0
    error: str | None = None
    batch_id: int | None = None
    #: items of a partly bad dump that were not stored (the ledger keeps their causes)
    skipped: int = 0
    #: failed for a reason of the machine (database down, disk full), not of the dump's content:
    #: nothing was recorded, and a later scan retries
    machine_fault: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status,
            "papers": self.papers,
            "new": self.new,
            "skipped": self.skipped,
            "error": self.error,
        }


@dataclass
class IngestReport:
    dumps: list[DumpResult] = field(default_factory=list)
    #: files seen but left for a later scan, with the reason
    deferred: list[tuple[str, str]] = field(default_factory=list)
    papers_total: int = 0

    @property
    def batch_ids(self) -> list[int]:
        return [d.batch_id for d in self.dumps if d.batch_id is not None]

    @property
    def machine_faults(self) -> list[DumpResult]:
        return [d for d in self.dumps if d.machine_fault]

    @property
    def new_papers(self) -> int:
        return sum(d.new for d in self.dumps)

    def as_json(self) -> dict[str, Any]:
        return {"dumps": [d.as_json() for d in self.dumps], "papers_total": self.papers_total}


def is_candidate(path: Path) -> bool:
    """Whether a file found in a directory is a dump to consider (hidden and partial ones not)."""
    name = path.name
    return not name.startswith(".") and not name.endswith(PARTIAL_SUFFIXES)


def discover(paths: Iterable[Path]) -> list[Path]:
    """Files named directly, plus the candidate files of named directories, in name order.

    A file named directly is always taken (the user asked for it); inside directories hidden
    and partial files are skipped. Directories are read one level deep, like a spool.
    """
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            children = sorted(p for p in path.iterdir() if p.is_file() and is_candidate(p))
            found.extend(children)
        else:
            found.append(path)
    return found


def ingest_paths(
    store: Store,
    paths: Iterable[Path],
    settings: IngestSettings = IngestSettings(),
    *,
    classify: Classify | None = None,
    on_progress: Callable[[DumpResult | None], None] | None = None,
    files: Iterable[Path] | None = None,
) -> IngestReport:
    """Ingest every dump under `paths`; never raises for one bad dump.

    `classify` matches new papers against the topics inside each dump's transaction.
    """
    report = IngestReport()
    for path in files if files is not None else discover(paths):
        result = ingest_file(store, path, settings, classify=classify)
        if result is None:
            report.deferred.append((str(path), "still being written"))
        else:
            report.dumps.append(result)
        if on_progress:
            on_progress(result)
    report.papers_total = store.count_papers()
    return report


def ingest_file(
    store: Store, path: Path, settings: IngestSettings, *, classify: Classify | None = None
) -> DumpResult | None:
    """Ingest one file. None means it is still being written and was left for later."""
    name = str(path.absolute())
    try:
        stat = path.stat()
    except OSError as exc:
        return _fail(store, name, None, None, None, f"cannot read: {exc.strerror or exc}")
    if not path.is_file():
        return _fail(store, name, None, None, None, "not a regular file")
    if settings.settle_seconds and time.time() - stat.st_mtime < settings.settle_seconds:
        log.debug("deferred dump=%s reason=settling", name)
        return None

    known = store.ledger_entry(name)
    if known and known.size == stat.st_size and known.mtime_ns == stat.st_mtime_ns:
        return _unchanged(known)
    if stat.st_size > settings.max_dump_bytes:
        return _fail(
            store, name, None, stat.st_size, stat.st_mtime_ns,
            f"file too large ({stat.st_size} bytes, limit ingest.max_dump_bytes="
            f"{settings.max_dump_bytes})",
        )

    try:
        data = _read(path, settings.max_dump_bytes)
    except OSError as exc:
        return _fail(store, name, None, None, None, f"cannot read: {exc.strerror or exc}")
    content_hash = hashlib.sha256(data).hexdigest()
    size, mtime_ns = len(data), stat.st_mtime_ns

    if known and known.content_hash == content_hash:
        store.record_mtime(name, mtime_ns)
        return _unchanged(known)
    original = store.ingested_content(content_hash)
    if original is not None:
        store.record_copy(
            name, content_hash=content_hash, size=size, mtime_ns=mtime_ns, original=original
        )
        log.info("unchanged dump=%s same_content_as=%s", name, original.path)
        return DumpResult(name, "unchanged", papers=original.papers_count, new=0)

    try:
        parsed = parse_dump(decode_dump(data, path=name), path=name)
    except DumpError as exc:
        return _fail(store, name, content_hash, size, mtime_ns, exc.reason)
    except Exception as exc:  # a parser bug must not stop the other dumps
        log.exception("parser crashed dump=%s", name)
        return _fail(store, name, content_hash, size, mtime_ns, f"internal parser error: {exc!r}")
    del data

    try:
        stored = store.store_dump(
            name, content_hash=content_hash, size=size, mtime_ns=mtime_ns, parsed=parsed,
            classify=classify,
        )
    except StoreError as exc:
        # Nothing of this dump was stored (the transaction rolled back); a later scan retries.
        log.error("store failed dump=%s error=%r", name, str(exc))
        return DumpResult(name, "failed", error=str(exc), machine_fault=True)
    log.info(
        "ingested dump=%s layout=%s papers=%d new=%d skipped=%d", name, parsed.layout,
        stored.papers, stored.new, stored.skipped,
    )
    for note in parsed.skipped[:_LOGGED_NOTES]:
        log.warning("skipped item dump=%s cause=%r", name, note)
    if len(parsed.skipped) > _LOGGED_NOTES:
        log.warning(
            "skipped items dump=%s more=%d", name, len(parsed.skipped) - _LOGGED_NOTES
        )
    return DumpResult(
        name, "ingested", stored.papers, stored.new, batch_id=stored.batch_id,
        skipped=stored.skipped,
    )


def _read(path: Path, limit: int) -> bytes:
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise OSError(f"file grew past ingest.max_dump_bytes={limit} while being read")
    return data


def _unchanged(entry: Any) -> DumpResult:
    if entry.status == "failed":
        return DumpResult(entry.path, "failed", error=entry.error)
    return DumpResult(
        entry.path, "unchanged", papers=entry.papers_count, new=0,
        skipped=entry.skipped_count,
    )


def _fail(
    store: Store, name: str, content_hash: str | None, size: int | None, mtime_ns: int | None,
    error: str,
) -> DumpResult:
    log.warning("failed dump=%s error=%r", name, error)
    try:
        store.record_failure(
            name, content_hash=content_hash, size=size, mtime_ns=mtime_ns, error=error
        )
    except StoreError as exc:
        log.error("cannot record failure dump=%s error=%r", name, str(exc))
        return DumpResult(name, "failed", error=f"{error}; not recorded: {exc}",
                          machine_fault=True)
    return DumpResult(name, "failed", error=error)

