"""digestd's parser as of another commit, in a child process, for side-by-side runs.

The commit's ``digestd`` package is exported with ``git archive`` into a temporary directory
and imported there by a child interpreter, so the two versions never share a module. The
child reads requests from a pipe: ``load`` keeps a text, ``time`` parses the kept text and
answers the CPU time of the parse (of the child process), ``read`` answers the parse of a text
as plain records (see ``records``).
"""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import os, pickle, sys, time
sys.path.insert(0, os.environ["REF_PARSER_PATH"])
import digestd
assert digestd.__file__.startswith(os.environ["REF_PARSER_PATH"]), digestd.__file__
sys.path.insert(0, os.environ["REF_PARSER_BENCH"])
from ref_parser import records
from digestd.parse import parse_dump
stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
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
        archive = subprocess.run(
            ["git", "archive", ref, "digestd"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        self._dir = tempfile.TemporaryDirectory()
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(self._dir.name, filter="data")
        env = dict(os.environ, REF_PARSER_PATH=self._dir.name,
                   REF_PARSER_BENCH=str(Path(__file__).resolve().parent))
        self._child = subprocess.Popen(
            [sys.executable, "-c", _CHILD], env=env, cwd=self._dir.name,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )

    def _ask(self, op: str, payload: str | None = None) -> Any:
        assert self._child.stdin is not None and self._child.stdout is not None
        pickle.dump((op, payload), self._child.stdin)
        self._child.stdin.flush()
        return pickle.load(self._child.stdout)

    def load(self, text: str) -> None:
        self._ask("load", text)

    def time(self) -> float:
        """CPU seconds of one parse_dump of the loaded text."""
        return float(self._ask("time"))

    def read(self, text: str) -> Any:
        return self._ask("read", text)

    def close(self) -> None:
        if self._child.stdin is not None:
            self._child.stdin.close()
        self._child.wait()
        self._dir.cleanup()
