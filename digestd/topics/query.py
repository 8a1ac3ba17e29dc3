"""The topic query language: tokenizer, recursive-descent parser, and compiled matcher.

What a user writes (this text is also the reference for help messages)::

    kv cache                    both words, anywhere in the title or abstract (AND is implied)
    "speculative decoding"      the words next to each other, in this order
    kv-cache, text-to-image     a hyphenated word is the phrase "kv cache", "text to image"
    quantization OR pruning     either word
    diffusion NOT video         diffusion, but no paper that mentions video
    token*                      any word starting with "token": token, tokens, tokenizer
    title:cache                 the word in the title only; abstract:word in the abstract only
    title:"kv cache"            the phrase in the title only (title:token* works too)
    (agent OR agents) AND tool  parentheses group; NOT binds tightest, then AND, then OR,
                                so "a OR b AND c" means "a OR (b AND c)"

Rules, chosen so that a query behaves the way it reads:

- Matching is case-insensitive and on whole words: ``rag`` does not match "fragment".
  Words are runs of letters and digits; every other character separates words, in the query
  and in the paper alike, so ``gpt-4`` finds "GPT-4" and ``2.4x`` finds "2.4x".
- Words are stemmed (see :mod:`.stem`): ``model`` finds "models" and "modeling". In a quoted
  phrase every word is stemmed too, so ``"speculative decoding"`` also finds "Speculative
  Decode". A prefix such as ``token*`` is not stemmed: it matches the words as written.
  ``*`` may also end a word inside a phrase: ``"diffusion model*"``.
- ``AND``, ``OR`` and ``NOT`` are operators in any case (``or`` too): typing
  ``diffusion or flow`` and silently getting "all three words" would be a worse surprise than
  not being able to search for the bare word "or". Inside quotes every word is literal, so
  ``"trial and error"`` is a phrase; a hyphenated ``trial-and-error`` is too.
- A phrase never crosses sentence or clause punctuation: ``"inference efficiency"`` does not
  match "... inference. Efficiency ...", nor ``"code model*"`` "Code, models and ...". The
  punctuation is a full stop, comma, semicolon, colon, "!", "?" or an ellipsis followed by a
  space, a closing quote or bracket or the end; "2.4x" and "1,000" still read as one token.
- ``field:word`` and ``field:"a phrase"`` look in one field only; the fields are listed in
  :mod:`.fields` (``title``, ``abstract``, ``author``, ``org``, ``category``). An occurrence
  scores that field's points. A name before a colon that is not a field is an error, so a
  typo cannot silently search for words.
- A query has to look for something: ``NOT video`` alone, or ``diffusion OR NOT video``, would
  match papers that contain none of its words, and is refused.

Syntax errors raise :class:`~digestd.errors.QueryError` with the 0-based character offset in
``position``; positions written inside messages count from 1, like the one ``QueryError``
prints in front of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING

from digestd.errors import QueryError
from digestd.topics.fields import FIELDS
from digestd.topics.stem import PREFIXES, WORD_RE, normalise

if TYPE_CHECKING:
    from digestd.topics.match import Document

__all__ = [
    "And",
    "CompiledQuery",
    "Element",
    "Not",
    "Or",
    "QueryMatch",
    "Term",
    "compile_query",
    "format_query_error",
    "parse_query",
]

#: one word of a term: ``(stem, False)``, or ``(lower-case prefix, True)`` for ``word*``
Element = tuple[str, bool]

#: points per occurrence of a matched term in the title / in the abstract, and how many
#: occurrences of each term count in each part (see the module docstring of .match)
TITLE_POINTS = 3.0
ABSTRACT_POINTS = 1.0
MAX_COUNTED = 2

_MIN_PREFIX = 2
_EXPECT_OPERAND = "expected a word, phrase, NOT or '('"
_OPERATORS = {"and": "AND", "or": "OR", "not": "NOT"}
_CLOSING_QUOTES = '"”'
_BARE_RE = re.compile(r"[^\s()\"“”]+")
_FIELD_RE = re.compile(r"([A-Za-z]+):")


# ---------------------------------------------------------------------------------------------
# Syntax tree


@dataclass(frozen=True)
class Term:
    """A word, a phrase or a prefix: a sequence of elements that must occur consecutively."""

    elements: tuple[Element, ...]
    #: as the user wrote it, without quotes: ``KV cache``, ``token*``, ``kv-cache``
    label: str
    position: int
    quoted: bool = False
    #: the field it must occur in (a name in .fields.FIELDS), or None for title or abstract
    field: str | None = None

    @property
    def key(self) -> tuple[str | None, tuple[Element, ...]]:
        """What makes two terms the same: the field and the words."""
        return (self.field, self.elements)


@dataclass(frozen=True)
class Not:
    operand: Node
    position: int


@dataclass(frozen=True)
class And:
    operands: tuple[Node, ...]
    position: int


@dataclass(frozen=True)
class Or:
    operands: tuple[Node, ...]
    position: int


Node = Term | Not | And | Or


# ---------------------------------------------------------------------------------------------
# Tokenizer


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "term", "AND", "OR", "NOT", "(", ")", "end"
    position: int
    text: str
    term: Term | None = None

    def describe(self) -> str:
        if self.kind == "end":
            return "end of query"
        if self.kind in ("AND", "OR", "NOT"):
            return self.kind
        return repr(self.text)


def _elements(query: str, start: int, end: int) -> tuple[Element, ...]:
    """The words of ``query[start:end]`` as elements; ``*`` right after a word makes a prefix."""
    elements: list[Element] = []
    pos = start
    while True:
        m = WORD_RE.search(query, pos, end)
        gap_end = m.start() if m else end
        star = query.find("*", pos, gap_end)
        if star >= 0:
            raise QueryError(
                "'*' must directly follow a word, as in token*", query=query, position=star
            )
        if m is None:
            return tuple(elements)
        word, stemmed = normalise(m.group())
        pos = m.end()
        if pos < end and query[pos] == "*":
            if len(word) < _MIN_PREFIX:
                raise QueryError(
                    f"the prefix {m.group()}* is too short, expected at least "
                    f"{_MIN_PREFIX} letters before '*'",
                    query=query,
                    position=m.start(),
                )
            pos += 1
            if WORD_RE.match(query, pos, end):
                raise QueryError(
                    "'*' can only end a word, as in token*", query=query, position=pos - 1
                )
            elements.append((word, True))
        else:
            elements.append((stemmed, False))


def _tokenize(query: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    length = len(query)
    while pos < length:
        ch = query[pos]
        if ch.isspace():
            pos += 1
        elif ch in "()":
            tokens.append(_Token(ch, pos, ch))
            pos += 1
        elif (field := _FIELD_RE.match(query, pos)) is not None:
            name = field.group(1).lower()
            if name not in FIELDS:
                known = ", ".join(f"{f}:" for f in FIELDS)
                raise QueryError(
                    f"unknown field {field.group()!r}, expected one of {known}",
                    query=query,
                    position=pos,
                )
            start = field.end()
            if start >= length or query[start].isspace() or query[start] in "()”":
                raise QueryError(
                    f"expected a word or a quoted phrase right after {field.group()}",
                    query=query,
                    position=start,
                )
            if query[start] in '"“':
                token, pos = _quoted(query, start)
            else:
                m = _BARE_RE.match(query, start)
                assert m is not None
                token, pos = _bare_term(query, start, m.end()), m.end()
            assert token.term is not None
            term = token.term
            label = f"{field.group()}{term.label}"
            tokens.append(
                _Token(
                    "term", field.start(), query[field.start() : pos],
                    Term(term.elements, label, field.start(), term.quoted, name),
                )
            )
        elif ch in '"“':
            token, pos = _quoted(query, pos)
            tokens.append(token)
        elif ch == "”":
            raise QueryError(
                "unexpected closing quote, expected an opening '\"' before it",
                query=query,
                position=pos,
            )
        else:
            m = _BARE_RE.match(query, pos)
            assert m is not None  # any other character starts a bare chunk
            text = m.group()
            operator = _OPERATORS.get(text.lower())
            if operator:
                tokens.append(_Token(operator, pos, text))
            else:
                tokens.append(_bare_term(query, pos, m.end()))
            pos = m.end()
    tokens.append(_Token("end", len(query.rstrip()), ""))
    return tokens


def _quoted(query: str, pos: int) -> tuple[_Token, int]:
    """The quoted phrase starting at ``pos``, and the position after its closing quote."""
    close = min(
        (i for i in (query.find(q, pos + 1) for q in _CLOSING_QUOTES) if i >= 0),
        default=-1,
    )
    if close < 0:
        raise QueryError(
            f"unterminated quote, expected a closing '\"' for the quote at "
            f"position {pos + 1}",
            query=query,
            position=pos,
        )
    elements = _elements(query, pos + 1, close)
    if not elements:
        raise QueryError(
            "empty phrase, expected words between the quotes", query=query, position=pos
        )
    label = " ".join(query[pos + 1 : close].split())
    term = Term(elements, label, pos, quoted=True)
    return _Token("term", pos, query[pos : close + 1], term), close + 1


def _bare_term(query: str, start: int, end: int) -> _Token:
    text = query[start:end]
    if text[0] == "-" and len(text) > 1 and WORD_RE.match(text, 1):
        # "-video" is how web search engines exclude a word; here "-" would be ignored and the
        # query would look *for* video, so say so rather than do the opposite of what was meant
        raise QueryError(
            f"a leading '-' does not exclude a word here, write NOT {text[1:]}",
            query=query,
            position=start,
        )
    elements = _elements(query, start, end)
    if not elements:
        raise QueryError(
            f"unexpected {text!r} (no letters or digits), {_EXPECT_OPERAND}; "
            "the operators are AND, OR and NOT",
            query=query,
            position=start,
        )
    return _Token("term", start, text, Term(elements, text, start))


# ---------------------------------------------------------------------------------------------
# Parser
#
#   query    := or_expr END
#   or_expr  := and_expr (OR and_expr)*
#   and_expr := unary ((AND)? unary)*        juxtaposition is AND
#   unary    := NOT unary | primary
#   primary  := TERM | '(' or_expr ')'

_STARTS_OPERAND = frozenset({"term", "NOT", "("})


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = _tokenize(query)
        self.index = 0

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def error(self, token: _Token, expected: str) -> QueryError:
        return QueryError(
            f"unexpected {token.describe()}, {expected}", query=self.query, position=token.position
        )

    def parse(self) -> Node:
        first = self.peek()
        if first.kind == "end":
            raise QueryError(f"empty query, {_EXPECT_OPERAND}", query=self.query, position=0)
        node = self.or_expr()
        token = self.peek()
        if token.kind != "end":
            # and_expr swallows every token that can start an operand and or_expr every OR,
            # so what is left can only be a ')' without its '('
            raise self.error(token, "there is no '(' for it to close")
        return node

    def operand_after(self, operator: _Token) -> Node:
        token = self.peek()
        if token.kind not in _STARTS_OPERAND:
            raise self.error(token, f"{_EXPECT_OPERAND} after {operator.kind}")
        return self.unary()

    def or_expr(self) -> Node:
        start = self.peek().position
        operands = [self.and_expr()]
        while self.peek().kind == "OR":
            operands.append(self.operand_after_or(self.advance()))
        return operands[0] if len(operands) == 1 else Or(tuple(operands), start)

    def operand_after_or(self, operator: _Token) -> Node:
        token = self.peek()
        if token.kind not in _STARTS_OPERAND:
            raise self.error(token, f"{_EXPECT_OPERAND} after {operator.kind}")
        return self.and_expr()

    def and_expr(self) -> Node:
        start = self.peek().position
        operands = [self.unary()]
        while True:
            token = self.peek()
            if token.kind == "AND":
                operands.append(self.operand_after(self.advance()))
            elif token.kind in _STARTS_OPERAND:
                operands.append(self.unary())
            else:
                break
        return operands[0] if len(operands) == 1 else And(tuple(operands), start)

    def unary(self) -> Node:
        token = self.peek()
        if token.kind == "NOT":
            self.advance()
            return Not(self.operand_after(token), token.position)
        return self.primary()

    def primary(self) -> Node:
        token = self.advance()
        if token.kind == "term":
            assert token.term is not None
            return token.term
        if token.kind == "(":
            node = self.or_expr()
            closing = self.peek()
            if closing.kind != ")":
                raise self.error(
                    closing, f"expected ')' to close the '(' at position {token.position + 1}"
                )
            self.advance()
            return node
        raise self.error(token, _EXPECT_OPERAND)


def parse_query(text: str) -> Node:
    """Parse a query into its syntax tree; raises :class:`QueryError`."""
    return _Parser(text).parse()


# ---------------------------------------------------------------------------------------------
# Negation normal form: NOT pushed down to the terms (De Morgan), nested AND/OR flattened.
# On that form it is easy to tell whether a query can match without any of its words, and
# which terms are the positive ones that explain a match.


@dataclass(frozen=True)
class _Pos:
    term: Term


@dataclass(frozen=True)
class _Neg:
    term: Term
    not_position: int


@dataclass(frozen=True)
class _All:
    children: tuple[_Nnf, ...]


@dataclass(frozen=True)
class _Any:
    children: tuple[_Nnf, ...]


_Nnf = _Pos | _Neg | _All | _Any


def _nnf(node: Node, negated: bool = False, not_position: int = 0) -> _Nnf:
    if isinstance(node, Term):
        return _Neg(node, not_position) if negated else _Pos(node)
    if isinstance(node, Not):
        return _nnf(node.operand, not negated, node.position)
    conjunctive = isinstance(node, And) != negated
    kind: type[_All] | type[_Any] = _All if conjunctive else _Any
    children: list[_Nnf] = []
    for operand in node.operands:
        child = _nnf(operand, negated, not_position)
        if isinstance(child, kind):
            children.extend(child.children)
        else:
            children.append(child)
    return kind(tuple(children))


def _all_terms(node: _Nnf) -> list[Term]:
    if isinstance(node, (_Pos, _Neg)):
        return [node.term]
    return [term for child in node.children for term in _all_terms(child)]


def _unanchored(node: _Nnf) -> _Neg | None:
    """A negated term through which ``node`` matches papers lacking all its words, if any."""
    if isinstance(node, _Pos):
        return None
    if isinstance(node, _Neg):
        return node
    culprits = [_unanchored(child) for child in node.children]
    if isinstance(node, _All):
        return None if None in culprits else culprits[0]
    return next((c for c in culprits if c is not None), None)


# ---------------------------------------------------------------------------------------------
# Compilation


Predicate = Callable[["Document"], bool]


def _term_predicate(term: Term) -> Predicate:
    elements = term.elements
    if term.field is not None:
        name = term.field
        if name in ("title", "abstract") and len(elements) == 1 and not elements[0][1]:
            stem = elements[0][0]
            return lambda doc: stem in doc.stems and doc.in_field(name, elements)
        return lambda doc: doc.in_field(name, elements)
    if len(elements) == 1:
        text, is_prefix = elements[0]
        if is_prefix:
            return lambda doc: doc.has_prefix(text)
        return lambda doc: text in doc.stems
    # a phrase: test the cheap set lookups before looking at word positions
    if not any(is_prefix for _, is_prefix in elements):
        pairs = frozenset(pairwise(text for text, _ in elements))
        if len(elements) == 2:
            [pair] = pairs
            return lambda doc: pair in doc.bigrams
        return lambda doc: pairs <= doc.bigrams and doc.has_phrase(elements)
    required = frozenset(text for text, is_prefix in elements if not is_prefix)
    prefixes = tuple(text for text, is_prefix in elements if is_prefix)
    return lambda doc: (
        required <= doc.stems
        and all(doc.has_prefix(p) for p in prefixes)
        and doc.has_phrase(elements)
    )


def _set_key(node: _Nnf) -> str | tuple[str, str] | None:
    """The stem of a positive single word, or the stem pair of a positive two-word phrase."""
    if (
        not isinstance(node, _Pos)
        or node.term.field is not None
        or any(is_prefix for _, is_prefix in node.term.elements)
    ):
        return None
    elements = node.term.elements
    if len(elements) == 1:
        return elements[0][0]
    if len(elements) == 2:
        return (elements[0][0], elements[1][0])
    return None


def _predicate(node: _Nnf) -> Predicate:
    if isinstance(node, _Pos):
        return _term_predicate(node.term)
    if isinstance(node, _Neg):
        inner = _term_predicate(node.term)
        return lambda doc: not inner(doc)
    # The single words and two-word phrases under one AND/OR become two set operations done
    # in C: "a OR b OR "c d"" costs about as much as "a". Typical topics are long ORs of
    # such terms, and most papers match none of them.
    keys = [_set_key(child) for child in node.children]
    stems = frozenset(k for k in keys if isinstance(k, str))
    pairs = frozenset(k for k in keys if isinstance(k, tuple))
    checks: list[Predicate] = [
        _predicate(child) for child, key in zip(node.children, keys, strict=True) if key is None
    ]
    if isinstance(node, _All):
        if pairs:
            checks.insert(0, lambda doc: pairs <= doc.bigrams)
        if stems:
            checks.insert(0, lambda doc: stems <= doc.stems)
        return _conjunction(checks)
    if pairs:
        checks.insert(0, lambda doc: not pairs.isdisjoint(doc.bigrams))
    if stems:
        checks.insert(0, lambda doc: not stems.isdisjoint(doc.stems))
    return _disjunction(checks)


def _conjunction(checks: list[Predicate]) -> Predicate:
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda doc: first(doc) and second(doc)

    def all_of(doc: Document) -> bool:
        for check in checks:  # noqa: SIM110 - a loop is cheaper than all() over a generator
            if not check(doc):
                return False
        return True

    return all_of


def _disjunction(checks: list[Predicate]) -> Predicate:
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda doc: first(doc) or second(doc)

    def any_of(doc: Document) -> bool:
        for check in checks:  # noqa: SIM110 - a loop is cheaper than any() over a generator
            if check(doc):
                return True
        return False

    return any_of


Hits = dict[tuple[str | None, tuple[Element, ...]], Term]
#: adds the positive terms that make a document match to ``hits``; says whether it matches
Collector = Callable[["Document", Hits], bool]


def _add(hits: Hits, term: Term) -> None:
    # one entry per distinct term; "kv-cache" and "KV cache" are one, reported as first written
    known = hits.get(term.key)
    if known is None or term.position < known.position:
        hits[term.key] = term


def _collector(node: _Nnf) -> Collector:
    """Like :func:`_predicate`, but also gathers the terms that explain a match.

    Only terms of satisfied branches explain a match: in "(a AND b) OR c" a paper with a and c
    but not b matched because of c alone. An OR has no short cut: every satisfied branch adds
    its terms.
    """
    if isinstance(node, _Pos):
        term, test = node.term, _term_predicate(node.term)

        def collect_term(doc: Document, hits: Hits) -> bool:
            if test(doc):
                _add(hits, term)
                return True
            return False

        return collect_term
    if isinstance(node, _Neg):
        negated = _term_predicate(node.term)
        return lambda doc, hits: not negated(doc)
    # as in _predicate, single words and two-word phrases are found with set operations
    stem_terms: dict[str, Term] = {}
    pair_terms: dict[tuple[str, str], Term] = {}
    others: list[Collector] = []
    for child in node.children:
        key = _set_key(child)
        if key is None or not isinstance(child, _Pos):
            others.append(_collector(child))
        elif isinstance(key, str):
            stem_terms.setdefault(key, child.term)
        else:
            pair_terms.setdefault(key, child.term)
    stems, pairs = frozenset(stem_terms), frozenset(pair_terms)

    if isinstance(node, _All):

        def collect_all(doc: Document, hits: Hits) -> bool:
            if not (stems <= doc.stems and pairs <= doc.bigrams):
                return False
            branch: Hits = {}
            if not all(other(doc, branch) for other in others):
                return False
            for term in (*stem_terms.values(), *pair_terms.values(), *branch.values()):
                _add(hits, term)
            return True

        return collect_all

    def collect_any(doc: Document, hits: Hits) -> bool:
        found = False
        for key in stems & doc.stems:
            _add(hits, stem_terms[key])
            found = True
        for pair in pairs & doc.bigrams:
            _add(hits, pair_terms[pair])
            found = True
        for other in others:
            found = other(doc, hits) or found
        return found

    return collect_any


@dataclass(frozen=True)
class QueryMatch:
    """Why a paper matches a query."""

    #: see the module docstring of .match: 3 per title occurrence, 1 per abstract occurrence
    score: float
    #: the matched query terms as written (``KV cache``, ``token*``), in query order
    terms: tuple[str, ...]
    #: verbatim pieces of the title that matched, for highlighting, in text order
    title_terms: tuple[str, ...]
    #: the same for the abstract
    abstract_terms: tuple[str, ...]
    #: each matched term as written with the points it scored, in query order: the "why"
    points: tuple[tuple[str, float], ...] = ()


class CompiledQuery:
    """A parsed query, ready to match many documents. Build it with :func:`compile_query`."""

    __slots__ = ("_collect", "_nnf", "_predicate", "source", "tree")

    def __init__(self, source: str, tree: Node) -> None:
        self.source = source
        self.tree = tree
        self._nnf = _nnf(tree)
        culprit = _unanchored(self._nnf)
        if culprit is not None:
            raise QueryError(
                f"NOT {culprit.term.label} alone would match papers without any of the "
                "query's words, expected a word or phrase to look for next to it, as in "
                "'diffusion NOT video'",
                query=source,
                position=culprit.not_position,
            )
        PREFIXES.register(
            text for term in _all_terms(self._nnf) for text, is_prefix in term.elements if is_prefix
        )
        self._predicate = _predicate(self._nnf)
        self._collect = _collector(self._nnf)

    def __repr__(self) -> str:
        return f"CompiledQuery({self.source!r})"

    @property
    def terms(self) -> tuple[str, ...]:
        """The terms a match can report (the ones not under NOT), in query order."""
        found: dict[tuple[str | None, tuple[Element, ...]], str] = {}
        self._positive_terms(self._nnf, found)
        return tuple(found.values())

    def _positive_terms(
        self, node: _Nnf, found: dict[tuple[str | None, tuple[Element, ...]], str]
    ) -> None:
        if isinstance(node, _Pos):
            found.setdefault(node.term.key, node.term.label)
        elif isinstance(node, (_All, _Any)):
            for child in node.children:
                self._positive_terms(child, found)

    def explain(self) -> str:
        """The query with every operator and grouping spelled out: how it was understood."""
        return _explain(self.tree)

    def matches(self, doc: Document) -> bool:
        """Whether ``doc`` matches; cheaper than :meth:`match` when the reasons are not needed."""
        return self._predicate(doc)

    def match(self, doc: Document) -> QueryMatch | None:
        """Why ``doc`` matches, or None if it does not."""
        if not self._predicate(doc):
            return None
        hits: Hits = {}
        self._collect(doc, hits)
        terms = sorted(hits.values(), key=_by_position)
        score = 0.0
        points: dict[str, float] = {}
        title_hits: list[tuple[int, str]] = []
        abstract_hits: list[tuple[int, str]] = []
        for term in terms:
            if term.field is not None:
                count, pieces = doc.field_occurrences(term.field, term.elements)
                earned = FIELDS[term.field].points * min(count, MAX_COUNTED)
                if term.field == "title":
                    title_hits += pieces
                elif term.field == "abstract":
                    abstract_hits += pieces
            else:
                found = doc.occurrences(term.elements)
                earned = TITLE_POINTS * min(found.in_title, MAX_COUNTED)
                earned += ABSTRACT_POINTS * min(found.in_abstract, MAX_COUNTED)
                title_hits += found.title
                abstract_hits += found.abstract
            score += earned
            points[term.label] = points.get(term.label, 0.0) + earned
        return QueryMatch(
            score=score,
            terms=tuple(dict.fromkeys(term.label for term in terms)),
            title_terms=_in_text_order(title_hits),
            abstract_terms=_in_text_order(abstract_hits),
            points=tuple(points.items()),
        )


def _by_position(term: Term) -> int:
    return term.position


def _in_text_order(hits: list[tuple[int, str]]) -> tuple[str, ...]:
    hits.sort(key=lambda hit: hit[0])  # stable: the pieces of one phrase stay in order
    return tuple(dict.fromkeys(piece for _, piece in hits))


def _explain(node: Node, parent: type | None = None) -> str:
    if isinstance(node, Term):
        if node.field is not None:
            words = node.label[len(node.field) + 1 :]
            return f'{node.field}:"{words}"' if node.quoted else node.label
        return f'"{node.label}"' if node.quoted else node.label
    if isinstance(node, Not):
        return f"NOT {_explain(node.operand, Not)}"
    joiner = " AND " if isinstance(node, And) else " OR "
    text = joiner.join(_explain(operand, type(node)) for operand in node.operands)
    return f"({text})" if parent is not None else text


def compile_query(text: str) -> CompiledQuery:
    """Parse and compile a query once, to match many documents; raises :class:`QueryError`."""
    return CompiledQuery(text, parse_query(text))


def format_query_error(exc: QueryError) -> str:
    """The error, the query and a caret under the position, for a terminal."""
    return f"{exc}\n  {exc.query}\n  {' ' * exc.position}^"
