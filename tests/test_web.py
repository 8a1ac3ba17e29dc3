"""The HTTP server over real HTTP on loopback: feeds with validators, private feeds, pages."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import re
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import feedparser
import httpx
import pytest
from starlette.requests import Request

from digestd.config import Config, HttpConfig, PathsConfig
from digestd.feeds import build_feeds, entry_id
from digestd.feeds.model import current_size
from digestd.ingest import ingest_paths
from digestd.runtime import Runtime
from digestd.store import PaperRecord, Store
from digestd.subscribers import add_subscriber
from digestd.web.http import accepts_gzip, not_modified
from digestd.web.server import ServerThread, loopback_socket, make_server

from support import backend_database

REPO = Path(__file__).resolve().parents[1]
SEED_FILES = sorted((REPO / "samples" / "seeds").glob("*.txt"))
HOSTILE_TITLE = "<script>alert(1)</script> ]]> & \x01 control"


@dataclass
class Site:
    url: str
    runtime: Runtime
    client: httpx.Client
    hostile_slug: str

    @property
    def store(self) -> Store:
        return self.runtime.store


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def site_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One database per backend for the whole module: the server tests only read from it."""
    with backend_database(request.param, tmp_path_factory.mktemp("db") / "digestd.db") as url:
        yield url


@pytest.fixture(scope="module")
def site(site_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("site")
    hostile = tmp / "hostile.txt"
    hostile.write_text(
        "\n\n".join([
            "new", "Get trending papers in your email inbox!", "Subscribe", "Daily Papers",
            "byAK and the research community", "Mar 10",
            HOSTILE_TITLE, "A diffusion model abstract with <b>tags</b>: https://example.com/x?a=1&b=2",
            "  • 2 authors\n·\nMar 5 3",
        ]) + "\n"
    )
    sock = loopback_socket()
    port = sock.getsockname()[1]
    config = Config(
        paths=PathsConfig(seeds_dir=tmp / "seeds", data_dir=tmp / "var"),
        http=HttpConfig(address=f"127.0.0.1:{port}"),
    )
    store = Store.open(site_database)
    runtime = Runtime.open(config, store=store)
    ingest_paths(store, [*SEED_FILES, hostile], classify=runtime.classify)
    build_feeds(runtime)
    hostile_slug = next(p.slug for p in store.papers() if p.title.startswith("<script>"))
    with ServerThread(make_server(runtime), sock) as server, httpx.Client(
        base_url=server.url, timeout=10
    ) as client:
        yield Site(server.url, runtime, client, hostile_slug)
    runtime.close()


def arrival_order(papers: Iterable[PaperRecord]) -> list[PaperRecord]:
    """Newest arrival first: the latest batch first, and in it the dump's first paper first."""
    return sorted(papers, key=lambda p: (-p.batch_id, p.id))


def _not_found_body(site: Site) -> bytes:
    response = site.client.get("/no-such-page")
    assert response.status_code == 404
    return response.content


# Public feeds ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/feeds/all.rss", "application/rss+xml; charset=utf-8"),
        ("/feeds/all.atom", "application/atom+xml; charset=utf-8"),
        ("/feeds/topics/diffusion.atom", "application/atom+xml; charset=utf-8"),
        ("/feeds/topics.opml", "text/x-opml; charset=utf-8"),
    ],
)
def test_feed_validators_and_304(site: Site, path: str, content_type: str) -> None:
    identity = {"Accept-Encoding": "identity"}
    first = site.client.get(path, headers=identity)
    assert first.status_code == 200
    assert first.headers["content-type"] == content_type
    etag = first.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)  # strong: a hash of the bytes
    assert first.headers["cache-control"] == "public, max-age=300"
    name = path.removeprefix("/feeds/")
    assert first.content == (site.runtime.config.feeds_dir / name).read_bytes()
    if path.endswith((".rss", ".atom")):
        assert not feedparser.parse(first.content).bozo

    again = site.client.get(path, headers={**identity, "If-None-Match": etag})
    assert (again.status_code, again.content) == (304, b"")
    assert again.headers["etag"] == etag
    assert site.client.get(path, headers={"If-None-Match": f'"other", W/{etag}'}).status_code == 304
    since = site.client.get(path, headers={"If-Modified-Since": first.headers["last-modified"]})
    assert since.status_code == 304
    stale = site.client.get(path, headers={"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"})
    assert stale.status_code == 200
    other = site.client.get(path, headers={"If-None-Match": '"nope"'})
    assert other.status_code == 200
    head = site.client.head(path)
    assert head.status_code == 200 and head.headers["etag"]


def test_feeds_are_gzipped_when_asked(site: Site) -> None:
    response = site.client.get("/feeds/all.atom", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in response.headers["vary"].lower()
    # another representation, so a weak validator; If-None-Match still matches it
    etag = response.headers["etag"]
    assert etag.startswith('W/"')
    plain = (site.runtime.config.feeds_dir / "all.atom").read_bytes()
    assert response.content == plain  # httpx decoded it
    assert gzip.decompress(_raw_body(site, "/feeds/all.atom")) == plain
    cached = site.client.get(
        "/feeds/all.atom", headers={"Accept-Encoding": "gzip", "If-None-Match": etag}
    )
    assert cached.status_code == 304


def _raw_body(site: Site, path: str) -> bytes:
    with site.client.stream("GET", path, headers={"Accept-Encoding": "gzip"}) as response:
        return b"".join(response.iter_raw())


def test_a_rebuilt_feed_is_served_fresh(site: Site) -> None:
    path = site.runtime.config.feeds_dir / "all.rss"
    first = site.client.get("/feeds/all.rss")
    original = path.read_bytes()
    try:
        path.write_bytes(original.replace(b"<title>digestd: all papers", b"<title>changed", 1))
        second = site.client.get("/feeds/all.rss", headers={"If-None-Match": first.headers["etag"]})
        assert second.status_code == 200 and b"<title>changed" in second.content
        assert second.headers["etag"] != first.headers["etag"]
    finally:
        path.write_bytes(original)


# 404s ------------------------------------------------------------------------------------------


def test_unknown_paths_and_tokens_get_the_same_404(site: Site) -> None:
    body = _not_found_body(site)
    assert b"Not found" in body
    subscriber, _ = add_subscriber(site.store, "gone@example.org", ["diffusion"])
    site.store.set_subscriber_status(subscriber.id, "unsubscribed")
    paths = [
        "/nope",
        "/feeds/nope.rss",
        "/feeds/all.xml",
        "/feeds/topics/no-such-topic.rss",
        "/feeds/archive/all/0.atom",
        "/feeds/archive/all/999.atom",
        "/feeds/archive/all/1.xml",
        "/feeds/archive/topics/no-such-topic/1.atom",
        f"/feeds/private/{subscriber.token}/archive/1.atom",  # unsubscribed
        "/topics/no-such-topic",
        "/topics/diffusion?page=999",
        "/topics/diffusion?page=x",
        "/feeds/%2e%2e/%2e%2e/etc/passwd",
        "/feeds/private/short.rss",
        f"/feeds/private/{'x' * 40}.atom",
        f"/feeds/private/{subscriber.token[:-1]}{'A' if subscriber.token[-1] != 'A' else 'B'}.rss",
        f"/feeds/private/{subscriber.token}.rss",  # unsubscribed
        f"/feeds/private/{subscriber.token}.json",
        f"/feeds/private/{subscriber.token}.xml",
        "/papers/no-such-paper",
    ]
    for path in paths:
        response = site.client.get(path)
        assert (path, response.status_code) == (path, 404)
        assert response.content == body, path
    for target in (b"/feeds/../../etc/passwd", b"/feeds/topics/..%2f..%2fdigestd.db"):
        raw = _raw_request(site, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 404 Not Found\r\n"), raw[:100]


def _raw_request(site: Site, request: bytes) -> bytes:
    host, port = site.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(request)
        return conn.recv(65536)


# Private feeds ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_private_feed_holds_only_the_subscribers_topics(site: Site, fmt: str) -> None:
    subscriber, _ = add_subscriber(site.store, f"reader-{fmt}@example.org", ["kv-cache", "agents"])
    path = f"/feeds/private/{subscriber.token}.{fmt}"
    response = site.client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(f"application/{fmt}+xml")
    assert response.headers["cache-control"].startswith("private")
    assert response.headers["referrer-policy"] == "no-referrer"
    feed = feedparser.parse(response.content)
    assert not feed.bozo
    counts = site.store.topic_paper_counts()
    wanted = {"kv-cache", "agents"}
    matches = site.store.paper_matches(p.id for p in site.store.papers())
    expected = arrival_order(
        p for p in site.store.papers() if {m.slug for m in matches[p.id]} & wanted
    )
    held = current_size(len(expected), 50)
    assert len(feed.entries) == held and counts["agents"] > 0
    assert [e.id for e in feed.entries] == [entry_id(p.key) for p in expected[:held]]
    names = {t.slug: t.name for t in site.store.topics()}
    allowed = wanted | {names[s] for s in wanted}
    for entry in feed.entries:
        assert {t.term for t in entry.tags} <= allowed
    # the feed's own URL holds the token; nothing else does
    assert subscriber.token not in site.client.get("/").text
    cached = site.client.get(path, headers={"If-None-Match": response.headers["etag"]})
    assert cached.status_code == 304
    since = site.client.get(path, headers={"If-Modified-Since": response.headers["last-modified"]})
    assert since.status_code == 304


# Pages -----------------------------------------------------------------------------------------


def test_index_lists_topics_with_autodiscovery(site: Site) -> None:
    response = site.client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    html = response.text
    assert '<html lang="en">' in html and 'name="viewport"' in html
    assert "prefers-color-scheme: dark" in html
    head = html.split("</head>", 1)[0]
    base = site.runtime.config.base_url
    assert (
        f'<link rel="alternate" type="application/atom+xml" title="All papers (Atom)" '
        f'href="{base}/feeds/all.atom">'
    ) in head
    for topic in site.store.topics():
        assert f'href="{base}/feeds/topics/{topic.slug}.atom"' in head
        assert f'href="{base}/feeds/topics/{topic.slug}.rss"' in html.split("</head>", 1)[1]
    for paper in arrival_order(site.store.papers())[:3]:
        assert f'href="{base}/papers/{paper.slug}"' in html
    assert "<script>" not in html


def test_paper_page_shows_the_paper_and_escapes_it(site: Site) -> None:
    paper = next(p for p in site.store.papers() if p.title.startswith("TokenButler"))
    response = site.client.get(f"/papers/{paper.slug}")
    assert response.status_code == 200
    html = response.text
    assert "<h1>TokenButler: Token Importance is Predictable</h1>" in html
    assert paper.abstract[:80] in html
    assert '<a href="https://github.com/abdelfattah-lab/TokenButler"' in html
    topics = site.store.paper_matches([paper.id])[paper.id]
    names = {t.slug: t.name for t in site.store.topics()}
    assert topics
    for match in topics:
        assert names[match.slug] in html
        assert f"/feeds/topics/{match.slug}.atom" in html
    assert response.headers["content-security-policy"].startswith("default-src 'none'")

    hostile = site.client.get(f"/papers/{site.hostile_slug}").text
    assert "<script>alert" not in hostile
    assert "&lt;script&gt;alert(1)&lt;/script&gt; ]]&gt; &amp;" in hostile
    assert "&lt;b&gt;tags&lt;/b&gt;" in hostile
    assert '<a href="https://example.com/x?a=1&amp;b=2"' in hostile


def test_healthz(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    response = site.client.get("/healthz")
    # a bare server (no daemon) has no scheduler to report on
    assert (response.status_code, response.text) == (200, "ok\ndatabase: ok\n")
    monkeypatch.setattr(site.store, "ping", lambda: False)
    down = site.client.get("/healthz")
    assert (down.status_code, down.text) == (503, "database unavailable\ndatabase: down\n")


def test_missing_feeds_are_built_when_the_server_starts(site: Site, tmp_path: Path) -> None:
    sock = loopback_socket()
    config = dataclasses.replace(
        site.runtime.config,
        paths=dataclasses.replace(site.runtime.config.paths, data_dir=tmp_path / "var"),
        http=HttpConfig(address=f"127.0.0.1:{sock.getsockname()[1]}"),
    )
    runtime = Runtime(config, site.store, site.runtime.topics)
    with ServerThread(make_server(runtime), sock) as server:
        response = httpx.get(f"{server.url}/feeds/topics/agents.rss")
        assert response.status_code == 200
        assert not feedparser.parse(response.content).bozo


# Pure helpers ----------------------------------------------------------------------------------


def _request(**headers: str) -> Request:
    raw = [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": raw})


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("br;q=1.0, GZIP;q=0.5", True),
        ("gzip;q=0", False),
        ("gzip;q=0.000", False),
        ("identity", False),
        ("", False),
        ("x-gzip-ish", False),
    ],
)
def test_accepts_gzip(header: str, expected: bool) -> None:
    assert accepts_gzip(_request(accept_encoding=header)) is expected


def test_not_modified_prefers_if_none_match() -> None:
    modified = dt.datetime(2025, 3, 1, 12, 0, 0, 500, tzinfo=dt.UTC)
    http_date = "Sat, 01 Mar 2025 12:00:00 GMT"
    assert not_modified(_request(if_none_match='"a"'), '"a"', modified)
    assert not_modified(_request(if_none_match='W/"a"'), '"a"', modified)
    assert not_modified(_request(if_none_match="*"), '"a"', modified)
    both = _request(if_none_match='"b"', if_modified_since=http_date)
    assert not not_modified(both, '"a"', modified)
    assert not_modified(_request(if_modified_since=http_date), '"a"', modified)
    earlier = _request(if_modified_since="Sat, 01 Mar 2025 11:59:59 GMT")
    assert not not_modified(earlier, '"a"', modified)
    assert not not_modified(_request(if_modified_since="yesterday"), '"a"', modified)
    assert not not_modified(_request(), '"a"', modified)
