"""The README's nginx configuration in front of a real digestd: nginx serves the public feeds
from the files digestd writes (ETag, 304, gzip, the feed media types, a new batch at once),
while private feeds, pages and everything else reach digestd unchanged."""

from __future__ import annotations

import gzip
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import feedparser
import httpx
import pytest
from nginx import Nginx

from digestd.config import Config, HttpConfig, PathsConfig
from digestd.feeds import build_feeds
from digestd.ingest import ingest_paths
from digestd.runtime import Runtime
from digestd.store import Store
from digestd.subscribers import add_subscriber
from digestd.web.server import ServerThread, loopback_socket, make_server

REPO = Path(__file__).resolve().parents[1]
SEEDS = sorted((REPO / "samples" / "seeds").glob("00[0-3]_*.txt"))
LATER_SEED = REPO / "samples" / "seeds" / "004_b2e75cfd9599de01.txt"
#: the public feeds and the media type the README's configuration gives each
PUBLIC = {
    "all.atom": "application/atom+xml",
    "all.rss": "application/rss+xml",
    "all.json": "application/feed+json",
    "topics.opml": "text/x-opml",
}


@dataclass
class Site:
    runtime: Runtime
    front: httpx.Client  # nginx
    direct: httpx.Client  # digestd itself
    nginx: Nginx

    def file(self, name: str) -> bytes:
        return (self.runtime.config.feeds_dir / name).read_bytes()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    Nginx.skip_unless_available()
    tmp = tmp_path_factory.mktemp("nginx-front")
    sock = loopback_socket()
    nginx = Nginx(tmp / "nginx", tmp / "var", upstream=sock.getsockname()[1])
    public = f"http://127.0.0.1:{nginx.port}"
    config = Config(
        paths=PathsConfig(seeds_dir=tmp / "seeds", data_dir=tmp / "var"),
        http=HttpConfig(address=f"127.0.0.1:{sock.getsockname()[1]}", base_url=public),
    )
    runtime = Runtime.open(config, store=Store.open(f"sqlite:///{tmp / 'digestd.db'}"))
    ingest_paths(runtime.store, SEEDS, classify=runtime.classify)
    build_feeds(runtime)
    with ServerThread(make_server(runtime), sock) as thread, nginx, httpx.Client(
        base_url=public, timeout=10
    ) as front, httpx.Client(base_url=thread.url, timeout=10) as direct:
        yield Site(runtime, front, direct, nginx)
    runtime.close()


def test_nginx_accepts_the_readme_configuration(site: Site) -> None:
    site.nginx.check()


@pytest.mark.parametrize("name", PUBLIC)
def test_public_feeds_are_the_files_digestd_wrote(site: Site, name: str) -> None:
    response = site.front.get(f"/feeds/{name}", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    # nginx's own ETag of a file (its mtime and size): served from disk, not proxied
    assert re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+"', response.headers["etag"])
    assert response.headers["content-type"] == PUBLIC[name]
    assert response.headers["cache-control"] == "public, max-age=300"
    assert response.content == site.file(name)
    # and the same document digestd itself serves at that address
    assert response.content == site.direct.get(f"/feeds/{name}").content


def test_a_reader_polling_with_its_etag_gets_304(site: Site) -> None:
    first = site.front.get("/feeds/all.atom")
    again = site.front.get("/feeds/all.atom", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    since = site.front.get(
        "/feeds/all.atom", headers={"If-Modified-Since": first.headers["last-modified"]}
    )
    assert since.status_code == 304


def test_feeds_are_gzipped_for_readers_that_ask(site: Site) -> None:
    with httpx.stream(
        "GET", f"http://127.0.0.1:{site.nginx.port}/feeds/all.atom",
        headers={"Accept-Encoding": "gzip"}, timeout=10,
    ) as response:
        raw = b"".join(response.iter_raw())
    assert response.headers["content-encoding"] == "gzip"
    assert len(raw) < len(site.file("all.atom")) / 2
    assert gzip.decompress(raw) == site.file("all.atom")


def test_feed_readers_read_the_served_feeds(site: Site) -> None:
    for name in ("all.atom", "all.rss"):
        feed = feedparser.parse(site.front.get(f"/feeds/{name}").content)
        assert not feed.bozo, feed.get("bozo_exception")
        assert feed.entries
        # every link a reader follows goes to the public address (nginx), not to digestd's
        assert all(entry.link.startswith(str(site.front.base_url)) for entry in feed.entries)


def test_private_feeds_reach_digestd_and_stay_private(site: Site) -> None:
    subscriber, _ = add_subscriber(site.runtime.store, "reader@example.org", ["agents"])
    path = f"/feeds/private/{subscriber.token}.atom"
    response = site.front.get(path)
    assert response.status_code == 200
    # digestd's own headers, not the public files' caching
    assert response.headers["cache-control"].startswith("private")
    assert response.headers["referrer-policy"] == "no-referrer"
    feed = feedparser.parse(response.content)
    assert not feed.bozo and feed.entries
    direct = feedparser.parse(site.direct.get(path).content)
    assert [e.id for e in feed.entries] == [e.id for e in direct.entries]
    # an unknown token is digestd's answer, not a file nginx looked for
    missing = site.front.get("/feeds/private/not-a-token.atom")
    assert missing.status_code == 404 and "nginx" not in missing.text


def test_pages_reach_digestd(site: Site) -> None:
    page = site.front.get("/")
    assert page.status_code == 200
    assert "<title>digestd" in page.text
    # the page's links name the public address
    assert re.search(rf'href="{re.escape(str(site.front.base_url))}/feeds/', page.text)


def test_a_new_batch_is_served_at_once(site: Site) -> None:
    before = site.front.get("/feeds/all.atom")
    seeds = site.runtime.config.paths.seeds_dir
    seeds.mkdir(parents=True, exist_ok=True)
    shutil.copy(LATER_SEED, seeds / LATER_SEED.name)
    ingest_paths(site.runtime.store, [seeds / LATER_SEED.name], classify=site.runtime.classify)
    build_feeds(site.runtime)
    after = site.front.get("/feeds/all.atom", headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200  # the reader's old ETag no longer matches
    assert after.headers["etag"] != before.headers["etag"]
    assert after.content == site.file("all.atom") != before.content
