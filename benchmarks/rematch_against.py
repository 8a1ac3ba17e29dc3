"""Re-matching one changed topic with this tree's code and another commit's, taking turns.

    .venv/bin/python benchmarks/rematch_against.py REF [--rounds 5] [--topics reasoning ...]

Builds once (in a temporary directory, a minute or two) a SQLite database of bench_match's
50,000 synthetic papers, matched against its 20 topics, with the full-text index and each
paper's kept words, and copies it for each side, since a commit whose kept words are of
another version would make them again. Each side then runs in a child process of its own
(the commit's ``digestd`` exported with ``git archive``), re-matching each topic in turn
(``rematch_topics`` with only that topic, as after its query changed; ``all``: every topic
at once, the bulk re-match after the topic set changed) for ``--rounds``
rounds after two warm-up runs, and answers the CPU time of each run (of its process) and a
digest of the topic's stored matches, which must be the same on both sides.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from refchild import ROOT, RefChild

_CHILD = r"""
import hashlib, time
db = sys.argv[1]
from bench_match import EXTRA_TOPICS
from bench_rematch import rows
from digestd.store import Store
from digestd.topics import STARTER_TOPICS, compile_topics, match_paper
try:
    from digestd.topics.classify import Classifier
except ImportError:  # older code: the runtime matched every paper against every topic
    Classifier = None
topics = compile_topics(list(STARTER_TOPICS + EXTRA_TOPICS))

def classifier(slugs):
    if Classifier is None:
        return lambda title, abstract, **fields: match_paper(title, abstract, topics, **fields)
    return Classifier(topics).subset(slugs)

store = Store.open("sqlite:///" + db)
while True:
    try:
        slug = pickle.load(stdin)
    except EOFError:
        break
    # "all": every topic at once, as after the topic set changed (bulk, no narrowing)
    slugs = [t.slug for t in topics] if slug == "all" else [slug]
    started = time.process_time()
    store.rematch_topics(slugs, classifier(slugs))
    cpu = time.process_time() - started
    pickle.dump((cpu, hashlib.sha256(repr(rows(store, set(slugs))).encode()).hexdigest()), stdout)
    stdout.flush()
"""


def build(path: Path) -> None:
    """50,000 papers matched against the 20 topics, indexed, their words kept."""
    sys.path.insert(0, str(ROOT))
    from bench_match import DEFAULT_SEEDS, EXTRA_TOPICS, read_seeds, synthetic_papers
    from bench_rematch import fill

    from digestd.store import Store
    from digestd.store.terms import refresh_terms
    from digestd.topics import STARTER_TOPICS, compile_topics
    from digestd.topics.classify import Classifier

    topics = compile_topics(list(STARTER_TOPICS + EXTRA_TOPICS))
    store = Store.open(f"sqlite:///{path}")
    titles, sentences = read_seeds(DEFAULT_SEEDS)
    store.sync_topics([t.definition for t in topics])
    fill(store, synthetic_papers(50_000, titles, sentences, 20240527))
    store.rematch_topics([t.slug for t in topics], Classifier(topics))
    with store.write() as session:
        refresh_terms(session)
    store.dispose()


def _migrate_back(path: Path, ref: str) -> None:
    """Bring the database to the newest revision `ref` knows, with this tree's downgrades: an
    older commit refuses a database a newer digestd migrated."""
    from digestd.store import Store
    from digestd.store.schema import revisions

    listed = subprocess.run(
        ["git", "grep", "-h", "^revision: str = ", ref, "--", "digestd/store/migrations"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    known = set(re.findall(r'"([^"]+)"', listed))
    target = [revision for revision in revisions() if revision in known][-1]
    store = Store.open(f"sqlite:///{path}")
    store.migrate(target, downgrade=True)
    store.dispose()


class Side:
    """One tree's re-matching, in a child process on its own copy of the database."""

    def __init__(self, ref: str | None, db: Path, tmp: Path) -> None:
        copy = tmp / f"{'ref' if ref else 'tree'}.db"
        shutil.copy(db, copy)
        if ref is not None:
            _migrate_back(copy, ref)
        self.child = RefChild(ref, _CHILD, str(copy))

    def rematch(self, slug: str) -> tuple[float, str]:
        answer: tuple[float, str] = self.child.ask(slug)
        return answer

    def close(self) -> None:
        self.child.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref", help="the commit to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--topics", nargs="+", default=["reasoning", "recommendation"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        build(tmp / "bench.db")
        sides = {"this tree": Side(None, tmp / "bench.db", tmp),
                 args.ref: Side(args.ref, tmp / "bench.db", tmp)}
        cpu: dict[tuple[str, str], list[float]] = {}
        try:
            for slug in args.topics:  # warm-up: caches, and kept words of this version
                for side in sides.values():
                    side.rematch(slug)
                    side.rematch(slug)
            for round_ in range(1, args.rounds + 1):
                for slug in args.topics:
                    digests = set()
                    for label, side in sides.items():
                        seconds, digest = side.rematch(slug)
                        digests.add(digest)
                        cpu.setdefault((slug, label), []).append(seconds)
                        print(f"round {round_}  {slug:<16} {label:<10} CPU {seconds:5.2f} s",
                              flush=True)
                    if len(digests) != 1:
                        raise SystemExit(f"the matches of {slug!r} differ")
        finally:
            for side in sides.values():
                side.close()
    print(f"CPU of rematch_topics, median of {args.rounds} rounds (min-max); the same matches:")
    for (slug, label), times in cpu.items():
        print(f"  {slug:<16} {label:<10} {statistics.median(times):5.2f} s "
              f"({min(times):.2f}-{max(times):.2f})")


if __name__ == "__main__":
    main()
