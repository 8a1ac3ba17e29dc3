"""What every feed format is written from: a document of items, with its links and dates.

Pure data and the few rules all formats share (ids, safe text and URLs, archive paging), so
RSS, Atom and JSON Feed say the same thing about the same paper.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

FeedFormat = Literal["rss", "atom", "json"]
FORMATS: tuple[FeedFormat, ...] = ("rss", "atom", "json")

CONTENT_TYPES = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
    "opml": "text/x-opml; charset=utf-8",
}

#: namespace of entry and feed ids; changing it would change every id readers have seen
ID_NAMESPACE = uuid.UUID("5b0f3c8e-6f1e-5d7a-9a43-2f1d6c0e8b71")
GENERATOR_URI = "https://github.com/digestd/digestd"
#: the updated time of a feed that has no entries yet (deterministic, unlike now())
EMPTY_FEED_UPDATED = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
#: papers per archive page. Pages are numbered from the oldest paper, so a full page never
#: changes; changing this number would move papers between pages readers have cached.
ARCHIVE_PAGE_SIZE = 50

# XML 1.0 forbids C0 controls other than tab, newline and carriage return, lone surrogates and
# U+FFFE/U+FFFF; lxml refuses them. C1 controls are allowed but validators flag them.
_XML_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """`text` without the characters an XML document cannot carry."""
    return _XML_UNSAFE.sub("", text)


def is_web_url(url: str) -> bool:
    """An absolute http(s) URL with a host and nothing a validator or browser would choke on."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not any(c.isspace() or c in '<>"' for c in url)
        and xml_safe(url) == url
    )


def entry_id(paper_key: str) -> str:
    """The entry id (Atom id, RSS guid, JSON id) of a paper: from its key alone, never changes."""
    return f"urn:uuid:{uuid.uuid5(ID_NAMESPACE, 'paper:' + paper_key)}"


def feed_id(name: str) -> str:
    return f"urn:uuid:{uuid.uuid5(ID_NAMESPACE, 'feed:' + name)}"


def utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Link:
    """A link of a paper beyond its page on this site (code, project page, arXiv, PDF)."""

    url: str
    title: str = ""


@dataclass(frozen=True)
class Category:
    """A topic the paper matched; `scheme` names the vocabulary (the site's topic pages)."""

    slug: str
    name: str
    url: str
    scheme: str


@dataclass(frozen=True)
class FeedItem:
    id: str
    title: str
    #: the abstract as plain text; never markup
    text: str
    #: the item as HTML built here, every piece of dump text escaped
    html: str
    #: the paper's page on this site
    url: str
    #: when digestd stored the paper: what "newest" means in every format
    arrived: dt.datetime
    #: the paper's own date, as the listing gave it; shown, never used for ordering
    published: dt.date | None
    authors: tuple[str, ...]
    links: tuple[Link, ...]
    categories: tuple[Category, ...]
    #: when the stored paper last changed (also for changes no feed shows): HTTP only
    changed: dt.datetime


@dataclass(frozen=True)
class FeedMeta:
    """What a feed says about itself."""

    #: stable name the feed id derives from: "all", "topic:<slug>", "subscriber:<id>"
    name: str
    title: str
    description: str
    #: URL of the current document (page None) or of an archive page, per format
    url: Callable[[str, int | None], str]
    #: the HTML page the feed belongs to
    home_url: str
    icon_url: str
    favicon_url: str
    #: minutes between scans of the seeds directory: how often the feed can change
    ttl_minutes: int


@dataclass(frozen=True)
class FeedDoc:
    """One document: the current feed (page None) or archive page `page` of `pages`."""

    meta: FeedMeta
    #: newest first
    items: tuple[FeedItem, ...]
    page: int | None
    #: complete archive pages the feed has
    pages: int

    @property
    def updated(self) -> dt.datetime:
        """The newest arrival: unchanged papers give an unchanged document."""
        return max((i.arrived for i in self.items), default=EMPTY_FEED_UPDATED)

    def self_url(self, fmt: str) -> str:
        return self.meta.url(fmt, self.page)

    def current_url(self, fmt: str) -> str:
        return self.meta.url(fmt, None)

    def prev_archive(self, fmt: str) -> str | None:
        """The next older archive page (RFC 5005 prev-archive; JSON Feed's next_url)."""
        older = self.pages if self.page is None else self.page - 1
        return self.meta.url(fmt, older) if older >= 1 else None

    def next_archive(self, fmt: str) -> str | None:
        """The next newer archive page; the newest one points back to the current feed only."""
        if self.page is None or self.page >= self.pages:
            return None
        return self.meta.url(fmt, self.page + 1)


def current_size(total: int, max_items: int) -> int:
    """Papers in the current document: the newest `max_items`, and all not yet archived."""
    unarchived = total - (total // ARCHIVE_PAGE_SIZE) * ARCHIVE_PAGE_SIZE
    return min(total, max(max_items, unarchived))
