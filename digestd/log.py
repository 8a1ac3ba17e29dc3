"""Logging to stderr with stable key=value fields; no timestamps when journald adds its own."""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO


def under_journald() -> bool:
    # systemd sets JOURNAL_STREAM to the device:inode of the stream it connected stderr to.
    stream = os.environ.get("JOURNAL_STREAM")
    if not stream:
        return False
    try:
        device, inode = (int(part) for part in stream.split(":"))
        stat = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return False
    return (stat.st_dev, stat.st_ino) == (device, inode)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is when a record is emitted, not when it was set up.

    Progress bars and test harnesses swap sys.stderr; a handler holding the old object
    would write into a closed stream.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def setup_logging(level: str | int = "INFO") -> None:
    if under_journald():
        fmt = "level=%(levelname)s logger=%(name)s %(message)s"
    else:
        fmt = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"
    handler = StderrHandler()
    handler.setFormatter(logging.Formatter(fmt, datefmt="%Y-%m-%dT%H:%M:%S%z"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Third-party chatter at INFO drowns digestd's own lines.
    for noisy in ("apscheduler", "alembic", "uvicorn.access", "sqlalchemy"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # The daemon logs a failed job itself (job=... error=... and the traceback); APScheduler's
    # own copy of the same traceback would only double it.
    logging.getLogger("apscheduler.executors").setLevel(logging.CRITICAL)
