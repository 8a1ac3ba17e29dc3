"""Parse and ingest throughput on a large generated card-layout dump, next to a bare insert.

    .venv/bin/python benchmarks/bench_ingest.py [--papers 50000] [--dumps 20]

Reports papers per second for: parsing alone; storing the parsed papers (ledger, dedup,
papers, sightings, one transaction) into a fresh SQLite database; the whole ingest of the file
(read, hash, decode, parse, store); the same with topic matching; and a bare
``sqlite3.executemany`` of the same rows into a table of the same shape. Then ingests
``--dumps`` smaller dumps one after another and prints the process's resident memory after
each, to show it does not grow with the number of dumps.
"""

from __future__ import annotations

import argparse
import random
import resource
import sqlite3
import tempfile
import time
from pathlib import Path

from digestd.config import Config
from digestd.ingest import IngestSettings, ingest_file
from digestd.parse import decode_dump, paper_key, parse_dump
from digestd.runtime import Runtime
from digestd.store import Store, paper_slug

HEADER = [
    "new", "Get trending papers in your email inbox!", "Subscribe", "Daily Papers",
    "byAK and the research community", "Dec 30",
]
SEEDS = Path(__file__).resolve().parents[1] / "samples" / "seeds"


def vocabulary() -> list[str]:
    words: list[str] = []
    for path in sorted(SEEDS.glob("*.txt")):
        words.extend(path.read_text(encoding="utf-8").split())
    return [w for w in words if w.isalpha()] or ["model", "token", "diffusion"]


def generate_dump(papers: int, seed: int, words: list[str]) -> str:
    rng = random.Random(seed)
    blocks = list(HEADER)
    for number in range(papers):
        title = " ".join(rng.choices(words, k=rng.randint(6, 14))).capitalize()
        blocks.append(f"{title} {seed}-{number}")
        blocks.append(" ".join(rng.choices(words, k=rng.randint(120, 220))) + ".")
        if rng.random() < 0.9:
            first = f"  • {rng.randint(1, 30)} authors" if rng.random() < 0.8 else "acme ACME Labs"
            day = f"{rng.choice(['Jan', 'Mar', 'Jun', 'Sep'])} {rng.randint(1, 28)}, 2024"
            upvotes = f" {rng.randint(1, 300)}" if rng.random() < 0.5 else ""
            blocks.append(f"{first}\n·\n{day}{upvotes}")
    return "\n\n".join(blocks) + "\n"


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def bare_insert(rows: list[tuple]) -> float:  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory() as tmp:
        connection = sqlite3.connect(Path(tmp) / "bare.db")
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute(
            "CREATE TABLE papers (id INTEGER PRIMARY KEY, key TEXT UNIQUE, slug TEXT UNIQUE, "
            "title TEXT, abstract TEXT, authors_count INT, organization_id TEXT, "
            "organization TEXT, published DATE, upvotes INT, links TEXT)"
        )
        started = time.perf_counter()
        with connection:
            connection.executemany(
                "INSERT INTO papers (key, slug, title, abstract, authors_count, organization_id,"
                " organization, published, upvotes, links) VALUES (?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
        elapsed = time.perf_counter() - started
        connection.close()
    return elapsed


def timed_ingest(path: Path, classify: bool) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{tmp}/digestd.db")
        runtime = Runtime.open(Config(), store=store) if classify else None
        started = time.perf_counter()
        result = ingest_file(
            store, path, IngestSettings(max_dump_bytes=2**31),
            classify=runtime.classify if runtime else None,
        )
        elapsed = time.perf_counter() - started
        store.dispose()
    assert result is not None and result.status == "ingested", result
    return elapsed, result.new


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=50_000)
    parser.add_argument("--dumps", type=int, default=20)
    parser.add_argument("--papers-per-dump", type=int, default=2_500)
    args = parser.parse_args()

    words = vocabulary()
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "large.txt"
        dump.write_text(generate_dump(args.papers, 1, words), encoding="utf-8")
        size = dump.stat().st_size
        print(f"dump: {args.papers} papers, {size / 2**20:.1f} MiB")

        started = time.perf_counter()
        parsed = parse_dump(decode_dump(dump.read_bytes()))
        parse_s = time.perf_counter() - started
        count = len(parsed.papers)
        print(f"parse:                 {parse_s:7.2f} s  {count / parse_s:9.0f} papers/s")

        with tempfile.TemporaryDirectory() as db_dir:
            store = Store.open(f"sqlite:///{db_dir}/digestd.db")
            started = time.perf_counter()
            stored = store.store_dump(
                str(dump), content_hash="0" * 64, size=size, mtime_ns=0, parsed=parsed
            )
            store_s = time.perf_counter() - started
            store.dispose()
        assert stored.new == count

        rows = [
            (
                paper_key(p.title), paper_slug(p.title, paper_key(p.title)), p.title,
                p.abstract, p.authors_count, p.organization_id, p.organization,
                p.published.isoformat() if p.published else None, p.upvotes,
                "[" + ",".join(f'"{u}"' for u in p.links) + "]",
            )
            for p in parsed.papers
        ]
        del parsed
        bare_s = bare_insert(rows)
        print(f"bare executemany:      {bare_s:7.2f} s  {count / bare_s:9.0f} papers/s")

        print(
            f"store (parsed -> db):  {store_s:7.2f} s  {count / store_s:9.0f} papers/s"
            f"  ({bare_s / store_s:.2f} of bare)"
        )
        ingest_s, new = timed_ingest(dump, classify=False)
        assert new == count
        print(
            f"ingest (read+parse+store): {ingest_s:7.2f} s  {count / ingest_s:9.0f} papers/s"
            f"  ({bare_s / ingest_s:.2f} of bare)"
        )
        matched_s, _ = timed_ingest(dump, classify=True)
        print(f"ingest + topic matching:   {matched_s:7.2f} s  {count / matched_s:9.0f} papers/s")

    print(f"\nmemory over {args.dumps} dumps of {args.papers_per_dump} papers (RSS, MiB):")
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{tmp}/digestd.db")
        readings = []
        for number in range(args.dumps):
            path = Path(tmp) / f"{number:03}.txt"
            path.write_text(generate_dump(args.papers_per_dump, 100 + number, words))
            ingest_file(store, path, IngestSettings())
            path.unlink()
            readings.append(rss_mib())
        print("  " + " ".join(f"{r:.0f}" for r in readings))
        print(
            f"  first {readings[0]:.0f} MiB, last {readings[-1]:.0f} MiB, "
            f"growth over the last half {readings[-1] - readings[len(readings) // 2]:.1f} MiB"
        )
        store.dispose()


if __name__ == "__main__":
    main()
