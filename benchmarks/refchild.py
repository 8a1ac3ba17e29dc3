"""A commit's ``digestd`` in a child interpreter, asked over a pipe, for side-by-side runs.

The commit's package is exported with ``git archive`` into a temporary directory and imported
there by a child interpreter, so two versions never share a module (nor its caches). The
child runs `PRELUDE` (the tree first on ``sys.path``, this directory after it, ``stdin`` and
``stdout`` as binary pipes) and then the caller's code, which reads pickled requests from
``stdin`` and writes a pickled answer for each to ``stdout``.
"""

from __future__ import annotations

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
BENCH = Path(__file__).resolve().parent

PRELUDE = r"""
import os, pickle, sys
sys.path.insert(0, os.environ["REF_TREE"])
import digestd
assert digestd.__file__.startswith(os.environ["REF_TREE"]), digestd.__file__
sys.path.insert(1, os.environ["REF_BENCH"])
stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
"""


class RefChild:
    """`code` run after `PRELUDE` in a child interpreter importing commit `ref`'s digestd
    (None: this tree's); `argv` are its ``sys.argv[1:]``."""

    def __init__(self, ref: str | None, code: str, *argv: str) -> None:
        self._dir = tempfile.TemporaryDirectory()
        tree = str(ROOT)
        if ref is not None:
            archive = subprocess.run(
                ["git", "archive", ref, "digestd"], cwd=ROOT, capture_output=True, check=True
            ).stdout
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                tar.extractall(self._dir.name, filter="data")
            tree = self._dir.name
        env = dict(os.environ, REF_TREE=tree, REF_BENCH=str(BENCH))
        self._child = subprocess.Popen(
            [sys.executable, "-c", PRELUDE + code, *argv], env=env, cwd=self._dir.name,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )

    def ask(self, request: Any) -> Any:
        """Send one request and wait for its answer."""
        assert self._child.stdin is not None and self._child.stdout is not None
        pickle.dump(request, self._child.stdin)
        self._child.stdin.flush()
        return pickle.load(self._child.stdout)

    def close(self) -> None:
        if self._child.stdin is not None:
            self._child.stdin.close()
        self._child.wait()
        self._dir.cleanup()
