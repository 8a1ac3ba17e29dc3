"""How well the topics find what a reader of each topic wants: precision, recall, F1.

Run ``python benchmarks/relevance.py`` for the shipped starter topics, or
``--topics FILE.toml`` for the ``[[topics]]`` of a configuration file (for example
``benchmarks/data/starter_topics_v1.toml``, the starter topics before the field operators),
``--compare FILE.toml`` to print a second set next to the first. ``--json`` prints the figures.

The judgements are ``tests/data/relevance/labels.jsonl`` (its README says how they were made):
each labelled seed paper with the starter topics a reader would want it in. A topic's query
(with its ``min_score``) is run over each labelled paper's title and abstract, read from
``samples/seeds``; a match is a true positive when the label has the topic, a false positive
otherwise, and a labelled topic without a match is a false negative. Per topic: precision =
TP / (TP + FP), recall = TP / (TP + FN), F1 their harmonic mean; "micro" sums TP, FP and FN
over every topic first. "random" repeats micro on the unscreened part of the sample only.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# so that a plain checkout runs without installing the package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from digestd.parse import decode_dump, paper_key, parse_dump
from digestd.topics import STARTER_TOPICS, TopicDefinition, compile_topics, match_paper

ROOT = Path(__file__).resolve().parents[1]
LABELS = ROOT / "tests" / "data" / "relevance" / "labels.jsonl"
SEEDS = ROOT / "samples" / "seeds"


@dataclass(frozen=True)
class Labelled:
    key: str
    title: str
    abstract: str
    sample: str
    topics: frozenset[str]


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, other: Counts) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_json(self) -> dict[str, float | int]:
        return {
            "tp": self.tp, "fp": self.fp, "fn": self.fn,
            "precision": round(self.precision, 3), "recall": round(self.recall, 3),
            "f1": round(self.f1, 3),
        }


def seed_texts(seeds: Path = SEEDS) -> dict[str, tuple[str, str]]:
    """Title and abstract of every seed paper by key, as first listed (dumps in name order)."""
    texts: dict[str, tuple[str, str]] = {}
    for path in sorted(seeds.glob("*.txt")):
        parsed = parse_dump(decode_dump(path.read_bytes(), path=str(path)), path=str(path))
        for paper in parsed.papers:
            texts.setdefault(paper_key(paper.title), (paper.title, paper.abstract))
    return texts


def load_labels(path: Path = LABELS, seeds: Path = SEEDS) -> list[Labelled]:
    texts = seed_texts(seeds)
    labelled = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        # found by the key of the title, so a change of how keys are stored does not matter
        title, abstract = texts[paper_key(row["title"])]
        labelled.append(
            Labelled(row["key"], title, abstract, row["sample"], frozenset(row["topics"]))
        )
    return labelled


def load_topics(path: Path | None) -> list[TopicDefinition]:
    if path is None:
        return list(STARTER_TOPICS)
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return [
        TopicDefinition(
            t["slug"], t["name"], t.get("description", ""), t["query"],
            float(t.get("min_score", 0.0)),
        )
        for t in data["topics"]
    ]


def evaluate(
    topics: Sequence[TopicDefinition], labelled: Iterable[Labelled]
) -> dict[str, dict[str, Counts]]:
    """Counts per topic, and micro totals, for "all" papers and the "random" sample."""
    compiled = compile_topics(topics)
    slugs = [t.slug for t in topics]
    result: dict[str, dict[str, Counts]] = {"all": {}, "random": {}}
    for part in result.values():
        for slug in slugs:
            part[slug] = Counts()
    for paper in labelled:
        found = {m.slug for m in match_paper(paper.title, paper.abstract, compiled)}
        parts = ["all", "random"] if paper.sample == "random" else ["all"]
        for slug in slugs:
            wanted = slug in paper.topics
            got = slug in found
            for part in parts:
                counts = result[part][slug]
                if wanted and got:
                    counts.tp += 1
                elif got:
                    counts.fp += 1
                elif wanted:
                    counts.fn += 1
    for part in result.values():
        micro = Counts()
        for counts in list(part.values()):
            micro.add(counts)
        part["micro"] = micro
    return result


def _row(name: str, counts: Counts, other: Counts | None) -> str:
    line = (
        f"{name:<22} {counts.tp:>3} {counts.fp:>3} {counts.fn:>3}  "
        f"{counts.precision:5.2f} {counts.recall:5.2f} {counts.f1:5.2f}"
    )
    if other is not None:
        line += f"   | {other.precision:5.2f} {other.recall:5.2f} {other.f1:5.2f}"
    return line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topics", type=Path, default=None, help="a TOML file with [[topics]]")
    parser.add_argument("--compare", type=Path, default=None, help="a second set, shown right")
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    labelled = load_labels(args.labels)
    result = evaluate(load_topics(args.topics), labelled)
    other = evaluate(load_topics(args.compare), labelled) if args.compare else None
    if args.json:
        out = {part: {k: v.as_json() for k, v in counts.items()} for part, counts in result.items()}
        print(json.dumps(out, indent=2))
        return 0
    n_random = sum(1 for p in labelled if p.sample == "random")
    print(f"{len(labelled)} labelled papers ({n_random} random sample)")
    header = f"{'topic':<22}  tp  fp  fn   prec  rec    f1"
    if other is not None:
        header += f"   | {'compare: prec  rec    f1'}"
    print(header)
    for slug, counts in result["all"].items():
        if slug == "micro":
            continue
        print(_row(slug, counts, other["all"].get(slug) if other else None))
    print(_row("micro", result["all"]["micro"], other["all"]["micro"] if other else None))
    print(_row("micro (random only)", result["random"]["micro"],
               other["random"]["micro"] if other else None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
