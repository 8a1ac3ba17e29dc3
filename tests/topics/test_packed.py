"""A paper's kept words rebuild the same document, and are refused for any other text."""

from __future__ import annotations

import random

import pytest

from digestd.topics import STARTER_TOPICS, compile_topics, match_document
from digestd.topics.match import Document, FieldWords, paper_document
from digestd.topics.packed import VERSION, pack, unpack
from digestd.topics.packed import paper_document as packed_document
from tests.topics.test_document import random_text
from tests.topics.test_match import seed_papers

ODD = [
    ("", ""),
    ("One", ""),
    ("", "'s"),
    ("Don't stop: the models’ GPT-4o.", "Studies, e.g. 2.4x. ... Chain-of-thought; “quoted”"),
    ("naïve Ünïcödé İstanbul ß", "a’’s b''c ' ’ . , ; end."),
    ("tabs\tand\nnew\r\nlines", "  leading and trailing  "),
    ("...", ". , ;"),
    ("A. B", "One, two; three... four: five! six? seven … eight."),
    # words of apostrophes only (an empty stem) next to clause breaks, a break at the end
    ("Trailing.", "'s. ' 's, ’; x 's."),
]


def fields_of(doc):  # type: ignore[no-untyped-def]
    return [
        (f.text, f.surfaces, f.stems, f.breaks, f.joined, f.lowered)
        for f in (doc.title_field, doc.abstract_field)
    ]


@pytest.mark.parametrize("title, abstract", ODD)
def test_unpacked_words_are_the_words_cut_from_the_text(title: str, abstract: str) -> None:
    made = paper_document(title, abstract, keywords="reward models; RLHF")
    kept = unpack(pack(made), title, abstract, keywords="reward models; RLHF")
    assert kept is not None
    assert kept == made and fields_of(kept) == fields_of(made)
    assert kept.stems == made.stems and kept.joined == made.joined


def test_seed_papers_match_the_same_from_kept_words() -> None:
    topics = compile_topics(STARTER_TOPICS)
    for title, abstract in seed_papers().items():
        packed = pack(paper_document(title, abstract, author="Ada Lovelace"))
        doc, again = packed_document(packed, title, abstract, author="Ada Lovelace")
        assert again is None  # the kept words were used
        fresh = paper_document(title, abstract, author="Ada Lovelace")
        assert match_document(doc, topics) == match_document(fresh, topics)


def test_kept_words_of_other_text_are_not_used() -> None:
    packed = pack(paper_document("KV cache", "Sparse attention."))
    assert unpack(packed, "KV cache", "Sparse attention.") is not None
    assert unpack(packed, "KV cache", "Sparse attention!") is None
    assert unpack(packed, "KV cachf", "Sparse attention.") is None
    assert unpack(packed, "KV cache", "Sparse attention.", keywords="moe") is None
    assert unpack(packed.replace(f"{VERSION} ", "0 ", 1), "KV cache", "Sparse attention.") is None
    assert unpack("", "KV cache", "Sparse attention.") is None
    assert unpack("garbage", "KV cache", "Sparse attention.") is None
    doc, again = packed_document(packed, "KV cache", "Dense attention.")
    assert again is not None and unpack(again, "KV cache", "Dense attention.") == doc


def test_kept_stems_keep_empty_stems_and_breaks_at_either_end() -> None:
    # an empty stem (a word of apostrophes only, should the tokeniser make one) and clause
    # breaks before the first and after the last word come back as they were
    title = FieldWords("'' a", (["''", "a"], ["", "a"], frozenset({0})))
    abstract = FieldWords("b '', ''.", (["b", "''", "''"], ["b", "", ""], frozenset({2, 3})))
    made = Document.prepared(title, abstract)
    kept = unpack(pack(made), made.title, made.abstract)
    assert kept is not None
    assert fields_of(kept) == fields_of(made)
    assert kept.stems == made.stems == frozenset({"", "a", "b"})


@pytest.mark.parametrize("seed", range(3))
def test_random_papers_come_back_word_for_word(seed: int) -> None:
    # the stems and clause breaks are read back from the kept joined line: every empty stem,
    # clause mark at either end and apostrophe of random text comes back as it was cut
    rng = random.Random(seed)
    for _ in range(300):
        title, abstract = random_text(rng, rng.randint(0, 6)), random_text(rng, rng.randint(0, 40))
        made = paper_document(title, abstract)
        kept = unpack(pack(made), title, abstract)
        assert kept is not None
        assert fields_of(kept) == fields_of(made) and kept.stems == made.stems, (title, abstract)
