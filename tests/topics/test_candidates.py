"""Candidate conditions: every paper the exact matcher accepts meets its topic's condition."""

from __future__ import annotations

import random
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
    ScoreBound,
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


def most(bound: ScoreBound, title: str, abstract: str) -> float:
    """The most a paper can score by `bound`, as the index would tell from its tokens."""
    tokens = paper_tokens(title, abstract)
    return bound.fixed + sum(points for c, points in bound.parts if meets(c, tokens))


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
            assert match.score <= most(bound, *paper), paragraph[:80]
    assert found


def test_score_bounds_count_each_term_in_the_title_and_anywhere() -> None:
    bound = score_bound(compile_query('cot OR title:think OR author:ada OR "kv cache"'))
    # the first occurrence in a part where the term is met, the second where it repeats
    assert bound.parts == (
        (Exact("0tcot"), 3.0),
        (Exact("0t0rcot"), 3.0),
        (Exact("cot"), 1.0),
        (Exact("0rcot"), 1.0),
        (Exact("0tthink"), 3.0),
        (Exact("0t0rthink"), 3.0),
        (Exact("0t0pkv0cach"), 3.0),
        (Exact("0t0r0pkv0cach"), 3.0),
        (Exact("0pkv0cach"), 1.0),
        (Exact("0r0pkv0cach"), 1.0),
    )
    assert bound.fixed == 6.0  # an author is not in the index: its points always count
    # a prefix is not counted: twice "reasoning model*" is twice "reason"; token* alone
    # scores both occurrences wherever it is met
    assert score_bound(compile_query('"reasoning model*" OR token*')).parts == (
        (Prefix("0t0qreason0model"), 3.0),
        (AllOf((Prefix("0t0qreason0model"), Exact("0t0rreason"))), 3.0),
        (Prefix("0qreason0model"), 1.0),
        (AllOf((Prefix("0qreason0model"), Exact("0rreason"))), 1.0),
        (Prefix("0ttoken"), 6.0),
        (Prefix("token"), 2.0),
    )


def test_repeated_stems_and_pairs_are_tokens_of_their_part() -> None:
    tokens = paper_tokens("KV cache, KV cache", "the KV cache and the kv caches")
    repeats = [token for token in tokens if "0r" in token]
    # a clause break parts the title's pair: "cache, KV" is no pair
    assert repeats == [
        "0r0pkv0cach", "0r0pthe0kv", "0rcach", "0rkv", "0rthe",
        "0t0r0pkv0cach", "0t0rcach", "0t0rkv",
    ]
    # once in the title and once in the abstract is no repeat of either
    assert not [t for t in paper_tokens("KV cache", "a KV cache") if "0r" in t]


def test_a_term_mentioned_once_cannot_score_twice() -> None:
    """Two terms each mentioned once in the abstract score 2: under a min_score of 3, a paper
    the index says has no repeats needs no exact match."""
    query = compile_query('"chain of thought" OR cot OR "reasoning model*"')
    bound = score_bound(query)


    once = ("Notes", "Chain of thought helps. Reasoning models think; CoT is cheap.")
    match = query.match(Document.from_text(*once))
    assert match is not None and match.score == 3.0
    assert most(bound, *once) == 3.0  # before: 6, two points for each term
    twice = ("Notes", "Chain of thought and chain of thought again, then CoT.")
    match = query.match(Document.from_text(*twice))
    assert match is not None and match.score == 3.0
    assert most(bound, *twice) == 3.0
    # "reasoning model*" twice: the prefix is not counted, "reason" twice is enough
    prefixed = ("Notes", "Reasoning models and reasoning modes.")
    match = query.match(Document.from_text(*prefixed))
    assert match is not None and match.score == 1.0
    assert most(bound, *prefixed) == 2.0
    # a stem that repeats is a second occurrence only of the terms met once already: four
    # terms sharing "reason" add one point, not four
    shared = compile_query(
        '"reasoning model*" OR "reasoning trace*" OR "reasoning chain*" OR "long reasoning"'
    )
    assert most(score_bound(shared), "Notes", "Reasoning models. Reasoning is good.") == 2.0


def test_a_term_inside_an_and_scores_only_with_the_and() -> None:
    """"reasoning" and math* score only on papers that also have an RL term: two mentions
    of reasoning and one of maths are not enough for the topic's 3 points without one."""
    query = compile_query('cot OR title:think OR ((rlvr OR grpo) AND (math* OR reasoning))')
    bound = score_bound(query)


    alone = ("Notes", "We study reasoning. More reasoning helps with mathematics.")
    assert query.match(Document.from_text(*alone)) is None
    assert most(bound, *alone) == 0.0  # before: 2 for reasoning, 2 for math*
    with_rl = ("Notes", "GRPO for reasoning. More reasoning helps with mathematics.")
    match = query.match(Document.from_text(*with_rl))
    assert match is not None and match.score == 4.0
    assert most(bound, *with_rl) >= match.score
    # a term at the top level and inside an AND scores wherever it is met
    both = score_bound(compile_query("cot OR (grpo AND cot)"))
    assert (Exact("cot"), 1.0) in both.parts and (Exact("0rcot"), 1.0) in both.parts
    # the other operand of an AND that cannot be said (a negated term) asks nothing
    negated = score_bound(compile_query("diffusion NOT video"))
    assert negated.parts == (
        (Exact("0tdiffusion"), 3.0), (Exact("0t0rdiffusion"), 3.0),
        (Exact("diffusion"), 1.0), (Exact("0rdiffusion"), 1.0),
    )


@pytest.mark.parametrize("definition", STARTER_TOPICS, ids=lambda d: d.slug)
def test_no_score_exceeds_its_bound_on_repetitive_text(definition) -> None:  # type: ignore[no-untyped-def]
    """Papers made of the query's own words, many times over: repeats, phrases broken by
    clause marks and prefixes followed by other words; no score may exceed the bound."""
    query = compile_query(definition.query)
    bound = score_bound(query)
    vocabulary = [*split_words(definition.query.replace("*", "s")), "the", "models", "of"]
    rng = random.Random(definition.slug)
    scored = 0
    for _ in range(400):
        def text(size: int) -> str:
            words = rng.choices(vocabulary, k=size)
            return " ".join(w + rng.choice(["", "", "", ",", "."]) for w in words)

        title, abstract = text(rng.randint(0, 8)), text(rng.randint(0, 40))
        match = query.match(Document.from_text(title, abstract))
        if match is None:
            continue
        scored += 1
        assert match.score <= most(bound, title, abstract), (title, abstract)
    assert scored > 50
