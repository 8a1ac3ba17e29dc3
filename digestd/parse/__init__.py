"""Parsing of listing dumps: bytes -> text -> ``ParsedDump``. Pure: the caller reads the file.

``decode_dump(data, path=...)`` gives the text, ``parse_dump(text, path=...)`` the papers, and
``paper_key(paper.title)`` the identity under which the same paper is recognised across dumps.
"""

from digestd.parse.detect import parse_dump
from digestd.parse.text import decode_dump, paper_key
from digestd.parse.types import ParsedDump, ParsedPaper

__all__ = ["ParsedDump", "ParsedPaper", "decode_dump", "paper_key", "parse_dump"]
