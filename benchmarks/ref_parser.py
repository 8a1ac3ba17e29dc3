"""digestd's parser as of another commit, in a child process, for side-by-side runs.

The child (see refchild.py) reads requests from a pipe: ``load`` keeps a text, ``time``
parses the kept text and answers the CPU time of the parse (of the child process), ``read``
answers the parse of a text as plain records (see ``records``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from refchild import ROOT, RefChild

__all__ = ["ROOT", "RefParser", "records"]

_CHILD = r"""
import time
from ref_parser import records
from digestd.parse import parse_dump
kept = ""
while True:
    try:
        op, payload = pickle.load(stdin)
    except EOFError:
        break
    if op == "load":
        kept, answer = payload, None
    elif op == "time":
        started = time.process_time()
        parse_dump(kept)
        answer = time.process_time() - started
    else:
        answer = records(payload)
    pickle.dump(answer, stdout)
    stdout.flush()
"""


def records(text: str) -> Any:
    """The parse of `text` as plain values: the dump's fields and one tuple per paper, or the
    error's type and message."""
    from digestd.parse import parse_dump

    try:
        dump = parse_dump(text)
    except Exception as exc:  # the error itself is part of the behaviour compared
        return ("error", type(exc).__name__, str(exc))
    return (
        dump.layout, dump.page_date, dump.capture_year, dump.skipped,
        [dataclasses.astuple(paper) for paper in dump.papers],
    )


class RefParser:
    """The parser of commit `ref` of this repository, running in a child process."""

    def __init__(self, ref: str) -> None:
        self._child = RefChild(ref, _CHILD)

    def _ask(self, op: str, payload: str | None = None) -> Any:
        return self._child.ask((op, payload))

    def load(self, text: str) -> None:
        self._ask("load", text)

    def time(self) -> float:
        """CPU seconds of one parse_dump of the loaded text."""
        return float(self._ask("time"))

    def read(self, text: str) -> Any:
        return self._ask("read", text)

    def close(self) -> None:
        self._child.close()
