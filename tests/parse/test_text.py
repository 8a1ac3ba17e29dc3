"""Shared helpers: the paper key, URL extraction, date lines, normalisation."""

from __future__ import annotations

import pytest

from digestd.parse import paper_key
from digestd.parse.text import DateLine, collapse, extract_links, normalize_lines, parse_date_line

TITLE = "TensorBLEU: Vectorized GPU-based BLEU Score Implementation"


@pytest.mark.parametrize(
    "variant",
    [
        TITLE,
        TITLE.upper(),
        TITLE.lower(),
        "  TensorBLEU :  Vectorized   GPU-based BLEU Score Implementation  ",
        "TensorBLEU - Vectorized GPU based BLEU Score Implementation.",
        "TensorBLEU: Vectorized GPU–based “BLEU” Score Implementation!",
        "ＴｅｎｓｏｒＢＬＥＵ：　Ｖｅｃｔｏｒｉｚｅｄ GPU-based BLEU Score Implementation",
        "TensorBLEU:\u00a0Vectorized\tGPU-based BLEU Score Implementation",
        "Tensor-BLEU: Vectorized GPUbased BLEU Score Implementation",
    ],
)
def test_paper_key_folds_case_spacing_punctuation_width(variant: str) -> None:
    assert paper_key(variant) == paper_key(TITLE)


def test_paper_key_shape() -> None:
    assert paper_key(TITLE) == "tensorbleuvectorizedgpubasedbleuscoreimplementation"
    assert paper_key("Straße ﬁnal Ⅳ") == paper_key("STRASSE final IV")
    assert paper_key("Café") == paper_key("Cafe\u0301")  # composed and decomposed accents
    assert paper_key("语言模型：综述") == "语言模型综述"


def test_paper_key_keeps_different_titles_apart() -> None:
    assert paper_key(TITLE) != paper_key(TITLE + " v2")
    assert paper_key("GPT-4 Technical Report") != paper_key("GPT-3 Technical Report")
    # titles made only of symbols must not all share the empty key
    assert paper_key("???") != paper_key("!!!")
    assert paper_key("???")


@pytest.mark.parametrize(
    ("text", "links"),
    [
        ("Code: https://github.com/foo/bar.", ("https://github.com/foo/bar",)),
        ("(see https://github.com/foo/bar), and", ("https://github.com/foo/bar",)),
        (
            "at https://en.wikipedia.org/wiki/Foo_(bar).",
            ("https://en.wikipedia.org/wiki/Foo_(bar)",),
        ),
        ("https://a.io/x; http://b.io/y, https://a.io/x!", ("https://a.io/x", "http://b.io/y")),
        ("https://a.io/x{https://a.io/x}", ("https://a.io/x",)),
        ("\\url{https://a.io/x}.", ("https://a.io/x",)),
        ('"https://a.io/x" <https://b.io/y>', ("https://a.io/x", "https://b.io/y")),
        ("HTTPS://A.io/Path?q=1&r=2#frag.", ("HTTPS://A.io/Path?q=1&r=2#frag",)),
        ("https://t2i-corebench.github.io/.", ("https://t2i-corebench.github.io/",)),
        ("no links here, nor ftp://x.org or https:// alone.", ()),
    ],
)
def test_extract_links(text: str, links: tuple[str, ...]) -> None:
    assert extract_links(text) == links


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        ("Sep 3, 2025", DateLine(9, 3, 2025, None)),
        ("Sep 3, 2025 2", DateLine(9, 3, 2025, 2)),
        ("Mar 5", DateLine(3, 5, None, None)),
        ("Mar 5 2", DateLine(3, 5, None, 2)),
        ("  March 15  ", DateLine(3, 15, None, None)),
        ("Sept 30, 2024 1.2k", DateLine(9, 30, 2024, 1200)),
        ("Feb 30", DateLine(2, 30, None, None)),  # syntactically a date; validated later
        ("Foo 3", None),
        ("Mar", None),
        ("May 27 papers", None),
    ],
)
def test_parse_date_line(line: str, parsed: DateLine | None) -> None:
    assert parse_date_line(line) == parsed


def test_normalize_lines_keeps_line_count() -> None:
    text = "a\r\nb\rc\n\u00a0\t \nd\u200b\x07e  \n"
    assert normalize_lines(text) == ["a", "b", "c", "", "de", ""]
    assert collapse("  a \t b\n c  ") == "a b c"


def test_every_character_normalisation_changes_is_non_printable() -> None:
    # normalize_lines runs the cleaning pattern only on lines that fail str.isprintable();
    # a printable character added to the pattern would slip through unchanged.
    from digestd.parse.text import _CLEAN_RE

    touched = [c for c in map(chr, range(0x110000)) if _CLEAN_RE.match(c)]
    assert touched and not [c for c in touched if c.isprintable()]
    assert normalize_lines("a\u00a0b\u200bc\x0cd\n\x07") == ["a bc d", ""]


def test_text_paper_is_a_parsed_paper_like_any_other() -> None:
    import copy
    import dataclasses
    import pickle

    from digestd.parse.types import ParsedPaper, text_paper

    fields = ("T", "A", 3, "acme", "ACME", None, 5, ("https://x.org",), 7)
    made, built = text_paper(*fields), ParsedPaper(*fields)
    assert type(made) is ParsedPaper
    assert made == built and hash(made) == hash(built) and repr(made) == repr(built)
    assert pickle.loads(pickle.dumps(made)) == built
    assert copy.deepcopy(made) == built
    assert dataclasses.replace(made, title="U") == dataclasses.replace(built, title="U")
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.title = "U"  # type: ignore[misc]
