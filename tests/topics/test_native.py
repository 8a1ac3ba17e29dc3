"""The query evaluator in C (digestd.topics.native) answers what the Python closures answer:
the same matches, scores, terms and points, on random queries and papers and on the seeds."""

from __future__ import annotations

import copy
import os
import random
import shutil
import subprocess
import sys

import pytest

from digestd.errors import QueryError
from digestd.topics import STARTER_TOPICS, compile_query, extension, native
from digestd.topics.document import Document
from digestd.topics.extension import helpers
from digestd.topics.packed import pack, unpack
from digestd.topics.query import CompiledQuery
from digestd.topics.stem import surface_stem
from digestd.topics.words import FieldWords

from .test_document import random_text
from .test_match import seed_documents


def _native_or_why() -> None:
    """Skip where the extension cannot be asked; fail where it should have been built: an
    optional build that failed, or a stale one, would otherwise pass unnoticed."""
    if native.AVAILABLE:
        return
    built = getattr(extension.module, "VERSION", None) == extension.VERSION
    if built:  # there and current, so turned off when imported (conftest clears the variable)
        pytest.skip("DIGESTD_PURE_PYTHON was set: the C extension is turned off")
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler to build the extension: apt-get install gcc, then "
                    "`.venv/bin/pip install -e .`")
    pytest.fail("a C compiler is here but digestd.topics._program is missing or of another "
                "version: run `.venv/bin/pip install -e .` and read its build output")


@pytest.fixture(autouse=True)
def _native() -> None:
    _native_or_why()

ATOMS = [
    "model",
    "data",
    "models",
    "reasoning",
    "thought",
    "cache",
    "οδος",
    "dont",
    "very",
    '"very very"',
    '"very very very"',
    '"chain of thought"',
    '"kv cache"',
    "kv-cache",
    '"KV cache"',
    "token*",
    "model*",
    "tok*",
    '"reasoning model*"',
    '"model data"',
    '"model token*"',
    '"data dont*"',
    '"model model*"',
    '"of thought*"',
    '"kv οδ*"',
    '"chain of tho* model"',
    "title:model",
    'title:"kv cache"',
    "title:token*",
    "abstract:token*",
    "abstract:data",
    'abstract:"model data"',
    "title:very",
    "author:smith",
    'author:"ada lovelace"',
    "category:cs.CL",
]
AUTHORS = ["Ada Lovelace", "John Smith", "Smith, J.", "Grace Hopper", "Alan Turing"]


def random_query(rng: random.Random, depth: int = 0) -> str:
    roll = rng.random()
    if depth > 2 or roll < 0.35:
        return rng.choice(ATOMS)
    left, right = random_query(rng, depth + 1), random_query(rng, depth + 1)
    if roll < 0.6:
        return f"({left} OR {right})"
    if roll < 0.8:
        return f"({left} {rng.choice(['AND ', ''])}{right})"
    return f"({left} NOT {rng.choice(ATOMS)})"


def python_only(query: CompiledQuery) -> CompiledQuery:
    """The same query matched by its Python closures alone."""
    plain = copy.copy(query)
    plain._program = None
    return plain


def random_document(rng: random.Random) -> Document:
    title, abstract = random_text(rng, rng.randint(0, 6)), random_text(rng, rng.randint(0, 40))
    extra = {}
    if rng.random() < 0.5:
        extra["author"] = "; ".join(rng.sample(AUTHORS, rng.randint(1, 3)))
    if rng.random() < 0.3:
        extra["category"] = rng.choice(["cs.CL", "cs.LG; cs.CL", "stat.ML"])
    return Document.from_text(title, abstract, **extra)


@pytest.mark.parametrize("seed", range(8))
def test_random_queries_match_the_same_in_c_and_in_python(seed: int) -> None:
    rng = random.Random(seed)
    queries: list[CompiledQuery] = []
    while len(queries) < 60:
        try:
            queries.append(compile_query(random_query(rng)))
        except QueryError:
            continue  # NOT alone, say: not a query anyone can save
    assert all(q._program is not None for q in queries)
    pairs = [(q, python_only(q)) for q in queries]
    matched = 0
    for _ in range(150):
        made = random_document(rng)
        kept = unpack(pack(made), made.title, made.abstract)
        assert kept is not None
        for doc in (made, kept) if not made.extra else (made,):
            for query, plain in pairs:
                min_score = rng.choice([0.0, 0.0, 1.0, 3.0, 4.5])
                got = query.match(doc, min_score, highlight=False)
                assert got == plain.match(doc, min_score, highlight=False), (
                    query.source,
                    doc,
                    min_score,
                )
                matched += got is not None
                # and what the highlighting path (always Python) scores
                shown = query.match(doc, min_score)
                assert (shown is None) == (got is None), (query.source, doc)
                if got is not None and shown is not None:
                    assert (shown.score, shown.terms, shown.points) == (
                        got.score,
                        got.terms,
                        got.points,
                    )
    assert matched > 1000


@pytest.mark.parametrize("seed", range(3))
def test_anchored_documents_are_asked_only_the_query(seed: int) -> None:
    # a caller that found an anchor word already (Classifier's screen) skips the anchor test
    rng = random.Random(seed)
    query = compile_query('"chain of thought" OR reasoning OR token*')
    plain = python_only(query)
    for _ in range(300):
        doc = random_document(rng)
        if query._anchored(doc):
            got = query.match(doc, 0.0, highlight=False, anchored=True)
            assert got == plain.match(doc, 0.0, highlight=False, anchored=True)


def test_seed_papers_match_the_starter_topics_the_same() -> None:
    docs = list(seed_documents().values())
    found = 0
    for definition in STARTER_TOPICS:
        query = compile_query(definition.query)
        plain = python_only(query)
        for doc in docs:
            got = query.match(doc, definition.min_score, highlight=False)
            assert got == plain.match(doc, definition.min_score, highlight=False)
            found += got is not None
    assert found > 300


def test_a_bad_description_is_refused() -> None:
    from digestd.topics import _program  # type: ignore[attr-defined]

    with pytest.raises(ValueError):
        _program.Program((9, ()), (), (), None)
    with pytest.raises(ValueError):
        _program.Program((0, 3, (0, "model")), ((0, 0, "model"),), ((0, " model "),), None)
    with pytest.raises(TypeError):
        _program.Program((0, 0, (0, 42)), ((0, 0, "x"),), ((0, " x "),), None)


def test_pure_python_can_be_asked_for() -> None:
    env = {**os.environ, "DIGESTD_PURE_PYTHON": "1"}
    script = (
        "from digestd.topics import native, compile_query;"
        "print(native.AVAILABLE, compile_query('model')._program)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "None"]


@pytest.mark.parametrize("seed", range(4))
def test_stem_and_prefix_phrases_read_the_kept_joined_line_right(seed: int) -> None:
    """"stem prefix*" is tested and counted in C from the joined stems line: empty stems
    (words of apostrophes), clause marks at either end and several in a row must come out
    as the Python word positions say, from cut and from kept words."""
    rng = random.Random(seed)
    surfaces = ["model", "Models", "''", "'s", "token", "Tokens", "data", "model's"]
    queries = [compile_query(q) for q in (
        '"model token*"', '"model model*"', '"data mod*"', '"model tok*" OR data',
        '"token dat*" AND model',
    )]
    pairs = [(q, python_only(q)) for q in queries]
    compared = 0
    for _ in range(400):
        parts = []
        for size in (rng.randint(0, 5), rng.randint(0, 25)):
            words = rng.choices(surfaces, k=size)
            breaks = frozenset(rng.sample(range(size + 1), rng.randint(0, min(3, size + 1))))
            parts.append(FieldWords(" ".join(words), (words, [surface_stem(w) for w in words],
                                                      breaks)))
        made = Document.prepared(*parts)
        kept = unpack(pack(made), made.title, made.abstract)
        assert kept is not None
        for doc in (made, kept):
            for query, plain in pairs:
                got = query.match(doc, 0.0, highlight=False)
                assert got == plain.match(doc, 0.0, highlight=False), (query.source, parts)
                compared += got is not None
    assert compared > 500


@pytest.mark.parametrize("seed", range(6))
def test_a_stems_line_is_searched_as_the_set_would_answer(seed: int) -> None:
    """A document read from kept words has its stems as a sorted line, searched by halves in
    C: every stem of it is found, and no other (a prefix, an extension, a neighbour in the
    order, a wider character than the line holds)."""
    from digestd.topics import _program  # type: ignore[attr-defined]

    rng = random.Random(seed)
    alphabet = ["a", "b", "z", "é", "ο", "δ", "\u4e2d", "\U0001f600"]
    asked = 0
    for _ in range(300):
        stems = {"".join(rng.choices(alphabet[: rng.randint(1, 8)], k=rng.randint(1, 4)))
                 for _ in range(rng.randint(1, 30))}
        # no words, only the line: the stem terms ask nothing else
        doc = Document.prepared(FieldWords(""), FieldWords(""), stems_line=" ".join(sorted(stems)))
        probes = set(stems)
        for stem in list(stems):
            probes |= {stem[:-1], stem + "a", stem + "\U0001f600", "a" + stem, stem[1:]}
        probes |= {"".join(rng.choices(alphabet, k=rng.randint(1, 4))) for _ in range(10)}
        probes.discard("")
        for probe in probes:
            program = _program.Program(
                (0, 0, (0, probe)), ((0, 0, probe),), ((0, f" {probe} "),), None
            )
            assert (program.match(doc, 0.0, False) is not None) == (probe in stems), (
                probe, doc.stems_line)
            asked += 1
    assert asked > 5000


def test_kept_words_give_a_stems_line_and_the_same_stems() -> None:
    made = Document.from_text("Sparse KV caches", "Caching keys; sparse attention's gain.")
    kept = unpack(pack(made), made.title, made.abstract)
    assert kept is not None and kept.stems_line is not None
    assert kept.stems_line.split(" ") == sorted(made.stems)
    assert kept.stems == made.stems
    # the empty stem of a word of apostrophes sorts first: such a paper keeps its set
    odd = Document.prepared(FieldWords("''", (["''"], [""], frozenset())), FieldWords("model"))
    again = unpack(pack(odd), odd.title, odd.abstract)
    assert again is not None and again.stems_line is None and again.stems == odd.stems


@pytest.mark.parametrize("seed", range(4))
def test_kept_parts_are_checked_alike_in_c_and_python(seed: int) -> None:
    """A kept part is used only when its words are as many as its stems: the C count (eight
    bytes at a time) answers what packed._fits answers, on whole and damaged lines."""
    from digestd.topics.packed import _fits

    rng = random.Random(seed)
    pieces = ["model", "|", "οδος", "x", "", "naïve", "\U0001f600", "a|b"]
    agreed = {True: 0, False: 0}
    for _ in range(3000):
        words = rng.choices(pieces, k=rng.randint(1, 40))
        surfaces = " ".join(w for w in words if w != "|") or "model"
        joined = " " + "  ".join(words) + " "
        roll = rng.random()
        if roll < 0.2:
            joined = joined.replace("  ", " ", 1)  # a separator lost
        elif roll < 0.3:
            surfaces += " extra"
        elif roll < 0.4:
            joined = joined[: rng.randint(0, len(joined))]
        got = helpers.fits(surfaces, joined)
        assert got == _fits(surfaces, joined), (surfaces, joined)
        agreed[got] += 1
    assert min(agreed.values()) > 300


@pytest.mark.parametrize("seed", range(3))
def test_common_stems_are_the_sets_intersection(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = ["a", "b", "z", "é", "ο", "\U0001f600"]
    for _ in range(500):
        def stems() -> set[str]:
            return {"".join(rng.choices(alphabet, k=rng.randint(1, 3)))
                    for _ in range(rng.randint(0, 25))}
        line, wanted = stems(), tuple(sorted(stems()))
        got = helpers.common(" ".join(sorted(line)), wanted)
        assert [wanted[i] for i in got] == [s for s in wanted if s in line]


def test_the_classifier_screens_kept_papers_as_cut_ones() -> None:
    """From kept words the screen of every topic's anchor words walks the sorted stems line
    in C; from the text it intersects sets: the same topics, the same matches."""
    from digestd.topics import compile_topics
    from digestd.topics.classify import Classifier

    classifier = Classifier(compile_topics(STARTER_TOPICS))
    docs = list(seed_documents().values())
    rng = random.Random(5)
    docs += [random_document(rng) for _ in range(300)]
    screened = 0
    for made in docs:
        kept = unpack(pack(made), made.title, made.abstract, **dict(made.extra))
        assert kept is not None and kept.stems_line is not None
        assert classifier._screen(kept) == classifier._screen(made)
        assert classifier.match_document(kept, highlight=False) == classifier.match_document(
            made, highlight=False)
        screened += len(classifier._screen(made))
    assert screened > 500


def _texts(rng: random.Random) -> list[str]:
    """Texts of every kind of character the tokeniser treats apart: letters and digits of
    several scripts, apostrophes, clause marks before and not before what ends a clause,
    white space of several kinds, other punctuation, a surrogate."""
    pieces = [
        "model", "KV", "2.4x", "1,000", "e.g", "naïve", "İstanbul", "ß", "οδός", "中文", "٣",
        "Ⅻ", "½", "'", "’", "''", "'s", "don't", "’’x", ".", ",", ";", ":", "!", "?", "…",
        "...", "?!", "\"", "”", ")", "]", "(", "-", "_", "/", " ", " ", "  ", "\t", "\n",
        "\u00a0", "\u2028", "\u3000", "\x1c", "\ud800", "😀",
    ]
    return ["".join(rng.choices(pieces, k=rng.randint(0, 30))) for _ in range(2000)]


@pytest.mark.parametrize("seed", range(6))
def test_text_is_cut_in_c_as_in_python(seed: int) -> None:
    """FieldWords cuts a part's text with _program.cut: the same words and clause starts as
    the Python tokeniser (words._clause_words) on every kind of text, the seeds included."""
    from digestd.topics.words import _clause_words

    texts = _texts(random.Random(seed))
    if seed == 0:
        texts += [text for doc in seed_documents().values() for text in (doc.title, doc.abstract)]
    breaks = 0
    for text in texts:
        words, starts = helpers.cut(text)
        assert (words, frozenset(starts)) == _clause_words(text), text
        breaks += len(starts)
    assert breaks > 1000
