"""Benchmark topic matching: N synthetic papers against the starter topics plus a few more.

Run ``python benchmarks/bench_match.py`` (``--help`` for the options). Synthetic papers are
built from the seed dumps, deterministically: a title is a real seed title with about half of
its words swapped for other title words, an abstract is 5-10 sentences drawn from all seed
abstracts. That keeps the vocabulary and the phrases realistic, so the share of papers each
topic matches stays close to what real dumps give.

The figure reported is the time of matching every paper against every topic as ingest does
(the classifier, without highlights: they are made when a match is shown), which includes
preparing each paper once (tokenising and stemming); the queries are compiled before the clock
starts, as the daemon does at start-up. ``--kept`` also times matching the same papers
from their kept words (cut and packed before the clock starts), as re-matching stored papers
does: without highlights, which are made when a match is shown.

``--against REF [REF ...]`` instead times this tree's matcher and each commit's in child
processes (ref_matcher.py), taking turns for ``--rounds`` rounds, both loops each (a commit
without kept words runs only the first), and checks every match of every paper is the same.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

# so that a plain checkout runs without installing the package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from digestd.topics import (
    STARTER_TOPICS,
    TopicDefinition,
    compile_topics,
)

DEFAULT_SEEDS = Path(__file__).resolve().parents[1] / "samples" / "seeds"

EXTRA_TOPICS: tuple[TopicDefinition, ...] = (
    TopicDefinition(
        "tokenizers",
        "Tokenizers",
        "Text and visual tokenizers, tokenization.",
        'tokenizer OR tokenizers OR tokenization OR "visual tokens" OR "discrete tokens"',
    ),
    TopicDefinition(
        "speech",
        "Speech and audio",
        "Speech recognition and synthesis, audio language models.",
        'speech OR tts OR asr OR text-to-speech OR "audio generation" OR "spoken language"',
    ),
    TopicDefinition(
        "video",
        "Video",
        "Video understanding and generation.",
        'video* NOT "video conferencing"',
    ),
    TopicDefinition("3d", "3D", "3D shapes, meshes and scenes.", '3d OR mesh* OR "point cloud"'),
    TopicDefinition(
        "moe",
        "Mixture of experts",
        "Sparse mixture-of-experts models, routing, expert parallelism.",
        'mixture-of-experts OR moe OR "expert parallelism" OR (expert* AND routing)',
    ),
    TopicDefinition(
        "attention",
        "Attention mechanisms",
        "Efficient and sparse attention, attention kernels.",
        '"sparse attention" OR "linear attention" OR flashattention OR "attention kernel*" '
        'OR ("attention" AND (sparsity OR sparse) NOT video)',
    ),
    TopicDefinition(
        "recommendation",
        "Recommender systems",
        "Generative and LLM-based recommendation.",
        "recommendation OR recommender* OR (user AND item AND preference*)",
    ),
    TopicDefinition(
        "long-context",
        "Long context",
        "Long-context modelling and memory.",
        'long-context OR "long context" OR "context length" OR "context window" '
        'OR (memory AND (long OR infinite) AND context NOT "memory bandwidth")',
    ),
)


def read_seeds(seeds_dir: Path) -> tuple[list[str], list[str]]:
    """Titles and abstract sentences of the seed dumps (a rough reader: good enough here)."""
    titles: list[str] = []
    sentences: list[str] = []
    for path in sorted(seeds_dir.glob("*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if len(line) > 300:
                sentences.extend(s for s in re.split(r"(?<=[.!?])\s+", line) if len(s) > 20)
            elif 20 < len(line) <= 300 and "•" not in line and "Subscribe" not in line:
                titles.append(line)
    if not titles or not sentences:
        raise SystemExit(f"no seed text found in {seeds_dir}")
    return titles, sentences


def synthetic_papers(
    count: int, titles: list[str], sentences: list[str], seed: int
) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    title_words = [w for t in titles for w in t.split()]
    papers: list[tuple[str, str]] = []
    for _ in range(count):
        words = rng.choice(titles).split()
        for i in range(len(words)):
            if rng.random() < 0.5:
                words[i] = rng.choice(title_words)
        abstract = " ".join(rng.choices(sentences, k=rng.randint(5, 10)))
        papers.append((" ".join(words), abstract))
    return papers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--papers", type=int, default=50_000, help="papers to match (50000)")
    parser.add_argument("--seed", type=int, default=20240527, help="random seed")
    parser.add_argument("--seeds-dir", type=Path, default=DEFAULT_SEEDS, help="seed dumps")
    parser.add_argument("--kept", action="store_true",
                        help="also match from each paper's kept words (digestd.topics.packed)")
    parser.add_argument("--against", nargs="+", metavar="REF",
                        help="time this tree next to these commits' matchers, in turns")
    parser.add_argument("--rounds", type=int, default=3, help="rounds with --against (3)")
    args = parser.parse_args(argv)
    if args.against:
        return against(args)

    titles, sentences = read_seeds(args.seeds_dir)
    papers = synthetic_papers(args.papers, titles, sentences, args.seed)
    definitions = STARTER_TOPICS + EXTRA_TOPICS

    start = time.perf_counter()
    topics = compile_topics(definitions)
    compiled = time.perf_counter() - start

    # as ingest does: the classifier, without highlights (made when a match is shown);
    # imported here: ref_matcher's children import this module with older code
    from digestd.topics.classify import Classifier
    from digestd.topics.match import paper_document

    classifier = Classifier(topics)
    per_topic: Counter[str] = Counter()
    start, start_cpu = time.perf_counter(), time.process_time()
    for title, abstract in papers:
        doc = paper_document(title, abstract)
        for found in classifier.match_document(doc, highlight=False):
            per_topic[found.slug] += 1
    elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu

    if args.kept:
        # as re-matching stored papers does: each paper's words were cut and kept at ingest
        # (packed before the clock starts), matching reads them back
        # (without highlights, as re-matching does: they are made when a match is shown)
        from digestd.topics.packed import pack, unpack

        packed = [pack(paper_document(title, abstract)) for title, abstract in papers]
        kept: Counter[str] = Counter()
        kept_cpu = time.process_time()
        for words_of, (title, abstract) in zip(packed, papers, strict=True):
            doc = unpack(words_of, title, abstract)
            assert doc is not None
            for found in classifier.match_document(doc, highlight=False):
                kept[found.slug] += 1
        kept_cpu = time.process_time() - kept_cpu
        if kept != per_topic:
            raise SystemExit("matching from kept words differs")
        print(f"from kept words   CPU {kept_cpu:.2f} s, the same matches (no highlights)")

    words = sum(len(t.split()) + len(a.split()) for t, a in papers) / len(papers)
    print(f"papers            {len(papers):>10,}  (~{words:.0f} words each)")
    print(f"topics            {len(topics):>10}  (compiled in {compiled * 1000:.1f} ms)")
    print(f"matching time     {elapsed:>10.2f} s  (CPU {cpu:.2f} s)")
    print(f"papers/second     {len(papers) / elapsed:>10,.0f}")
    print(f"µs per paper×topic{elapsed / (len(papers) * len(topics)) * 1e6:>10.2f}")
    print(f"matches           {sum(per_topic.values()):>10,}")
    for definition in definitions:
        share = per_topic[definition.slug] / len(papers)
        print(f"  {definition.slug:<22}{per_topic[definition.slug]:>8,}  {share:6.1%}")
    return 0


def against(args: argparse.Namespace) -> int:
    """This tree's matcher next to other commits', each in its own process, in turns."""
    from ref_matcher import RefMatcher

    names = ["this tree", *args.against]
    matchers = [RefMatcher(None if name == "this tree" else name, args.papers, args.seed,
                           args.seeds_dir) for name in names]
    cpu: dict[tuple[str, str], list[float]] = {}
    digests: set[str] = set()
    try:
        for round_ in range(1, args.rounds + 1):
            for name, matcher in zip(names, matchers, strict=True):
                for loop in ("text", "kept"):
                    answer = matcher.time(loop)
                    if answer is None:
                        continue
                    seconds, digest = answer
                    digests.add(digest)
                    cpu.setdefault((name, loop), []).append(seconds)
                    print(f"round {round_}  {name:<12} {loop:<5} CPU {seconds:6.2f} s",
                          flush=True)
    finally:
        for matcher in matchers:
            matcher.close()
    if len(digests) != 1:
        raise SystemExit("the matches differ between commits")
    print(f"{args.papers:,} papers x 20 topics, the same matches everywhere; CPU, "
          f"median of {args.rounds} rounds (min-max):")
    for (name, loop), times in cpu.items():
        print(f"  {name:<12} {loop:<5} {statistics.median(times):6.2f} s "
              f"({min(times):.2f}-{max(times):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
