"""The fields a query can name: ``title:word``, ``abstract:"a phrase"``.

A field is one part of a paper, with its own words and its own points per occurrence. Adding
a field takes one :class:`FieldSpec` in :data:`FIELDS` (or :func:`register_field`) and the
text for it in the :class:`~digestd.topics.match.Document` (``Document.from_text(title,
abstract, author="Ada Lovelace; Alan Turing")``). Separate the values of a list field such as
authors with ``;``: a phrase never crosses clause punctuation, so ``author:"lovelace alan"``
cannot match across two names.

A term without a field searches the title and the abstract together (see .query).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FIELDS", "FieldSpec", "register_field"]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    #: what a query writes before the colon, lower case: "title"
    name: str
    #: points per occurrence of a matched term in this field (at most 2 occurrences count)
    points: float
    #: for help and error messages
    description: str


#: every field a query may name, by name
FIELDS: dict[str, FieldSpec] = {}


def register_field(spec: FieldSpec) -> FieldSpec:
    if not spec.name.isalpha() or spec.name != spec.name.lower():
        raise ValueError(f"a field name is lower-case letters, not {spec.name!r}")
    FIELDS[spec.name] = spec
    return spec


TITLE = register_field(FieldSpec("title", 3.0, "the paper's title"))
ABSTRACT = register_field(FieldSpec("abstract", 1.0, "the paper's abstract"))
# What structured sources tell about a paper, for following a person, a lab or a category.
# A follow is as strong a signal as a title hit. Text dumps give none of these: a paper known
# only from them matches none of these terms.
AUTHOR = register_field(FieldSpec("author", 3.0, "an author's name: author:\"Ada Lovelace\""))
ORG = register_field(FieldSpec("org", 3.0, "the organisation's id or name: org:nvidia"))
CATEGORY = register_field(
    FieldSpec("category", 3.0, "an arXiv category: category:cs.CL (category:cs for all of cs)")
)
