"""Unsubscribing over HTTP, against the real server on loopback: the page never acts on GET;
POST (RFC 8058 one-click, or the page's button) does."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import httpx
import pytest

from digestd import links
from digestd.config import Config, HttpConfig, PathsConfig, TopicConfig
from digestd.runtime import Runtime
from digestd.store import Store, SubscriberRecord
from digestd.subscribers import add_subscriber
from digestd.web.server import ServerThread, loopback_socket, make_server

from support import backend_database

BASE_URL = "https://digest.example.org"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Runtime, httpx.Client]]:
    """One database and one real HTTP server on loopback per backend, for the whole module."""
    tmp = tmp_path_factory.mktemp("unsubscribe")
    with backend_database(request.param, tmp / "digestd.db") as url:
        config = dataclasses.replace(
            Config(),
            paths=PathsConfig(seeds_dir=tmp / "seeds", data_dir=tmp / "var"),
            http=HttpConfig(base_url=BASE_URL),
            topics=(TopicConfig("widgets", "Widgets", "widget*"),),
        )
        runtime = Runtime.open(config, store=Store.open(url))
        try:
            with ServerThread(make_server(runtime), loopback_socket()) as server, httpx.Client(
                base_url=server.url, follow_redirects=False, timeout=10
            ) as client:
                yield runtime, client
        finally:
            runtime.close()


@pytest.fixture
def runtime(site: tuple[Runtime, httpx.Client]) -> Runtime:
    return site[0]


@pytest.fixture
def client(site: tuple[Runtime, httpx.Client]) -> httpx.Client:
    return site[1]


@pytest.fixture
def ada(runtime: Runtime) -> SubscriberRecord:
    """A new subscriber for each test (the database lives as long as the module)."""
    address = f"ada.{uuid.uuid4().hex[:8]}@example.org"
    record, _ = add_subscriber(runtime.store, address, ["widgets"])
    return record


def _path(token: str) -> str:
    return links.unsubscribe_url(BASE_URL, token).removeprefix(BASE_URL)


def _status(runtime: Runtime, subscriber: SubscriberRecord) -> str:
    record = runtime.store.subscriber_by_id(subscriber.id)
    assert record is not None
    return record.status


def test_get_shows_a_button_and_changes_nothing(client, runtime, ada) -> None:
    response = client.get(_path(ada.token))
    assert response.status_code == 200
    assert ada.email in response.text
    assert '<form method="post"' in response.text and "<button" in response.text
    assert response.headers["cache-control"] == "no-store"
    assert _status(runtime, ada) == "active"


def test_one_click_post_unsubscribes_at_once(client, runtime, ada) -> None:
    response = client.post(
        _path(ada.token),
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert "You are unsubscribed" in response.text
    assert _status(runtime, ada) == "unsubscribed"
    # again: still fine, still unsubscribed
    assert client.post(_path(ada.token), data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert _status(runtime, ada) == "unsubscribed"


def test_the_pages_button_unsubscribes(client, runtime, ada) -> None:
    page = client.get(_path(ada.token)).text
    assert 'name="List-Unsubscribe" value="One-Click"' in page
    response = client.post(_path(ada.token), data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert _status(runtime, ada) == "unsubscribed"


def test_the_url_in_the_message_is_the_one_that_works(client, runtime, ada) -> None:
    from digestd.digest.render import personal_for

    url = personal_for(
        BASE_URL, email=ada.email, name="", token=ada.token, digest_key="0-1"
    ).unsubscribe_url
    assert client.post(url.removeprefix(BASE_URL)).status_code == 200
    assert _status(runtime, ada) == "unsubscribed"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_bad_token_is_404(client, runtime, ada, method: str) -> None:
    wrong = ada.token[:-1] + ("A" if ada.token[-1] != "A" else "B")
    for token in (wrong, "short", "x" * 200):
        response = client.request(method, _path(token))
        assert response.status_code == 404
    assert _status(runtime, ada) == "active"
