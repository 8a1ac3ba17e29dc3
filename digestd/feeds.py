"""Feeds: the newest papers as RSS 2.0 and Atom (feedgen), written atomically; the topics' OPML.

`render_feed` and `render_opml` are pure: papers and metadata in, bytes out. `build_feeds`
selects papers from the store, renders every public feed and writes each file only when its
bytes changed (temporary file in the same directory, then `os.replace`), so readers never see
half a file and unchanged feeds keep their mtime, ETag and Last-Modified.

Output is deterministic: a feed's updated time is its newest entry's, never the build time, so
rebuilding unchanged content gives byte-identical files. Entry ids derive from the paper key
only (see `entry_id`): they survive rebuilds, restarts and metadata updates.

Private feeds (one per subscriber) are rendered on request by the HTTP server with the same
builder; they are never written to disk, where file names would hold the secret token.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit
from xml.etree import ElementTree

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator

from digestd import __version__, links
from digestd.store import PaperRecord, SelectedPaper, Store, TopicRecord

if TYPE_CHECKING:
    from digestd.runtime import Runtime
    from digestd.store import SubscriberRecord

log = logging.getLogger(__name__)

FeedFormat = Literal["rss", "atom"]
FORMATS: tuple[FeedFormat, ...] = ("rss", "atom")

CONTENT_TYPES = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
    "opml": "text/x-opml; charset=utf-8",
}

#: namespace of entry and feed ids; changing it would change every id readers have seen
ID_NAMESPACE = uuid.UUID("5b0f3c8e-6f1e-5d7a-9a43-2f1d6c0e8b71")
GENERATOR_URI = "https://github.com/digestd/digestd"
#: the updated time of a feed that has no entries yet (deterministic, unlike now())
EMPTY_FEED_UPDATED = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
#: seconds after which a leftover temporary file in the feeds directory is removed
TEMPORARY_MAX_AGE = 3600

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
    """The entry id (Atom id, RSS guid) of a paper: from its key alone, so it never changes."""
    return f"urn:uuid:{uuid.uuid5(ID_NAMESPACE, 'paper:' + paper_key)}"


def feed_id(name: str) -> str:
    return f"urn:uuid:{uuid.uuid5(ID_NAMESPACE, 'feed:' + name)}"


# Rendering -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedMeta:
    """What a feed says about itself."""

    #: stable name the feed id derives from: "all", "topic:<slug>", "subscriber:<id>"
    name: str
    title: str
    description: str
    #: the feed's own URL per format (the self link)
    urls: Mapping[str, str]
    #: the HTML page the feed belongs to
    home_url: str
    #: topic slug -> name, for category labels
    topic_names: Mapping[str, str] = field(default_factory=dict)
    #: the paper page of a slug; links.paper_url on the configured base URL
    base_url: str = ""
    #: updated time when there is no entry
    empty_updated: dt.datetime = EMPTY_FEED_UPDATED


def _utc(value: dt.datetime | dt.date) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).replace(microsecond=0)
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)


def entry_updated(item: SelectedPaper) -> dt.datetime:
    return _utc(max(item.paper.updated_at, item.paper.first_seen_at))


def feed_updated(items: Sequence[SelectedPaper], meta: FeedMeta) -> dt.datetime:
    """The newest entry's time: unchanged content gives an unchanged feed."""
    return max((entry_updated(i) for i in items), default=_utc(meta.empty_updated))


def creator(item: SelectedPaper) -> str | None:
    """Who wrote the paper, as far as the listing says: an organisation or an author count."""
    paper = item.paper
    if paper.organization:
        return xml_safe(paper.organization).strip() or None
    if paper.authors_count:
        return f"{paper.authors_count} author{'s' if paper.authors_count != 1 else ''}"
    return None


class _RelatedLinksFeed(BaseExtension):
    pass


class _RelatedLinks(BaseEntryExtension):
    """Writes an Atom entry's links itself: feedgen 1.0 drops the rel of entry links, which
    would turn every URL of the abstract into a second rel="alternate" (invalid in RFC 4287)."""

    def __init__(self) -> None:
        self.alternate = ""
        self.related: tuple[str, ...] = ()

    def extend_atom(self, entry: Any) -> Any:
        # feedgen builds un-namespaced elements under a root carrying xmlns=Atom.
        children = list(entry)
        for old in children:
            if old.tag == "link":
                entry.remove(old)
        position = next(i for i, child in enumerate(entry) if child.tag == "updated") + 1
        new = [("alternate", self.alternate, "text/html")]
        new += [("related", url, None) for url in self.related if url != self.alternate]
        for offset, (rel, href, kind) in enumerate(new):
            element = entry.makeelement("link", {"rel": rel, "href": href})
            if kind:
                element.set("type", kind)
            entry.insert(position + offset, element)
        return entry


def render_feed(items: Sequence[SelectedPaper], meta: FeedMeta, fmt: str) -> bytes:
    """One feed as RSS 2.0 or Atom bytes; `items` newest first, each with its topic matches."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown feed format {fmt!r}")
    fg = FeedGenerator()
    if fmt == "rss":
        fg.load_extension("dc", atom=False, rss=True)
    else:
        fg.register_extension("digestd", _RelatedLinksFeed, _RelatedLinks, atom=True, rss=False)
    fg.id(feed_id(meta.name))
    fg.title(xml_safe(meta.title))
    fg.description(xml_safe(meta.description) or xml_safe(meta.title))
    fg.link(href=meta.urls[fmt], rel="self", type=CONTENT_TYPES[fmt].split(";")[0])
    # feedgen takes the RSS channel's <link> from the last link given: the HTML page.
    fg.link(href=meta.home_url, rel="alternate", type="text/html")
    fg.language("en")
    fg.author({"name": "digestd"})
    fg.generator("digestd", version=__version__, uri=GENERATOR_URI)
    fg.updated(feed_updated(items, meta))
    for item in items:
        _add_entry(fg, item, meta, fmt)
    if fmt == "rss":
        return fg.rss_str(pretty=True)
    return fg.atom_str(pretty=True)


def _add_entry(fg: FeedGenerator, item: SelectedPaper, meta: FeedMeta, fmt: str) -> None:
    paper = item.paper
    fe = fg.add_entry(order="append")
    identity = entry_id(paper.key)
    fe.id(identity)
    fe.guid(identity, permalink=False)
    fe.title(xml_safe(paper.title).strip() or "(untitled)")
    page = links.paper_url(meta.base_url, paper.slug)
    fe.link(href=page, rel="alternate")
    abstract = xml_safe(paper.abstract).strip()
    if abstract:
        fe.summary(abstract)
    fe.updated(entry_updated(item))
    first_seen = _utc(paper.first_seen_at)
    if fmt == "rss":
        fe.pubDate(first_seen)
    else:
        fe.published(_utc(paper.published) if paper.published else first_seen)
    for match in item.matches:
        label = xml_safe(meta.topic_names.get(match.slug, match.slug))
        fe.category(term=match.slug, label=label)
    who = creator(item)
    if fmt == "rss":
        if who:
            fe.dc.dc_creator(who)
    else:
        if who:
            fe.author({"name": who})
        fe.digestd.alternate = page
        fe.digestd.related = tuple(url for url in paper.links if is_web_url(url))


def render_opml(
    topics: Sequence[TopicRecord], base_url: str, title: str = "digestd topics"
) -> bytes:
    """OPML 2.0 listing the feed of every topic (and the feed of all papers), absolute URLs."""
    opml = ElementTree.Element("opml", version="2.0")
    head = ElementTree.SubElement(opml, "head")
    ElementTree.SubElement(head, "title").text = title
    ElementTree.SubElement(head, "docs").text = "http://opml.org/spec2.opml"
    body = ElementTree.SubElement(opml, "body")
    outlines = [("All papers", "Every paper digestd stored", links.all_feed_url(base_url, "rss"))]
    outlines += [
        (t.name, t.description, links.topic_feed_url(base_url, t.slug, "rss")) for t in topics
    ]
    for name, description, url in outlines:
        attributes = {
            "type": "rss",
            "text": xml_safe(name),
            "title": xml_safe(name),
            "xmlUrl": url,
            "htmlUrl": links.index_url(base_url),
        }
        if description:
            attributes["description"] = xml_safe(description)
        ElementTree.SubElement(body, "outline", attributes)
    ElementTree.indent(opml)
    return ElementTree.tostring(opml, encoding="utf-8", xml_declaration=True) + b"\n"


# Selecting papers ------------------------------------------------------------------------------


def newest_papers(store: Store, limit: int) -> list[SelectedPaper]:
    """The newest papers with every active topic they matched."""
    papers = store.papers(limit=limit)
    matches = store.paper_matches(p.id for p in papers)
    return [SelectedPaper(p, tuple(matches[p.id])) for p in papers]


def newest_matching(
    store: Store, groups: Mapping[str, Iterable[str]], limit: int
) -> dict[str, list[SelectedPaper]]:
    """For each group of topic slugs, the newest `limit` papers matching any of them.

    Matches are narrowed to the group's topics. The newest `limit` papers of a group are all
    among the newest `limit` of one of its topics, so one query per topic is enough.
    """
    wanted = {name: frozenset(slugs) for name, slugs in groups.items()}
    every_slug = sorted(frozenset().union(*wanted.values()))
    ids_by_topic = store.newest_paper_ids(every_slug, limit)
    ids = sorted({i for topic_ids in ids_by_topic.values() for i in topic_ids})
    papers: dict[int, PaperRecord] = {}
    for start in range(0, len(ids), 500):
        papers.update((p.id, p) for p in store.papers(ids=ids[start : start + 500]))
    matches = store.paper_matches(ids)
    selected: dict[str, list[SelectedPaper]] = {}
    for name, slugs in wanted.items():
        group_ids = {i for slug in slugs for i in ids_by_topic.get(slug, ())}
        newest = sorted(
            (papers[i] for i in group_ids if i in papers),
            key=lambda p: (p.first_seen_at, p.id),
            reverse=True,
        )[:limit]
        selected[name] = [
            SelectedPaper(p, tuple(m for m in matches[p.id] if m.slug in slugs)) for p in newest
        ]
    return selected


# Feed descriptions -----------------------------------------------------------------------------


def _topic_names(topics: Iterable[TopicRecord]) -> dict[str, str]:
    return {t.slug: t.name for t in topics}


def all_meta(base_url: str, topics: Sequence[TopicRecord]) -> FeedMeta:
    return FeedMeta(
        name="all",
        title="digestd: all papers",
        description="The newest papers, whatever their topic.",
        urls={fmt: links.all_feed_url(base_url, fmt) for fmt in FORMATS},
        home_url=links.index_url(base_url),
        topic_names=_topic_names(topics),
        base_url=base_url,
    )


def topic_meta(base_url: str, topic: TopicRecord, topics: Sequence[TopicRecord]) -> FeedMeta:
    return FeedMeta(
        name=f"topic:{topic.slug}",
        title=f"digestd: {topic.name}",
        description=topic.description or f"The newest papers on {topic.name}.",
        urls={fmt: links.topic_feed_url(base_url, topic.slug, fmt) for fmt in FORMATS},
        home_url=links.index_url(base_url),
        topic_names=_topic_names(topics),
        base_url=base_url,
    )


def private_meta(
    base_url: str, subscriber: SubscriberRecord, topics: Sequence[TopicRecord]
) -> FeedMeta:
    names = _topic_names(topics)
    followed = ", ".join(names.get(s, s) for s in subscriber.topics) or "no topics"
    return FeedMeta(
        # the subscriber id, not the token: rotating the token must not change the feed id
        name=f"subscriber:{subscriber.id}",
        title="digestd: your papers",
        description=f"The newest papers on your topics: {followed}.",
        urls={fmt: links.private_feed_url(base_url, subscriber.token, fmt) for fmt in FORMATS},
        home_url=links.index_url(base_url),
        topic_names=names,
        base_url=base_url,
    )


def private_feed_items(
    store: Store, subscriber: SubscriberRecord, limit: int
) -> list[SelectedPaper]:
    """A subscriber's private feed: the newest papers of the topics they follow."""
    return newest_matching(store, {"mine": subscriber.topics}, limit)["mine"]


# Writing ---------------------------------------------------------------------------------------


@dataclass
class FeedBuildReport:
    """Files under the feeds directory, relative to it, by what the build did to them."""

    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"written={len(self.written)} unchanged={len(self.unchanged)} "
            f"removed={len(self.removed)}"
        )


def write_if_changed(path: Path, data: bytes) -> bool:
    """Replace `path` atomically with `data` unless it holds exactly that; True if written."""
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a web server in front may serve these
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def public_feed_files(store: Store, base_url: str, limit: int) -> dict[str, bytes]:
    """Every public feed file (relative path -> bytes): all papers, each active topic, OPML."""
    topics = store.topics()
    files: dict[str, bytes] = {}
    every = newest_papers(store, limit)
    meta = all_meta(base_url, topics)
    for fmt in FORMATS:
        files[f"all.{fmt}"] = render_feed(every, meta, fmt)
    per_topic = newest_matching(store, {t.slug: (t.slug,) for t in topics}, limit)
    for topic in topics:
        meta = topic_meta(base_url, topic, topics)
        for fmt in FORMATS:
            files[f"topics/{topic.slug}.{fmt}"] = render_feed(per_topic[topic.slug], meta, fmt)
    files["topics.opml"] = render_opml(topics, base_url)
    return files


def build_feeds(runtime: Runtime) -> FeedBuildReport:
    """Render every public feed and write the files whose content changed.

    Feeds of topics no longer configured are removed, so they are not served stale.
    """
    config = runtime.config
    root = config.feeds_dir
    files = public_feed_files(runtime.store, config.base_url, config.feeds.max_items)
    report = FeedBuildReport()
    for name, data in files.items():
        written = write_if_changed(root / name, data)
        (report.written if written else report.unchanged).append(name)
    _remove_abandoned_temporaries(root)
    topics_dir = root / "topics"
    if topics_dir.is_dir():
        for path in sorted(topics_dir.iterdir()):
            name = f"topics/{path.name}"
            if path.suffix in (".rss", ".atom") and name not in files:
                path.unlink(missing_ok=True)
                report.removed.append(name)
    log.debug("feeds dir=%s %s", root, report)
    return report


def _remove_abandoned_temporaries(root: Path) -> None:
    """Temporary files of a build that crashed; old enough that no build is still writing them."""
    cutoff = time.time() - TEMPORARY_MAX_AGE
    for path in root.rglob(".*.tmp"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            pass
