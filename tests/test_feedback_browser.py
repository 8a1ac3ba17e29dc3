""""More like this" from a digest, in a real browser (headless Chromium via Playwright).

A reader opens the link under a paper of their digest (the digest as `digestd digest preview`
composes it), sees the paper and a button, presses it, lands on their settings page where the
rating is listed, and undoes it; the database is checked at every step. Then, over plain HTTP:
a GET never records anything, and a forged token or another reader's form records nothing.
Screenshots go to ``test-artifacts/browser/``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from digestd.config import Config, HttpConfig, PathsConfig
from digestd.delivery.ledger import preview_digest
from digestd.ingest import ingest_paths
from digestd.runtime import Runtime
from digestd.store import Store, SubscriberRecord
from digestd.subscribers import add_subscriber
from digestd.web.server import ServerThread, loopback_socket, make_server

from support import chromium

REPO = Path(__file__).resolve().parents[1]
SEED_FILES = sorted((REPO / "samples" / "seeds").glob("*.txt"))
ARTIFACTS = REPO / "test-artifacts" / "browser"
# both browser modules write screenshots there (and one empties it first): one process runs them
pytestmark = pytest.mark.xdist_group("browser-artifacts")
NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, Runtime, SubscriberRecord, SubscriberRecord]]:
    tmp = tmp_path_factory.mktemp("feedback")
    sock = loopback_socket()
    address = f"127.0.0.1:{sock.getsockname()[1]}"
    config = dataclasses.replace(
        Config(),
        paths=PathsConfig(seeds_dir=tmp / "seeds", data_dir=tmp / "var"),
        http=HttpConfig(address=address, base_url=f"http://{address}"),
    )
    runtime = Runtime.open(config, store=Store.open(f"sqlite:///{tmp / 'digestd.db'}"))
    ada, _ = add_subscriber(runtime.store, "ada@example.org", ["kv-cache"])
    bob, _ = add_subscriber(runtime.store, "bob@example.org", ["kv-cache"])
    ingest_paths(runtime.store, SEED_FILES[:2], classify=runtime.classify)
    try:
        with ServerThread(make_server(runtime), sock) as running:
            yield running.url, runtime, ada, bob
    finally:
        runtime.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def _links(runtime: Runtime, reader: SubscriberRecord, pattern: str) -> list[str]:
    """The links of the reader's next digest that the pattern's group picks out."""
    composed = preview_digest(runtime, reader, NOW)
    assert composed is not None
    return re.findall(pattern, composed.html)


def _digest_links(runtime: Runtime, reader: SubscriberRecord) -> list[str]:
    return _links(runtime, reader, r'href="([^"]+/feedback/[^"]+/(?:up|down))"')


def test_more_like_this_from_a_digest_to_the_settings_page_and_undo(
    server: tuple[str, Runtime, SubscriberRecord, SubscriberRecord], browser: Browser,
) -> None:
    url, runtime, ada, _ = server
    store = runtime.store
    links = _digest_links(runtime, ada)
    assert links and links[0].startswith(f"{url}/feedback/{ada.token}/")
    more = links[0]
    paper_id = int(more.rsplit("/", 2)[1])
    title = store.papers_by_ids([paper_id])[0].title
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(more)
        assert page.get_by_role("heading", name="More papers like this?").is_visible()
        assert page.get_by_role("link", name=title).is_visible()
        page.screenshot(path=str(ARTIFACTS / "20-feedback-confirm.png"), full_page=True)
        assert store.ratings(ada.id) == []  # opening the link records nothing

        page.get_by_role("button", name="More like this").click()
        page.wait_for_load_state()
        assert page.get_by_role("heading", name="Your subscription").is_visible()
        assert "more papers like that one" in page.locator("[role=status]").inner_text()
        listed = page.locator("ul.ratings li")
        assert listed.count() == 1 and title in listed.inner_text()
        page.screenshot(path=str(ARTIFACTS / "21-feedback-listed.png"), full_page=True)
        assert [(r.paper_id, r.value) for r in store.ratings(ada.id)] == [(paper_id, 1)]

        page.get_by_role("button", name="Undo").click()
        page.wait_for_load_state()
        assert "Rating removed." in page.locator("[role=status]").inner_text()
        assert page.locator("ul.ratings li").count() == 0
        assert store.ratings(ada.id) == []
    finally:
        context.close()


def _request(
    url: str, *, data: bytes | None = None, cookie: str = ""
) -> tuple[int, str, str]:
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    if cookie:
        request.add_header("Cookie", cookie)
    if data is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.read().decode(), response.headers.get(
                "Set-Cookie", ""
            )
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), error.headers.get("Set-Cookie", "")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def _form(url: str) -> tuple[str, str]:
    """The CSRF cookie and field a GET of a rating page hands out."""
    status, body, set_cookie = _request(url)
    assert status == 200
    field = re.search(r'name="csrf" value="([^"]+)"', body)
    assert field
    return set_cookie.split(";")[0], field.group(1)


def test_get_never_records_and_forged_or_foreign_tokens_record_nothing(
    server: tuple[str, Runtime, SubscriberRecord, SubscriberRecord],
) -> None:
    url, runtime, ada, bob = server
    store = runtime.store
    more = _digest_links(runtime, ada)[0]
    paper = more.rsplit("/", 2)[1]
    for _ in range(3):  # scanners and link previews open links, repeatedly
        assert _request(more)[0] == 200
        assert _request(more.replace("/up", "/down"))[0] == 200
    assert store.ratings(ada.id) == []

    # A token nobody has: 404 on GET and POST alike.
    forged = f"{url}/feedback/{'x' * len(ada.token)}/{paper}/up"
    assert _request(forged)[0] == 404
    cookie, field = _form(more)
    body = urllib.parse.urlencode({"csrf": field}).encode()
    assert _request(forged, data=body, cookie=cookie)[0] == 404

    # Bob's own form, posted to Ada's link: the form is bound to Bob's URL, so refused.
    bob_url = f"{url}/feedback/{bob.token}/{paper}/up"
    bob_cookie, bob_field = _form(bob_url)
    stolen = urllib.parse.urlencode({"csrf": bob_field}).encode()
    assert _request(more, data=stolen, cookie=bob_cookie)[0] == 403
    # And a POST without the form's field (a cross-site form) records nothing either.
    assert _request(more, data=b"", cookie=cookie)[0] == 403
    assert store.ratings(ada.id) == [] and store.ratings(bob.id) == []

    # The genuine POST records for Ada only, and lands on her settings page.
    status, _, _ = _request(more, data=body, cookie=cookie)
    assert status == 303
    assert [r.value for r in store.ratings(ada.id)] == [1] and store.ratings(bob.id) == []
    store.set_rating(ada.id, int(paper), 0)


def test_the_private_feed_carries_the_readers_rating_links(
    server: tuple[str, Runtime, SubscriberRecord, SubscriberRecord],
) -> None:
    import feedparser

    url, runtime, ada, bob = server
    status, body, _ = _request(f"{url}/feeds/private/{ada.token}.atom")
    assert status == 200
    entries = feedparser.parse(body).entries
    assert entries
    for entry in entries:
        content = entry.content[0].value
        links = re.findall(r'href="([^"]+/feedback/[^"]+)"', content)
        assert [link.rsplit("/", 1)[1] for link in links] == ["up", "down"]
        assert all(f"/feedback/{ada.token}/" in link for link in links)
        assert bob.token not in content
    # following one (as a feed reader's link check would) records nothing
    assert _request(links[0])[0] == 200 and runtime.store.ratings(ada.id) == []


def _paper_links(runtime: Runtime, reader: SubscriberRecord) -> list[str]:
    return _links(runtime, reader, r'class="title"[^>]* href="([^"]+/papers/[^"]+)"')


def test_a_paper_page_reached_from_a_digest_offers_that_reader_the_rating(
    server: tuple[str, Runtime, SubscriberRecord, SubscriberRecord], browser: Browser,
) -> None:
    url, runtime, ada, bob = server
    store = runtime.store
    page_url = _paper_links(runtime, ada)[0]
    assert page_url.endswith(f"?reader={ada.token}")
    slug = page_url.split("/papers/")[1].split("?")[0]
    paper = store.paper_by_slug(slug)
    assert paper is not None

    # The public page, and a token that is nobody's: no buttons, nothing personal.
    public = f"{url}/papers/{slug}"
    status, body, _ = _request(public)
    assert status == 200 and "More like this" not in body and 'name="csrf"' not in body
    status, body, _ = _request(f"{public}?reader={'x' * len(ada.token)}")
    assert status == 200 and "More like this" not in body and 'name="csrf"' not in body

    # Opened from the digest (many times, as scanners do): buttons, and nothing recorded.
    for _ in range(3):
        status, body, _ = _request(page_url)
        assert status == 200
    assert body.count('method="post"') == 2
    assert f'action="/feedback/{ada.token}/{slug}/up"' in body
    assert f'action="/feedback/{ada.token}/{slug}/down"' in body
    assert store.ratings(ada.id) == []

    # Bob's page of the same paper hands out a form bound to Bob's URL: refused on Ada's.
    bob_cookie, bob_field = _form(f"{url}/papers/{slug}?reader={bob.token}")
    stolen = urllib.parse.urlencode({"csrf": bob_field}).encode()
    assert _request(
        f"{url}/feedback/{ada.token}/{slug}/down", data=stolen, cookie=bob_cookie
    )[0] == 403
    assert store.ratings(ada.id) == [] and store.ratings(bob.id) == []

    # In the browser: the headers keep the token private, and the button records the rating.
    context = browser.new_context()
    page = context.new_page()
    try:
        response = page.goto(page_url)
        assert response is not None
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert page.get_by_role("heading", name=paper.title).is_visible()
        page.screenshot(path=str(ARTIFACTS / "22-paper-page-rating.png"), full_page=True)
        page.get_by_role("button", name="Less like this").click()
        page.wait_for_load_state()
        assert page.get_by_role("heading", name="Your subscription").is_visible()
        assert [(r.paper_id, r.value) for r in store.ratings(ada.id)] == [(paper.id, -1)]
        assert store.ratings(bob.id) == []
        # back on the paper page, the rating is shown
        page.goto(page_url)
        assert page.get_by_text("You rated this paper “less like this”.").is_visible()
    finally:
        context.close()
        store.set_rating(ada.id, paper.id, 0)


def test_private_feed_items_link_the_readers_paper_page(
    server: tuple[str, Runtime, SubscriberRecord, SubscriberRecord],
) -> None:
    import feedparser

    url, _runtime, ada, _ = server
    status, body, _ = _request(f"{url}/feeds/private/{ada.token}.atom")
    assert status == 200
    entries = feedparser.parse(body).entries
    assert entries
    for entry in entries:
        assert entry.link.endswith(f"?reader={ada.token}")
        assert f'href="{entry.link}"' in entry.content[0].value
    status, page, _ = _request(entries[0].link)
    assert status == 200 and page.count('method="post"') == 2
    # the public feeds never carry a reader
    status, public, _ = _request(f"{url}/feeds/all.atom")
    assert status == 200 and "?reader=" not in public
