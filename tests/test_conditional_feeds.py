"""Conditional feed requests answered in front of the app (digestd.web.conditional): over the
real server, the 304 is the app's own, header for header, and is counted and logged the same;
whatever it does not answer reaches the app unchanged."""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from digestd.config import Config, HttpConfig, LogConfig, PathsConfig
from digestd.feeds import build_feeds
from digestd.ingest import ingest_paths
from digestd.runtime import Runtime
from digestd.store import Store
from digestd.web.conditional import App, ConditionalFeeds
from digestd.web.server import ServerThread, loopback_socket, make_server

REPO = Path(__file__).resolve().parents[1]
SEED_FILES = sorted((REPO / "samples" / "seeds").glob("00[0-4]_*.txt"))
FEEDS = ["/feeds/all.atom", "/feeds/all.rss", "/feeds/all.json", "/feeds/topics.opml"]


@dataclass
class Front:
    app: App
    client: httpx.Client
    answered: list[str]

    def without_front(self) -> ConditionalFeeds:
        front = self.app.conditional_feeds
        assert front is not None
        self.app.conditional_feeds = None
        return front


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    tmp = tmp_path_factory.mktemp("front")
    sock = loopback_socket()
    port = sock.getsockname()[1]
    config = Config(
        paths=PathsConfig(seeds_dir=tmp / "seeds", data_dir=tmp / "var"),
        http=HttpConfig(address=f"127.0.0.1:{port}", base_url=f"http://127.0.0.1:{port}/digest"),
        log=LogConfig(access_log=True),
    )
    runtime = Runtime.open(config, store=Store.open(f"sqlite:///{tmp / 'digestd.db'}"))
    ingest_paths(runtime.store, SEED_FILES, classify=runtime.classify)
    build_feeds(runtime)
    server = make_server(runtime)
    app = server.config.app
    assert isinstance(app, App) and app.conditional_feeds is not None
    answered: list[str] = []
    answer = app.conditional_feeds.answer

    async def spying(scope, send):  # type: ignore[no-untyped-def]
        async def noting(message):  # type: ignore[no-untyped-def]
            # noted before the client can have the answer
            if message["type"] == "http.response.start":
                answered.append(scope["path"])
            await send(message)

        return await answer(scope, noting)

    app.conditional_feeds.answer = spying  # type: ignore[method-assign]
    with ServerThread(server, sock) as thread, httpx.Client(
        base_url=thread.url, timeout=10
    ) as client:
        yield Front(app, client, answered)
    runtime.close()


def _headers(response: httpx.Response) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in response.headers.raw if k.lower() != b"date"]


def _topic_feed(front: Front) -> str:
    opml = front.client.get("/feeds/topics.opml").text
    found = re.search(r"/feeds/(topics/[a-z0-9-]+\.rss)", opml)
    assert found, opml[:500]
    return "/feeds/" + found.group(1)


def _counted(front: Front, method: str) -> float:
    labels = {"route": "/feeds/{path:path}", "method": method, "status": "304"}
    value = front.app.state.metrics.registry.get_sample_value(
        "digestd_http_requests_total", labels
    )
    return value or 0.0


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_the_304_is_the_apps_own(front: Front, encoding: str, method: str) -> None:
    for path in [*FEEDS, _topic_feed(front), "/digest" + FEEDS[0]]:
        headers = {"Accept-Encoding": encoding}
        etag = front.client.get(path, headers=headers).headers["etag"]
        assert etag.startswith('W/"' if encoding == "gzip" else '"')
        for validator in (etag, etag.removeprefix("W/"), f'"other", {etag}', "*"):
            conditional = {**headers, "If-None-Match": validator}
            del front.answered[:]
            ours = front.client.request(method, path, headers=conditional)
            assert front.answered == [path], (path, validator)
            front_ = front.without_front()
            try:
                apps = front.client.request(method, path, headers=conditional)
            finally:
                front.app.conditional_feeds = front_
            assert front.answered == [path]
            assert (ours.status_code, ours.content) == (304, b"")
            assert (apps.status_code, apps.content) == (304, b"")
            assert _headers(ours) == _headers(apps), path


def _wait_until(done: Callable[[], bool]) -> None:
    # generous: the server thread may be starved on a loaded machine; a timeout is a failure
    # here, not a silent return that lets a late log line land among the next request's
    deadline = time.monotonic() + 30
    while not done():
        assert time.monotonic() < deadline, "the server did not count or log the request"
        time.sleep(0.01)


def test_it_is_counted_and_logged_as_the_app_does(
    front: Front, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="digestd.access"):
        etag = front.client.get("/feeds/all.atom").headers["etag"]
        # its line is logged after the answer is sent, and must not land among the next ones
        _wait_until(lambda: any(r.name == "digestd.access" and " status=200 " in r.getMessage()
                                for r in caplog.records))
    lines = []
    for enabled in (True, False):
        before = _counted(front, "GET")
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="digestd.access"):
            saved = front.app.conditional_feeds
            if not enabled:
                front.app.conditional_feeds = None
            try:
                assert front.client.get(
                    "/digest/feeds/all.atom", headers={"If-None-Match": etag}
                ).status_code == 304
            finally:
                front.app.conditional_feeds = saved
            # counted and logged once the answer is sent: the client may be quicker
            _wait_until(lambda before=before: _counted(front, "GET") != before
                        and any(r.name == "digestd.access" for r in caplog.records))
        assert _counted(front, "GET") == before + 1
        (record,) = [r for r in caplog.records if r.name == "digestd.access"]
        lines.append(re.sub(r"ms=[0-9.]+", "ms=N", record.getMessage()))
    assert lines[0] == lines[1] == (
        "request method=GET path=/feeds/all.atom status=304 ms=N client=127.0.0.1"
    )


def test_everything_else_reaches_the_app(front: Front) -> None:
    fresh = front.client.get("/feeds/all.atom")
    etag, modified = fresh.headers["etag"], fresh.headers["last-modified"]
    del front.answered[:]
    other = front.client.get("/feeds/all.atom", headers={"If-None-Match": '"other"'})
    assert (other.status_code, other.content) == (200, fresh.content)
    since = front.client.get("/feeds/all.atom", headers={"If-Modified-Since": modified})
    assert since.status_code == 304
    assert front.client.get("/feeds/none.atom", headers={"If-None-Match": etag}).status_code == 404
    assert front.client.get("/feeds/../x", headers={"If-None-Match": "*"}).status_code == 404
    assert front.client.post("/feeds/all.atom", headers={"If-None-Match": etag}).status_code == 405
    assert front.client.get("/", headers={"If-None-Match": "*"}).status_code == 200
    assert front.answered == []


def test_a_reloaded_configuration_is_followed(front: Front) -> None:
    """A reload hands the app a new runtime: the front answers with its max-age and under its
    path prefix at once, as the app does."""
    runtime = front.app.state.runtime
    config = runtime.config
    reloaded = dataclasses.replace(
        config,
        feeds=dataclasses.replace(config.feeds, max_age=60),
        http=dataclasses.replace(config.http, base_url=config.base_url.replace("/digest", "/news")),
    )
    etag = front.client.get("/feeds/all.atom").headers["etag"]
    front.app.state.runtime = dataclasses.replace(runtime, config=reloaded)
    try:
        conditional = {"If-None-Match": etag}
        del front.answered[:]
        ours = front.client.get("/news/feeds/all.atom", headers=conditional)
        assert front.answered == ["/news/feeds/all.atom"]
        assert ours.status_code == 304
        assert ours.headers["cache-control"] == "public, max-age=60"
        front_ = front.without_front()
        try:
            apps = front.client.get("/news/feeds/all.atom", headers=conditional)
        finally:
            front.app.conditional_feeds = front_
        assert _headers(ours) == _headers(apps)
        # the old prefix is no longer the public one
        del front.answered[:]
        front.client.get("/digest/feeds/all.atom", headers=conditional)
        assert front.answered == []
    finally:
        front.app.state.runtime = runtime
    del front.answered[:]
    again = front.client.get("/digest/feeds/all.atom", headers={"If-None-Match": etag})
    assert again.status_code == 304 and front.answered == ["/digest/feeds/all.atom"]
    assert again.headers["cache-control"] == "public, max-age=300"
