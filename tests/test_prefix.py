"""Behind a reverse proxy under a path prefix (`http.base_url = https://example.org/digest`):
every link, form and redirect keeps the prefix, over the real HTTP server, whether the proxy
passes the prefix on or strips it."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import mailbox
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import feedparser
import httpx
import pytest

from digestd.config import Config, HttpConfig, PathsConfig
from digestd.ingest import ingest_paths
from digestd.pipeline import publish_feeds
from digestd.runtime import Runtime
from digestd.store import Store
from digestd.web.server import ServerThread, loopback_socket, make_server

from support import chromium

REPO = Path(__file__).resolve().parents[1]
SEED_FILES = sorted((REPO / "samples" / "seeds").glob("*.txt"))
PREFIX = "/digest"
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')
CONFIRM_RE = re.compile(r"(https?://\S+/confirm/\S+)")


class Links(HTMLParser):
    """Every href, src and form action of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src", "action") and value is not None:
                self.found.append(value)


def _local_links(html: str, site_url: str) -> list[str]:
    parser = Links()
    parser.feed(html)
    local = []
    for link in parser.found:
        if link.startswith("#"):
            continue
        absolute = urljoin(site_url + "/", link)
        if absolute.startswith(site_url.split(PREFIX)[0]):
            local.append(urlsplit(absolute).path)
    return local


@dataclass
class Site:
    url: str  # with the prefix: what the public sees
    root: str  # without it: what a proxy that strips the prefix sends to
    runtime: Runtime


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("prefix")
    sock = loopback_socket()
    port = sock.getsockname()[1]
    public = f"http://127.0.0.1:{port}{PREFIX}"
    config = dataclasses.replace(
        Config(),
        paths=PathsConfig(seeds_dir=tmp / "seeds", data_dir=tmp / "var"),
        http=HttpConfig(address=f"127.0.0.1:{port}", base_url=public),
    )
    (tmp / "var").mkdir()
    runtime = Runtime.open(config, store=Store.open(f"sqlite:///{tmp / 'var' / 'digestd.db'}"))
    ingest_paths(runtime.store, SEED_FILES[:2], classify=runtime.classify)
    assert publish_feeds(runtime)
    try:
        with ServerThread(make_server(runtime), sock) as server:
            yield Site(public, server.url, runtime)
    finally:
        runtime.close()


def _mails_to(site: Site, address: str) -> list[EmailMessage]:
    box = mailbox.Maildir(site.runtime.config.outbox_dir, create=True)
    found = []
    for key in box.iterkeys():
        with box.get_file(key) as fh:
            message = email.message_from_binary_file(fh, policy=email.policy.default)
        if address in str(message["To"]):
            found.append(message)
    return found  # type: ignore[return-value]


def _assert_prefixed(site: Site, html: str) -> None:
    links = _local_links(html, site.url)
    assert links, "the page links nowhere"
    outside = [link for link in links if not link.startswith(PREFIX + "/")]
    assert not outside, f"links outside {PREFIX}: {outside}"


def test_pages_link_only_under_the_prefix(site: Site) -> None:
    with httpx.Client(timeout=10) as client:
        front = client.get(site.url + "/")
        assert front.status_code == 200
        _assert_prefixed(site, front.text)
        paper = re.search(r'href="([^"]*/papers/[^"]+)"', front.text)
        assert paper is not None
        page = client.get(urljoin(site.url, paper.group(1)))
        assert page.status_code == 200
        _assert_prefixed(site, page.text)
        for path in ("/subscribe", "/no-such-page"):
            _assert_prefixed(site, client.get(site.url + path).text)


def test_feeds_link_under_the_prefix(site: Site) -> None:
    feed = feedparser.parse(httpx.get(site.url + "/feeds/all.atom", timeout=10).content)
    assert feed.entries
    assert all(e.link.startswith(site.url + "/papers/") for e in feed.entries)


@pytest.mark.parametrize("proxy", ["passes the prefix", "strips the prefix"])
def test_sign_up_confirm_and_manage_through_the_prefix(site: Site, proxy: str) -> None:
    """The whole self-service path, following only what the pages and the mail hand out."""
    address = f"prefix-{proxy.split()[0]}@example.org"
    served = site.url if proxy == "passes the prefix" else site.root

    def fetch(client: httpx.Client, method: str, url: str, **kwargs: object) -> httpx.Response:
        # What the proxy does with a public URL before it reaches digestd.
        path = urlsplit(url).path
        assert path.startswith(PREFIX + "/"), f"{url} is outside {PREFIX}"
        target = url if proxy == "passes the prefix" else site.root + path[len(PREFIX):]
        return client.request(method, target, **kwargs)  # type: ignore[arg-type]

    with httpx.Client(timeout=10) as client:
        form_page = client.get(served + "/subscribe")
        action = re.search(r'<form[^>]*action="([^"]+)"', form_page.text).group(1)  # type: ignore[union-attr]
        assert action == f"{PREFIX}/subscribe"
        signup = fetch(client, "POST", urljoin(site.url, action), data={
            "email": address, "topics": ["diffusion"], "cadence": "daily", "timezone": "UTC",
            "csrf": CSRF_RE.search(form_page.text).group(1),  # type: ignore[union-attr]
        })
        assert signup.status_code == 200 and "Check your inbox" in signup.text
        _assert_prefixed(site, signup.text)

        [mail] = _mails_to(site, address)
        body = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        confirm_url = CONFIRM_RE.search(body).group(1)  # type: ignore[union-attr]
        assert confirm_url.startswith(site.url + "/confirm/")
        confirm_page = fetch(client, "GET", confirm_url)
        assert confirm_page.status_code == 200
        confirm_action = re.search(r'<form[^>]*action="([^"]+)"', confirm_page.text).group(1)  # type: ignore[union-attr]
        confirmed = fetch(client, "POST", urljoin(site.url, confirm_action), data={
            "csrf": CSRF_RE.search(confirm_page.text).group(1),  # type: ignore[union-attr]
        })
        assert confirmed.status_code == 200, confirmed.text
        _assert_prefixed(site, confirmed.text)
        manage_url = re.search(r'id="manage-link">([^<]+)<', confirmed.text).group(1)  # type: ignore[union-attr]
        assert manage_url.startswith(site.url + "/manage/")

        manage = fetch(client, "GET", manage_url)
        assert manage.status_code == 200
        _assert_prefixed(site, manage.text)
        manage_action = re.search(r'<form[^>]*action="([^"]+)"', manage.text).group(1)  # type: ignore[union-attr]
        saved = fetch(client, "POST", urljoin(site.url, manage_action), data={
            "action": "pause", "csrf": CSRF_RE.search(manage.text).group(1),  # type: ignore[union-attr]
        })
        assert saved.status_code == 303
        location = saved.headers["location"]
        assert urlsplit(urljoin(site.url, location)).path.startswith(f"{PREFIX}/manage/")
        after = fetch(client, "GET", urljoin(site.url, location))
        assert after.status_code == 200 and "paused" in after.text.lower()


@pytest.mark.slow
def test_a_browser_signs_up_and_manages_under_the_prefix(site: Site) -> None:
    """Chromium clicks its way through under /digest: every page it lands on is under it."""
    address = "prefix-browser@example.org"
    with chromium() as browser:
        page = browser.new_page()
        visited: list[str] = []
        page.on("framenavigated", lambda frame: visited.append(frame.url))
        page.goto(site.url + "/")
        page.get_by_role("link", name="Get new papers by e-mail").click()
        page.wait_for_load_state()
        assert urlsplit(page.url).path == f"{PREFIX}/subscribe"
        page.get_by_label("E-mail address").fill(address)
        page.get_by_label("Agents").check()
        page.get_by_role("button", name="Subscribe").click()
        page.wait_for_load_state()
        assert page.get_by_role("heading", name="Check your inbox").is_visible()

        [mail] = _mails_to(site, address)
        body = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        page.goto(CONFIRM_RE.search(body).group(1))  # type: ignore[union-attr]
        page.get_by_role("button", name="Confirm my subscription").click()
        page.wait_for_load_state()
        assert page.get_by_role("heading", name="You are subscribed").is_visible()
        page.locator("#manage-link").click()
        page.wait_for_load_state()
        page.get_by_label("Weekly").check()
        page.get_by_role("button", name="Save changes").click()
        page.wait_for_load_state()
        assert "Saved." in page.locator("[role=status]").inner_text()
    paths = [urlsplit(url).path for url in visited if url.startswith("http")]
    assert len(paths) >= 5
    assert all(path.startswith(PREFIX + "/") for path in paths), paths


def test_every_template_builds_its_addresses_with_the_prefix() -> None:
    """Pages not reached above (rating pages, ...) too: a form's action is the prefix plus a
    path, or a URL from digestd.links; no href or action starts at the host's root."""
    templates = sorted((REPO / "templates" / "web").glob("*.html"))
    assert templates
    for template in templates:
        text = template.read_text()
        assert not re.search(r'(?:href|action|src)="/', text), template.name
        for action in re.findall(r'action="([^"]*)"', text):
            assert action.startswith(("{{ path_prefix }}", "{{ links.", "{{ r.undo }}")), (
                template.name, action
            )
