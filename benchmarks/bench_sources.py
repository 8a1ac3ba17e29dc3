"""Parsing the structured formats next to the card layout: papers per second.

    .venv/bin/python benchmarks/bench_sources.py [--papers 50000] [--rounds 3]

Three dumps of the same number of papers with the same words: a card-layout text dump (the
generator of bench_ingest.py), a Hugging Face daily papers JSON and an arXiv API Atom
response. Each round parses all three, interleaved, CPU time of this process; the first round
is a warm-up and not counted. Every parse is checked to return every paper.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest import generate_dump, vocabulary

from digestd.parse import parse_dump


def generate_json(papers: int, seed: int, words: list[str]) -> str:
    rng = random.Random(seed)
    items = []
    for number in range(papers):
        title = " ".join(rng.choices(words, k=rng.randint(6, 14))).capitalize()
        items.append({
            "paper": {
                "id": f"25{number // 99999 % 100:02d}.{number % 99999:05d}",
                "authors": [
                    {"_id": f"a{i}", "name": f"{rng.choice(words)} {rng.choice(words)}",
                     "hidden": False}
                    for i in range(rng.randint(1, 12))
                ],
                "publishedAt": "2025-09-03T17:58:05.000Z",
                "title": f"{title} {seed}-{number}",
                "summary": " ".join(rng.choices(words, k=rng.randint(120, 220))) + ".",
                "upvotes": rng.randint(0, 300),
                "ai_summary": " ".join(rng.choices(words, k=20)),
                "ai_keywords": rng.choices(words, k=5),
                "githubRepo": f"https://github.com/example/repo{number}",
                "githubStars": rng.randint(0, 5000),
                "projectPage": None,
                "organization": {"name": "acme", "fullname": "ACME Labs"},
            },
            "publishedAt": "2025-09-04T06:12:00.000Z",
            "numComments": rng.randint(0, 20),
        })
    return json.dumps(items)


def generate_atom(papers: int, seed: int, words: list[str]) -> str:
    rng = random.Random(seed)
    entries = []
    for number in range(papers):
        title = " ".join(rng.choices(words, k=rng.randint(6, 14))).capitalize()
        arxiv = f"25{number // 99999 % 100:02d}.{number % 99999:05d}"
        authors = "".join(
            f"<author><name>{escape(rng.choice(words))} {escape(rng.choice(words))}</name></author>"
            for _ in range(rng.randint(1, 12))
        )
        abstract = escape(" ".join(rng.choices(words, k=rng.randint(120, 220))) + ".")
        entries.append(
            f"<entry><id>http://arxiv.org/abs/{arxiv}v1</id>"
            f"<updated>2025-09-04T00:00:00Z</updated><published>2025-09-03T00:00:00Z</published>"
            f"<title>{escape(title)} {seed}-{number}</title><summary>{abstract}</summary>"
            f"{authors}<arxiv:primary_category term=\"cs.CL\"/><category term=\"cs.CL\"/>"
            f'<link href="https://arxiv.org/abs/{arxiv}v1" rel="alternate" type="text/html"/>'
            f'<link title="pdf" href="https://arxiv.org/pdf/{arxiv}v1" rel="related"/></entry>'
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" '
        'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" '
        'xmlns:arxiv="http://arxiv.org/schemas/atom">'
        f"<opensearch:totalResults>{papers}</opensearch:totalResults>"
        + "\n".join(entries) + "</feed>\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    words = vocabulary()
    dumps = {
        "card layout (text)": generate_dump(args.papers, 1, words),
        "Hugging Face JSON": generate_json(args.papers, 1, words),
        "arXiv API Atom": generate_atom(args.papers, 1, words),
    }
    times: dict[str, list[float]] = {name: [] for name in dumps}
    for round_number in range(args.rounds + 1):
        for name, text in dumps.items():
            start = time.process_time()
            parsed = parse_dump(text, path=name)
            elapsed = time.process_time() - start
            if len(parsed.papers) != args.papers:
                raise SystemExit(f"{name}: {len(parsed.papers)} papers, expected {args.papers}")
            if round_number:  # the first round warms up
                times[name].append(elapsed)
    print(f"{args.papers} papers per dump, median CPU seconds of {args.rounds} rounds")
    print(f"{'format':<22} {'MB':>6} {'seconds':>8} {'papers/s':>10}  vs card")
    card = statistics.median(times["card layout (text)"])
    for name, text in dumps.items():
        median = statistics.median(times[name])
        size = len(text.encode()) / 1e6
        print(
            f"{name:<22} {size:>6.1f} {median:>8.2f} {args.papers / median:>10,.0f}"
            f"  {card / median:>5.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
