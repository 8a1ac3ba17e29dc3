"""Feeds built from the sample dumps: valid RSS 2.0 and Atom, stable ids, atomic unchanged files."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import os
import re
from pathlib import Path
from xml.etree import ElementTree

import feedparser
import pytest
from lxml import etree

from digestd.config import Config, FeedsConfig, HttpConfig, PathsConfig, TopicConfig
from digestd.feeds import (
    EMPTY_FEED_UPDATED,
    FeedMeta,
    build_feeds,
    entry_id,
    is_web_url,
    render_feed,
    write_if_changed,
    xml_safe,
)
from digestd.ingest import ingest_paths
from digestd.runtime import Runtime
from digestd.store import PaperMatch, PaperRecord, SelectedPaper, Store

BASE_URL = "https://papers.example.org"
ATOM = "{http://www.w3.org/2005/Atom}"
DC_CREATOR = "{http://purl.org/dc/elements/1.1/}creator"
HOSTILE_TITLE = "<script>alert(1)</script> ]]> & \x01 control"
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def make_config(tmp_path: Path, **feeds: int) -> Config:
    return Config(
        paths=PathsConfig(seeds_dir=tmp_path / "seeds", data_dir=tmp_path / "var"),
        http=HttpConfig(base_url=BASE_URL),
        feeds=FeedsConfig(**feeds),
    )


def card_dump(papers: list[tuple[str, str, tuple[str, str] | None]]) -> str:
    """A small card-layout dump; metadata is (first line, date line) or None."""
    blocks = ["new", "Get trending papers in your email inbox!", "Subscribe", "Daily Papers",
              "byAK and the research community", "Mar 10"]
    for title, abstract, meta in papers:
        blocks += [title, abstract]
        if meta:
            blocks.append(f"{meta[0]}\n·\n{meta[1]}")
    return "\n\n".join(blocks) + "\n"


def ingest(runtime: Runtime, *paths: Path) -> None:
    report = ingest_paths(runtime.store, list(paths), classify=runtime.classify)
    assert all(d.status != "failed" for d in report.dumps), report.dumps


def parse(path: Path) -> feedparser.FeedParserDict:
    data = path.read_bytes()
    etree.fromstring(data)  # well-formed XML, or this raises
    parsed = feedparser.parse(data)
    assert not parsed.bozo, f"{path}: {parsed.get('bozo_exception')}"
    return parsed


def test_seed_feeds_are_valid_complete_and_rebuilt_only_on_change(
    store: Store, tmp_path: Path, seed_files: list[Path]
) -> None:
    runtime = Runtime.open(make_config(tmp_path), store=store)
    ingest(runtime, *seed_files)
    report = build_feeds(runtime)
    feeds_dir = runtime.config.feeds_dir
    topics = store.topics()
    expected = {"all.rss", "all.atom", "topics.opml"} | {
        f"topics/{t.slug}.{fmt}" for t in topics for fmt in ("rss", "atom")
    }
    assert set(report.written) == expected and report.unchanged == []
    assert not list(feeds_dir.rglob(".*.tmp")), "temporary files left behind"

    newest = store.papers(limit=50)
    counts = store.topic_paper_counts()
    names = {t.slug: t.name for t in topics}
    for name in sorted(expected - {"topics.opml"}):
        fmt = name.rsplit(".", 1)[1]
        feed = parse(feeds_dir / name)
        assert feed.version == ("rss20" if fmt == "rss" else "atom10"), name
        slug = name.removeprefix("topics/").rsplit(".", 1)[0] if "/" in name else None
        expected_count = min(50, counts.get(slug, 0)) if slug else 50
        assert len(feed.entries) == expected_count, name
        self_links = [link.href for link in feed.feed.links if link.rel == "self"]
        assert self_links == [f"{BASE_URL}/feeds/{name}"], name
        assert feed.feed.language == "en"
        # newest first by first-seen time, then id: the store's own order
        if slug is None:
            assert [e.id for e in feed.entries] == [entry_id(p.key) for p in newest]
        for entry in feed.entries:
            assert entry.link.startswith(f"{BASE_URL}/papers/")
            assert entry.title and entry.summary
            terms = {tag.term for tag in entry.get("tags", [])}
            if fmt == "atom":
                assert slug is None or slug in terms, (name, entry.title)
            else:  # RSS categories carry the topic's name
                assert slug is None or names[slug] in terms, (name, entry.title)
        _check_dates_and_ids(feeds_dir / name, fmt)

    # the all feed: Atom dates, related links and authors as the store has them
    atom = parse(feeds_dir / "all.atom")
    by_id = {entry_id(p.key): p for p in store.papers()}
    for entry in atom.entries:
        paper = by_id[entry.id]
        alternates = [link.href for link in entry.links if link.rel == "alternate"]
        related = [link.href for link in entry.links if link.rel == "related"]
        assert alternates == [f"{BASE_URL}/papers/{paper.slug}"]
        assert related == list(paper.links)
        published = dt.date(*entry.published_parsed[:3])
        assert published == (paper.published or paper.first_seen_at.date())
    papers_with_links = [p for p in newest if p.links]
    assert papers_with_links, "the seeds' newest papers carry URLs in their abstracts"

    opml = ElementTree.parse(feeds_dir / "topics.opml").getroot()
    assert opml.get("version") == "2.0"
    outlines = {o.get("xmlUrl"): o.get("text") for o in opml.iter("outline")}
    for topic in topics:
        assert outlines[f"{BASE_URL}/feeds/topics/{topic.slug}.rss"] == topic.name

    before = {name: (feeds_dir / name).stat().st_mtime_ns for name in expected}
    again = build_feeds(runtime)
    assert again.written == [] and set(again.unchanged) == expected
    assert {name: (feeds_dir / name).stat().st_mtime_ns for name in expected} == before


def _check_dates_and_ids(path: Path, fmt: str) -> None:
    """What feedparser forgives and the W3C validator does not: date syntax, guids, self."""
    root = etree.parse(str(path)).getroot()
    if fmt == "rss":
        channel = root.find("channel")
        assert channel.find(f"{ATOM}link[@rel='self']") is not None
        dates = [channel.findtext("lastBuildDate")]
        for item in channel.findall("item"):
            guid = item.find("guid")
            assert guid.get("isPermaLink") == "false" and guid.text.startswith("urn:uuid:")
            dates.append(item.findtext("pubDate"))
        for value in dates:
            assert email.utils.parsedate_to_datetime(value).tzinfo is not None, value
    else:
        assert root.find(f"{ATOM}author/{ATOM}name") is not None  # entries inherit it
        for element in root.iter(f"{ATOM}updated", f"{ATOM}published"):
            assert RFC3339.match(element.text), element.text
        for entry in root.iter(f"{ATOM}entry"):
            alternates = entry.findall(f"{ATOM}link[@rel='alternate']")
            assert len(alternates) == 1  # RFC 4287 4.1.1: one alternate per type and language
            assert all(link.get("rel") for link in entry.iter(f"{ATOM}link"))


def test_ids_stay_when_upvotes_and_metadata_change(store: Store, tmp_path: Path) -> None:
    first = tmp_path / "a.txt"
    first.write_text(card_dump([
        ("Sparse Widgets for Diffusion Models", "Diffusion models, sparsely.", None),
        ("Tabular Widgets", "Tables: https://example.com/widgets", ("  • 3 authors", "Mar 5 1")),
    ]))
    runtime = Runtime.open(make_config(tmp_path), store=store)
    ingest(runtime, first)
    build_feeds(runtime)
    atom_path = runtime.config.feeds_dir / "all.atom"
    before = {e.title: e for e in parse(atom_path).entries}
    rss_before = [e.id for e in parse(runtime.config.feeds_dir / "all.rss").entries]

    second = tmp_path / "b.txt"
    second.write_text(card_dump([
        ("Sparse widgets for diffusion models", "Diffusion models, sparsely.",
         ("nvidia NVIDIA", "Mar 6 12")),
        ("Tabular Widgets", "Tables: https://example.com/widgets", ("  • 3 authors", "Mar 5 9")),
    ]))
    ingest(runtime, second)
    report = build_feeds(runtime)
    assert "all.atom" in report.written  # updated times and authors changed
    after = {e.title: e for e in parse(atom_path).entries}
    assert {t: e.id for t, e in after.items()} == {t: e.id for t, e in before.items()}
    sparse = after["Sparse Widgets for Diffusion Models"]
    assert sparse.author == "NVIDIA"
    assert sparse.updated_parsed >= before["Sparse Widgets for Diffusion Models"].updated_parsed

    # a restart: a new runtime on the same database renders the same ids and bytes
    runtime.close()
    url = store.engine.url.render_as_string(hide_password=False)
    reopened = Runtime.open(make_config(tmp_path), store=Store.open(url))
    try:
        assert build_feeds(reopened).written == []
        assert [e.id for e in parse(reopened.config.feeds_dir / "all.rss").entries] == rss_before
    finally:
        reopened.close()


def test_hostile_title_is_escaped_in_both_formats(store: Store, tmp_path: Path) -> None:
    dump = tmp_path / "hostile.txt"
    dump.write_bytes(card_dump([
        (HOSTILE_TITLE, "With <b>markup</b> ]]> and \x02 bytes.", ("  • 2 authors", "Mar 5 3")),
    ]).encode())
    runtime = Runtime.open(make_config(tmp_path), store=store)
    ingest(runtime, dump)
    build_feeds(runtime)
    [stored] = store.papers()
    assert "<script>" in stored.title and "]]>" in stored.title
    for fmt in ("rss", "atom"):
        path = runtime.config.feeds_dir / f"all.{fmt}"
        raw = path.read_bytes()
        assert b"<script>" not in raw and b"\x01" not in raw and b"\x02" not in raw
        assert b"&lt;script&gt;alert(1)&lt;/script&gt; ]]&gt; &amp;" in raw
        [entry] = parse(path).entries
        assert entry.title == stored.title
        assert "<b>markup</b>" in entry.summary  # text, shown as text, never as markup
        root = etree.fromstring(raw)
        titles = [t.text for t in root.iter("title", f"{ATOM}title")]
        assert stored.title in titles
        if fmt == "rss":
            assert root.find(f"channel/item/{DC_CREATOR}").text == "2 authors"


def test_topic_feeds_follow_the_configuration(store: Store, tmp_path: Path, seed_files) -> None:
    topics = (
        TopicConfig("diffusion", "Diffusion", "diffusion"),
        TopicConfig("kv", "KV cache", '"kv cache"'),
        TopicConfig("nothing", "Nothing yet", "zzzyzzyx"),
    )
    config = make_config(tmp_path, max_items=5)
    runtime = Runtime.open(dataclasses.replace(config, topics=topics), store=store)
    ingest(runtime, *seed_files[:2])
    feeds_dir = runtime.config.feeds_dir
    (feeds_dir / "topics").mkdir(parents=True)
    abandoned, fresh = feeds_dir / "topics" / ".kv.rss.x1.tmp", feeds_dir / ".all.rss.x2.tmp"
    abandoned.write_bytes(b"half a feed")
    fresh.write_bytes(b"being written")
    os.utime(abandoned, (0, 0))
    build_feeds(runtime)
    assert not abandoned.exists() and fresh.exists()
    for slug in ("diffusion", "kv"):
        entries = parse(feeds_dir / f"topics/{slug}.atom").entries
        assert 0 < len(entries) <= 5
        assert all(slug in {t.term for t in e.tags} for e in entries)
    empty = parse(feeds_dir / "topics/nothing.atom")
    assert empty.entries == []
    assert empty.feed.updated_parsed[:3] == EMPTY_FEED_UPDATED.timetuple()[:3]

    fewer = Runtime.open(dataclasses.replace(config, topics=topics[:1]), store=store)
    report = build_feeds(fewer)
    assert sorted(report.removed) == [
        "topics/kv.atom", "topics/kv.rss", "topics/nothing.atom", "topics/nothing.rss",
    ]
    assert sorted(p.name for p in (feeds_dir / "topics").iterdir()) == [
        "diffusion.atom", "diffusion.rss",
    ]
    assert "topics/nothing.rss" not in (feeds_dir / "topics.opml").read_text()


# Pure pieces -----------------------------------------------------------------------------------


def _paper(number: int, **fields: object) -> PaperRecord:
    seen = dt.datetime(2025, 3, 1, tzinfo=dt.UTC) + dt.timedelta(hours=number)
    values: dict[str, object] = {
        "id": number, "key": f"paper{number}", "slug": f"paper-{number}",
        "title": f"Paper {number}", "abstract": f"About {number}.", "authors_count": None,
        "organization_id": None, "organization": None, "published": None, "upvotes": None,
        "links": (), "batch_id": 1, "first_seen_at": seen, "updated_at": seen,
    }
    values.update(fields)
    return PaperRecord(**values)  # type: ignore[arg-type]


META = FeedMeta(
    name="test",
    title="Test feed",
    description="For tests.",
    urls={"rss": f"{BASE_URL}/feeds/test.rss", "atom": f"{BASE_URL}/feeds/test.atom"},
    home_url=f"{BASE_URL}/",
    topic_names={"t": "Topic T"},
    base_url=BASE_URL,
)


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_render_is_deterministic_and_dated_by_content(fmt: str) -> None:
    items = [
        SelectedPaper(_paper(2, updated_at=dt.datetime(2025, 4, 1, 12, 30, 15, 999, dt.UTC)), ()),
        SelectedPaper(_paper(1, published=dt.date(2024, 12, 24), authors_count=1),
                      (PaperMatch("t", 2.0, ("x",), ()),)),
    ]
    first = render_feed(items, META, fmt)
    assert render_feed(items, META, fmt) == first
    feed = feedparser.parse(first)
    assert not feed.bozo
    assert feed.feed.updated_parsed[:6] == (2025, 4, 1, 12, 30, 15)  # the newest entry's
    assert [e.title for e in feed.entries] == ["Paper 2", "Paper 1"]
    if fmt == "atom":
        assert feed.entries[1].published_parsed[:3] == (2024, 12, 24)
        assert feed.entries[1].author == "1 author"
    else:
        assert feed.entries[1].published_parsed[:4] == (2025, 3, 1, 1)  # first seen
    assert render_feed([], META, fmt) != first
    assert feedparser.parse(render_feed([], META, fmt)).entries == []


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_stored_control_characters_never_reach_the_xml(fmt: str) -> None:
    # The parser drops control characters; rows written by anything else may still hold them.
    paper = _paper(1, title=HOSTILE_TITLE + "\x0c", abstract="a\x00b\x1bc", organization="O\x07rg")
    raw = render_feed([SelectedPaper(paper, ())], META, fmt)
    feed = feedparser.parse(raw)
    assert not feed.bozo
    etree.fromstring(raw)
    assert feed.entries[0].title == xml_safe(HOSTILE_TITLE)
    assert feed.entries[0].summary == "abc"
    assert b"]]&gt;" in raw and b"<script>" not in raw


def test_xml_safe_keeps_text_and_drops_forbidden_characters() -> None:
    assert xml_safe("a\x00b\x08c\td\ne\rf\x0bg\x1f\x7fh\ud800\ufffe") == "abc\td\ne\rfgh"
    assert xml_safe("Ünïcödé — ✓ 𝔸") == "Ünïcödé — ✓ 𝔸"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/a/b", True),
        ("http://example.com/x?a=1&b=2#c", True),
        ("https://例え.jp/パス", True),
        ("javascript:alert(1)", False),
        ("https://", False),
        ("//example.com/x", False),
        ('https://example.com/"onmouseover', False),
        ("https://example.com/\x01", False),
        ("https://[::1/x", False),
    ],
)
def test_is_web_url(url: str, expected: bool) -> None:
    assert is_web_url(url) is expected


def test_entry_id_depends_on_the_key_only() -> None:
    assert entry_id("sparsewidgets") == entry_id("sparsewidgets")
    assert entry_id("sparsewidgets") != entry_id("sparsewidget")
    assert re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", entry_id("x"))


def test_write_if_changed_replaces_atomically(tmp_path: Path) -> None:
    target = tmp_path / "feeds" / "all.rss"
    assert write_if_changed(target, b"one")
    inode = target.stat().st_ino
    assert not write_if_changed(target, b"one")
    assert target.stat().st_ino == inode  # untouched
    assert write_if_changed(target, b"two")
    assert target.read_bytes() == b"two" and target.stat().st_ino != inode
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)
    assert os.listdir(target.parent) == ["all.rss"]
