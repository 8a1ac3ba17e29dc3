"""digestd's matcher as of another commit (or this tree), in a child process, for A/B runs.

The commit's ``digestd`` package is exported with ``git archive`` into a temporary directory
and imported there by a child interpreter, so two versions never share a module (nor the
stemmer's and prefixes' caches). The child makes the same synthetic papers as bench_match and
answers requests from a pipe: ``text`` matches every paper from its text, ``kept`` from its
kept words (packed before the clock starts; None when that commit has no kept words). Each
answers the CPU time of the loop (of the child process) and a digest of every match (slug,
score, terms, highlights, paper by paper), so that runs of two commits can be compared.
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

_CHILD = r"""
import hashlib, os, pickle, sys, time
sys.path.insert(0, os.environ["REF_MATCHER_PATH"])
import digestd
assert digestd.__file__.startswith(os.environ["REF_MATCHER_PATH"]), digestd.__file__
sys.path.insert(1, os.environ["REF_MATCHER_BENCH"])
from bench_match import EXTRA_TOPICS, read_seeds, synthetic_papers
from digestd.topics import STARTER_TOPICS, compile_topics, match_paper
from pathlib import Path
stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
count, seed, seeds_dir = pickle.load(stdin)
titles, sentences = read_seeds(Path(seeds_dir))
papers = synthetic_papers(count, titles, sentences, seed)
topics = compile_topics(STARTER_TOPICS + EXTRA_TOPICS)
try:
    from digestd.topics.match import match_document, paper_document
    from digestd.topics.packed import pack, unpack
    packed = [pack(paper_document(t, a)) for t, a in papers]
except ImportError:
    packed = None

def digest(results):
    h = hashlib.sha256()
    for i, found in enumerate(results):
        for m in found:
            h.update(repr((i, m.slug, m.score, m.terms, m.highlights)).encode())
    return h.hexdigest()

pickle.dump(None, stdout)
stdout.flush()
while True:
    try:
        op = pickle.load(stdin)
    except EOFError:
        break
    results = None
    if op == "text":
        started = time.process_time()
        results = [match_paper(t, a, topics) for t, a in papers]
        answer = (time.process_time() - started, digest(results))
    elif packed is None:
        answer = None
    else:
        started = time.process_time()
        results = [
            match_document(unpack(p, t, a), topics)
            for p, (t, a) in zip(packed, papers)
        ]
        answer = (time.process_time() - started, digest(results))
    del results
    pickle.dump(answer, stdout)
    stdout.flush()
"""


class RefMatcher:
    """The matcher of commit `ref` of this repository (None: this tree) in a child process."""

    def __init__(self, ref: str | None, count: int, seed: int, seeds_dir: Path) -> None:
        self._dir = tempfile.TemporaryDirectory()
        if ref is None:
            path = str(ROOT)
        else:
            archive = subprocess.run(
                ["git", "archive", ref, "digestd"], cwd=ROOT, capture_output=True, check=True
            ).stdout
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                tar.extractall(self._dir.name, filter="data")
            path = self._dir.name
        env = dict(os.environ, REF_MATCHER_PATH=path,
                   REF_MATCHER_BENCH=str(Path(__file__).resolve().parent))
        self._child = subprocess.Popen(
            [sys.executable, "-c", _CHILD], env=env, cwd=self._dir.name,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        self._send((count, seed, str(seeds_dir)))

    def _send(self, request: Any) -> Any:
        assert self._child.stdin is not None and self._child.stdout is not None
        pickle.dump(request, self._child.stdin)
        self._child.stdin.flush()
        return pickle.load(self._child.stdout)

    def time(self, loop: str) -> tuple[float, str] | None:
        """CPU seconds of one loop ("text" or "kept") and its matches' digest."""
        return self._send(loop)

    def close(self) -> None:
        if self._child.stdin is not None:
            self._child.stdin.close()
        self._child.wait()
        self._dir.cleanup()
