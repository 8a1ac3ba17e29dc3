"""The Hugging Face daily papers JSON (``https://huggingface.co/api/daily_papers``).

A JSON array of items, or an object holding one (``{"papers": [...]}``)::

    [{"paper": {"id": "2509.01234", "title": ..., "summary": ..., "authors": [{"name": ...,
                "hidden": false}], "publishedAt": "2025-09-03T17:58:05.000Z", "upvotes": 12,
                "ai_summary": ..., "ai_keywords": [...], "githubRepo": ..., "githubStars": 45,
                "projectPage": ..., "organization": {"name": "nvidia", "fullname": "NVIDIA"}},
      "publishedAt": ..., "title": ..., "summary": ..., "numComments": 2, "submittedBy": {...}}]

Any field but ``paper`` may be missing or null, and unknown fields are ignored. An item that is
not an object, has no ``paper`` object or no title is skipped with its cause; the others are
kept. A file none of whose items is readable is not this format's dump at all. This module
owns reading that shape; the JSON itself is read by the standard library.
"""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

from digestd.errors import DumpFormatError
from digestd.parse.arxiv_ids import (
    abs_url,
    clean_text,
    count,
    hf_url,
    names,
    pdf_url,
    short_text,
    split_arxiv_id,
    web_url,
)
from digestd.parse.text import extract_links
from digestd.parse.types import ParsedDump, ParsedPaper

NAME = "hf-json"

_ISO_DATE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


def sniff(head: str) -> int:
    """How strongly the start of the text looks like this JSON (0: not at all)."""
    if not head.startswith(("[", "{")):
        return 0
    return 3 + 3 * ('"paper"' in head) + ('"publishedAt"' in head)


def parse(text: str, *, path: str | None = None) -> ParsedDump:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DumpFormatError(
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", path=path
        ) from exc
    except RecursionError as exc:
        raise DumpFormatError("invalid JSON: nested too deeply", path=path) from exc
    items = _items(data, path)
    papers: list[ParsedPaper] = []
    skipped: list[str] = []
    for index, item in enumerate(items, 1):
        try:
            paper = _paper(item, index)
        except _Skip as exc:
            skipped.append(f"item {index}: {exc}")
            continue
        papers.append(paper)
    if items and not papers:
        raise DumpFormatError(
            f"no readable daily-paper item among {len(items)} ({skipped[0]})", path=path
        )
    return ParsedDump(
        layout=NAME, page_date=None, capture_year=None, papers=tuple(papers),
        skipped=tuple(skipped),
    )


def _items(data: Any, path: str | None) -> list[Any]:
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        if "paper" in data:  # one item on its own
            return [data]
        lists = [value for value in data.values() if isinstance(value, list)]
        if len(lists) == 1:
            return lists[0]
        raise DumpFormatError(
            "JSON object holds no list of daily-paper items "
            f"(keys: {', '.join(sorted(map(str, data))[:8]) or 'none'})",
            path=path,
        )
    raise DumpFormatError(
        f"JSON top level is {_kind(data)}, expected a list of daily-paper items", path=path
    )


class _Skip(Exception):
    """An item that cannot become a paper; the message says why."""


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean", int: "a number", float: "a number", str: "a string",
        list: "a list", dict: "an object",
    }.get(type(value), type(value).__name__)


def _paper(item: Any, index: int) -> ParsedPaper:
    if not isinstance(item, dict):
        raise _Skip(f"{_kind(item)}, not an object")
    paper = item.get("paper")
    if not isinstance(paper, dict):
        raise _Skip(f'"paper" is {_kind(paper)}, not an object')
    title = clean_text(paper.get("title")) or clean_text(item.get("title"))
    if not title:
        raise _Skip("no title")
    abstract = clean_text(paper.get("summary")) or clean_text(item.get("summary"))
    ident = split_arxiv_id(paper.get("id"))
    arxiv_id, version = ident if ident else (None, None)
    authors = paper.get("authors")
    author_names = names(
        [a.get("name") for a in authors if isinstance(a, dict) and a.get("hidden") is not True]
        if isinstance(authors, list)
        else []
    )
    org = paper.get("organization")
    org_id = org_name = None
    if isinstance(org, dict):
        org_id = short_text(org.get("name"))
        org_name = short_text(org.get("fullname")) or org_id
    keywords = paper.get("ai_keywords")
    source_links: list[tuple[str, str]] = []
    if arxiv_id:
        source_links += [
            ("abs", abs_url(arxiv_id)), ("pdf", pdf_url(arxiv_id)), ("hf", hf_url(arxiv_id))
        ]
    return ParsedPaper(
        title=title,
        abstract=abstract,
        authors_count=len(author_names) or None,
        organization_id=org_id,
        organization=org_name,
        published=_date(paper.get("publishedAt")) or _date(item.get("publishedAt")),
        upvotes=count(paper.get("upvotes")),
        links=extract_links(abstract),
        line=index,
        arxiv_id=arxiv_id,
        arxiv_version=version,
        authors=author_names,
        ai_summary=short_text(paper.get("ai_summary")),
        keywords=names(keywords)[:50],
        github_repo=web_url(paper.get("githubRepo")),
        github_stars=count(paper.get("githubStars")),
        project_page=web_url(paper.get("projectPage")),
        comments=count(item.get("numComments")),
        source_links=tuple(source_links),
    )


def _date(value: Any) -> datetime.date | None:
    if not isinstance(value, str):
        return None
    match = _ISO_DATE_RE.match(value.strip())
    if match is None:
        return None
    try:
        return datetime.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None
