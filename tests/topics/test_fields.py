"""Clause punctuation bounds phrases; field operators; the field registry; min_score."""

from __future__ import annotations

import pytest

from digestd.errors import QueryError
from digestd.topics import Document, TopicDefinition, compile_query, compile_topics, match_paper
from digestd.topics.fields import FIELDS, FieldSpec, register_field
from digestd.topics.query import Term, parse_query
from digestd.topics.stem import stem


def matches(query: str, title: str, abstract: str = "", **extra: str) -> bool:
    return compile_query(query).match(Document.from_text(title, abstract, **extra)) is not None


# --- phrases stop at sentence and clause punctuation ---------------------------------------


@pytest.mark.parametrize("mark", [".", ",", ";", ":", "!", "?", "…"])
def test_phrase_never_crosses_clause_punctuation(mark: str) -> None:
    abstract = f"We speed up inference{mark} Efficiency follows."
    assert not matches('"inference efficiency"', "T", abstract)
    assert matches("inference efficiency", "T", abstract)  # two words, no phrase: still a match


def test_two_word_phrase_from_the_issue() -> None:
    assert not matches('"code model*"', "TokenButler", "Code, models and benchmarks are out.")
    assert matches('"code model*"', "T", "We train code models.")
    assert not matches('"kv cache"', "T", "It uses a KV. Cache eviction is next.")


def test_three_word_phrase_and_prefix_phrase_stop_at_punctuation() -> None:
    assert not matches('"mixture of experts"', "T", "A mixture, of experts")
    assert matches('"mixture of experts"', "T", "A sparse mixture of experts")
    assert not matches('"large lang*"', "T", "It is large. Language models follow")
    assert matches('"large lang*"', "T", "large language models")


def test_punctuation_inside_a_token_still_joins() -> None:
    assert matches('"2.4x"', "A 2.4x speedup")
    assert matches('"1,000 tokens"', "T", "We process 1,000 tokens per second")
    assert matches("kv-cache", "T", "Our KV-cache (KV) cache")
    assert matches('"kv cache"', "(KV) Cache eviction")  # a bracket is not a clause break


def test_clause_break_before_a_closing_quote_or_bracket() -> None:
    assert not matches('"serving system"', "T", 'a fast "serving." System design')
    assert not matches('"serving system"', "T", "fast (for serving.) System design")


def test_score_and_highlights_count_only_in_clause_occurrences() -> None:
    query = compile_query('"inference efficiency"')
    doc = Document.from_text(
        "T", "We speed up inference. Efficiency matters, and inference efficiency too."
    )
    found = query.match(doc)
    assert found is not None
    assert found.score == 1.0
    assert found.abstract_terms == ("inference efficiency",)


# --- field operators --------------------------------------------------------------------


def test_title_and_abstract_fields() -> None:
    assert matches("title:cache", "KV Cache Eviction", "nothing")
    assert not matches("title:cache", "Eviction", "the KV cache")
    assert matches("abstract:cache", "Eviction", "the KV cache")
    assert not matches("abstract:cache", "KV Cache", "nothing here")


def test_field_phrase_and_prefix() -> None:
    assert matches('title:"kv cache"', "Faster KV Cache", "")
    assert not matches('title:"kv cache"', "Faster KV. Cache", "")
    assert not matches('title:"kv cache"', "Faster", "a KV cache")
    assert matches("title:quantiz*", "Quantization at 3 bits")
    assert not matches("title:quantiz*", "Bits", "quantization")
    assert matches("TITLE:Cache", "KV cache")  # field names are case-insensitive too


def test_field_terms_combine_with_operators() -> None:
    query = 'title:agent* OR (abstract:"tool use" AND NOT title:robot)'
    assert matches(query, "Agents at work")
    assert matches(query, "A study", "on tool use by models")
    assert not matches(query, "Robot study", "on tool use by models")
    assert not matches(query, "A study", "on agents")


def test_field_term_scores_its_field_points() -> None:
    found = compile_query('title:"kv cache" OR abstract:evict*').match(
        Document.from_text("KV Cache Eviction", "We evict tokens and evict pages; evicting more")
    )
    assert found is not None
    # title 3 per occurrence, abstract 1 per occurrence, at most 2 counted each
    assert dict(found.points) == {"title:kv cache": 3.0, "abstract:evict*": 2.0}
    assert found.score == 5.0
    assert found.title_terms == ("KV Cache",)
    assert found.abstract_terms == ("evict", "evicting")


def test_field_terms_are_introspectable_in_the_tree() -> None:
    tree = parse_query('title:"kv cache" OR cache')
    terms = tree.operands  # type: ignore[union-attr]
    assert isinstance(terms[0], Term) and terms[0].field == "title" and terms[0].quoted
    assert [word for word, _ in terms[0].elements] == ["kv", stem("cache")]
    assert isinstance(terms[1], Term) and terms[1].field is None
    assert compile_query('title:"kv cache" OR abstract:x').explain() == (
        'title:"kv cache" OR abstract:x'
    )


@pytest.mark.parametrize(
    ("query", "position", "message"),
    [
        ("foo:bar", 0, "unknown field 'foo:'"),
        ("cache title: kv", 12, "right after title:"),
        ("title:", 6, "right after title:"),
        ("title:(a OR b)", 6, "right after title:"),
        ('title:"kv', 6, "unterminated quote"),
    ],
)
def test_field_syntax_errors(query: str, position: int, message: str) -> None:
    with pytest.raises(QueryError) as caught:
        compile_query(query)
    assert message in str(caught.value)
    assert caught.value.position == position


def test_a_registered_field_needs_one_entry_and_the_paper_text() -> None:
    spec = register_field(FieldSpec("venue", 2.0, "where it was published"))
    try:
        assert matches('venue:"neural information"', "T", "", venue="Neural Information; ICML")
        assert not matches('venue:"information icml"', "T", "", venue="Neural Information; ICML")
        assert not matches("venue:icml", "ICML", "ICML")  # not in the field: no match
        found = compile_query("venue:icml").match(Document.from_text("T", "", venue="ICML"))
        assert found is not None and found.score == 2.0
    finally:
        del FIELDS[spec.name]
    with pytest.raises(QueryError):
        compile_query("venue:icml")
    with pytest.raises(ValueError):
        register_field(FieldSpec("Has-Dash", 1.0, ""))


# --- min_score ----------------------------------------------------------------------------


def test_min_score_drops_papers_mentioning_a_term_in_passing() -> None:
    topic = TopicDefinition("lora", "LoRA", "", "lora OR title:adapter*", min_score=2)
    [compiled] = compile_topics([topic])
    once = match_paper("Scaling laws", "We also try LoRA.", [compiled])
    twice = match_paper("Scaling laws", "LoRA helps. LoRA ranks matter.", [compiled])
    title = match_paper("LoRA for all", "", [compiled])
    assert once == []
    assert [m.score for m in twice] == [2.0]
    assert [m.score for m in title] == [3.0]
