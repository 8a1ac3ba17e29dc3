"""The substring and count tests on a paper's joined stems and lower-cased words answer what
the word positions answer."""

from __future__ import annotations

import random

import pytest

from digestd.topics import compile_query
from digestd.topics.document import Document
from digestd.topics.evaluate import MAX_COUNTED, term_points, term_test
from digestd.topics.packed import pack, unpack
from digestd.topics.words import FieldWords

WORDS = [
    "model", "models", "Modeling", "data", "very", "reasoning", "Reason", "chain", "of",
    "thought", "token", "tokenizer", "Tokens", "model's", "don't", "KV", "cache", "ΟΔΟΣ",
]
PUNCTUATION = [" ", " ", " ", " ", ", ", ". ", "; ", "-", " (", ") ", "... "]
QUERIES = [
    "model", "data", '"very very"', '"very very very"', '"chain of thought"', '"kv cache"',
    "token*", "model*", '"reasoning model*"', '"model data"', "title:model", 'title:"kv cache"',
    "abstract:token*", '"data data"', "οδος", "dont", "title:very",
    # a stem and a prefix, tested on the words after the stem: across clauses, apostrophes
    '"model token*"', '"data dont*"', '"model model*"', '"of thought*"', '"kv οδ*"',
]


def random_text(rng: random.Random, words: int) -> str:
    parts = []
    for _ in range(words):
        parts.append(rng.choice(WORDS))
        parts.append(rng.choice(PUNCTUATION))
    return "".join(parts)


def positional_points(doc: Document, term) -> float:  # type: ignore[no-untyped-def]
    # what the score was before: the number of start positions of the term in each part
    if term.field is not None:
        found = doc.field_words(term.field).find(term.elements)
        points = 3.0 if term.field == "title" else 1.0
        return points * min(len(found), MAX_COUNTED)
    in_title = doc.title_field.find(term.elements)
    in_abstract = doc.abstract_field.find(term.elements)
    return 3.0 * min(len(in_title), MAX_COUNTED) + 1.0 * min(len(in_abstract), MAX_COUNTED)


@pytest.mark.parametrize("seed", range(5))
def test_substring_tests_and_counts_agree_with_word_positions(seed: int) -> None:
    rng = random.Random(seed)
    terms = [t for q in QUERIES for t in compile_query(q).positive_terms()]
    for _ in range(300):
        title, abstract = random_text(rng, rng.randint(0, 6)), random_text(rng, rng.randint(0, 40))
        made = Document(title, abstract)
        kept = unpack(pack(made), title, abstract)
        assert kept is not None
        for doc in (made, kept):
            for term in terms:
                expected = positional_points(doc, term)
                assert term_points(term)(doc) == expected, (term, title, abstract)
                assert term_test(term)(doc) == (expected > 0), (term, title, abstract)


def test_a_phrase_that_overlaps_itself_counts_every_start() -> None:
    # "very very" starts at words 0 and 1 of "very very very"; str.count would see one
    found = compile_query('"very very"').match(Document("", "very very very"))
    assert found is not None and found.score == 2.0


def test_a_phrase_never_runs_across_a_clause() -> None:
    doc = Document("", "We cache. KV values; kv, cache and a KV cache")
    assert doc.abstract_field.joined.count(" kv  cach ") == 1
    found = compile_query('"kv cache"').match(doc)
    assert found is not None and found.score == 1.0
    assert found.abstract_terms == ("KV cache",)


def test_prefix_positions_count_the_words_before() -> None:
    doc = Document("Tokens", "A tokenizer's tokens, and don't token-ise")
    assert doc.abstract_field.lowered == " a tokenizer tokens and dont token ise"
    assert doc.abstract_field.positions(("token", True)) == [1, 2, 5]
    found = compile_query("token*").match(doc)
    assert found is not None and found.score == 3.0 + 2.0
    assert found.title_terms == ("Tokens",)
    assert found.abstract_terms == ("tokenizer's", "tokens", "token")


@pytest.mark.parametrize("seed", range(3))
def test_stem_positions_found_in_the_joined_stems_are_the_list_indexes(seed: int) -> None:
    # a stem's positions, in words cut from the text and in kept words, are its list indexes
    rng = random.Random(seed)
    for _ in range(300):
        made = Document("", random_text(rng, rng.randint(0, 40)))
        kept = unpack(pack(made), "", made.abstract)
        assert kept is not None
        stems = made.abstract_field.stems
        for stem in set(stems):
            expected = [i for i, s in enumerate(stems) if s == stem]
            assert made.abstract_field.positions((stem, False)) == expected
            assert kept.abstract_field.positions((stem, False)) == expected


def test_stem_positions_count_empty_stems_and_clause_marks() -> None:
    # an empty stem (a word of apostrophes only, should the tokeniser make one) is a word of
    # its own, in the joined stems too; clause marks before, between and after words are not
    words = FieldWords("'' a, '' a. a.", (["''", "a", "''", "a", "a"], ["", "a", "", "a", "a"],
                                           frozenset({0, 2, 4, 5})))
    assert words.joined == " |    a  |    a  |  a  | "
    assert words.positions(("a", False)) == [1, 3, 4]


def test_words_are_stemmed_through_a_bounded_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """FieldWords stems a part's words through a plain dict (stem.surface_stems): the same
    stems as one word at a time, also when the cache fills up and is emptied."""
    from digestd.topics import stem

    monkeypatch.setattr(stem, "_SURFACE_STEMS", {})
    monkeypatch.setattr(stem, "_MAX_SURFACES", 50)
    rng = random.Random(3)
    for _ in range(200):
        words = random_text(rng, rng.randint(0, 40)).split()
        assert stem.surface_stems(words) == [stem.surface_stem(w) for w in words]
        assert len(stem._SURFACE_STEMS) <= 50 + len(words)
    assert FieldWords("Models' caching, DON'T").stems == ["model", "cach", "dont"]
