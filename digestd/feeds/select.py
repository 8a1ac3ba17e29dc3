"""From the store to feed documents: which papers a feed's current document or archive page
holds, as items. The only part of `digestd.feeds` that reads the store."""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from urllib.parse import unquote

from digestd import links
from digestd.feeds.items import feed_item
from digestd.feeds.model import (
    ARCHIVE_PAGE_SIZE,
    FeedDoc,
    FeedItem,
    FeedMeta,
    current_size,
    feed_id,
    utc,
)
from digestd.ranking.rising import gain_text, rising
from digestd.store import PaperRecord, Store, TopicRecord

if TYPE_CHECKING:
    from digestd.config import Config
    from digestd.store import SubscriberRecord


def _meta(
    config: Config, name: str, title: str, description: str,
    url: Callable[[str, int | None], str], home_url: str | None = None,
) -> FeedMeta:
    base = config.base_url
    return FeedMeta(
        name=name,
        title=title,
        description=description,
        url=url,
        home_url=home_url or links.index_url(base),
        icon_url=links.icon_url(base),
        favicon_url=links.favicon_url(base),
        ttl_minutes=max(1, math.ceil(config.ingest.scan_interval / 60)),
    )


def all_meta(config: Config) -> FeedMeta:
    base = config.base_url

    def url(fmt: str, page: int | None) -> str:
        if page is None:
            return links.all_feed_url(base, fmt)
        return links.all_archive_url(base, page, fmt)

    return _meta(config, "all", "digestd: all papers",
                 "Every paper digestd stored, newest arrival first.", url)


def topic_meta(config: Config, topic: TopicRecord) -> FeedMeta:
    base = config.base_url

    def url(fmt: str, page: int | None) -> str:
        if page is None:
            return links.topic_feed_url(base, topic.slug, fmt)
        return links.topic_archive_url(base, topic.slug, page, fmt)

    # a topic feed belongs to its topic's page
    return _meta(config, f"topic:{topic.slug}", f"digestd: {topic.name}",
                 topic.description or f"Papers on {topic.name}, newest arrival first.", url,
                 links.topic_page_url(base, topic.slug))


def rising_meta(config: Config) -> FeedMeta:
    base = config.base_url
    days = config.rising.window_days
    return _meta(config, "rising", "digestd: rising papers",
                 f"The papers that gained the most upvotes in the last {days} days.",
                 lambda fmt, page: links.rising_feed_url(base, fmt))


def rising_doc(
    store: Store, config: Config, now: dt.datetime, topics: Sequence[TopicRecord]
) -> FeedDoc:
    """The rising feed: papers by upvotes gained over the last `rising.window_days` days of
    sightings (see digestd.ranking.rising), best first. An item is dated by the sighting that
    brought its newest count, and its content starts with the count and the gain."""
    keys = config.rising
    start = now - dt.timedelta(days=keys.window_days)
    rises = rising(store.upvote_histories(start).items(), start, min_gain=keys.min_gain,
                   limit=keys.feed_items)
    ids = [r.paper_id for r in rises]
    loaded = _load(store, ids)
    names = {t.slug: t.name for t in topics}
    items = []
    for rise, item in zip(rises, _items(loaded, ids, config.base_url, None, names), strict=False):
        if loaded.papers.get(rise.paper_id) is None:
            continue
        gain = gain_text(rise.gain, rise.since, now, relative=False)
        noun = "upvote" if rise.upvotes == 1 else "upvotes"
        items.append(replace(
            item,
            # one id per paper in this feed: a paper rising again is the same entry, updated
            id=feed_id(f"rising:{item.id}"),
            html=f"<p><b>{rise.upvotes} {noun}</b> ({html.escape(gain)})</p>\n{item.html}",
            arrived=utc(rise.last_seen),
        ))
    return FeedDoc(rising_meta(config), tuple(items), page=None, pages=0)


def private_meta(
    config: Config, subscriber: SubscriberRecord, topics: Sequence[TopicRecord]
) -> FeedMeta:
    base = config.base_url
    names = {t.slug: t.name for t in topics}
    followed = ", ".join(names.get(s, s) for s in subscriber.topics) or "no topics"

    def url(fmt: str, page: int | None) -> str:
        if page is None:
            return links.private_feed_url(base, subscriber.token, fmt)
        return links.private_archive_url(base, subscriber.token, page, fmt)

    # the subscriber id, not the token: rotating the token must not change the feed id
    return _meta(config, f"subscriber:{subscriber.id}", "digestd: your papers",
                 f"Papers on your topics: {followed}.", url)


@dataclass(frozen=True)
class _Loaded:
    """Papers, their matches and their batches' first ids, read once for several feeds."""

    papers: dict[int, PaperRecord]
    #: paper id -> slugs of the active topics it matched, best first
    matches: dict[int, list[str]]
    first_ids: dict[int, int]


def _load(store: Store, ids: Sequence[int]) -> _Loaded:
    papers: dict[int, PaperRecord] = {}
    for start in range(0, len(ids), 500):
        papers.update((p.id, p) for p in store.papers(ids=ids[start : start + 500]))
    matches = store.paper_topic_slugs(ids)
    first_ids = store.batch_first_ids(p.batch_id for p in papers.values())
    return _Loaded(papers, matches, first_ids)


def _items(
    loaded: _Loaded, ids: Sequence[int], base_url: str, slugs: Sequence[str] | None,
    topic_names: dict[str, str],
) -> tuple[FeedItem, ...]:
    """Items for paper `ids`, in that order; matches narrowed to `slugs` when given."""
    wanted = None if slugs is None else frozenset(slugs)
    items = []
    for paper_id in ids:
        paper = loaded.papers.get(paper_id)
        if paper is None:  # deleted between the two queries
            continue
        found = [m for m in loaded.matches[paper_id] if wanted is None or m in wanted]
        first = loaded.first_ids.get(paper.batch_id, paper.id)
        items.append(feed_item(paper, found, first, base_url, topic_names))
    return tuple(items)


def current_docs(
    store: Store, feeds: Sequence[tuple[FeedMeta, Sequence[str] | None]], max_items: int,
    base_url: str, topic_names: dict[str, str],
) -> list[FeedDoc]:
    """The documents readers subscribe to: the newest papers, and all not yet archived.

    Papers shared by several feeds (every topic's are in the all-papers feed) are read once.
    """
    plans = []
    for meta, slugs in feeds:
        total = store.feed_paper_count(slugs)
        ids = store.feed_paper_ids(slugs, newest_first=True, offset=0,
                                   limit=current_size(total, max_items))
        plans.append((meta, slugs, total, ids))
    loaded = _load(store, sorted({i for *_, ids in plans for i in ids}))
    return [
        FeedDoc(meta, _items(loaded, ids, base_url, slugs, topic_names), page=None,
                pages=total // ARCHIVE_PAGE_SIZE)
        for meta, slugs, total, ids in plans
    ]


def archive_doc(
    store: Store, meta: FeedMeta, slugs: Sequence[str] | None, page: int, base_url: str,
    topic_names: dict[str, str],
) -> FeedDoc | None:
    """Archive page `page` (1 = the oldest papers), or None when there is no such full page."""
    pages = store.feed_paper_count(slugs) // ARCHIVE_PAGE_SIZE
    if not 1 <= page <= pages:
        return None
    ids = store.feed_paper_ids(slugs, newest_first=False,
                               offset=(page - 1) * ARCHIVE_PAGE_SIZE, limit=ARCHIVE_PAGE_SIZE)
    ids = ids[::-1]
    items = _items(_load(store, ids), ids, base_url, slugs, topic_names)
    return FeedDoc(meta, items, page=page, pages=pages)


def _doc(
    store: Store, config: Config, meta: FeedMeta, slugs: Sequence[str] | None, page: int | None,
    topics: Sequence[TopicRecord],
) -> FeedDoc | None:
    names = {t.slug: t.name for t in topics}
    if page is None:
        [doc] = current_docs(store, [(meta, slugs)], config.feeds.max_items, config.base_url,
                             names)
        return doc
    return archive_doc(store, meta, slugs, page, config.base_url, names)


def all_doc(store: Store, config: Config, page: int | None = None) -> FeedDoc | None:
    """Every paper: the current document, or archive page `page` (None if it does not exist)."""
    return _doc(store, config, all_meta(config), None, page, store.topics())


def topic_doc(
    store: Store, config: Config, topic: TopicRecord, page: int | None = None,
    topics: Sequence[TopicRecord] | None = None,
) -> FeedDoc | None:
    topics = store.topics() if topics is None else topics
    return _doc(store, config, topic_meta(config, topic), (topic.slug,), page, topics)


def private_doc(
    store: Store, config: Config, subscriber: SubscriberRecord, page: int | None = None
) -> FeedDoc | None:
    """A subscriber's feed: the papers of the topics they follow, matches narrowed to them."""
    topics = store.topics()
    meta = private_meta(config, subscriber, topics)
    doc = _doc(store, config, meta, subscriber.topics, page, topics)
    if doc is None or not config.feedback.enabled:
        return doc
    return replace(
        doc, items=tuple(_with_rating_links(item, config, subscriber) for item in doc.items)
    )


def _with_rating_links(item: FeedItem, config: Config, subscriber: SubscriberRecord) -> FeedItem:
    """The item's HTML with the reader's "more/less like this" links (see digestd.web.feedback:
    they open a page with a button; following them records nothing)."""
    slug = unquote(item.url.rsplit("/papers/", 1)[-1])
    more = links.feedback_url(config.base_url, subscriber.token, slug, "up")
    less = links.feedback_url(config.base_url, subscriber.token, slug, "down")
    rating = (
        f'<p><a href="{html.escape(more)}">More like this</a> · '
        f'<a href="{html.escape(less)}">Less like this</a></p>'
    )
    # the paper's page, opened from this feed, offers this reader the same buttons
    page = item.url + links.reader_query(subscriber.token)
    content = item.html.replace(f'href="{html.escape(item.url)}"', f'href="{html.escape(page)}"')
    return replace(item, url=page, html=f"{content}\n{rating}")
