"""Feeds: every paper as RSS 2.0, Atom and JSON Feed 1.1, with RFC 5005 archives; the OPML.

`model` holds what all formats share (items, documents, ids, paging); `items` turns a stored
paper into an item; `rss`, `atom` and `jsonfeed` write documents (pure: same input, same
bytes); `select` reads the store; `build` writes the public current documents to disk.

"Newest" means arrival: when digestd stored the paper, and within one dump the dump's own
order. Every format dates an item by its arrival, so readers agree; the paper's own date is
shown in the item's content. A feed's current document holds its newest papers; older ones are
on archive pages of a fixed size numbered from the oldest, so a full page never changes.
"""

from digestd.feeds.build import FeedBuildReport, build_feeds, public_feed_files, write_if_changed
from digestd.feeds.items import abstract_segments, paper_links
from digestd.feeds.model import (
    ARCHIVE_PAGE_SIZE,
    CONTENT_TYPES,
    EMPTY_FEED_UPDATED,
    FORMATS,
    FeedDoc,
    FeedItem,
    FeedMeta,
    entry_id,
    feed_id,
    is_web_url,
    xml_safe,
)
from digestd.feeds.opml import render_opml
from digestd.feeds.render import render_feed
from digestd.feeds.select import all_doc, private_doc, topic_doc

__all__ = [
    "ARCHIVE_PAGE_SIZE",
    "CONTENT_TYPES",
    "EMPTY_FEED_UPDATED",
    "FORMATS",
    "FeedBuildReport",
    "FeedDoc",
    "FeedItem",
    "FeedMeta",
    "abstract_segments",
    "all_doc",
    "build_feeds",
    "entry_id",
    "feed_id",
    "is_web_url",
    "paper_links",
    "private_doc",
    "public_feed_files",
    "render_feed",
    "render_opml",
    "topic_doc",
    "write_if_changed",
    "xml_safe",
]
