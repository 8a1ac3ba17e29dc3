"""Feeds built from the sample dumps: RSS 2.0, Atom and JSON Feed that say the same thing, in
arrival order, text kept as text, stable ids and dates, atomic files rewritten only on change."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import html
import json
import os
import re
from pathlib import Path
from xml.etree import ElementTree

import feedparser
import pytest
from lxml import etree

from digestd.config import Config, FeedsConfig, HttpConfig, PathsConfig, TopicConfig
from digestd.feeds import (
    ARCHIVE_PAGE_SIZE,
    EMPTY_FEED_UPDATED,
    FeedDoc,
    FeedMeta,
    all_doc,
    build_feeds,
    entry_id,
    is_web_url,
    render_feed,
    write_if_changed,
    xml_safe,
)
from digestd.feeds.items import arrival, feed_item
from digestd.feeds.model import current_size
from digestd.ingest import ingest_paths
from digestd.runtime import Runtime
from digestd.store import PaperRecord, Store

BASE_URL = "https://papers.example.org"
ATOM = "{http://www.w3.org/2005/Atom}"
DC_CREATOR = "{http://purl.org/dc/elements/1.1/}creator"
HOSTILE_TITLE = "<script>alert(1)</script> ]]> & \x01 control"
HOSTILE_ABSTRACT = 'FID<2, <img src=x onerror="alert(1)"> and <b>markup</b> ]]> &amp; \x02'
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
FIRST_OF_SEED_004 = "Dense Reward for Free in Reinforcement Learning from Human Feedback"


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


def html_text(fragment: str) -> str:
    """What a reader shows for an HTML fragment: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]*>", "", fragment))


def check_json_feed(data: bytes) -> dict:
    """The JSON Feed 1.1 rules a reader relies on; returns the parsed document."""
    feed = json.loads(data)
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert isinstance(feed["title"], str) and feed["title"]
    for key in ("home_page_url", "feed_url", "icon", "favicon", "next_url"):
        if key in feed:
            assert is_web_url(feed[key]), key
    ids = [item["id"] for item in feed["items"]]
    assert len(ids) == len(set(ids)) and all(isinstance(i, str) for i in ids)
    for item in feed["items"]:
        assert "content_html" in item or "content_text" in item
        assert RFC3339.match(item["date_published"]), item["date_published"]
        assert all(isinstance(tag, str) for tag in item.get("tags", []))
        assert all(isinstance(a["name"], str) for a in item.get("authors", []))
    return feed


def test_seed_feeds_are_valid_complete_and_rebuilt_only_on_change(
    store: Store, tmp_path: Path, seed_files: list[Path]
) -> None:
    runtime = Runtime.open(make_config(tmp_path), store=store)
    ingest(runtime, *seed_files)
    report = build_feeds(runtime)
    feeds_dir = runtime.config.feeds_dir
    topics = store.topics()
    expected = {"all.rss", "all.atom", "all.json", "topics.opml"} | {
        f"topics/{t.slug}.{fmt}" for t in topics for fmt in ("rss", "atom", "json")
    }
    # the seeds list some papers again, with the same counts: nothing rises
    rising = {"rising.rss", "rising.atom", "rising.json"}
    assert set(report.written) == expected | rising and report.unchanged == []
    assert parse(feeds_dir / "rising.atom").entries == []
    assert not list(feeds_dir.rglob(".*.tmp")), "temporary files left behind"

    total = store.count_papers()
    assert total == 444
    counts = store.topic_paper_counts()
    for name in sorted(n for n in expected if n.endswith((".rss", ".atom"))):
        fmt = name.rsplit(".", 1)[1]
        feed = parse(feeds_dir / name)
        assert feed.version == ("rss20" if fmt == "rss" else "atom10"), name
        slug = name.removeprefix("topics/").rsplit(".", 1)[0] if "/" in name else None
        held = counts.get(slug, 0) if slug else total
        assert len(feed.entries) == current_size(held, 50), name
        links = {link.rel: link.href for link in feed.feed.links}
        assert links["self"] == f"{BASE_URL}/feeds/{name}", name
        if held >= ARCHIVE_PAGE_SIZE:
            assert links["prev-archive"].endswith(f"/{held // ARCHIVE_PAGE_SIZE}.{fmt}")
        assert feed.feed.language == "en"
        for entry in feed.entries:
            assert entry.link.startswith(f"{BASE_URL}/papers/")
            assert entry.title and entry.summary
            terms = {tag.term for tag in entry.get("tags", [])}
            schemes = {tag.scheme for tag in entry.get("tags", [])}
            assert schemes <= {f"{BASE_URL}/topics/"}, schemes
            if slug and fmt == "atom":
                assert slug in terms, (name, entry.title)
            if slug and fmt == "rss":
                assert {t.name for t in topics if t.slug == slug} <= terms
        _check_dates_and_ids(feeds_dir / name, fmt)

    # one order, one date per paper in every format: arrival, the dump's first paper first
    rss, atom = parse(feeds_dir / "all.rss"), parse(feeds_dir / "all.atom")
    jsonfeed = check_json_feed((feeds_dir / "all.json").read_bytes())
    assert rss.entries[0].title == atom.entries[0].title == FIRST_OF_SEED_004
    assert [e.id for e in rss.entries] == [e.id for e in atom.entries] == [
        i["id"] for i in jsonfeed["items"]
    ]
    for r, a, j in zip(rss.entries, atom.entries, jsonfeed["items"], strict=True):
        arrived = dt.datetime(*a.published_parsed[:6], tzinfo=dt.UTC)
        assert r.published_parsed == a.published_parsed == a.updated_parsed
        assert dt.datetime.fromisoformat(j["date_published"]) == arrived
    dates = [e.published_parsed for e in atom.entries]
    assert dates == sorted(dates, reverse=True) and len(set(dates)) == len(dates)

    opml = ElementTree.parse(feeds_dir / "topics.opml").getroot()
    assert opml.get("version") == "2.0" and opml.find("head/docs") is None
    outlines = {o.get("xmlUrl"): o for o in opml.iter("outline")}
    for topic in topics:
        outline = outlines[f"{BASE_URL}/feeds/topics/{topic.slug}.rss"]
        assert outline.get("text") == topic.name
        assert outline.get("htmlUrl") == f"{BASE_URL}/topics/{topic.slug}"

    before = {name: (feeds_dir / name).stat().st_mtime_ns for name in expected}
    again = build_feeds(runtime)
    assert again.written == [] and set(again.unchanged) == expected | rising
    assert {name: (feeds_dir / name).stat().st_mtime_ns for name in expected} == before


def _check_dates_and_ids(path: Path, fmt: str) -> None:
    """What feedparser forgives and the W3C validator does not: date syntax, guids, self."""
    root = etree.parse(str(path)).getroot()
    if fmt == "rss":
        channel = root.find("channel")
        assert channel.find(f"{ATOM}link[@rel='self']") is not None
        assert int(channel.findtext("ttl")) >= 1
        dates = [channel.findtext("lastBuildDate")]
        for item in channel.findall("item"):
            guid = item.find("guid")
            assert guid.get("isPermaLink") == "false" and guid.text.startswith("urn:uuid:")
            dates.append(item.findtext("pubDate"))
            assert all(c.get("domain") == f"{BASE_URL}/topics/" for c in item.iter("category"))
        for value in dates:
            assert email.utils.parsedate_to_datetime(value).tzinfo is not None, value
    else:
        assert root.find(f"{ATOM}author/{ATOM}name") is not None  # entries inherit it
        assert root.findtext(f"{ATOM}icon").endswith("/favicon.ico")
        for element in root.iter(f"{ATOM}updated", f"{ATOM}published"):
            assert RFC3339.match(element.text), element.text
        for entry in root.iter(f"{ATOM}entry"):
            alternates = entry.findall(f"{ATOM}link[@rel='alternate']")
            assert len(alternates) == 1  # RFC 4287 4.1.1: one alternate per type and language
            assert all(link.get("rel") for link in entry.iter(f"{ATOM}link"))
            assert entry.find(f"{ATOM}content").get("type") == "html"


def test_flextok_abstract_reaches_readers_verbatim(
    store: Store, tmp_path: Path, seed_files: list[Path]
) -> None:
    runtime = Runtime.open(make_config(tmp_path), store=store)
    ingest(runtime, *seed_files)
    [flextok] = [p for p in store.papers() if p.title.startswith("FlexTok")]
    assert "FID<2 across" in flextok.abstract
    doc = FeedDoc(all_doc(store, runtime.config).meta, (
        feed_item(flextok, [], flextok.id, BASE_URL, {}),), page=None, pages=0)
    rss = feedparser.parse(render_feed(doc, "rss")).entries[0]
    atom = feedparser.parse(render_feed(doc, "atom")).entries[0]
    jsonfeed = check_json_feed(render_feed(doc, "json"))["items"][0]
    assert "FID<2 across" in html_text(rss.description)
    assert "FID<2 across" in atom.summary
    assert "FID<2 across" in html_text(atom.content[0].value)
    assert "FID<2 across" in jsonfeed["content_text"]
    assert "FID&lt;2 across" in jsonfeed["content_html"]


def test_upvotes_leave_feeds_alone_and_ids_dates_stay(store: Store, tmp_path: Path) -> None:
    first = tmp_path / "a.txt"
    first.write_text(card_dump([
        ("Sparse Widgets for Diffusion Models", "Diffusion models, sparsely.", None),
        ("Tabular Widgets", "Tables: https://example.com/widgets", ("  • 3 authors", "Mar 5 1")),
    ]))
    runtime = Runtime.open(make_config(tmp_path), store=store)
    ingest(runtime, first)
    build_feeds(runtime)
    feeds_dir = runtime.config.feeds_dir
    before = {e.title: e for e in parse(feeds_dir / "all.atom").entries}
    assert list(before) == ["Sparse Widgets for Diffusion Models", "Tabular Widgets"]
    tabular = before["Tabular Widgets"]
    assert "author" not in tabular  # "3 authors" is a count, not a name
    assert [link.href for link in tabular.links if link.rel == "related"] == [
        "https://example.com/widgets"
    ]
    snapshot = {n: (feeds_dir / n).read_bytes() for n in ("all.rss", "all.atom", "all.json")}

    # the same dump again, only upvotes differ: nothing a feed shows changed
    again = tmp_path / "b.txt"
    again.write_text(card_dump([
        ("Sparse Widgets for Diffusion Models", "Diffusion models, sparsely.", None),
        ("Tabular Widgets", "Tables: https://example.com/widgets", ("  • 3 authors", "Mar 5 9")),
    ]))
    ingest(runtime, again)
    # only the rising feed, whose business upvotes are, changes
    assert sorted(build_feeds(runtime).written) == ["rising.atom", "rising.json", "rising.rss"]
    assert {n: (feeds_dir / n).read_bytes() for n in snapshot} == snapshot

    # a later listing fills in the organization and date: content changes, ids and dates stay
    third = tmp_path / "c.txt"
    third.write_text(card_dump([
        ("Sparse widgets for diffusion models", "Diffusion models, sparsely.",
         ("nvidia NVIDIA", "Mar 6 12")),
    ]))
    ingest(runtime, third)
    assert "all.atom" in build_feeds(runtime).written
    after = {e.title: e for e in parse(feeds_dir / "all.atom").entries}
    assert {t: e.id for t, e in after.items()} == {t: e.id for t, e in before.items()}
    assert {t: e.published for t, e in after.items()} == {
        t: e.published for t, e in before.items()
    }
    assert {t: e.updated for t, e in after.items()} == {t: e.updated for t, e in before.items()}
    assert after["Sparse Widgets for Diffusion Models"].author == "NVIDIA"

    # a restart: a new runtime on the same database renders the same bytes
    runtime.close()
    url = store.engine.url.render_as_string(hide_password=False)
    reopened = Runtime.open(make_config(tmp_path), store=Store.open(url))
    try:
        assert build_feeds(reopened).written == []
    finally:
        reopened.close()


def test_hostile_text_stays_text_in_every_format(store: Store, tmp_path: Path) -> None:
    dump = tmp_path / "hostile.txt"
    dump.write_bytes(card_dump([
        (HOSTILE_TITLE, HOSTILE_ABSTRACT, ("  • 2 authors", "Mar 5 3")),
    ]).encode())
    runtime = Runtime.open(make_config(tmp_path), store=store)
    ingest(runtime, dump)
    build_feeds(runtime)
    [stored] = store.papers()
    assert "<script>" in stored.title and "<img" in stored.abstract
    shown_title, shown_abstract = xml_safe(stored.title), xml_safe(stored.abstract)
    for fmt in ("rss", "atom"):
        path = runtime.config.feeds_dir / f"all.{fmt}"
        raw = path.read_bytes()
        assert b"<script>" not in raw and b"<img" not in raw and b"<b>" not in raw
        assert b"\x01" not in raw and b"\x02" not in raw
        root = etree.fromstring(raw)
        assert root.find(f".//{DC_CREATOR}") is None  # an author count is no author
        [entry] = parse(path).entries
        assert entry.title == shown_title
        if fmt == "rss":
            # the description is HTML: the dump's markup arrives escaped, shown as text
            description = root.findtext("channel/item/description")
            assert "<img" not in html_text_tags(description)
            assert shown_abstract in html.unescape(description)
            assert shown_abstract in html_text(entry.description)
        else:
            assert entry.summary == shown_abstract  # typed text
            assert shown_abstract in html_text(entry.content[0].value)
    jsonfeed = check_json_feed((runtime.config.feeds_dir / "all.json").read_bytes())
    [item] = jsonfeed["items"]
    assert item["title"] == shown_title and item["content_text"] == shown_abstract
    assert "<img" not in html_text_tags(item["content_html"])
    assert "authors" not in item


def html_text_tags(fragment: str) -> str:
    """The element names an HTML fragment really has, as "<name" strings."""
    return " ".join(f"<{m}" for m in re.findall(r"<([a-zA-Z][a-zA-Z0-9]*)", fragment))


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
    counts = store.topic_paper_counts()
    for slug in ("diffusion", "kv"):
        entries = parse(feeds_dir / f"topics/{slug}.atom").entries
        # the newest 5, and every paper not yet on a full archive page
        assert len(entries) == current_size(counts[slug], 5) >= 5
        assert all(slug in {t.term for t in e.tags} for e in entries)
    empty = parse(feeds_dir / "topics/nothing.atom")
    assert empty.entries == []
    assert empty.feed.updated_parsed[:3] == EMPTY_FEED_UPDATED.timetuple()[:3]

    fewer = Runtime.open(dataclasses.replace(config, topics=topics[:1]), store=store)
    report = build_feeds(fewer)
    assert sorted(report.removed) == [
        f"topics/{slug}.{fmt}" for slug in ("kv", "nothing") for fmt in ("atom", "json", "rss")
    ]
    assert sorted(p.name for p in (feeds_dir / "topics").iterdir()) == [
        "diffusion.atom", "diffusion.json", "diffusion.rss",
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


def _url(fmt: str, page: int | None) -> str:
    return f"{BASE_URL}/feeds/test.{fmt}" if page is None else f"{BASE_URL}/a/{page}.{fmt}"


META = FeedMeta(
    name="test", title="Test feed", description="For tests.", url=_url,
    home_url=f"{BASE_URL}/", icon_url=f"{BASE_URL}/icon.png",
    favicon_url=f"{BASE_URL}/favicon.ico", ttl_minutes=1,
)


def _doc(*papers: PaperRecord, page: int | None = None, pages: int = 0) -> FeedDoc:
    items = tuple(feed_item(p, ["t"], p.id, BASE_URL, {"t": "Topic T"}) for p in papers)
    return FeedDoc(META, items, page=page, pages=pages)


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_render_is_deterministic_and_dated_by_arrival(fmt: str) -> None:
    doc = _doc(
        _paper(2, updated_at=dt.datetime(2025, 4, 1, 12, 30, 15, 999, dt.UTC)),
        _paper(1, published=dt.date(2024, 12, 24), authors_count=1),
    )
    first = render_feed(doc, fmt)
    assert render_feed(doc, fmt) == first
    feed = feedparser.parse(first)
    assert not feed.bozo
    # the newest arrival, not the later metadata update
    assert feed.feed.updated_parsed[:6] == (2025, 3, 1, 2, 0, 0)
    assert [e.title for e in feed.entries] == ["Paper 2", "Paper 1"]
    # the paper's own date is shown, never used as the entry's date
    assert feed.entries[1].published_parsed[:4] == (2025, 3, 1, 1)
    assert "Published 2024-12-24" in html_text(feed.entries[1].get("content", [{}])[0].get(
        "value", "") if fmt == "atom" else feed.entries[1].description)
    assert "author" not in feed.entries[1]
    assert render_feed(_doc(), fmt) != first
    assert feedparser.parse(render_feed(_doc(), fmt)).entries == []


@pytest.mark.parametrize("fmt", ["rss", "atom", "json"])
def test_archive_links_follow_rfc_5005(fmt: str) -> None:
    def links_of(doc: FeedDoc) -> dict[str, str]:
        raw = render_feed(doc, fmt)
        if fmt == "json":
            feed = json.loads(raw)
            return {"next": feed["next_url"]} if "next_url" in feed else {}
        return {link.rel: link.href for link in feedparser.parse(raw).feed.links}

    current = links_of(_doc(_paper(1), pages=3))
    middle = links_of(_doc(_paper(1), page=2, pages=3))
    newest = links_of(_doc(_paper(1), page=3, pages=3))
    oldest = links_of(_doc(_paper(1), page=1, pages=3))
    if fmt == "json":  # JSON Feed pages with next_url, towards older papers
        assert current == {"next": _url(fmt, 3)} and middle == {"next": _url(fmt, 1)}
        assert oldest == {}
        return
    assert current["prev-archive"] == _url(fmt, 3) and "current" not in current
    assert middle["prev-archive"] == _url(fmt, 1) and middle["next-archive"] == _url(fmt, 3)
    assert middle["current"] == _url(fmt, None) and middle["self"] == _url(fmt, 2)
    assert "next-archive" not in newest and "prev-archive" not in oldest
    raw = render_feed(_doc(_paper(1), page=2, pages=3), fmt)
    assert b"<fh:archive/>" in raw


def test_current_document_holds_every_paper_not_yet_archived() -> None:
    size = ARCHIVE_PAGE_SIZE
    assert current_size(0, 50) == 0
    assert current_size(30, 50) == 30
    assert current_size(size * 3 + 7, 5) == 7  # the papers after the last full page
    assert current_size(size * 3 + 7, 100) == 100
    assert current_size(size * 3, 5) == 5


def test_arrival_follows_the_dump_order_within_a_batch() -> None:
    batch = [_paper(i, first_seen_at=dt.datetime(2025, 3, 1, 9, tzinfo=dt.UTC)) for i in (7, 8, 9)]
    times = [arrival(p, 7) for p in batch]
    assert times[0] == dt.datetime(2025, 3, 1, 9, tzinfo=dt.UTC)
    assert times == sorted(times, reverse=True) and len(set(times)) == 3


@pytest.mark.parametrize("fmt", ["rss", "atom", "json"])
def test_stored_control_characters_never_reach_the_document(fmt: str) -> None:
    # The parser drops control characters; rows written by anything else may still hold them.
    paper = _paper(1, title=HOSTILE_TITLE + "\x0c", abstract="a\x00b\x1bc", organization="O\x07rg")
    raw = render_feed(_doc(paper), fmt)
    if fmt == "json":
        [item] = check_json_feed(raw)["items"]
        assert item["title"] == xml_safe(HOSTILE_TITLE) and item["content_text"] == "abc"
        assert item["authors"] == [{"name": "Org"}]
        return
    feed = feedparser.parse(raw)
    assert not feed.bozo
    etree.fromstring(raw)
    assert feed.entries[0].title == xml_safe(HOSTILE_TITLE)
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
