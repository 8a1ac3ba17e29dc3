"""Candidate conditions: every paper the exact matcher accepts meets its topic's condition."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from digestd.topics import STARTER_TOPICS, Document, compile_query
from digestd.topics.candidates import (
    AllOf,
    AnyOf,
    Condition,
    Prefix,
    condition_for,
    paper_tokens,
    to_fts5,
    to_tsquery,
)
from digestd.topics.query import Term
from digestd.topics.stem import split_words, surface_stem, surface_word

SEEDS = Path(__file__).resolve().parents[2] / "samples" / "seeds"


def meets(condition: Condition | None, tokens: list[str]) -> bool:
    if condition is None:
        return True
    if isinstance(condition, Prefix):
        return any(token.startswith(condition.text) for token in tokens)
    results = [meets(child, tokens) for child in condition.children]
    return all(results) if isinstance(condition, AllOf) else any(results)


def test_conditions_follow_the_query() -> None:
    assert condition_for(compile_query("models")) == Prefix("model")
    # "study" stems to "studi", which the word as written does not start with
    assert condition_for(compile_query("study")) == Prefix("stud")
    # stems drop a silent e ("cache" -> "cach")
    assert condition_for(compile_query('"kv cache" OR token*')) == AnyOf(
        (AllOf((Prefix("kv"), Prefix("cach"))), Prefix("token"))
    )
    assert condition_for(compile_query("diffusion NOT video")) == Prefix("diffusion")
    assert condition_for(compile_query("title:agents")) == Prefix("agent")


def test_what_cannot_be_said_narrows_nothing() -> None:
    # a negation on its own branch, a non-ASCII word: every paper stays a candidate
    assert condition_for(compile_query("diffusion OR (model NOT video)")) is not None
    assert condition_for(compile_query("diffusion OR NOT (video AND audio) AND x1")) == AnyOf(
        (Prefix("diffusion"), Prefix("x1"))
    )
    assert condition_for(compile_query("diffusion OR (naïve NOT video)")) is None
    assert condition_for(compile_query("naïve OR bayes")) is None
    assert condition_for(compile_query("naïve bayes")) == Prefix("bay")


def test_unknown_nodes_and_fields_narrow_nothing() -> None:
    class Subterm(Term):  # a node kind this module has never seen
        pass

    query = compile_query("agents")
    term = query.tree
    assert isinstance(term, Term)
    query.tree = Subterm(term.elements, term.label, term.position)
    assert condition_for(query) is None
    query.tree = Term(term.elements, term.label, term.position, field="author")
    assert condition_for(query) is None


def test_query_strings() -> None:
    condition = AnyOf((AllOf((Prefix("kv"), Prefix("cache"))), Prefix("token")))
    assert to_fts5(condition) == '(("kv"* AND "cache"*) OR "token"*)'
    assert to_tsquery(condition) == "(('kv':* & 'cache':*) | 'token':*)"


def test_paper_tokens_drop_apostrophes_and_case() -> None:
    assert paper_tokens("Don't Stop", "the model’s GPT-4o") == [
        "4o", "dont", "gpt", "models", "stop", "the",
    ]


def seed_words() -> list[str]:
    words: set[str] = set()
    for path in SEEDS.glob("*.txt"):
        words.update(split_words(path.read_text(encoding="utf-8")))
    return sorted(words)


def test_every_seed_word_starts_a_token_with_its_stem_and_word() -> None:
    # The property the index relies on, checked on every distinct word of the seeds.
    checked = 0
    for surface in seed_words():
        tokens = paper_tokens("", surface)
        for element in (surface_stem(surface).removesuffix("i"), surface_word(surface)):
            if element and re.fullmatch(r"[a-z0-9]+", element):
                assert any(t.startswith(element) for t in tokens), (surface, element, tokens)
                checked += 1
    assert checked > 5000


@pytest.mark.parametrize("definition", STARTER_TOPICS, ids=lambda d: d.slug)
def test_starter_topic_matches_meet_their_condition(definition) -> None:  # type: ignore[no-untyped-def]
    query = compile_query(definition.query)
    condition = condition_for(query)
    assert condition is not None  # every starter topic narrows
    text = "\n".join(path.read_text(encoding="utf-8") for path in sorted(SEEDS.glob("*.txt")))
    paragraphs = [p for p in text.split("\n\n") if len(p) > 40]
    matched = 0
    for paragraph in paragraphs:
        if query.match(Document.from_text("", paragraph)) is not None:
            matched += 1
            assert meets(condition, paper_tokens("", paragraph)), paragraph[:80]
    assert matched
