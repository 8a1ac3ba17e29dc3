"""This tree's parser against another commit's, record by record, on seeds and generated dumps.

    .venv/bin/python benchmarks/parse_against.py [--ref main] [--papers 5000] [--damaged 200]

Reads every seed (samples/seeds, and /work/shared/seeds or --seeds when present), generated
card dumps (the generator of bench_ingest.py), and damaged copies of both: characters that
normalisation changes or drops, odd blanks, near-misses of metadata, repeated headers, lines
dropped, doubled, cut or swapped. Each text is parsed here and by the commit's code (in a child
process, see ref_parser.py); the dumps' fields and every paper's fields, line numbers
included, must be equal, and so must the errors. Exits non-zero on the first difference.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest import generate_dump, vocabulary
from ref_parser import ROOT, RefParser, records

from digestd.errors import DigestdError
from digestd.parse import decode_dump

# What a line may get or become (the same kinds as tests/parse/test_whole_papers.py).
NOISE = [
    "\t", "\u00a0", "\u200b", "\x1c", "\u2028", "\u3000", "  ", " ", ".", "\ufeff", "\x85",
    "\x07", "\x7f", "ß", "ſ", "K", "·", "•", "\r", "\r\n", "é", "://", "https://x.org/a).",
]
LINES = [
    "", " ", "\t", "\u200b", "·", "•", "  • 3 authors", "3 Authors", "• 1 author", "٣ authors",
    "Mar 5", "Mar 5 12", "Feb 30, 2024 3", "Sep 3, 1800", "May 1 1.2k", "Junk 5", "Mar\u200b 5",
    "Mar\t5", "Mar 5.", "acme ACME Labs", "acme ACME Labs.", "Mar 5 Labs", "new", "Subscribe",
    "Daily Papers", "daily\u3000papers", "SUBSCRIBE", "byAK and the research community",
    "Get trending papers in your email inbox!", "A short title", "A short title.",
    "x" * 121, "y " * 70, "Project page: https://example.org/x.", "(see https://a.b/c)",
    "Sept 31, 2024 99999999999999999999", "Dec 31 0.5k", "mar 5, 2024", "MARCH 5",
]


def damaged(text: str, rng: random.Random, edits: int) -> str:
    lines = text.split("\n")
    for _ in range(edits):
        index = rng.randrange(len(lines))
        line = lines[index]
        kind = rng.randrange(8)
        if kind == 0 and line:
            at = rng.randrange(len(line) + 1)
            lines[index] = line[:at] + rng.choice(NOISE) + line[at + rng.randrange(2):]
        elif kind == 1:
            lines[index] = rng.choice(["", " ", "\t", "\u00a0"]) + line + rng.choice(
                ["", " ", "  ", "\u200b"]
            )
        elif kind == 2:
            lines.insert(index, rng.choice(LINES))
        elif kind == 3:
            del lines[index]
        elif kind == 4:
            lines.insert(index, "")
        elif kind == 5 and line:
            lines[index] = line[: rng.randrange(len(line))]
        elif kind == 6:
            other = rng.randrange(len(lines))
            lines[index], lines[other] = lines[other], lines[index]
        else:
            lines[index:index] = ["", "Daily Papers", "", "May 27", ""]
    return "\n".join(lines)


def texts(args: argparse.Namespace) -> list[tuple[str, str]]:
    seeds = sorted((ROOT / "samples" / "seeds").iterdir())
    for extra in args.seeds:
        seeds += sorted(Path(extra).glob("*")) if Path(extra).is_dir() else []
    found: list[tuple[str, str]] = []
    for path in seeds:
        try:
            found.append((str(path), decode_dump(path.read_bytes(), path=str(path))))
        except DigestdError:
            continue
    words = vocabulary()
    for seed in range(1, 4):
        found.append((f"generated seed {seed}", generate_dump(args.papers, seed, words)))
    # a yearless generated dump: the capture year and page-date rules decide every date
    yearless = generate_dump(args.papers // 5, 9, words).replace(", 2024", "")
    found.append(("generated, yearless", yearless))
    rng = random.Random(args.random_seed)
    bases = [(name, text) for name, text in found if not text.lstrip().startswith(("[", "{", "<"))]
    for number in range(args.damaged):
        name, text = bases[number % len(bases)]
        if len(text) > 400_000:
            text = text[: 400_000]
        edits = rng.choice([1, 5, 40, 300, 2000])
        found.append((f"{name}, damaged #{number} ({edits} edits)", damaged(text, rng, edits)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default="main")
    parser.add_argument("--papers", type=int, default=5000)
    parser.add_argument("--damaged", type=int, default=200)
    parser.add_argument("--random-seed", type=int, default=16)
    parser.add_argument("--seeds", nargs="*", default=["/work/shared/seeds"])
    args = parser.parse_args()

    reference = RefParser(args.ref)
    compared = papers = 0
    try:
        for name, text in texts(args):
            ours, theirs = records(text), reference.read(text)
            compared += 1
            if ours == theirs:
                papers += len(ours[4]) if ours[0] != "error" else 0
                continue
            print(f"DIFFERENT: {name}")
            if ours[0] == "error" or theirs[0] == "error":
                print(f"  here: {ours[:3]}\n  {args.ref}: {theirs[:3]}")
            else:
                print(f"  dump here {ours[:4]}\n  dump {args.ref} {theirs[:4]}")
                names = [f.name for f in dataclasses.fields(_paper_type())]
                for index, (a, b) in enumerate(zip(ours[4], theirs[4], strict=False)):
                    if a != b:
                        diff = {n: (x, y) for n, x, y in zip(names, a, b, strict=True) if x != y}
                        print(f"  paper {index}: {diff}")
                        break
                print(f"  papers: {len(ours[4])} here, {len(theirs[4])} at {args.ref}")
            raise SystemExit(1)
    finally:
        reference.close()
    print(f"{compared} texts, {papers} papers: the same as at {args.ref}, field by field")


def _paper_type() -> type:
    from digestd.parse import ParsedPaper

    return ParsedPaper


if __name__ == "__main__":
    main()
