"""A new visitor in a real browser (headless Chromium driven by Playwright), end to end.

They open the front page, subscribe to two topics, get the confirmation mail (the Maildir
outbox, read with Python's email parser), open its link, confirm, change the cadence on the
manage page, and unsubscribe with the button; the database is checked at every step.
Screenshots of each page at desktop and phone widths go to ``test-artifacts/browser/``.

Chromium is Debian's (/usr/bin/chromium); ``make test`` installs it when it is missing. Without
it this test fails rather than skips: a page nobody looked at is not tested.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import mailbox
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from digestd.config import Config, HttpConfig, PathsConfig
from digestd.ingest import ingest_paths
from digestd.runtime import Runtime
from digestd.store import Store, SubscriberRecord
from digestd.web.server import ServerThread, loopback_socket, make_server

from support import chromium

REPO = Path(__file__).resolve().parents[1]
SEED_FILES = sorted((REPO / "samples" / "seeds").glob("*.txt"))
ARTIFACTS = REPO / "test-artifacts" / "browser"
# both browser modules write screenshots there (and one empties it first): one process runs them
pytestmark = pytest.mark.xdist_group("browser-artifacts")
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
ADDRESS = "ada.lovelace@example.org"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Runtime]]:
    tmp = tmp_path_factory.mktemp("browser")
    sock = loopback_socket()
    address = f"127.0.0.1:{sock.getsockname()[1]}"
    config = dataclasses.replace(
        Config(),
        paths=PathsConfig(seeds_dir=tmp / "seeds", data_dir=tmp / "var"),
        http=HttpConfig(address=address, base_url=f"http://{address}"),
    )
    runtime = Runtime.open(config, store=Store.open(f"sqlite:///{tmp / 'digestd.db'}"))
    ingest_paths(runtime.store, SEED_FILES, classify=runtime.classify)
    try:
        with ServerThread(make_server(runtime), sock) as running:
            yield running.url, runtime
    finally:
        runtime.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def artifacts() -> Path:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


def _shoot(page: Page, name: str, artifacts: Path) -> None:
    """Full-page screenshots at desktop and phone widths; the phone one must not scroll
    sideways (everything fits the width)."""
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        if label == "phone":
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0, f"{name} scrolls sideways on a phone by {overflow}px"
        page.screenshot(path=str(artifacts / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


def _subscriber(runtime: Runtime) -> SubscriberRecord:
    record = runtime.store.subscriber(ADDRESS)
    assert record is not None
    return record


def _confirmation_link(runtime: Runtime) -> str:
    box = mailbox.Maildir(runtime.config.outbox_dir, create=False)
    messages = []
    for key in box.iterkeys():
        with box.get_file(key) as fh:
            messages.append(email.message_from_binary_file(fh, policy=email.policy.default))
    mine = [m for m in messages if ADDRESS in str(m["To"])]
    assert len(mine) == 1, "exactly one mail, the confirmation"
    assert mine[0]["Subject"] == "Confirm your subscription"
    text = mine[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    match = re.search(r"(http://\S+/confirm/\S+)", text)
    assert match
    return match.group(1)


def test_a_visitor_subscribes_confirms_manages_and_leaves(
    server: tuple[str, Runtime], browser: Browser, artifacts: Path
) -> None:
    url, runtime = server
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    try:
        # The front page: topics with descriptions, feed links, recent counts, and the form.
        page.goto(url + "/")
        assert page.locator("html").get_attribute("lang") == "en"
        assert page.get_by_role("heading", name="Get a digest by e-mail").is_visible()
        _shoot(page, "01-index", artifacts)
        page.emulate_media(color_scheme="dark")
        page.set_viewport_size(PHONE)
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(22, 22, 24)", "dark mode colours"
        page.screenshot(path=str(artifacts / "01-index-phone-dark.png"), full_page=True)
        page.emulate_media(color_scheme="light")
        page.set_viewport_size(DESKTOP)

        # Keyboard users see where they are.
        page.get_by_label("E-mail address").focus()
        page.keyboard.press("Tab")
        page.keyboard.press("Shift+Tab")
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline == "solid"

        # Subscribe to two topics from the front page.
        page.get_by_label("E-mail address").fill(ADDRESS)
        page.get_by_label("Agents").check()
        page.get_by_label("Diffusion and image/video generation").check()
        page.get_by_label("Daily").check()
        page.get_by_role("button", name="Subscribe").click()
        page.wait_for_load_state()
        assert page.get_by_role("heading", name="Check your inbox").is_visible()
        _shoot(page, "02-check-inbox", artifacts)
        pending = _subscriber(runtime)
        assert pending.status == "pending" and pending.confirmed_at is None
        assert set(pending.topics) == {"agents", "diffusion"}

        # The confirmation mail arrives; its link shows a button.
        link = _confirmation_link(runtime)
        page.goto(link)
        assert page.get_by_role("heading", name="Confirm your subscription").is_visible()
        _shoot(page, "03-confirm", artifacts)
        assert _subscriber(runtime).status == "pending"
        page.get_by_role("button", name="Confirm my subscription").click()
        page.wait_for_load_state()
        assert page.get_by_role("heading", name="You are subscribed").is_visible()
        _shoot(page, "04-confirmed", artifacts)
        active = _subscriber(runtime)
        assert active.status == "active" and active.confirmed_at is not None
        assert page.get_by_role("link", name="Atom").first.get_attribute("href") == (
            f"{url}/feeds/private/{active.token}.atom"
        )

        # The manage page: change the cadence.
        page.locator("#manage-link").click()
        page.wait_for_load_state()
        assert page.get_by_role("heading", name="Your subscription").is_visible()
        assert page.get_by_label("Daily").is_checked()
        page.get_by_label("Weekly").check()
        page.get_by_role("button", name="Save changes").click()
        page.wait_for_load_state()
        assert "Saved." in page.locator("[role=status]").inner_text()
        assert page.get_by_label("Weekly").is_checked()
        _shoot(page, "05-manage", artifacts)
        changed = _subscriber(runtime)
        assert (changed.status, changed.cadence) == ("active", "weekly")

        # Leave with the button.
        page.get_by_role("link", name="Unsubscribe").click()
        page.wait_for_load_state()
        _shoot(page, "06-unsubscribe", artifacts)
        assert _subscriber(runtime).status == "active"
        page.get_by_role("button", name=f"Unsubscribe {ADDRESS}").click()
        page.wait_for_load_state()
        assert page.get_by_role("heading", name="You are unsubscribed").is_visible()
        _shoot(page, "07-unsubscribed", artifacts)
        assert _subscriber(runtime).status == "unsubscribed"
    finally:
        context.close()


def test_the_form_shows_what_is_wrong_in_the_browser(
    server: tuple[str, Runtime], browser: Browser, artifacts: Path
) -> None:
    url, runtime = server
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    try:
        page.goto(url + "/subscribe")
        _shoot(page, "08-subscribe", artifacts)
        page.get_by_label("E-mail address").fill("not an address")
        page.get_by_label("Time zone").fill("Mars/Olympus_Mons")
        page.get_by_role("button", name="Subscribe").click()
        page.wait_for_load_state()
        alert = page.locator("[role=alert]").inner_text()
        assert "invalid e-mail address" in alert
        assert "choose at least one topic" in alert
        assert "unknown time zone" in alert
        # what was typed is still there
        assert page.get_by_label("E-mail address").input_value() == "not an address"
        assert page.get_by_label("Time zone").input_value() == "Mars/Olympus_Mons"
        _shoot(page, "09-subscribe-errors", artifacts)
        assert runtime.store.subscriber("not an address") is None
    finally:
        context.close()
