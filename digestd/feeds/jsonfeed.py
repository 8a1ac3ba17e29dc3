"""JSON Feed 1.1 writer (https://www.jsonfeed.org/version/1.1/). Older papers are reached
through `next_url`, the format's own paging, which walks the same archive pages as RSS/Atom."""

from __future__ import annotations

import json
from typing import Any

from digestd.feeds.model import FeedDoc, FeedItem
from digestd.feeds.xml import rfc3339

VERSION = "https://jsonfeed.org/version/1.1"


def render_json(doc: FeedDoc) -> bytes:
    meta = doc.meta
    feed: dict[str, Any] = {
        "version": VERSION,
        "title": meta.title,
        "home_page_url": meta.home_url,
        "feed_url": doc.current_url("json"),
        "description": meta.description,
        "icon": meta.icon_url,
        "favicon": meta.favicon_url,
        "language": "en",
        "authors": [{"name": "digestd"}],
    }
    older = doc.prev_archive("json")
    if older:
        feed["next_url"] = older
    feed["items"] = [_item(item) for item in doc.items]
    # compact: json's C encoder does not indent, and readers do not care
    return (json.dumps(feed, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def _item(item: FeedItem) -> dict[str, Any]:
    result: dict[str, Any] = {
        "id": item.id,
        "url": item.url,
        "title": item.title,
        "content_html": item.html,
        "content_text": item.text,
        "date_published": rfc3339(item.arrived),
        "date_modified": rfc3339(item.arrived),
    }
    if item.categories:
        result["tags"] = [c.name for c in item.categories]
    if item.authors:
        result["authors"] = [{"name": name} for name in item.authors]
    # extension members start with an underscore (JSON Feed 1.1, "Extensions")
    result["_digestd"] = {
        "published": item.published.isoformat() if item.published else None,
        "links": [link.url for link in item.links],
        "topics": [{"slug": c.slug, "name": c.name, "url": c.url} for c in item.categories],
    }
    return result
