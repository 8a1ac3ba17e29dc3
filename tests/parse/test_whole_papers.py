"""The card parser's whole-paper pattern against its block-by-block reading: whatever the text,
both give the same papers, field by field, line numbers included.

The pattern only ever takes the usual shape; everything else must fall through to the blocks.
Damaged, oddly spaced and hostile variants of the seed dumps check that nothing it accepts
would have been read differently."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from digestd.parse import card, card_blocks, decode_dump, parse_dump
from digestd.parse.text import normalize_lines, unify_line_ends

SEEDS = Path(__file__).resolve().parents[2] / "samples" / "seeds"
CARD_SEEDS = sorted(p for p in SEEDS.glob("00[0-3]_*.txt"))

# What a line may get: odd blanks, characters normalisation drops, near-misses of metadata.
NOISE = [
    "\t", "\u00a0", "\u200b", "\x1c", "\u2028", "\u3000", "  ", " ", ".", "\ufeff",
    "\x85", "\x07", "\x1f", "\x7f", "ß", "ſ", "K", "·", "•", "\r", "\r\n", "é",
]
LINES = [
    "", " ", "\t", "\u200b", "·", "•", "  • 3 authors", "3 Authors", "• 1 author", "٣ authors",
    "Mar 5", "Mar 5 12", "Feb 30, 2024 3", "Sep 3, 1800", "May 1 1.2k", "Junk 5", "Mar\u200b 5",
    "Mar\t5", "Mar 5.", "acme ACME Labs", "acme ACME Labs.", "Mar 5 Labs", "new", "Subscribe",
    "Daily Papers", "daily\u3000papers", "SUBSCRIBE", "byAK and the research community",
    "Get trending papers in your email inbox!", "A short title", "A short title.",
    "x" * 121, "y " * 70, "Project page: https://example.org/x.", "(see https://a.b/c)",
]


def _card_dumps() -> list[str]:
    return [unify_line_ends(decode_dump(path.read_bytes())) for path in CARD_SEEDS]


def _mutate(text: str, rng: random.Random, edits: int) -> str:
    lines = text.split("\n")
    for _ in range(edits):
        index = rng.randrange(len(lines))
        line = lines[index]
        kind = rng.randrange(8)
        if kind == 0 and line:  # a character changed or added
            at = rng.randrange(len(line) + 1)
            lines[index] = line[:at] + rng.choice(NOISE) + line[at + rng.randrange(2):]
        elif kind == 1:  # trailing or leading blanks
            lines[index] = rng.choice(["", " ", "\t", "\u00a0"]) + line + rng.choice(
                ["", " ", "  ", "\u200b"]
            )
        elif kind == 2:  # a line inserted
            lines.insert(index, rng.choice(LINES))
        elif kind == 3:  # a line dropped (blank lines too: blocks glue)
            del lines[index]
        elif kind == 4:  # a blank line doubled
            lines.insert(index, "")
        elif kind == 5 and line:  # a line cut short
            lines[index] = line[: rng.randrange(len(line))]
        elif kind == 6:  # two lines swapped
            other = rng.randrange(len(lines))
            lines[index], lines[other] = lines[other], lines[index]
        else:  # a block of the header repeated
            lines[index:index] = ["", "Daily Papers", "", "May 27", ""]
    return "\n".join(lines)


def _both(text: str) -> None:
    """Whole papers and blocks alone read `text` the same; so does the lines entry point."""
    text = unify_line_ends(text)
    whole = card.parse_text(text, capture_year=2025)
    blocks = card.parse_text(text, capture_year=2025, whole_papers=False)
    assert whole == blocks
    assert card.parse(normalize_lines(text), capture_year=2025) == whole


def test_the_seeds_are_read_the_same_and_mostly_whole() -> None:
    for text in _card_dumps():
        _both(text)
        years: list[int] = []
        pos, index, _ = card._skip_header(text)
        items = card._items(text, pos, index, years)
        read = (card_blocks.Block, card_blocks.Meta, type(None))
        whole = [i for i in items if not isinstance(i, read)]
        papers = parse_dump(text).papers
        # the comparison above is not vacuous: the pattern takes most papers of a real dump
        assert len(whole) >= 0.8 * len(papers), (len(whole), len(papers))


@pytest.mark.parametrize("seed", range(40))
def test_damaged_dumps_are_read_the_same(seed: int) -> None:
    rng = random.Random(seed)
    dumps = _card_dumps()
    text = dumps[seed % len(dumps)]
    for edits in (1, 5, 40, 300):
        _both(_mutate(text, rng, edits))


def test_generated_noise_around_whole_papers() -> None:
    """Every noise line and character between and inside otherwise clean papers."""
    rng = random.Random(7)
    abstract = "We study things at length; " * 8 + "results follow."
    clean = ["A title", abstract, "  • 4 authors\n·\nMar 5, 2024 3"]
    header = "new\n\nDaily Papers\n\nMay 27\n\n"
    for line in LINES:
        for at in range(4):
            blocks = list(clean * 3)
            blocks.insert(at, line)
            _both(header + "\n\n".join(blocks) + "\n")
            joined = "\n".join(blocks)
            _both(header + joined)
    for _ in range(300):
        blocks = []
        for _paper in range(4):
            title = "".join(rng.choice(["T", "itle", " ", rng.choice(NOISE)]) for _ in range(6))
            body = abstract if rng.random() < 0.7 else rng.choice(LINES)
            meta = rng.choice([
                "  • 4 authors\n·\nMar 5, 2024 3", "acme Acme\n·\nMar 5", "acme Acme.\n·\nMar 5",
                "Mar 5\n·\nMar 6", "x" * 130 + "\n·\nMar 5", "3 Authors\n·\nFeb 30, 2024",
                "acme\u200bAcme\n·\nMar 5", "  • 4 authors\n·\nMar\t5", "", "A next title",
            ])
            blocks += [title, body] + ([meta] if meta else [])
        sep = rng.choice(["\n\n", "\n\n\n", "\n \n"])
        _both(header + sep.join(blocks) + rng.choice(["", "\n", "\n\n", "  "]))


def test_control_characters_in_ascii_and_other_abstracts() -> None:
    """An ASCII abstract is checked for controls apart from other text: both ways agree."""
    header = "new\n\nDaily Papers\n\nMay 27\n\n"
    for control in ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1b", "\x1f", "\x7f", "\x85",
                    "\u200b", "\u2028", "\xa0"]:
        for rest in ["plain words", "naïve words"]:
            abstract = f"We study {rest} at length{control} and more; " * 4 + "results."
            text = header + f"A title\n\n{abstract}\n\n  • 4 authors\n·\nMar 5, 2024 3\n"
            _both(text)


def test_paper_without_metadata_before_lines_around_the_long_length() -> None:
    """What follows a paper without metadata opens the next one only when its second block's
    first line stays longer than any metadata line once normalised."""
    header = "new\n\nDaily Papers\n\nMay 27\n\n"
    abstract = "We study things at length; " * 8 + "results follow."
    meta = "  • 4 authors\n·\nMar 5, 2024 3"
    for line in ["a" * 120 + " b", "a" * 120 + " \u200b", "a" * 120 + "  ", "a" * 121,
                 "a" * 119 + " " + "b" * 5, "a" * 50 + "\u200b" + "b" * 100, "a" * 120 + "\t b",
                 "a" * 120 + " " * 30 + ".", "acme " + "A" * 116, "1" * 121 + " authors"]:
        for tail in ["", "\n\n" + meta]:
            text = header + "\n\n".join(["A title", abstract, "Next title", line]) + tail
            _both(text + "\n")
            _both(text)


def test_repeated_organisations_and_dates_are_read_the_same() -> None:
    """A dump's dates and organisation lines are read once each; every paper still gets its
    own reading, the invalid ones included."""
    header = "new\n\nDaily Papers\n\nMay 27\n\n"
    abstract = "We study things at length; " * 8 + "results follow."
    metas = ["acme ACME Labs\n·\nMar 5, 2024", "acme ACME Labs.\n·\nMar 5, 2024 2",
             "3 authors\n·\nFeb 30, 2024", "acme ACME Labs\n·\nJunk 5, 2024",
             "Mar 5\n·\nMar 5", "acme ACME Labs\n·\nMar 5 1.2k", "x  y\n·\nMar 5"]
    blocks = []
    for number in range(40):
        blocks += [f"Title {number}", abstract, metas[number * 7 % len(metas)]]
    _both(header + "\n\n".join(blocks) + "\n")


def test_line_numbers_and_fields_of_a_whole_paper() -> None:
    text = (
        "new\n\nDaily Papers\n\nMay 27\n\nFirst title\n\n" + "a" * 130 + " https://x.org/a.\n\n"
        "acme ACME Labs\n·\nMar 5 1.2k\n\n\n\nSecond title\n\n" + "b" * 130 + "\n\n"
        "  • 1 author\n·\nJun 2, 2023\n"
    )
    first, second = card.parse_text(text, capture_year=None).papers
    assert (first.line, first.organization_id, first.organization, first.upvotes) == (
        7, "acme", "ACME Labs", 1200)
    assert first.links == ("https://x.org/a",)
    # yearless: the capture year, one after the latest explicit year (2023)
    assert str(first.published) == "2024-03-05"
    assert (second.line, second.authors_count, str(second.published)) == (17, 1, "2023-06-02")
