"""Candidate conditions: every paper the exact matcher accepts meets its topic's condition."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from digestd.topics import STARTER_TOPICS, Document, compile_query
from digestd.topics.candidates import (
    TITLE_MARK,
    AllOf,
    AnyOf,
    Condition,
    Exact,
    Prefix,
    condition_for,
    paper_tokens,
    score_bound,
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
    if isinstance(condition, Exact):
        return condition.text in tokens
    results = [meets(child, tokens) for child in condition.children]
    return all(results) if isinstance(condition, AllOf) else any(results)


def test_conditions_follow_the_query() -> None:
    # a word is its stem exactly, as the matcher compares it: "modest" is no candidate
    assert condition_for(compile_query("models")) == Exact("model")
    assert condition_for(compile_query("study")) == Exact("studi")
    # stems drop a silent e ("cache" -> "cach"); a prefix stays a prefix of the word
    # a phrase's adjacent words are pair tokens; a prefix after a stem pairs with the word
    assert condition_for(compile_query('"kv cache" OR token*')) == AnyOf(
        (Exact("0pkv0cach"), Prefix("token"))
    )
    assert condition_for(compile_query('"reasoning model*"')) == Prefix("0qreason0model")
    assert condition_for(compile_query('"token* budget"')) == AllOf(
        (Prefix("token"), Exact("budget"))
    )
    assert condition_for(compile_query("diffusion NOT video")) == Exact("diffusion")
    # title: looks at the title's tokens only; abstract: at all (more candidates, never fewer)
    assert condition_for(compile_query("title:agents")) == Exact(TITLE_MARK + "agent")
    assert condition_for(compile_query("title:agent*")) == Prefix(TITLE_MARK + "agent")
    assert condition_for(compile_query('title:"kv cache"')) == Exact("0t0pkv0cach")
    assert condition_for(compile_query('abstract:"kv cache"')) == Exact("0pkv0cach")
    assert condition_for(compile_query('"out of the box"')) == AllOf(
        (Exact("0pout0of"), Exact("0pof0the"), Exact("0pthe0box"))
    )


def test_what_cannot_be_said_narrows_nothing() -> None:
    # a negation on its own branch, a non-ASCII word: every paper stays a candidate
    assert condition_for(compile_query("diffusion OR (model NOT video)")) is not None
    assert condition_for(compile_query("diffusion OR NOT (video AND audio) AND x1")) == AnyOf(
        (Exact("diffusion"), Exact("x1"))
    )
    assert condition_for(compile_query("diffusion OR (naïve NOT video)")) is None
    assert condition_for(compile_query("naïve OR bayes")) is None
    assert condition_for(compile_query("naïve bayes")) == Exact("bay")
    assert condition_for(compile_query('"naïve bayes"')) == Exact("bay")


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
    condition = AnyOf((AllOf((Exact("kv"), Prefix("cache"))), Prefix("token")))
    assert to_fts5(condition) == '(("kv" AND "cache"*) OR "token"*)'
    assert to_tsquery(condition) == "(('kv' & 'cache':*) | 'token':*)"


def test_paper_tokens_are_the_matchers_words_stems_and_pairs() -> None:
    assert paper_tokens("Don't", "the models’ GPT-4o. Studies") == [
        "0pgpt04o", "0pmodel0gpt", "0pthe0model", "0qgpt04o", "0qmodel0gpt", "0qthe0models",
        "0tdont", "4o", "dont", "gpt", "model", "models", "studi", "studies", "the",
    ]


def seed_words() -> list[str]:
    words: set[str] = set()
    for path in SEEDS.glob("*.txt"):
        words.update(split_words(path.read_text(encoding="utf-8")))
    return sorted(words)


def test_every_seed_word_is_a_token_with_its_stem() -> None:
    # The property the index relies on, checked on every distinct word of the seeds.
    checked = 0
    for surface in seed_words():
        in_abstract, in_title = paper_tokens("", surface), paper_tokens(surface, "")
        for element in (surface_stem(surface), surface_word(surface)):
            if element and re.fullmatch(r"[a-z0-9]+", element):
                assert element in in_abstract, (surface, element, in_abstract)
                assert TITLE_MARK + element in in_title, (surface, element, in_title)
                assert TITLE_MARK + element not in in_abstract
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
        # and with its first words as a title, for the title: terms
        title = " ".join(paragraph.split()[:12])
        for paper in (("", paragraph), (title, paragraph)):
            if query.match(Document.from_text(*paper)) is not None:
                matched += 1
                assert meets(condition, paper_tokens(*paper)), paragraph[:80]
    assert matched


@pytest.mark.parametrize("definition", STARTER_TOPICS, ids=lambda d: d.slug)
def test_a_matching_paper_can_reach_its_score(definition) -> None:  # type: ignore[no-untyped-def]
    """Every paper's score is at most its bound from the index, so a bound under a topic's
    min_score drops only papers the topic cannot have."""
    query = compile_query(definition.query)
    bound = score_bound(query)
    text = "\n".join(path.read_text(encoding="utf-8") for path in sorted(SEEDS.glob("*.txt")))
    paragraphs = [p for p in text.split("\n\n") if len(p) > 40]
    found = 0
    for paragraph in paragraphs:
        title = " ".join(paragraph.split()[:12])
        for paper in (("", paragraph), (title, paragraph), (title, "")):
            match = query.match(Document.from_text(*paper))
            if match is None:
                continue
            found += 1
            tokens = paper_tokens(*paper)
            most = bound.fixed + sum(p for c, p in bound.parts if meets(c, tokens))
            assert match.score <= most, paragraph[:80]
    assert found


def test_score_bounds_count_each_term_in_the_title_and_anywhere() -> None:
    bound = score_bound(compile_query('cot OR title:think OR author:ada OR "kv cache"'))
    assert bound.parts == (
        (Exact("0tcot"), 6.0),
        (Exact("cot"), 2.0),
        (Exact("0tthink"), 6.0),
        (Exact("0t0pkv0cach"), 6.0),
        (Exact("0pkv0cach"), 2.0),
    )
    assert bound.fixed == 6.0  # an author is not in the index: its points always count


def test_a_term_inside_an_and_scores_only_with_the_and() -> None:
    """"reasoning" and math* score only on papers that also have an RL term: two mentions
    of reasoning and one of maths are not enough for the topic's 3 points without one."""
    query = compile_query('cot OR title:think OR ((rlvr OR grpo) AND (math* OR reasoning))')
    bound = score_bound(query)

    def most(title: str, abstract: str) -> float:
        tokens = paper_tokens(title, abstract)
        return bound.fixed + sum(p for c, p in bound.parts if meets(c, tokens))

    alone = ("Notes", "We study reasoning. More reasoning helps with mathematics.")
    assert query.match(Document.from_text(*alone)) is None
    assert most(*alone) == 0.0  # before: 2 for reasoning, 2 for math*
    with_rl = ("Notes", "GRPO for reasoning. More reasoning helps with mathematics.")
    match = query.match(Document.from_text(*with_rl))
    assert match is not None and match.score == 4.0
    assert most(*with_rl) >= match.score
    # a term at the top level and inside an AND scores wherever it is met
    both = score_bound(compile_query("cot OR (grpo AND cot)"))
    assert (Exact("cot"), 2.0) in both.parts
    # the other operand of an AND that cannot be said (a negated term) asks nothing
    negated = score_bound(compile_query("diffusion NOT video"))
    assert negated.parts == ((Exact("0tdiffusion"), 6.0), (Exact("diffusion"), 2.0))
