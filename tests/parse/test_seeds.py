"""The parser against the real dumps in samples/seeds: counts, metadata, line numbers."""

from __future__ import annotations

import datetime
from functools import cache
from pathlib import Path

import pytest

from digestd.parse import ParsedDump, ParsedPaper, decode_dump, paper_key, parse_dump

SEEDS = Path(__file__).resolve().parents[2] / "samples" / "seeds"


@cache
def load(prefix: str) -> ParsedDump:
    (path,) = SEEDS.glob(f"{prefix}_*.txt")
    return parse_dump(decode_dump(path.read_bytes(), path=str(path)), path=str(path))


def find(dump: ParsedDump, title_start: str) -> ParsedPaper:
    (paper,) = [p for p in dump.papers if p.title.startswith(title_start)]
    return paper


def test_new_keys_per_dump_and_totals() -> None:
    seen: set[str] = set()
    new_per_dump = []
    listings = 0
    for prefix in ("000", "001", "002", "003", "004"):
        dump = load(prefix)
        listings += len(dump.papers)
        new = 0
        for paper in dump.papers:
            key = paper_key(paper.title)
            if key not in seen:
                seen.add(key)
                new += 1
        new_per_dump.append(new)
    assert new_per_dump == [52, 33, 59, 35, 265]
    assert len(seen) == 444
    assert listings == 487


@pytest.mark.parametrize(
    ("prefix", "layout", "page_date", "capture_year", "count", "without_meta"),
    [
        ("000", "card", "May 27", 2026, 52, 2),
        ("001", "card", "Jun 8", 2026, 47, 4),
        ("002", "card", "Apr 13", 2026, 60, 4),
        ("003", "card", "Dec 30", 2025, 51, 7),
        ("004", "compact", None, None, 277, 277),
    ],
)
def test_dump_level_facts(
    prefix: str,
    layout: str,
    page_date: str | None,
    capture_year: int | None,
    count: int,
    without_meta: int,
) -> None:
    dump = load(prefix)
    assert dump.layout == layout
    assert dump.page_date == page_date
    assert dump.capture_year == capture_year
    assert len(dump.papers) == count
    bare = [p for p in dump.papers if p.authors_count is None and p.organization is None]
    assert len(bare) == without_meta
    for paper in dump.papers:
        assert paper.title and paper.abstract
        assert len(paper.title) < 300 < len(paper.abstract)
        assert "  " not in paper.title and "  " not in paper.abstract


@pytest.mark.parametrize("prefix", ["000", "003"])
def test_easier_painting_same_date_with_and_without_year(prefix: str) -> None:
    paper = find(load(prefix), "Easier Painting Than Thinking:")
    assert paper.authors_count == 9
    assert paper.published == datetime.date(2025, 9, 3)
    assert paper.organization is None and paper.organization_id is None
    assert paper.upvotes == 2
    assert paper.links == ("https://t2i-corebench.github.io/",)


def test_tensorbleu_organisation_and_upvotes() -> None:
    for prefix in ("000", "001"):
        paper = find(load(prefix), "TensorBLEU:")
        assert paper.organization == "Reactive AI"
        assert paper.organization_id == "ReactiveAI"
        assert paper.authors_count is None
        assert paper.upvotes == 2
        assert paper.published == datetime.date(2025, 10, 6)


def test_org_with_same_id_and_name() -> None:
    paper = find(load("000"), "Everything in Its Place:")
    assert (paper.organization_id, paper.organization) == ("alibaba-inc", "alibaba-inc")
    # "Jan 28 3" on a page dated May 27 of 2026: yearless, same year, 3 upvotes
    assert paper.published == datetime.date(2026, 1, 28)
    assert paper.upvotes == 3


def test_yearless_date_after_page_date_is_previous_year() -> None:
    dump = load("003")  # page "Dec 30", captured 2025: nothing is after it, all in 2025
    yearless = [p for p in dump.papers if p.published and p.published.year == 2025]
    assert yearless
    assert all(p.published <= datetime.date(2025, 12, 30) for p in yearless if p.published)


def test_compact_seed() -> None:
    dump = load("004")
    first = dump.papers[0]
    assert first.title == "Dense Reward for Free in Reinforcement Learning from Human Feedback"
    assert first.abstract.startswith("Reinforcement Learning from Human Feedback (RLHF)")
    assert dump.papers[1].title == "Uncovering Uncertainty in Transformer Inference"
    for paper in dump.papers:
        assert paper.authors_count is None
        assert paper.organization is None and paper.organization_id is None
        assert paper.published is None and paper.upvotes is None
        assert not paper.title.startswith("Subscribe")


def test_line_numbers() -> None:
    dump = load("000")
    assert dump.papers[0].line == 13
    assert dump.papers[0].title.startswith("Skill-CMIB:")
    assert find(dump, "Easier Painting").line == 21
    assert find(dump, "TensorBLEU:").line == 193
    assert find(load("003"), "Easier Painting").line == 297
    compact = load("004")
    assert [p.line for p in compact.papers[:3]] == [3, 5, 7]
    assert compact.papers[-1].line == 555
    # every line number points at the title's own line
    text = next(SEEDS.glob("002_*.txt")).read_text(encoding="utf-8").split("\n")
    for paper in load("002").papers:
        assert text[paper.line - 1] == paper.title


def test_links_are_clean() -> None:
    links = [
        link
        for prefix in ("000", "001", "002", "003", "004")
        for paper in load(prefix).papers
        for link in paper.links
    ]
    assert len(links) > 100
    for link in links:
        assert link.startswith(("http://", "https://"))
        assert not link.endswith((".", ",", ";", ")", "}"))
        assert "{" not in link and "}" not in link


def test_latex_residue_links() -> None:
    # "https://github.com/cccrrrccc/Re-ttention{https://github.com/cccrrrccc/Re-ttention}"
    assert find(load("000"), "Re-ttention:").links == ("https://github.com/cccrrrccc/Re-ttention",)
    # "...xcodec)" closes a parenthesis opened before the URL
    assert find(load("004"), "Codec Does Matter:").links == (
        "https://x-codec-audio.github.io",
        "https://github.com/zhenye234/xcodec",
    )
