"""The parser on synthetic dumps built from seed content: encodings, odd whitespace, damaged
blocks, hostile text and things that are not dumps at all."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from digestd.errors import DumpFormatError, DumpReadError
from digestd.parse import ParsedDump, decode_dump, parse_dump
from digestd.parse.detect import detect_layout
from digestd.parse.text import normalize_lines

SEEDS = Path(__file__).resolve().parents[2] / "samples" / "seeds"

HEADER = [
    "new",
    "Get trending papers in your email inbox!",
    "Subscribe",
    "Daily Papers",
    "byAK and the research community",
    "May 27",
]
EASIER = (
    "Easier Painting Than Thinking: Can Text-to-Image Models Set the Stage, "
    "but Not Direct the Play?"
)
EASIER_ABSTRACT = (
    "Text-to-image (T2I) generation aims to synthesize images from textual prompts. "
    "Our project page: https://t2i-corebench.github.io/."
)
TENSOR = (
    "TensorBLEU: Vectorized GPU-based BLEU Score Implementation for Per-Sentence "
    "In-Training Evaluation"
)
TENSOR_ABSTRACT = (
    "Modern natural language processing models have achieved unprecedented scale, yet the "
    "tools for their evaluation often remain a computational bottleneck."
)
LEXLIP = (
    "LexLIP: Lexicon-Bottlenecked Language-Image Pre-Training for Large-Scale Image-Text Retrieval"
)
LEXLIP_ABSTRACT = (
    "Image-text retrieval (ITR) is a task to retrieve the relevant images/texts, given the "
    "query from another modality."
)


def card(*blocks: str, header: list[str] | None = None) -> str:
    """A card dump: header blocks then the given blocks, blank-line separated."""
    return "\n\n".join([*(HEADER if header is None else header), *blocks]) + "\n"


def meta(first: str, date: str) -> str:
    return f"{first}\n·\n{date}"


BASE = card(
    EASIER,
    EASIER_ABSTRACT,
    meta("  • 9 authors", "Sep 3, 2025 2"),
    TENSOR,
    TENSOR_ABSTRACT,
    meta("ReactiveAI Reactive AI", "Oct 6, 2025 2"),
    LEXLIP,
    LEXLIP_ABSTRACT,
    meta("  • 9 authors", "Feb 6, 2023"),
)


def summary(dump: ParsedDump) -> list[tuple[object, ...]]:
    return [
        (
            p.title,
            p.abstract,
            p.authors_count,
            p.organization_id,
            p.organization,
            p.published,
            p.upvotes,
            p.links,
            p.line,
        )
        for p in dump.papers
    ]


def test_base_synthetic_dump() -> None:
    dump = parse_dump(BASE)
    assert dump.layout == "card"
    assert dump.page_date == "May 27"
    assert dump.capture_year == 2026
    easier, tensor, lexlip = dump.papers
    assert (easier.title, easier.authors_count, easier.upvotes) == (EASIER, 9, 2)
    assert easier.published == datetime.date(2025, 9, 3)
    assert easier.links == ("https://t2i-corebench.github.io/",)
    assert (tensor.organization_id, tensor.organization) == ("ReactiveAI", "Reactive AI")
    assert tensor.authors_count is None
    assert lexlip.published == datetime.date(2023, 2, 6) and lexlip.upvotes is None
    assert [p.line for p in dump.papers] == [13, 21, 29]


# ------------------------------------------------------------------- whitespace and line ends


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(BASE.replace("\n", "\r\n"), id="crlf"),
        pytest.param(BASE.replace("\n", "\r"), id="lone-cr"),
        pytest.param(BASE.replace("\n", " \t \n"), id="trailing-blanks"),
        pytest.param(BASE.replace("\n\n", "\n\u00a0\t\u202f\n"), id="blank-lines-of-odd-blanks"),
        pytest.param(BASE.replace("Easier ", "\u200bEasier\u200d "), id="zero-width"),
    ],
)
def test_line_end_and_blank_variants_parse_the_same(variant: str) -> None:
    assert summary(parse_dump(variant)) == summary(parse_dump(BASE))


def test_non_breaking_spaces_and_tabs_inside_text() -> None:
    text = BASE.replace("Easier Painting", "Easier\u00a0\u00a0Painting").replace(
        "Than Thinking", "Than\tThinking"
    )
    text = text.replace("  • 9 authors", "\t•\u00a09 authors")
    easier = parse_dump(text).papers[0]
    assert easier.title == EASIER
    assert easier.authors_count == 9


def test_bom_via_decode_dump() -> None:
    data = b"\xef\xbb\xbf" + BASE.encode("utf-8")
    text = decode_dump(data)
    assert not text.startswith("\ufeff")
    assert summary(parse_dump(text)) == summary(parse_dump(BASE))
    # a BOM that reached parse_dump anyway (text read elsewhere) is dropped too
    assert summary(parse_dump("\ufeff" + BASE)) == summary(parse_dump(BASE))


def test_utf16_with_bom_is_read() -> None:
    text = decode_dump(BASE.encode("utf-16"))
    assert summary(parse_dump(text)) == summary(parse_dump(BASE))


def test_cp1252_dump() -> None:
    title = "Caf\u00e9 \u201cTransformers\u201d \u2013 a d\u00e9j\u00e0 vu"
    source = card(title, EASIER_ABSTRACT, meta("  • 2 authors", "Mar 5 2"))
    data = source.encode("cp1252")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    dump = parse_dump(decode_dump(data))
    assert dump.papers[0].title == title


def test_latin1_fallback_when_cp1252_fails() -> None:
    # 0x81 is undefined in cp1252; such a file is still read (latin-1) rather than refused
    data = card("Na\xefve Bayes \x81 again", EASIER_ABSTRACT).encode("latin-1")
    dump = parse_dump(decode_dump(data))
    assert dump.papers[0].title.startswith("Na\u00efve Bayes")


# ------------------------------------------------------------------- damaged or missing metadata


def test_papers_without_metadata() -> None:
    text = card(
        EASIER,
        EASIER_ABSTRACT,
        TENSOR,
        TENSOR_ABSTRACT,
        meta("ReactiveAI Reactive AI", "Oct 6, 2025 2"),
        LEXLIP,
        LEXLIP_ABSTRACT,
    )
    easier, tensor, lexlip = parse_dump(text).papers
    assert (easier.title, easier.abstract) == (EASIER, EASIER_ABSTRACT)
    assert easier.authors_count is None and easier.published is None and easier.upvotes is None
    assert tensor.organization == "Reactive AI" and tensor.upvotes == 2
    assert (lexlip.title, lexlip.abstract, lexlip.published) == (LEXLIP, LEXLIP_ABSTRACT, None)


def test_separator_without_parsable_date_keeps_the_paper() -> None:
    text = card(
        EASIER,
        EASIER_ABSTRACT,
        meta("  • 9 authors", "sometime soon"),
        TENSOR,
        TENSOR_ABSTRACT,
        "ReactiveAI Reactive AI\n·",
        LEXLIP,
        LEXLIP_ABSTRACT,
        meta("  • 9 authors", "Feb 30, 2024 4"),
    )
    easier, tensor, lexlip = parse_dump(text).papers
    assert easier.title == EASIER and easier.authors_count == 9 and easier.published is None
    assert easier.organization is None
    assert tensor.title == TENSOR and tensor.organization == "Reactive AI"
    assert tensor.published is None
    # Feb 30 is no date; the upvotes on the line are still read
    assert lexlip.title == LEXLIP and lexlip.published is None and lexlip.upvotes == 4


def test_two_line_metadata() -> None:
    text = card(
        EASIER,
        EASIER_ABSTRACT,
        "  • 9 authors\nSep 3, 2025 2",
        TENSOR,
        TENSOR_ABSTRACT,
        "ReactiveAI Reactive AI\nOct 6, 2025",
        LEXLIP,
        LEXLIP_ABSTRACT,
        "·\nFeb 6, 2023",
    )
    easier, tensor, lexlip = parse_dump(text).papers
    assert easier.authors_count == 9 and easier.published == datetime.date(2025, 9, 3)
    assert tensor.organization_id == "ReactiveAI"
    assert tensor.published == datetime.date(2025, 10, 6)
    assert lexlip.authors_count is None and lexlip.published == datetime.date(2023, 2, 6)


def test_metadata_glued_to_abstract() -> None:
    text = card(
        EASIER, EASIER_ABSTRACT + "\n  • 9 authors\n·\nSep 3, 2025 2", TENSOR, TENSOR_ABSTRACT
    )
    easier, tensor = parse_dump(text).papers
    assert easier.abstract == EASIER_ABSTRACT and easier.authors_count == 9
    assert tensor.title == TENSOR


def test_abstract_over_several_blocks() -> None:
    second = "We release code and data. Code: https://github.com/foo/bar."
    text = card(
        EASIER,
        EASIER_ABSTRACT,
        "Project page: https://example.org/p",  # title-like, but metadata follows
        meta("  • 9 authors", "Sep 3, 2025"),
        TENSOR,
        TENSOR_ABSTRACT,
        second,  # ends a sentence: not a title
        LEXLIP,
        LEXLIP_ABSTRACT,
    )
    easier, tensor, lexlip = parse_dump(text).papers
    assert easier.abstract == EASIER_ABSTRACT + " Project page: https://example.org/p"
    assert easier.links == ("https://t2i-corebench.github.io/", "https://example.org/p")
    assert easier.authors_count == 9
    assert tensor.abstract == TENSOR_ABSTRACT + " " + second
    assert tensor.links == ("https://github.com/foo/bar",)
    assert lexlip.title == LEXLIP


def test_partial_header() -> None:
    text = card(EASIER, EASIER_ABSTRACT, meta("  • 9 authors", "Sep 3"), header=["Daily Papers"])
    dump = parse_dump(text, capture_year=2025)
    assert dump.page_date is None
    assert dump.papers[0].title == EASIER
    assert dump.papers[0].published == datetime.date(2025, 9, 3)


def test_no_header_at_all_but_metadata() -> None:
    text = card(EASIER, EASIER_ABSTRACT, meta("  • 9 authors", "Sep 3, 2025 2"), header=[])
    (paper,) = parse_dump(text).papers
    assert paper.title == EASIER and paper.line == 1


# ------------------------------------------------------------------- yearless dates


def test_capture_year_from_latest_explicit_year() -> None:
    text = card(
        EASIER,
        EASIER_ABSTRACT,
        meta("  • 9 authors", "Sep 3"),
        TENSOR,
        TENSOR_ABSTRACT,
        meta("  • 2 authors", "Oct 6, 2024"),
        header=["Daily Papers", "Dec 30"],
    )
    dump = parse_dump(text, capture_year=1999)  # an explicit year wins over the keyword
    assert dump.capture_year == 2025
    assert dump.papers[0].published == datetime.date(2025, 9, 3)


def test_capture_year_keyword_and_today() -> None:
    text = card(EASIER, EASIER_ABSTRACT, meta("  • 9 authors", "Mar 5 2"))
    dump = parse_dump(text, capture_year=2024)
    assert dump.capture_year == 2024
    assert dump.papers[0].published == datetime.date(2024, 3, 5)
    assert dump.papers[0].upvotes == 2
    today = datetime.date.today()
    assert parse_dump(text).capture_year == today.year


def test_yearless_date_after_page_date_is_previous_year() -> None:
    text = card(
        EASIER,
        EASIER_ABSTRACT,
        meta("  • 9 authors", "Dec 31"),
        TENSOR,
        TENSOR_ABSTRACT,
        meta("  • 9 authors", "Mar 5"),
        header=["Daily Papers", "Mar 5"],
    )
    dump = parse_dump(text, capture_year=2026)
    assert dump.page_date == "Mar 5"
    assert [p.published for p in dump.papers] == [
        datetime.date(2025, 12, 31),
        datetime.date(2026, 3, 5),
    ]


def test_feb_29_only_in_leap_years() -> None:
    text = card(EASIER, EASIER_ABSTRACT, meta("  • 9 authors", "Feb 29"))
    assert parse_dump(text, capture_year=2024).papers[0].published == datetime.date(2024, 2, 29)
    assert parse_dump(text, capture_year=2025).papers[0].published is None


# ------------------------------------------------------------------- hostile and dirty text


def test_control_characters_removed_from_title_and_abstract() -> None:
    text = BASE.replace("Easier Painting", "Easier\x07 Pain\x00ting\x1b").replace(
        "Text-to-image (T2I)", "Text-to-image\ufffe (T2I)\uffff"
    )
    easier = parse_dump(text).papers[0]
    assert easier.title == EASIER
    assert easier.abstract == EASIER_ABSTRACT


def test_hostile_title_kept_verbatim() -> None:
    hostile = "<script>alert(1)</script> ]]> & \"quotes\" 'single' &amp;"
    dump = parse_dump(card(hostile, EASIER_ABSTRACT, meta("  • 1 author", "Sep 3, 2025")))
    paper = dump.papers[0]
    assert paper.title == hostile
    assert paper.authors_count == 1


# ------------------------------------------------------------------- compact layout


COMPACT = (
    "Get trending papers in your email inbox once a day!\n"
    "Get trending papers in your email inbox!\n"
    f"Subscribe{EASIER}\n{EASIER_ABSTRACT}\n{TENSOR}\n{TENSOR_ABSTRACT}\n"
)


def test_compact_variants() -> None:
    expected = summary(parse_dump(COMPACT))
    assert [row[0] for row in expected] == [EASIER, TENSOR]
    assert [row[-1] for row in expected] == [3, 5]
    assert summary(parse_dump(COMPACT.replace("\n", "\r\n"))) == expected
    assert summary(parse_dump(decode_dump(b"\xef\xbb\xbf" + COMPACT.encode()))) == expected


def test_compact_title_without_abstract_at_the_end_is_kept() -> None:
    dump = parse_dump(COMPACT + LEXLIP + "\n")
    assert [p.title for p in dump.papers] == [EASIER, TENSOR, LEXLIP]
    assert dump.papers[-1].abstract == ""


def test_compact_does_not_unglue_a_word_starting_with_subscribe() -> None:
    text = COMPACT.replace(f"Subscribe{EASIER}", "Subscribers of Tomorrow")
    assert parse_dump(text).papers[0].title == "Subscribers of Tomorrow"


def test_detection_on_seeds() -> None:
    for path in sorted(SEEDS.glob("*.txt")):
        lines = normalize_lines(path.read_text(encoding="utf-8"))
        layout = detect_layout(lines)
        assert layout is not None
        assert layout.name == ("compact" if path.name.startswith("004") else "card")


# ------------------------------------------------------------------- not dumps


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x00\x01\x02binary\x00" * 20, id="nul-bytes"),
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", id="png"),
        pytest.param(bytes(range(1, 32)) * 10 + b"text", id="control-bytes-without-nul"),
        pytest.param(b"\x1f\x8b\x08\x08" + bytes(range(0x30, 0x40)) * 3 + b"\x01\x02\x03", id="gz"),
    ],
)
def test_binary_input_is_a_read_error(data: bytes) -> None:
    with pytest.raises(DumpReadError) as info:
        decode_dump(data, path="dumps/x.bin")
    assert info.value.path == "dumps/x.bin"
    assert "binary" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("data", [b"", b"  \n\t\r\n ", b"\xef\xbb\xbf", b"\xef\xbb\xbf\n\n"])
def test_empty_bytes_are_a_format_error(data: bytes) -> None:
    with pytest.raises(DumpFormatError, match="empty dump"):
        decode_dump(data, path="d.txt")


@pytest.mark.parametrize("text", ["", "\n\n  \t", "\u200b\n\ufeff\n"])
def test_empty_text_is_a_format_error(text: str) -> None:
    with pytest.raises(DumpFormatError, match="empty dump"):
        parse_dump(text, path="d.txt")


PARAGRAPH = (
    "It was a bright cold day in April, and the clocks were striking thirteen. Winston Smith, "
    "his chin nuzzled into his breast in an effort to escape the vile wind, slipped quickly "
    "through the glass doors of Victory Mansions.\n\nThe hallway smelt of boiled cabbage and "
    "old rag mats. At one end of it a coloured poster, too large for indoor display, had been "
    "tacked to the wall.\n"
)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(PARAGRAPH, id="english-paragraph"),
        pytest.param("Get trending papers in your email inbox!\n\nHello\n", id="shared-line-only"),
    ],
)
def test_unknown_layout(text: str) -> None:
    with pytest.raises(DumpFormatError) as info:
        parse_dump(text, path="dumps/odd.txt")
    assert info.value.reason == "no known listing layout (expected the card or compact layout)"
    assert info.value.path == "dumps/odd.txt"


def test_utf8_cut_inside_last_character_stays_utf8() -> None:
    data = card("Caf\u00e9 models", EASIER_ABSTRACT).encode("utf-8") + "\u2026".encode()[:2]
    assert parse_dump(decode_dump(data)).papers[0].title == "Caf\u00e9 models"


def test_lone_surrogates_removed() -> None:
    text = BASE.replace("Easier Painting", "Easier\ud800 Painting\udfff")
    assert parse_dump(text).papers[0].title == EASIER


def test_headerless_card_with_two_line_metadata_is_detected() -> None:
    text = card(EASIER, EASIER_ABSTRACT, "  • 9 authors\nSep 3, 2025", header=[])
    assert parse_dump(text).papers[0].authors_count == 9


def test_header_only_card_dump_has_no_papers() -> None:
    dump = parse_dump(card())
    assert (dump.layout, dump.page_date, dump.papers) == ("card", "May 27", ())


def test_title_wrapped_over_two_lines_after_paper_without_metadata() -> None:
    wrapped = TENSOR.replace(" Per-Sentence ", "\nPer-Sentence ")
    text = card(EASIER, EASIER_ABSTRACT, wrapped, TENSOR_ABSTRACT, meta("  • 2 authors", "Mar 5"))
    easier, tensor = parse_dump(text, capture_year=2026).papers
    assert easier.abstract == EASIER_ABSTRACT and easier.authors_count is None
    assert tensor.title == TENSOR and tensor.line == 17 and tensor.authors_count == 2


def test_metadata_without_a_paper_is_ignored() -> None:
    text = card(
        meta("  • 3 authors", "Mar 5"), EASIER, EASIER_ABSTRACT, meta("  • 9 authors", "Sep 3")
    )
    (paper,) = parse_dump(text, capture_year=2026).papers
    assert (paper.title, paper.authors_count) == (EASIER, 9)


def test_concatenated_card_dumps() -> None:
    no_meta_last = card(
        EASIER, EASIER_ABSTRACT, meta("  • 9 authors", "Sep 3, 2025"), TENSOR, TENSOR_ABSTRACT
    )
    dump = parse_dump(no_meta_last + "\n" + BASE)
    assert [p.title for p in dump.papers] == [EASIER, TENSOR, EASIER, TENSOR, LEXLIP]
    # the second header's page date is not the metadata of the paper before it
    assert dump.papers[1].published is None
    # its title is on line 13 of the second dump, which starts after one blank line
    assert dump.papers[2].line == no_meta_last.count("\n") + 1 + 13


def test_concatenated_compact_dumps() -> None:
    dump = parse_dump(COMPACT + LEXLIP + "\n" + COMPACT)
    assert [p.title for p in dump.papers] == [EASIER, TENSOR, LEXLIP, EASIER, TENSOR]
    assert dump.papers[2].abstract == ""
    assert [p.line for p in dump.papers] == [3, 5, 7, 10, 12]
