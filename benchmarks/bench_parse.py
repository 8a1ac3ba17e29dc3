"""Parsing a large card-layout dump, next to a minimal parser of the same fields.

    .venv/bin/python benchmarks/bench_parse.py [--papers 50000] [--rounds 5] [--against REF]

The minimal parser below knows only the generated dump's clean shape (header, then title,
abstract and a metadata block per paper, each block separated by one blank line) and reads the
same fields digestd's parser returns: title, abstract, authors count or organisation, date and
upvotes, links. It has none of digestd's robustness (no normalisation of odd characters, no
glued or missing blocks, no repeated headers, no layout detection), so it is the floor a real
parser can approach. Both run on the same text, interleaved, CPU time of this process; the
first round is a warm-up and not counted. The minimal parser's output is checked against
digestd's, field by field, so the two are doing the same work. With ``--against REF`` the
parser of commit REF runs in the same rounds too, in a child process (ref_parser.py), timed by
its own CPU clock, for a before/after figure from one run.
"""

from __future__ import annotations

import argparse
import datetime
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest import generate_dump, vocabulary
from ref_parser import RefParser

from digestd.parse import parse_dump

_HEADER = {
    "new", "get trending papers in your email inbox!", "subscribe", "daily papers",
    "byak and the research community",
}
_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
)}
_DATE = re.compile(r"([A-Za-z]{3})\s+(\d{1,2})(?:,\s*(\d{4}))?(?:\s+(\d+))?")
_AUTHORS = re.compile(r"•\s*(\d+)\s+authors?")
_URL = re.compile(r"https?://[^\s<>\"'{}\[\]\\^`|]+")


def minimal_parse(text: str) -> list[tuple[object, ...]]:
    blocks = text.split("\n\n")
    index = 0
    while blocks[index].strip().lower() in _HEADER:
        index += 1
    index += 1  # the page date
    papers = []
    count = len(blocks)
    while index < count:
        title = blocks[index].strip()
        abstract = blocks[index + 1].strip() if index + 1 < count else ""
        index += 2
        authors = org_id = org = published = upvotes = None
        if index < count and "\n·\n" in blocks[index]:
            first, _, date = blocks[index].strip().partition("\n·\n")
            match = _AUTHORS.fullmatch(first.strip())
            if match:
                authors = int(match.group(1))
            else:
                org_id, _, org = first.partition(" ")
            month, day, year, votes = _DATE.fullmatch(date).groups()
            published = datetime.date(int(year), _MONTHS[month.lower()], int(day))
            upvotes = int(votes) if votes else None
            index += 1
        links = tuple(dict.fromkeys(_URL.findall(abstract))) if "://" in abstract else ()
        papers.append((title, abstract, authors, org_id, org, published, upvotes, links))
    return papers


def digestd_fields(text: str) -> list[tuple[object, ...]]:
    return [
        (p.title, p.abstract, p.authors_count, p.organization_id, p.organization, p.published,
         p.upvotes, p.links)
        for p in parse_dump(text).papers
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--against", metavar="REF", help="also time the parser of commit REF")
    args = parser.parse_args()

    text = generate_dump(args.papers, 1, vocabulary())
    print(f"dump: {args.papers} papers, {len(text.encode()) / 2**20:.1f} MiB")
    if minimal_parse(text) != digestd_fields(text):
        raise SystemExit("the minimal parser disagrees with digestd's: fix the benchmark")

    reference = RefParser(args.against) if args.against else None
    if reference is not None:
        reference.load(text)
    timings: dict[str, list[float]] = {"digestd": [], "minimal": [], "reference": []}
    for round_ in range(args.rounds + 1):
        for name, parse in (("digestd", parse_dump), ("minimal", minimal_parse)):
            started = time.process_time()
            parse(text)
            if round_:
                timings[name].append(time.process_time() - started)
        if reference is not None:
            elapsed = reference.time()
            if round_:
                timings["reference"].append(elapsed)
    ours, floor = statistics.median(timings["digestd"]), statistics.median(timings["minimal"])
    print(f"digestd parse_dump: {ours:6.2f} s CPU  {args.papers / ours:9,.0f} papers/s")
    print(f"minimal parser:     {floor:6.2f} s CPU  {args.papers / floor:9,.0f} papers/s")
    print(f"ratio: {ours / floor:.2f}x the minimal parser (medians of {args.rounds} rounds)")
    if reference is not None:
        before = statistics.median(timings["reference"])
        reference.close()
        print(f"{args.against} parse_dump: {before:6.2f} s CPU  {args.papers / before:9,.0f} "
              f"papers/s, {before / floor:.2f}x the minimal parser")


if __name__ == "__main__":
    main()
