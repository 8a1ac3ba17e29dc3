"""A paper's words as the matcher reads them, kept as text so that they are made only once.

Cutting a paper into clauses and words and stemming every word costs several times what
matching it against one topic does. The store keeps, per paper, what :class:`FieldWords`
holds for the title and the abstract (the words as written, their stems, the clause breaks)
in the string :func:`pack` makes, and matching rebuilds the :class:`Document` from it with a
few ``str.split`` calls (:func:`unpack`).

The string starts with :data:`VERSION` and a digest of the two texts it was made from:
:func:`unpack` answers None for a string made from other text (the paper changed since) or
by another version of the tokeniser, and the caller cuts the words again. So a kept string can
be stale without ever changing a match. Change :data:`VERSION` with any change to how words
are cut or stemmed (.stem, the clause rule in .match).
"""

from __future__ import annotations

import hashlib

from digestd.topics.extension import helpers
from digestd.topics.match import Document, FieldWords, paper_texts

__all__ = ["VERSION", "pack", "paper_document", "unpack"]

#: the version of the tokeniser and of this layout; a string packed by another one is not used
VERSION = "2"


def _stamp(title: str, abstract: str) -> str:
    # the texts' lengths and a short digest: a paper whose text changed is not matched
    # with its old words
    digest = hashlib.blake2b(
        f"{title}\0{abstract}".encode("utf-8", "surrogatepass"), digest_size=12
    ).hexdigest()
    return f"{VERSION} {len(title)} {len(abstract)} {digest}"


def pack(doc: Document) -> str:
    """The title's and the abstract's words of ``doc``, as one string (see the docstring).

    Lines: the stamp; the paper's distinct stems, sorted (the C evaluator searches them by
    halves, see :attr:`Document.stems_line`, and the stem set is made from them if asked);
    then per part the words as written and :attr:`FieldWords.joined`, which holds the stems
    and the clause breaks (matching asks it directly; the stems list is read back from it
    only for the few questions about word positions). Words never hold white space, so a
    space joins them; a stem may be empty (a word of apostrophes), which join and split keep.
    """
    title, abstract = doc.title_field, doc.abstract_field
    return "\n".join(
        [
            _stamp(doc.title, doc.abstract),
            " ".join(sorted(doc.stems)),
            " ".join(title.surfaces),
            title.joined,
            " ".join(abstract.surfaces),
            abstract.joined,
        ]
    )


def _fits(surfaces: str, joined: str) -> bool:
    """As many words as stems: the joined line has two spaces per token (see
    FieldWords.joined), a token is a stem or a clause mark "|"."""
    spaces = joined.count(" ")
    return spaces % 2 == 0 and surfaces.count(" ") + 1 == spaces // 2 - joined.count("|")


def _field(text: str, surfaces: str, joined: str) -> FieldWords | None:
    if len(joined) < 2 or joined[0] != " " or joined[-1] != " ":
        return None
    if surfaces:
        # counted in C when the extension is built: a few times faster on an abstract
        if not (_fits if helpers.fits is None else helpers.fits)(surfaces, joined):
            return None
    elif joined.strip(" |"):
        return None  # no words, at most clause breaks (a title of "...")
    return FieldWords.kept(text, surfaces, joined)


def unpack(packed: str | None, title: str, abstract: str, **fields: str) -> Document | None:
    """The paper's document from ``packed``, or None when it was not made from this text.

    The arguments are those of :func:`~digestd.topics.match.paper_document`.
    """
    if not packed:
        return None
    abstract, extra = paper_texts(abstract, fields)
    lines = packed.split("\n")
    if len(lines) != 6 or lines[0] != _stamp(title, abstract):
        return None
    title_field = _field(title, lines[2], lines[3])
    abstract_field = _field(abstract, lines[4], lines[5])
    if title_field is None or abstract_field is None:
        return None
    extra_fields = tuple(sorted((k, v or "") for k, v in extra.items()))
    line = lines[1]
    if (lines[2] or lines[4]) and line and line[0] != " ":
        # sorted and without the empty stem: the document keeps it as a line, and its stem
        # set is made only if the Python evaluator asks for it
        return Document.prepared(title_field, abstract_field, extra_fields, stems_line=line)
    # "" is the stem set {""} of a paper whose only words are apostrophes (sorted first: the
    # line starts with a space), and no stems at all of a paper without words
    stems = frozenset(line.split(" ")) if lines[2] or lines[4] else frozenset()
    return Document.prepared(title_field, abstract_field, extra_fields, stems)


def paper_document(
    packed: str | None, title: str, abstract: str, **fields: str
) -> tuple[Document, str | None]:
    """The paper's document, and its packed words when ``packed`` could not be used."""
    doc = unpack(packed, title, abstract, **fields)
    if doc is not None:
        return doc, None
    abstract, extra = paper_texts(abstract, fields)
    doc = Document.from_text(title, abstract, **extra)
    return doc, pack(doc)
