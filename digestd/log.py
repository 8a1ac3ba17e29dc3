"""Logging to stderr: key=value lines or one JSON object per line (log.format).

Under journald (stderr is the journal's stream) lines carry no timestamp, since the journal
adds its own, and start with a syslog priority prefix (`<4>` for a warning) that journald turns
into the entry's priority, so `journalctl -p warning` shows warnings and errors only.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import logging
import os
import re
import sys
from typing import Any, TextIO

#: syslog priorities (RFC 5424) of Python's levels
SYSLOG_PRIORITY = {
    logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7,
}
#: key=value fields in a message: a value is a bare word or a Python-quoted string (%r)
FIELD = re.compile(r"""(?<!\S)([a-z_][a-z0-9_]*)=('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\S*)""")
#: keys of the JSON object itself, never overwritten by a message's fields
RESERVED = frozenset({"ts", "level", "logger", "msg", "message", "exc"})


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


def syslog_priority(levelno: int) -> int:
    for level in sorted(SYSLOG_PRIORITY, reverse=True):
        if levelno >= level:
            return SYSLOG_PRIORITY[level]
    return SYSLOG_PRIORITY[logging.DEBUG]


class PriorityPrefix(logging.Formatter):
    """Puts `<N>` before every line of a record (a traceback's lines included), as journald
    reads each line as an entry of its own."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in self.inner.format(record).split("\n"))


def message_fields(message: str) -> tuple[str, dict[str, Any]]:
    """The words before the first key=value, and the fields (`%r` values unquoted)."""
    first = FIELD.search(message)
    text = message[: first.start()].strip() if first else message
    fields: dict[str, Any] = {}
    for key, raw in FIELD.findall(message):
        value: Any = raw
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
            try:
                value = ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                value = raw[1:-1]
        fields[key] = value
    return text, fields


class JsonFormatter(logging.Formatter):
    """One JSON object per record on one line: ts, level, logger, msg (the words), message
    (the whole line), the message's key=value fields, and exc (a traceback) when there is one."""

    def __init__(self, *, timestamps: bool = True) -> None:
        super().__init__()
        self.timestamps = timestamps

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        text, fields = message_fields(message)
        data: dict[str, Any] = {}
        if self.timestamps:
            data["ts"] = dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            )
        data.update(level=record.levelname, logger=record.name, msg=text, message=message)
        for key, value in fields.items():
            if key not in RESERVED:
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def setup_logging(level: str | int = "INFO", fmt: str = "text") -> None:
    """Log to stderr at `level` as "text" (key=value) or "json" lines."""
    journald = under_journald()
    formatter: logging.Formatter
    if fmt == "json":
        formatter = JsonFormatter(timestamps=not journald)
    elif journald:
        formatter = logging.Formatter("level=%(levelname)s logger=%(name)s %(message)s")
    else:
        formatter = logging.Formatter(
            "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        )
    if journald:
        formatter = PriorityPrefix(formatter)
    handler = StderrHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    # Third-party chatter at INFO drowns digestd's own lines.
    for noisy in ("apscheduler", "alembic", "uvicorn.access", "sqlalchemy"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # The daemon logs a failed job itself (job=... error=... and the traceback); APScheduler's
    # own copy of the same traceback would only double it.
    logging.getLogger("apscheduler.executors").setLevel(logging.CRITICAL)
