"""RSS 2.0 writer. Descriptions are HTML (as every reader takes them): the item's HTML built in
`digestd.feeds.items`, where every piece of dump text is escaped. Archive links per RFC 5005."""

from __future__ import annotations

import datetime as dt
from email.utils import format_datetime

from lxml import etree

from digestd import __version__
from digestd.feeds.model import CONTENT_TYPES, FeedDoc, FeedItem
from digestd.feeds.xml import ATOM, DC, FH, SY, serialize, sub


def _date(value: dt.datetime) -> str:
    return format_datetime(value, usegmt=True)


def render_rss(doc: FeedDoc) -> bytes:
    meta = doc.meta
    nsmap = {"atom": ATOM, "dc": DC, "sy": SY, "fh": FH}
    rss = etree.Element("rss", {"version": "2.0"}, nsmap=nsmap)
    channel = sub(rss, "channel")
    sub(channel, "title", meta.title)
    sub(channel, "link", meta.home_url)
    sub(channel, "description", meta.description or meta.title)
    _atom_link(channel, "self", doc.self_url("rss"), CONTENT_TYPES["rss"].split(";")[0])
    if doc.page is not None:
        sub(channel, f"{{{FH}}}archive")
        _atom_link(channel, "current", doc.current_url("rss"))
    for rel, url in (("prev-archive", doc.prev_archive("rss")),
                     ("next-archive", doc.next_archive("rss"))):
        if url:
            _atom_link(channel, rel, url)
    sub(channel, "language", "en")
    sub(channel, "lastBuildDate", _date(doc.updated))
    sub(channel, "generator", f"digestd {__version__}")
    sub(channel, "docs", "https://www.rssboard.org/rss-specification")
    sub(channel, "ttl", str(meta.ttl_minutes))
    image = sub(channel, "image")
    sub(image, "url", meta.icon_url)
    sub(image, "title", meta.title)
    sub(image, "link", meta.home_url)
    sub(channel, f"{{{SY}}}updatePeriod", "hourly")
    sub(channel, f"{{{SY}}}updateFrequency", str(max(1, 60 // max(1, meta.ttl_minutes))))
    for item in doc.items:
        _item(channel, item)
    return serialize(rss)


def _atom_link(parent: etree._Element, rel: str, href: str, kind: str | None = None) -> None:
    attributes = {"rel": rel, "href": href}
    if kind:
        attributes["type"] = kind
    sub(parent, f"{{{ATOM}}}link", **attributes)


def _item(channel: etree._Element, item: FeedItem) -> None:
    element = sub(channel, "item")
    sub(element, "title", item.title)
    sub(element, "link", item.url)
    sub(element, "description", item.html)
    sub(element, "guid", item.id, isPermaLink="false")
    sub(element, "pubDate", _date(item.arrived))
    for category in item.categories:
        sub(element, "category", category.name, domain=category.scheme)
    for author in item.authors:
        sub(element, f"{{{DC}}}creator", author)
