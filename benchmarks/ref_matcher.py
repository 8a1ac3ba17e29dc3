"""digestd's matcher as of another commit (or this tree), in a child process, for A/B runs.

The child (see refchild.py) imports the commit's package alone, so two versions never share
a module (nor the stemmer's caches). It makes the same synthetic papers as bench_match and
answers requests from a pipe: ``text`` matches every paper from its text, as ingest does,
``kept`` from its kept words (packed before the clock starts; None when that commit has no
kept words), as re-matching stored papers does; where the commit makes highlights when a match
is shown, both go through its classifier without them, and they are made after the clock
stops, for the digest. Each
answers the CPU time of the loop (of the child process) and a digest of every match (slug,
score, terms, highlights, paper by paper), so that runs of two commits can be compared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from refchild import RefChild

_CHILD = r"""
import hashlib, time
from bench_match import EXTRA_TOPICS, read_seeds, synthetic_papers
from digestd.topics import STARTER_TOPICS, compile_topics, match_paper
from pathlib import Path
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
try:  # highlights made when a match is shown
    from dataclasses import replace
    from digestd.topics.classify import Classifier
    from digestd.topics.match import highlights
    lazy = True
    classifier = Classifier(topics)
    queries = {t.slug: t.query for t in topics}
except ImportError:
    lazy = False

def shown(results, docs):
    # each match with its highlights, as the store makes them when a match is read
    return [
        [replace(m, highlights=highlights(doc, queries[m.slug])) for m in found]
        for doc, found in zip(docs, results)
    ]

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
    if op == "text" and lazy:
        # as ingest does since highlights are made when a match is shown: the classifier, no
        # highlights; they are made after the clock stops, for the digest only
        started = time.process_time()
        results = [
            classifier.match_document(paper_document(t, a), highlight=False) for t, a in papers
        ]
        cpu = time.process_time() - started
        answer = (cpu, digest(shown(results, [paper_document(t, a) for t, a in papers])))
    elif op == "text":
        started = time.process_time()
        results = [match_paper(t, a, topics) for t, a in papers]
        answer = (time.process_time() - started, digest(results))
    elif packed is None:
        answer = None
    elif lazy:
        # as re-matching stored papers does, the same way
        started = time.process_time()
        results = [
            classifier.match_document(unpack(p, t, a), highlight=False)
            for p, (t, a) in zip(packed, papers)
        ]
        cpu = time.process_time() - started
        docs = (unpack(p, t, a) for p, (t, a) in zip(packed, papers))
        answer = (cpu, digest(shown(results, docs)))
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
        self._child = RefChild(ref, _CHILD)
        self._child.ask((count, seed, str(seeds_dir)))

    def time(self, loop: str) -> tuple[float, str] | None:
        """CPU seconds of one loop ("text" or "kept") and its matches' digest."""
        answer: Any = self._child.ask(loop)
        return answer

    def close(self) -> None:
        self._child.close()
