"""Parsing of listing dumps: bytes -> text -> ``ParsedDump``. Pure: the caller reads the file.

``decode_dump(data, path=...)`` gives the text, ``parse_dump(text, path=...)`` the papers, and
``paper_key(paper.title)`` the normalised title and ``identity_key(title, arxiv_id)`` the key
under which a listing is recognised across dumps (the arXiv id when there is one).
"""

from digestd.parse.detect import parse_dump
from digestd.parse.text import decode_dump, identity_key, paper_key
from digestd.parse.types import ParsedDump, ParsedPaper

__all__ = ["ParsedDump", "ParsedPaper", "decode_dump", "identity_key", "paper_key", "parse_dump"]
