"""Waking the scan as soon as a dump lands in the seeds directory (inotify, through watchdog).

The scan interval stays the safety net: events can be lost (an overflowing inotify queue, a
network file system that sends none, a directory created after start-up), so the watcher only
makes the next scan come sooner; it never decides what is ingested. Whether a file has settled
is still the scan's call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from digestd.ingest import is_candidate

log = logging.getLogger(__name__)


class _DumpEvents(FileSystemEventHandler):
    def __init__(self, on_dump: Callable[[], None]):
        self.on_dump = on_dump

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type not in {
            "created", "modified", "moved", "closed",
        }:
            return
        # A download renamed from "x.part" to "x.txt" counts by its new name.
        raw = event.dest_path if event.event_type == "moved" else event.src_path
        path = Path(raw.decode() if isinstance(raw, bytes) else raw)
        if is_candidate(path):
            self.on_dump()


class SeedsWatcher:
    """Calls `on_dump` (from the watcher's own thread) when a dump file appears or changes."""

    def __init__(self, directory: Path, on_dump: Callable[[], None]):
        self.directory = directory
        self._handler = _DumpEvents(on_dump)
        self._observer: Observer | None = None  # type: ignore[valid-type]

    def start(self) -> bool:
        """Start watching; False (logged) when the directory cannot be watched."""
        observer = Observer()
        try:
            observer.schedule(self._handler, str(self.directory), recursive=False)
            observer.start()
        except OSError as exc:
            # No inotify (a container without it, too many watches): polling still works.
            log.warning(
                "cannot watch the seeds directory, scanning on the interval only path=%s "
                "error=%r", self.directory, exc.strerror or str(exc),
            )
            return False
        self._observer = observer
        log.info("watching seeds directory path=%s", self.directory)
        return True

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
