"""Atom (RFC 4287) writer: the abstract as a text summary, the item's HTML as content, the
paper's other links as rel="related", archive links per RFC 5005."""

from __future__ import annotations

from lxml import etree

from digestd import __version__
from digestd.feeds.model import CONTENT_TYPES, GENERATOR_URI, FeedDoc, FeedItem, feed_id
from digestd.feeds.xml import ATOM, FH, XML_LANG, rfc3339, serialize, sub


def _a(tag: str) -> str:
    return f"{{{ATOM}}}{tag}"


def render_atom(doc: FeedDoc) -> bytes:
    meta = doc.meta
    feed = etree.Element(_a("feed"), {XML_LANG: "en"}, nsmap={None: ATOM, "fh": FH})
    sub(feed, _a("id"), feed_id(meta.name))
    sub(feed, _a("title"), meta.title, type="text")
    if meta.description:
        sub(feed, _a("subtitle"), meta.description, type="text")
    sub(feed, _a("updated"), rfc3339(doc.updated))
    author = sub(feed, _a("author"))
    sub(author, _a("name"), "digestd")
    _link(feed, "self", doc.self_url("atom"), CONTENT_TYPES["atom"].split(";")[0])
    _link(feed, "alternate", meta.home_url, "text/html")
    if doc.page is not None:
        sub(feed, f"{{{FH}}}archive")
        _link(feed, "current", doc.current_url("atom"))
    for rel, url in (("prev-archive", doc.prev_archive("atom")),
                     ("next-archive", doc.next_archive("atom"))):
        if url:
            _link(feed, rel, url)
    sub(feed, _a("generator"), "digestd", uri=GENERATOR_URI, version=__version__)
    sub(feed, _a("icon"), meta.favicon_url)
    sub(feed, _a("logo"), meta.icon_url)
    for item in doc.items:
        _entry(feed, item)
    return serialize(feed)


def _link(
    parent: etree._Element, rel: str, href: str, kind: str | None = None, title: str = ""
) -> None:
    attributes = {"rel": rel, "href": href}
    if kind:
        attributes["type"] = kind
    if title:
        attributes["title"] = title
    sub(parent, _a("link"), **attributes)


def _entry(feed: etree._Element, item: FeedItem) -> None:
    entry = sub(feed, _a("entry"))
    sub(entry, _a("id"), item.id)
    sub(entry, _a("title"), item.title, type="text")
    # arrival, like RSS pubDate and JSON date_published: the paper's own date is in content
    sub(entry, _a("published"), rfc3339(item.arrived))
    sub(entry, _a("updated"), rfc3339(item.arrived))
    _link(entry, "alternate", item.url, "text/html")
    for link in item.links:
        if link.url != item.url:
            _link(entry, "related", link.url, title=link.title)
    for name in item.authors:
        author = sub(entry, _a("author"))
        sub(author, _a("name"), name)
    for category in item.categories:
        sub(entry, _a("category"), term=category.slug, scheme=category.scheme,
            label=category.name)
    if item.text:
        sub(entry, _a("summary"), item.text, type="text")
    sub(entry, _a("content"), item.html, type="html")
