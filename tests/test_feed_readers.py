"""Real readers on the live feeds over loopback HTTP: archive walks that reach every paper,
feedparser on every feed kind with hostile text, the W3C validator, HTTP caching."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

import feedparser
import httpx
import markupsafe
import pytest

from digestd.config import Config, HttpConfig, PathsConfig
from digestd.feeds import ARCHIVE_PAGE_SIZE, build_feeds, entry_id, xml_safe
from digestd.ingest import ingest_paths
from digestd.runtime import Runtime
from digestd.store import Store, SubscriberRecord
from digestd.subscribers import add_subscriber
from digestd.web.server import ServerThread, loopback_socket, make_server

from support import backend_database

REPO = Path(__file__).resolve().parents[1]
SEED_FILES = sorted((REPO / "samples" / "seeds").glob("*.txt"))
VALIDATOR = REPO.parent / "shared" / "tools" / "validate_feed.py"
HOSTILE_TITLE = "Diffusion <script>alert(1)</script> ]]> & \x01 <i>title</i>"
HOSTILE_ABSTRACT = (
    'Diffusion with FID<2 and p<0.001, the <think> token, <img src=x onerror="alert(1)">, '
    "a CDATA end ]]> and \x02 control characters: https://example.com/x?a=1&b=2"
)
FEED_KINDS = ("all", "topic", "private")


@dataclass
class Site:
    url: str
    runtime: Runtime
    client: httpx.Client
    subscriber: SubscriberRecord

    @property
    def store(self) -> Store:
        return self.runtime.store

    def current(self, kind: str, fmt: str) -> str:
        return {
            "all": f"/feeds/all.{fmt}",
            "topic": f"/feeds/topics/diffusion.{fmt}",
            "private": f"/feeds/private/{self.subscriber.token}.{fmt}",
        }[kind]

    def expected_ids(self, kind: str) -> set[str]:
        """What the store says a feed of this kind holds, ever."""
        papers = self.store.papers()
        if kind == "all":
            return {entry_id(p.key) for p in papers}
        wanted = {"diffusion"} if kind == "topic" else set(self.subscriber.topics)
        matches = self.store.paper_matches(p.id for p in papers)
        return {entry_id(p.key) for p in papers if {m.slug for m in matches[p.id]} & wanted}


def hostile_dump(path: Path) -> Path:
    path.write_text("\n\n".join([
        "new", "Get trending papers in your email inbox!", "Subscribe", "Daily Papers",
        "byAK and the research community", "Mar 10",
        HOSTILE_TITLE, HOSTILE_ABSTRACT, "  • 2 authors\n·\nMar 5 3",
    ]) + "\n")
    return path


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("readers")
    with backend_database(request.param, tmp / "digestd.db") as url:
        sock = loopback_socket()
        config = Config(
            paths=PathsConfig(seeds_dir=tmp / "seeds", data_dir=tmp / "var"),
            http=HttpConfig(address=f"127.0.0.1:{sock.getsockname()[1]}"),
        )
        store = Store.open(url)
        runtime = Runtime.open(config, store=store)
        ingest_paths(store, [*SEED_FILES, hostile_dump(tmp / "hostile.txt")],
                     classify=runtime.classify)
        build_feeds(runtime)
        subscriber, _ = add_subscriber(store, "reader@example.org", ["agents", "diffusion"])
        with ServerThread(make_server(runtime), sock) as server, httpx.Client(
            base_url=server.url, timeout=10
        ) as client:
            yield Site(server.url, runtime, client, subscriber)
        runtime.close()


def fetch(site: Site, url: str) -> httpx.Response:
    response = site.client.get(url)
    assert response.status_code == 200, url
    return response


def links_of(body: bytes, fmt: str) -> dict[str, str]:
    if fmt == "json":
        feed = json.loads(body)
        return {"prev-archive": feed["next_url"]} if "next_url" in feed else {}
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    return {link.rel: link.href for link in parsed.feed.get("links", [])}


def ids_of(body: bytes, fmt: str) -> list[str]:
    if fmt == "json":
        return [item["id"] for item in json.loads(body)["items"]]
    return [entry.id for entry in feedparser.parse(body).entries]


def walk(site: Site, start: str, fmt: str) -> tuple[list[str], list[httpx.Response]]:
    """Follow prev-archive (RSS, Atom) or next_url (JSON Feed) from the current document."""
    response = fetch(site, start)
    ids, pages = ids_of(response.content, fmt), []
    url = links_of(response.content, fmt).get("prev-archive")
    while url:
        assert url.startswith(site.url), url
        page = fetch(site, url.removeprefix(site.url))
        pages.append(page)
        ids += ids_of(page.content, fmt)
        url = links_of(page.content, fmt).get("prev-archive")
    return ids, pages


@pytest.mark.parametrize("fmt", ["atom", "rss", "json"])
@pytest.mark.parametrize("kind", FEED_KINDS)
def test_an_archive_walk_reaches_every_paper(site: Site, kind: str, fmt: str) -> None:
    expected = site.expected_ids(kind)
    ids, pages = walk(site, site.current(kind, fmt), fmt)
    assert set(ids) == expected
    if kind == "all":
        assert len(expected) == 445  # the 444 seed papers and the hostile one
    assert len(pages) == len(expected) // ARCHIVE_PAGE_SIZE
    for page in pages if fmt == "atom" else ():  # the same code serves every format
        assert len(ids_of(page.content, fmt)) == ARCHIVE_PAGE_SIZE
        max_age = int(re.search(r"max-age=(\d+)", page.headers["cache-control"])[1])
        assert max_age >= 7 * 24 * 3600
        scope = "private" if kind == "private" else "public"
        assert page.headers["cache-control"].startswith(scope)
        url = str(page.url).removeprefix(site.url)
        again = site.client.get(url, headers={"If-None-Match": page.headers["etag"]})
        assert again.status_code == 304
        assert fetch(site, url).content == page.content  # rendered the same every time
        links = links_of(page.content, fmt)
        assert links["current"] == site.url + site.current(kind, fmt)
        assert b"<fh:archive/>" in page.content


def test_papers_keep_their_archive_page_when_more_arrive(site: Site, tmp_path: Path) -> None:
    """Pages are numbered from the oldest paper: new arrivals add pages, never shift old ones."""
    first = fetch(site, "/feeds/archive/all/1.atom").content
    before = [e.id for e in feedparser.parse(first).entries]
    newest_page = len(site.store.papers()) // ARCHIVE_PAGE_SIZE
    assert site.client.get(f"/feeds/archive/all/{newest_page + 1}.atom").status_code == 404
    assert [e.id for e in feedparser.parse(
        fetch(site, "/feeds/archive/all/1.atom").content).entries] == before


def test_feedparser_reads_every_feed_kind_with_hostile_text_verbatim(site: Site) -> None:
    # as stored: the parser already dropped the control characters and runs of spaces
    stored = next(p for p in site.store.papers() if p.title.startswith("Diffusion <script>"))
    title, abstract = xml_safe(stored.title), xml_safe(stored.abstract)
    assert "<think>" in abstract and "FID<2" in abstract and "]]>" in abstract
    for kind in FEED_KINDS:
        for fmt in ("rss", "atom"):
            body = fetch(site, site.current(kind, fmt)).content
            feed = feedparser.parse(body)
            assert not feed.bozo, (kind, fmt, feed.get("bozo_exception"))
            [entry] = [e for e in feed.entries if e.title == title]
            # readers render RSS descriptions and Atom content as HTML: the text survives,
            # and no element from the dump does
            shown = entry.description if fmt == "rss" else entry.content[0].value
            assert abstract in html.unescape(re.sub(r"<[^>]*>", "", shown)), (kind, fmt)
            assert not re.search(r"<(img|think|script|i)\b", shown), (kind, fmt)
            if fmt == "atom":
                assert entry.summary == abstract
        feed = json.loads(fetch(site, site.current(kind, "json")).content)
        [item] = [i for i in feed["items"] if i["title"] == title]
        assert item["content_text"] == abstract
        assert not re.search(r"<(img|think|script|i)\b", item["content_html"])
    # FlexTok arrived early: its RSS description is on an archive page
    flextok = next(p for p in site.store.papers() if p.title.startswith("FlexTok"))
    _, pages = walk(site, "/feeds/all.rss", "rss")
    [description] = [e.description for page in pages
                     for e in feedparser.parse(page.content).entries
                     if e.id == entry_id(flextok.key)]
    assert "FID<2 across" in html.unescape(description)


@pytest.mark.skipif(not VALIDATOR.is_file(), reason=f"the W3C feed validator is not at {VALIDATOR} "
                    "(it comes with ../shared/tools; the validator's source is public)")
def test_w3c_validator_finds_no_error(site: Site, tmp_path: Path) -> None:
    if "sqlite" not in site.store.engine.url.drivername:
        pytest.skip("the documents are the same on PostgreSQL; validated once")
    paths = ["/feeds/topics.opml", "/feeds/archive/all/1.rss", "/feeds/archive/all/2.atom",
             "/feeds/archive/topics/diffusion/1.atom", "/feeds/archive/topics/diffusion/1.rss",
             f"/feeds/private/{site.subscriber.token}/archive/1.atom",
             f"/feeds/private/{site.subscriber.token}/archive/1.rss"]
    paths += [site.current(kind, fmt) for kind in FEED_KINDS for fmt in ("rss", "atom")]
    files = []
    for number, path in enumerate(paths):
        target = tmp_path / f"{number}{Path(path).suffix}"
        target.write_bytes(fetch(site, path).content)
        files.append(str(target))
    result = subprocess.run([sys.executable, str(VALIDATOR), *files],
                            capture_output=True, text=True, timeout=120)
    lines = result.stdout.splitlines()
    assert len(lines) == len(files), result.stderr
    assert all("errors=[]" in line for line in lines), "\n".join(
        f"{path}: {line}" for path, line in zip(paths, lines, strict=True))
    assert result.returncode == 0


def test_caching_headers_never_lie(site: Site) -> None:
    for path in ("/feeds/all.atom", "/", site.current("private", "rss"), "/topics/diffusion"):
        refused = site.client.get(path, headers={"Accept-Encoding": "gzip;q=0, identity"})
        assert refused.status_code == 200
        assert "content-encoding" not in refused.headers, path
        for encoding in ("gzip", "identity"):
            response = site.client.get(path, headers={"Accept-Encoding": encoding})
            varies = [v.strip().lower() for value in response.headers.get_list("vary")
                      for v in value.split(",")]
            assert len(varies) == len(set(varies)), (path, varies)

    # narrowing one's topics leaves older papers on top: Last-Modified still never goes back
    subscriber, _ = add_subscriber(site.store, "narrow@example.org", ["agents", "diffusion"])
    path = f"/feeds/private/{subscriber.token}.atom"
    wide = fetch(site, path)
    time.sleep(1.1)  # HTTP dates have whole seconds
    site.store.update_preferences(subscriber.id, name="", cadence=subscriber.cadence,
                                  timezone=subscriber.timezone, topics=["agents"])
    narrow = site.client.get(path, headers={"If-Modified-Since": wide.headers["last-modified"]})
    assert narrow.status_code == 200 and narrow.content != wide.content
    assert parsedate_to_datetime(narrow.headers["last-modified"]) > parsedate_to_datetime(
        wide.headers["last-modified"])


def test_topic_page_autodiscovers_its_feeds_and_offers_mail(site: Site) -> None:
    page = fetch(site, "/topics/diffusion").text
    head = page.split("</head>", 1)[0]
    for fmt, kind in (("atom", "application/atom+xml"), ("rss", "application/rss+xml"),
                      ("json", "application/feed+json")):
        assert re.search(rf'<link rel="alternate" type="{re.escape(kind)}" title="[^"]*" '
                         rf'href="{re.escape(site.url)}/feeds/topics/diffusion\.{fmt}">', head)
    assert f'href="{site.url}/feeds/all.atom"' in head
    assert f'action="{site.url}/subscribe"' in page and 'name="topic" value="diffusion"' in page
    topic = next(t for t in site.store.topics() if t.slug == "diffusion")
    assert str(markupsafe.escape(topic.query)) in page
    signup = fetch(site, "/subscribe?topic=diffusion").text
    assert re.search(r'value="diffusion"[^>]*checked', signup)
    # paper pages link their topics' pages; every page autodiscovers the all-papers feed
    paper = next(p for p in site.store.papers() if p.title.startswith("FlexTok"))
    paper_page = fetch(site, f"/papers/{paper.slug}").text
    for match in site.store.paper_matches([paper.id])[paper.id]:
        assert f'href="{site.url}/topics/{match.slug}"' in paper_page
    for path in ("/", f"/papers/{paper.slug}", "/topics/diffusion", "/subscribe"):
        assert f'type="application/feed+json" title="All papers (JSON Feed)" href="{site.url}' \
               f'/feeds/all.json"' in fetch(site, path).text
    icon = fetch(site, "/icon.png")
    assert icon.headers["content-type"] == "image/png" and icon.content.startswith(b"\x89PNG")
    assert fetch(site, "/favicon.ico").content[:4] == b"\x00\x00\x01\x00"


def test_every_feed_arrives_newest_first_with_one_date(site: Site) -> None:
    for kind in FEED_KINDS:
        dates = {}
        for fmt in ("rss", "atom"):
            feed = feedparser.parse(fetch(site, site.current(kind, fmt)).content)
            dates[fmt] = [(e.id, e.published_parsed) for e in feed.entries]
        items = json.loads(fetch(site, site.current(kind, "json")).content)["items"]
        dates["json"] = [
            (i["id"], dt.datetime.fromisoformat(i["date_published"]).utctimetuple())
            for i in items
        ]
        assert dates["rss"] == dates["atom"] == dates["json"], kind
        times = [t for _, t in dates["atom"]]
        assert times == sorted(times, reverse=True), kind


NEWSBOAT = shutil.which("newsboat")


def newsboat_items(site: Site, tmp_path: Path, url: str) -> list[tuple[str, str, str]]:
    """(guid, title, content) of what newsboat stored after reloading `url` headless."""
    home = tmp_path / re.sub(r"\W+", "_", url)
    home.mkdir(exist_ok=True)
    (home / "urls").write_text(site.url + url + "\n")
    (home / "config").write_text("")
    subprocess.run(
        [NEWSBOAT, "-x", "reload", "-u", str(home / "urls"), "-c", str(home / "cache.db"),
         "-C", str(home / "config")],
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"}, check=True, timeout=60,
        capture_output=True,
    )
    with sqlite3.connect(home / "cache.db") as db:
        return db.execute("SELECT guid, title, content FROM rss_item").fetchall()


@pytest.mark.slow
@pytest.mark.skipif(NEWSBOAT is None, reason="newsboat is not installed: make debs")
def test_newsboat_shows_text_verbatim_and_no_duplicates(site: Site, tmp_path: Path) -> None:
    if "sqlite" not in site.store.engine.url.drivername:
        pytest.skip("the documents are the same on PostgreSQL; read once")
    stored = next(p for p in site.store.papers() if p.title.startswith("Diffusion <script>"))
    flextok = next(p for p in site.store.papers() if p.title.startswith("FlexTok"))
    _, pages = walk(site, "/feeds/all.rss", "rss")
    [flextok_page] = [str(page.url).removeprefix(site.url) for page in pages
                      if entry_id(flextok.key) in ids_of(page.content, "rss")]
    urls = [site.current(kind, "rss") for kind in FEED_KINDS]
    urls += [site.current("all", "atom"), flextok_page]

    def shown(content: str) -> str:
        return html.unescape(re.sub(r"<[^>]*>", "", content))

    before = {}
    for url in urls:
        items = newsboat_items(site, tmp_path, url)
        guids = [guid for guid, _, _ in items]
        assert items and len(guids) == len(set(guids)), url
        before[url] = sorted(guids)
        for guid, title, content in items:
            assert not re.search(r"<(img|think|script|i)\b", content), (url, title)
            if guid == entry_id(stored.key):
                assert title == xml_safe(stored.title)
                assert xml_safe(stored.abstract) in shown(content)
            if guid == entry_id(flextok.key):
                assert "FID<2 across" in shown(content)
    assert any(entry_id(flextok.key) in guids for guids in before.values())

    # the hostile paper seen again with other upvotes: nothing a feed shows changed
    again = hostile_dump(tmp_path / "hostile-again.txt")
    again.write_text(again.read_text().replace("Mar 5 3", "Mar 5 40"))
    ingest_paths(site.store, [again], classify=site.runtime.classify)
    assert {n.split(".")[0] for n in build_feeds(site.runtime).written} <= {"rising"}
    for url in urls:
        items = newsboat_items(site, tmp_path, url)
        assert sorted(guid for guid, _, _ in items) == before[url], url
