"""What rising papers cost: the rising feed's build and a digest's rising section per reader.

    .venv/bin/python benchmarks/bench_rising.py [--papers 20000] [--daily 300] [--readers 2000]

Stores `--papers` generated papers (the starter topics matching them), then a week of daily
dumps, each listing `--daily` of them again with new upvote counts (Hugging Face's daily list
is 50-300 papers). Then times, CPU: building the rising feed's document, and picking the
rising section of `--readers` readers (one to three topics each, rising on, no previous
digest: the whole seven-day window), one sending run's worth.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import tempfile
import time
from pathlib import Path

from bench_ingest import generate_dump, vocabulary
from population import add_subscribers
from sqlalchemy import update

import digestd.store.papers as store_papers
from digestd.config import Config
from digestd.delivery.rising import RisingPicker
from digestd.feeds.select import rising_doc
from digestd.ingest import ingest_paths
from digestd.runtime import Runtime
from digestd.store import Store
from digestd.store.models import Subscriber

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=20_000)
    parser.add_argument("--daily", type=int, default=300)
    parser.add_argument("--readers", type=int, default=2_000)
    args = parser.parse_args()
    words = vocabulary()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = Store.open(f"sqlite:///{root / 'digestd.db'}")
        runtime = Runtime.open(Config(), store=store)
        clock = {"now": NOW - dt.timedelta(days=8)}
        store_papers.utcnow = lambda: clock["now"]  # type: ignore[assignment]
        text = generate_dump(args.papers, 1, words)
        (root / "all.txt").write_text(text)
        ingest_paths(store, [root / "all.txt"], classify=runtime.classify)
        # the week: each day re-lists `daily` papers of the generated dump with a new count
        blocks = text.split("\n\n")
        head, body = blocks[:6], blocks[6:]
        rng = random.Random(2)
        for day in range(7):
            clock["now"] = NOW - dt.timedelta(days=7 - day)
            picked = []
            for _ in range(args.daily):
                start = 3 * rng.randrange(len(body) // 3)
                title, abstract = body[start], body[start + 1]
                when = f"Jan {rng.randint(1, 28)}, 2024 {rng.randint(1, 500)}"
                picked += [title, abstract, f"  • 3 authors\n·\n{when}"]
            path = root / f"day{day}.txt"
            path.write_text("\n\n".join(head + picked) + "\n")
            ingest_paths(store, [path], classify=runtime.classify)
        add_subscribers(store, args.readers)
        with store.write() as session:
            session.execute(update(Subscriber).values(rising=True))
        readers = [r for r in store.subscribers() if r.rising]

        started = time.process_time()
        doc = rising_doc(store, runtime.config, NOW, store.topics())
        feed = time.process_time() - started

        picker = RisingPicker(runtime)
        started = time.process_time()
        shown = sum(len(picker.pick(reader, [], NOW)) for reader in readers)
        picks = time.process_time() - started
        histories = len(store.upvote_histories(NOW - dt.timedelta(days=7)))
        runtime.close()
    print(f"papers={args.papers} re-counted in the window={histories} readers={len(readers)}")
    print(f"rising feed document: {feed * 1000:.0f} ms CPU, {len(doc.items)} items")
    print(f"rising sections: {picks:.2f} s CPU, {picks / len(readers) * 1000:.2f} ms per reader "
          f"(first one reads the histories), {shown / len(readers):.1f} papers each")


if __name__ == "__main__":
    main()
