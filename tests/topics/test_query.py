"""The topic query language: operators, phrases, prefixes, stemming, and syntax errors."""

from __future__ import annotations

import pytest

from digestd.errors import QueryError
from digestd.topics import Document, compile_query
from digestd.topics.query import format_query_error
from digestd.topics.stem import normalise, split_words, stem


def matches(query: str, title: str, abstract: str = "") -> bool:
    return compile_query(query).match(Document.from_text(title, abstract)) is not None


# --- words, phrases, prefixes --------------------------------------------------------------


def test_single_word_matches_title_or_abstract() -> None:
    assert matches("cache", "KV Cache Reduction")
    assert matches("cache", "A title", "We compress the cache.")
    assert not matches("cache", "A title", "Nothing here.")


def test_matching_is_case_insensitive() -> None:
    assert matches("KV", "kv cache")
    assert matches("kv", "KV CACHE")
    assert matches('"Kv CaChE"', "the kv cache")


def test_whole_words_only() -> None:
    assert not matches("rag", "A fragment of storage")
    assert not matches("rag", "Drag and drop")
    assert matches("rag", "RAG pipelines")
    assert matches("rag", "Fast (RAG) serving")


def test_phrase_needs_adjacent_words_in_order() -> None:
    assert matches('"speculative decoding"', "Faster Speculative Decoding")
    assert not matches('"speculative decoding"', "Decoding, speculative and otherwise")
    assert not matches('"speculative decoding"', "Speculative tree decoding")
    # without quotes, the two words may be anywhere
    assert matches("speculative decoding", "Decoding, speculative and otherwise")


def test_phrase_words_are_stemmed() -> None:
    assert matches('"speculative decoding"', "Speculative Decode")
    assert matches('"diffusion model"', "Diffusion Models Beat GANs")
    assert matches('"language model"', "Large language modeling")


def test_hyphenated_query_word_is_a_phrase() -> None:
    query = "text-to-image"
    assert matches(query, "Text-to-Image Diffusion")
    assert matches(query, "From text to image")
    assert not matches(query, "From image to text")
    assert matches("kv-cache", "KV Cache Optimization")
    assert matches('"key-value cache"', "a key value cache")


def test_words_with_digits() -> None:
    assert matches("gpt-4", "Evaluating GPT-4 on math")
    assert matches("gpt-4", "GPT 4 evaluated")
    assert not matches("gpt-4", "GPT-4o evaluated")
    assert matches("gpt-4o", "GPT-4o evaluated")
    assert matches("3d", "ULIP-2: Towards Scalable Multimodal Pre-training For 3D Understanding")
    assert not matches("3d", "3 D")
    assert matches("2.4x", "reaching 2.4x higher throughput")


def test_possessive_is_dropped() -> None:
    assert matches("keyformer", "Keyformer's performance")
    assert matches('"keyformer performance"', "Keyformer's performance")


def test_prefix_matches_word_starts_and_is_not_stemmed() -> None:
    for word in ("token", "tokens", "tokenizer", "Tokenization"):
        assert matches("token*", f"A {word} study")
    assert not matches("token*", "A detokenizer")
    # the prefix is compared with the words as written, not with their stems
    assert matches("decoding*", "Decoding")
    assert not matches("decoding*", "Decoded")


def test_prefix_inside_phrase() -> None:
    assert matches('"diffusion model*"', "Diffusion modelling at scale")
    assert not matches('"diffusion model*"', "Diffusion for models")
    assert matches("text-to-im*", "Text-to-Image")


# --- operators -------------------------------------------------------------------------------


def test_and() -> None:
    assert matches("kv AND cache", "KV cache")
    assert not matches("kv AND cache", "KV store")


def test_juxtaposition_means_and() -> None:
    assert matches("kv cache", "The cache of KV pairs")
    assert not matches("kv cache", "The cache")
    assert compile_query("kv cache").explain() == "kv AND cache"


def test_or() -> None:
    assert matches("quantization OR pruning", "Structured pruning")
    assert matches("quantization OR pruning", "Weight quantization")
    assert not matches("quantization OR pruning", "Distillation")


def test_not() -> None:
    assert matches("diffusion NOT video", "Image diffusion")
    assert not matches("diffusion NOT video", "Video diffusion")
    assert not matches("diffusion NOT video", "Image diffusion", "and also videos")


def test_not_binds_tighter_than_and_and_or() -> None:
    assert compile_query("a NOT b OR c").explain() == "(a AND NOT b) OR c"
    assert matches("a NOT b OR c", "c b")


def test_and_binds_tighter_than_or() -> None:
    query = "alpha OR beta AND gamma"
    assert compile_query(query).explain() == "alpha OR (beta AND gamma)"
    assert matches(query, "alpha")
    assert matches(query, "beta gamma")
    assert not matches(query, "beta")
    assert not matches(query, "gamma")


def test_parentheses_override_precedence() -> None:
    query = "(alpha OR beta) AND gamma"
    assert compile_query(query).explain() == "(alpha OR beta) AND gamma"
    assert not matches(query, "alpha")
    assert matches(query, "alpha gamma")
    assert matches(query, "beta gamma")


def test_not_applies_to_a_group() -> None:
    query = "diffusion NOT (video OR audio)"
    assert matches(query, "Image diffusion")
    assert not matches(query, "Audio diffusion")
    assert not matches(query, "Video diffusion")


def test_double_negation_and_de_morgan() -> None:
    assert matches("NOT NOT kv", "kv")
    assert not matches("NOT NOT kv", "cache")
    # NOT (a OR NOT b) is NOT a AND b: it looks for b
    assert matches("NOT (a OR NOT b)", "b")
    assert not matches("NOT (a OR NOT b)", "a b")


def test_operators_in_lower_case_are_operators() -> None:
    assert compile_query("diffusion or flow").explain() == "diffusion OR flow"
    assert compile_query("kv and cache not video").explain() == "kv AND cache AND NOT video"
    assert matches("diffusion or flow", "Flow matching")


def test_operator_words_inside_quotes_or_hyphens_are_literal() -> None:
    assert matches('"trial and error"', "Learning by trial and error")
    assert not matches('"trial and error"', "A trial, an error")
    assert matches("trial-and-error", "Learning by trial and error")
    assert matches('"not"', "To cool or not to cool")


def test_curly_quotes() -> None:
    assert matches("“kv cache”", "KV Cache")


# --- stemming --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "words",
    [
        ("model", "models", "modeling", "modelling", "modeled"),
        ("token", "tokens"),
        ("diffusion", "diffusions"),
        ("reason", "reasons", "reasoning", "reasoned"),
        ("decode", "decodes", "decoding", "decoded"),
        ("image", "images", "imaging"),
        ("study", "studies", "studied", "studying"),
        ("policy", "policies"),
        ("process", "processes", "processing"),
        ("embed", "embeds", "embedding", "embeddings", "embedded"),
        ("cache", "caches", "caching", "cached"),
        ("agent", "agents"),
        ("llm", "llms"),
        ("gpu", "gpus"),
        ("bias", "biases"),
        ("approach", "approaches"),
    ],
)
def test_stem_conflates_inflections(words: tuple[str, ...]) -> None:
    assert len({stem(word) for word in words}) == 1, [stem(w) for w in words]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("transformer", "transform"),
        ("agentic", "agent"),
        ("evening", "even"),
        ("thing", "th"),
        ("various", "vary"),
    ],
)
def test_stem_keeps_different_words_apart(a: str, b: str) -> None:
    assert stem(a) != stem(b)


@pytest.mark.parametrize("word", ["corpus", "status", "analysis", "class", "gpt", "3d", "bus"])
def test_stem_leaves_words_that_only_look_inflected(word: str) -> None:
    assert stem(word) == word


def test_stemming_in_queries() -> None:
    assert matches("model", "Modeling the world")
    assert matches("models", "A model")
    assert matches("reasoning", "Learning to reason")
    assert matches("agents", "An agent for the web")
    assert not matches("agent", "Agentic workflows")
    assert matches("agent*", "Agentic workflows")


def test_tokenizer_is_shared_by_queries_and_text() -> None:
    assert split_words("Text-to-Image (T2I), GPT-4o & 3D") == [
        "Text",
        "to",
        "Image",
        "T2I",
        "GPT",
        "4o",
        "3D",
    ]
    assert normalise("Keyformer's") == ("keyformer", "keyformer")
    assert normalise("Models") == ("models", "model")


# --- errors ----------------------------------------------------------------------------------


def error(query: str) -> QueryError:
    with pytest.raises(QueryError) as info:
        compile_query(query)
    return info.value


@pytest.mark.parametrize(
    ("query", "position", "reason"),
    [
        ("", 0, "empty query, expected a word, phrase, NOT or '('"),
        ("   ", 0, "empty query, expected a word, phrase, NOT or '('"),
        ("(kv OR )", 7, "unexpected ')', expected a word, phrase, NOT or '(' after OR"),
        ("kv AND", 6, "unexpected end of query, expected a word, phrase, NOT or '(' after AND"),
        ("kv AND  ", 6, "unexpected end of query, expected a word, phrase, NOT or '(' after AND"),
        ("kv OR", 5, "unexpected end of query, expected a word, phrase, NOT or '(' after OR"),
        ("kv NOT", 6, "unexpected end of query, expected a word, phrase, NOT or '(' after NOT"),
        ("AND kv", 0, "unexpected AND, expected a word, phrase, NOT or '('"),
        ("kv OR OR cache", 6, "unexpected OR, expected a word, phrase, NOT or '(' after OR"),
        ("kv AND OR cache", 7, "unexpected OR, expected a word, phrase, NOT or '(' after AND"),
        ("()", 1, "unexpected ')', expected a word, phrase, NOT or '('"),
        (
            "(kv OR cache",
            12,
            "unexpected end of query, expected ')' to close the '(' at position 1",
        ),
        (
            "kv (cache (a OR b)",
            18,
            "unexpected end of query, expected ')' to close the '(' at position 4",
        ),
        ("kv cache)", 8, "unexpected ')', there is no '(' for it to close"),
        ('kv "cache', 3, "unterminated quote, expected a closing '\"' for the quote at position 4"),
        ('kv ""', 3, "empty phrase, expected words between the quotes"),
        ('" - "', 0, "empty phrase, expected words between the quotes"),
        ("kv ”", 3, "unexpected closing quote, expected an opening '\"' before it"),
        ("tok*en", 3, "'*' can only end a word, as in token*"),
        ("kv *", 3, "'*' must directly follow a word, as in token*"),
        ("token**", 6, "'*' must directly follow a word, as in token*"),
        ("t*", 0, "the prefix t* is too short, expected at least 2 letters before '*'"),
        ("-video", 0, "a leading '-' does not exclude a word here, write NOT video"),
    ],
)
def test_syntax_errors_report_position_and_expectation(
    query: str, position: int, reason: str
) -> None:
    exc = error(query)
    assert exc.position == position
    assert exc.reason == reason
    assert exc.query == query
    assert str(exc) == f"query error at position {position + 1}: {reason}"


def test_punctuation_is_not_an_operator() -> None:
    exc = error("kv && cache")
    assert exc.position == 3
    assert exc.reason.startswith("unexpected '&&' (no letters or digits)")
    assert "AND, OR and NOT" in exc.reason


@pytest.mark.parametrize(
    ("query", "position"),
    [("NOT video", 0), ("diffusion OR NOT video", 13), ("NOT a AND NOT b", 0)],
)
def test_query_that_only_excludes_is_refused(query: str, position: int) -> None:
    exc = error(query)
    assert exc.position == position
    assert "alone would match papers without any of the query's words" in exc.reason


def test_error_caret_points_at_the_position() -> None:
    text = format_query_error(error("(kv OR )"))
    lines = text.splitlines()
    assert lines[1] == "  (kv OR )"
    assert lines[2] == "         ^"


# --- the compiled query ----------------------------------------------------------------------


def test_compiled_query_keeps_source_and_lists_its_terms() -> None:
    query = compile_query('"KV cache" OR token* OR (kv-cache NOT video)')
    assert query.source == '"KV cache" OR token* OR (kv-cache NOT video)'
    # kv-cache is the same term as "KV cache"; negated terms are not listed
    assert query.terms == ("KV cache", "token*")
    assert query.explain() == '"KV cache" OR token* OR (kv-cache AND NOT video)'
    assert repr(query) == "CompiledQuery('\"KV cache\" OR token* OR (kv-cache NOT video)')"


def test_matches_agrees_with_match() -> None:
    query = compile_query("(kv OR token*) NOT video")
    for title in ("KV store", "tokens", "video tokens", "nothing"):
        doc = Document.from_text(title, "")
        assert query.matches(doc) == (query.match(doc) is not None)
