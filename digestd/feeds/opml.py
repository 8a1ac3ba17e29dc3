"""The OPML 2.0 list of the public feeds (all papers, rising papers, then each topic), for
importing at once."""

from __future__ import annotations

from collections.abc import Sequence
from xml.etree import ElementTree

from digestd import links
from digestd.feeds.model import xml_safe
from digestd.store import TopicRecord


def render_opml(
    topics: Sequence[TopicRecord], base_url: str, title: str = "digestd topics"
) -> bytes:
    """OPML 2.0 listing the RSS feed of every topic and of all papers, absolute URLs."""
    opml = ElementTree.Element("opml", version="2.0")
    head = ElementTree.SubElement(opml, "head")
    ElementTree.SubElement(head, "title").text = title
    body = ElementTree.SubElement(opml, "body")
    outlines = [("All papers", "Every paper digestd stored", links.all_feed_url(base_url, "rss"),
                 links.index_url(base_url)),
                ("Rising papers", "The papers gaining the most upvotes",
                 links.rising_feed_url(base_url, "rss"), links.index_url(base_url))]
    outlines += [
        (t.name, t.description, links.topic_feed_url(base_url, t.slug, "rss"),
         links.topic_page_url(base_url, t.slug))
        for t in topics
    ]
    for name, description, url, page in outlines:
        attributes = {
            "type": "rss",
            "text": xml_safe(name),
            "title": xml_safe(name),
            "xmlUrl": url,
            "htmlUrl": page,
        }
        if description:
            attributes["description"] = xml_safe(description)
        ElementTree.SubElement(body, "outline", attributes)
    ElementTree.indent(opml)
    return ElementTree.tostring(opml, encoding="utf-8", xml_declaration=True) + b"\n"
