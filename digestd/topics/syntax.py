"""The query language's syntax: the tree, the tokenizer and the recursive-descent parser.

What the language means is described in :mod:`.query`; this module only turns the text into
:class:`Term`, :class:`Not`, :class:`And` and :class:`Or` nodes, or raises
:class:`~digestd.errors.QueryError` with the position of the first mistake.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from digestd.errors import QueryError
from digestd.topics.fields import FIELDS
from digestd.topics.stem import WORD_RE, normalise

__all__ = [
    "And",
    "Element",
    "Node",
    "Not",
    "Or",
    "Term",
    "explain",
    "format_query_error",
    "parse_query",
]

#: one word of a term: ``(stem, False)``, or ``(lower-case prefix, True)`` for ``word*``
Element = tuple[str, bool]

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
                    "term",
                    field.start(),
                    query[field.start() : pos],
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
            f"unterminated quote, expected a closing '\"' for the quote at position {pos + 1}",
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


def explain(node: Node, parent: type | None = None) -> str:
    """The query with every operator and grouping spelled out: how it was understood."""
    if isinstance(node, Term):
        if node.field is not None:
            words = node.label[len(node.field) + 1 :]
            return f'{node.field}:"{words}"' if node.quoted else node.label
        return f'"{node.label}"' if node.quoted else node.label
    if isinstance(node, Not):
        return f"NOT {explain(node.operand, Not)}"
    joiner = " AND " if isinstance(node, And) else " OR "
    text = joiner.join(explain(operand, type(node)) for operand in node.operands)
    return f"({text})" if parent is not None else text


def format_query_error(exc: QueryError) -> str:
    """The error, the query and a caret under the position, for a terminal."""
    return f"{exc}\n  {exc.query}\n  {' ' * exc.position}^"
