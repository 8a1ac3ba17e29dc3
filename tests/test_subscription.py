"""Self-service subscription over real HTTP on loopback, with the Maildir outbox as the inbox.

Every safety point of the sign-up form is exercised as a client would: CSRF refusals, the
same answer for a known address, the hourly limits (429 with Retry-After), each invalid
input with its message, the security headers, and that an unconfirmed address gets nothing
but its one confirmation mail. Runs on SQLite, and on PostgreSQL when its URL is set.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import email.policy
import logging
import mailbox
import re
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select

from digestd import cli, links
from digestd.config import Config, HttpConfig, PathsConfig, SubscribeConfig
from digestd.config_load import load_config
from digestd.delivery import plan_digests, send_pending
from digestd.errors import ConfigError
from digestd.ingest import ingest_paths
from digestd.runtime import Runtime
from digestd.store import Store, SubscriberRecord
from digestd.store.models import Base, Subscriber
from digestd.store.terms import TABLE_PREFIX as TERMS_TABLE_PREFIX
from digestd.subscribers import add_subscriber
from digestd.web.security import CSRF_COOKIE, confirmation_code
from digestd.web.server import ServerThread, loopback_socket, make_server

from support import backend_database, smtp_server

REPO = Path(__file__).resolve().parents[1]
SEED_FILES = sorted((REPO / "samples" / "seeds").glob("*.txt"))
MAILS_PER_ADDRESS = 3
SIGNUPS_PER_CLIENT = 4
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')
CONFIRM_RE = re.compile(r"(https?://\S+/confirm/\S+)")


# Fixtures --------------------------------------------------------------------------------------


@dataclass
class Site:
    url: str
    runtime: Runtime
    database_url: str

    @property
    def store(self) -> Store:
        return self.runtime.store

    def client(self, ip: str) -> httpx.Client:
        """A visitor with a cookie jar; `ip` poses as their address (uvicorn trusts the
        X-Forwarded-For of a proxy on loopback, as behind a local reverse proxy)."""
        return httpx.Client(base_url=self.url, headers={"X-Forwarded-For": ip}, timeout=10)

    def mails_to(self, address: str) -> list[EmailMessage]:
        box = mailbox.Maildir(self.runtime.config.outbox_dir, create=True)
        found = []
        for key in box.iterkeys():
            with box.get_file(key) as fh:
                message = email.message_from_binary_file(fh, policy=email.policy.default)
            if address.casefold() in str(message["To"]).casefold():
                found.append(message)  # type: ignore[arg-type]
        return found

    def subscriber(self, address: str) -> SubscriberRecord | None:
        return self.store.subscriber(address.casefold())


def _fake_ip() -> str:
    value = uuid.uuid4().int
    return f"10.{value % 256}.{(value >> 8) % 256}.{(value >> 16) % 256}"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """One database and one real server per backend; the module's tests use fresh addresses."""
    tmp = tmp_path_factory.mktemp("subscription")
    with backend_database(request.param, tmp / "digestd.db") as url:
        sock = loopback_socket()
        address = f"127.0.0.1:{sock.getsockname()[1]}"
        config = dataclasses.replace(
            Config(),
            paths=PathsConfig(seeds_dir=tmp / "seeds", data_dir=tmp / "var"),
            http=HttpConfig(address=address),
            subscribe=SubscribeConfig(
                mails_per_address_per_hour=MAILS_PER_ADDRESS,
                signups_per_client_per_hour=SIGNUPS_PER_CLIENT,
                default_timezone="Europe/Berlin",
            ),
        )
        runtime = Runtime.open(config, store=Store.open(url))
        try:
            with ServerThread(make_server(runtime), sock) as server:
                yield Site(server.url, runtime, url)
        finally:
            runtime.close()


@pytest.fixture
def visitor(site: Site) -> Iterator[httpx.Client]:
    with site.client(_fake_ip()) as client:
        yield client


def _address() -> str:
    return f"reader.{uuid.uuid4().hex[:10]}@example.org"


def _csrf(client: httpx.Client, path: str = "/subscribe") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    match = CSRF_RE.search(page.text)
    assert match, "the form carries no CSRF token"
    return match.group(1)


def _signup(client: httpx.Client, address: str, **fields: object) -> httpx.Response:
    data: dict[str, object] = {
        "email": address, "name": "Ada Lovelace", "topics": ["agents", "diffusion"],
        "cadence": "daily", "timezone": "Europe/Berlin", **fields,
    }
    data.setdefault("csrf", _csrf(client))
    return client.post("/subscribe", data=data)  # type: ignore[arg-type]


def _confirm_url(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    match = CONFIRM_RE.search(body.get_content())
    assert match, "no confirmation link in the mail"
    return match.group(1)


def _main(html: str) -> str:
    return html[html.index("<main>") : html.index("</main>")]


def _rows(site: Site, address: str) -> int:
    with site.store.read() as session:
        return session.scalar(
            select(func.count(Subscriber.id)).where(Subscriber.email_key == address.casefold())
        ) or 0


# The whole way through -------------------------------------------------------------------------


def test_sign_up_confirm_and_see_the_private_links(site: Site, visitor: httpx.Client) -> None:
    address = _address()
    response = _signup(visitor, address)
    assert response.status_code == 200
    assert "Check your inbox" in response.text and address in response.text
    pending = site.subscriber(address)
    assert pending is not None
    assert (pending.status, pending.confirmed_at) == ("pending", None)
    assert pending.topics == ("diffusion", "agents") or set(pending.topics) == {
        "agents", "diffusion"
    }
    assert (pending.cadence, pending.timezone, pending.name) == (
        "daily", "Europe/Berlin", "Ada Lovelace"
    )

    [mail] = site.mails_to(address)
    assert mail["Subject"] == "Confirm your subscription"
    assert mail["Auto-Submitted"] == "auto-replied"
    assert mail["List-Unsubscribe"] is None  # not list mail: an answer to a request
    assert mail.get_body(("html",)) is not None
    url = _confirm_url(mail)
    assert url.startswith(f"{site.url}/confirm/")

    # Opening the link (as a mail scanner would) confirms nothing.
    page = visitor.get(url)
    assert page.status_code == 200
    assert "Confirm my subscription" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert site.subscriber(address).status == "pending"  # type: ignore[union-attr]
    assert visitor.get(f"/manage/{pending.token}").status_code == 404
    assert visitor.get(f"/feeds/private/{pending.token}.atom").status_code == 404

    token = CSRF_RE.search(page.text).group(1)  # type: ignore[union-attr]
    done = visitor.post(url, data={"csrf": token})
    assert done.status_code == 200
    active = site.subscriber(address)
    assert active is not None and active.status == "active" and active.confirmed_at
    assert links.manage_url(site.url, active.token) in done.text
    assert links.private_feed_url(site.url, active.token, "atom") in done.text
    assert visitor.get(f"/manage/{active.token}").status_code == 200
    assert visitor.get(f"/feeds/private/{active.token}.atom").status_code == 200
    # the link again: still the links page, still one subscriber, no more mail
    assert "You are subscribed" in visitor.get(url).text
    assert _rows(site, address) == 1
    assert len(site.mails_to(address)) == 1


def test_the_front_page_offers_the_form_and_topic_details(
    site: Site, visitor: httpx.Client
) -> None:
    page = visitor.get("/")
    assert page.status_code == 200
    html = page.text
    assert '<form class="stack" method="post" action="/subscribe">' in html
    assert CSRF_RE.search(html)
    assert page.headers["cache-control"] == "no-store"  # holds this browser's token
    for topic in site.store.topics():
        assert f'id="topic-{topic.slug}"' in html
        assert f'<label for="topic-{topic.slug}">' in html
        if topic.description:
            assert topic.description.replace("'", "&#39;").replace('"', "&#34;") in html
        assert f"/feeds/topics/{topic.slug}.atom" in html
    assert "in the last 7 days" in html
    # a label for every field
    for field_id in re.findall(r'<input[^>]* id="([^"]+)"', html):
        assert f'for="{field_id}"' in html, field_id
    # a topic's link to the form arrives with the topic chosen
    chosen = visitor.get("/subscribe", params={"topic": "kv-cache"}).text
    assert 'value="kv-cache" id="topic-kv-cache" checked' in chosen
    assert 'value="agents" id="topic-agents" checked' not in chosen
    # the front page's form works like /subscribe's
    token = CSRF_RE.search(html).group(1)  # type: ignore[union-attr]
    address = _address()
    response = visitor.post(
        "/subscribe",
        data={"csrf": token, "email": address, "topics": "agents", "cadence": "weekly",
              "timezone": "UTC"},
    )
    assert response.status_code == 200
    assert site.subscriber(address).status == "pending"  # type: ignore[union-attr]


# CSRF ------------------------------------------------------------------------------------------


def test_missing_or_forged_csrf_is_refused(site: Site, visitor: httpx.Client) -> None:
    address = _address()
    real = _csrf(visitor)
    forged = real[:-2] + ("AA" if not real.endswith("AA") else "BB")
    for token in ("", forged, "x" * 32, _csrf(visitor, "/")[:10]):
        response = _signup(visitor, address, csrf=token)
        assert response.status_code == 403
        assert "did not come from this site" in response.text
        # what was typed is kept
        assert f'value="{address}"' in response.text
    # a token without the cookie it belongs to (another browser's, or a forger's)
    with site.client(_fake_ip()) as stranger:
        response = _signup(stranger, address, csrf=real)
        assert response.status_code == 403
    # a token made for another form (the manage page's), with the right cookie
    record, _ = add_subscriber(site.store, _address(), ["agents"])
    response = _signup(visitor, address, csrf=_csrf(visitor, f"/manage/{record.token}"))
    assert response.status_code == 403
    assert site.subscriber(address) is None
    assert site.mails_to(address) == []


def test_the_cookie_is_httponly_and_samesite(site: Site, visitor: httpx.Client) -> None:
    cookie = visitor.get("/subscribe").headers["set-cookie"]
    assert cookie.startswith(f"{CSRF_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    # a browser that has it keeps it
    assert "set-cookie" not in visitor.get("/subscribe").headers


def test_manage_and_confirm_forms_need_the_token_too(site: Site, visitor: httpx.Client) -> None:
    record, _ = add_subscriber(site.store, _address(), ["agents"], cadence="daily")
    path = f"/manage/{record.token}"
    visitor.get(path)
    for token in ("", "forged"):
        response = visitor.post(path, data={"csrf": token, "action": "pause"})
        assert response.status_code == 403
        response = visitor.post(
            path, data={"csrf": token, "action": "save", "cadence": "weekly",
                        "timezone": "UTC", "topics": "agents"},
        )
        assert response.status_code == 403
    assert site.store.subscriber_by_id(record.id).status == "active"  # type: ignore[union-attr]
    assert site.store.subscriber_by_id(record.id).cadence == "daily"  # type: ignore[union-attr]

    address = _address()
    assert _signup(visitor, address).status_code == 200
    url = _confirm_url(site.mails_to(address)[0])
    visitor.get(url)
    assert visitor.post(url, data={"csrf": "nope"}).status_code == 403
    assert visitor.post(url).status_code == 403
    assert site.subscriber(address).status == "pending"  # type: ignore[union-attr]


def test_the_manage_page_turns_the_rising_section_on_and_off(
    site: Site, visitor: httpx.Client
) -> None:
    record, _ = add_subscriber(site.store, _address(), ["agents"], cadence="daily")
    assert not record.rising  # rising.section_default is off
    path = f"/manage/{record.token}"
    page = visitor.get(path).text
    assert 'name="rising"' in page and 'id="rising" checked' not in page
    form = {"action": "save", "cadence": "daily", "timezone": "UTC", "topics": "agents"}
    done = visitor.post(path, data={**form, "csrf": _csrf(visitor, path), "rising": "on"})
    assert done.status_code == 303
    assert site.store.subscriber_by_id(record.id).rising  # type: ignore[union-attr]
    assert 'id="rising" checked' in visitor.get(path).text
    # an unticked box sends nothing: off again
    visitor.post(path, data={**form, "csrf": _csrf(visitor, path)})
    assert not site.store.subscriber_by_id(record.id).rising  # type: ignore[union-attr]


# No enumeration --------------------------------------------------------------------------------


def test_an_existing_address_gets_the_same_answer(site: Site) -> None:
    known = _address()
    existing, _ = add_subscriber(site.store, known, ["kv-cache"], cadence="weekly", name="Known")
    new = _address()
    with site.client(_fake_ip()) as one, site.client(_fake_ip()) as two:
        for_new = _signup(one, new)
        for_known = _signup(two, known.upper())
    assert for_new.status_code == for_known.status_code == 200
    # the only difference: the address as typed (normalised), shown back
    assert known.split("@")[0].upper() in for_known.text

    def without_address(html: str) -> str:
        return re.sub(r"<strong>[^<]*@[^<]*</strong>", "<strong>X</strong>", _main(html))

    assert without_address(for_new.text) == without_address(for_known.text)
    assert len(for_new.content) == len(for_known.content)

    def header_names(response: httpx.Response) -> list[str]:
        return sorted(response.headers.keys())

    assert header_names(for_new) == header_names(for_known)
    # no duplicate, nothing changed
    assert _rows(site, known) == 1
    after = site.store.subscriber_by_id(existing.id)
    assert after is not None
    assert (after.status, after.topics, after.cadence, after.name) == (
        "active", ("kv-cache",), "weekly", "Known"
    )
    # the owner is mailed their manage link, not a confirmation
    [mail] = site.mails_to(known)
    text_part = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert links.manage_url(site.url, existing.token) in text_part
    assert "/confirm/" not in text_part
    assert mail["Subject"] == "You already get these digests"


def test_a_former_subscriber_confirms_again(site: Site, visitor: httpx.Client) -> None:
    address = _address()
    record, _ = add_subscriber(site.store, address, ["agents"])
    site.store.set_subscriber_status(record.id, "unsubscribed")
    assert _signup(visitor, address, cadence="weekly").status_code == 200
    assert site.subscriber(address).status == "pending"  # type: ignore[union-attr]
    url = _confirm_url(site.mails_to(address)[0])
    page = visitor.get(url)
    visitor.post(url, data={"csrf": CSRF_RE.search(page.text).group(1)})  # type: ignore[union-attr]
    back = site.subscriber(address)
    assert back is not None and (back.status, back.cadence) == ("active", "weekly")
    assert _rows(site, address) == 1


# Rate limits -----------------------------------------------------------------------------------


def test_confirmation_mails_per_address_are_limited(site: Site) -> None:
    address = _address()
    for _ in range(MAILS_PER_ADDRESS):
        with site.client(_fake_ip()) as client:
            assert _signup(client, address).status_code == 200
    with site.client(_fake_ip()) as client:
        limited = _signup(client, address)
    assert limited.status_code == 429
    assert 0 < int(limited.headers["retry-after"]) <= 3600
    assert "try again in about" in limited.text
    assert len(site.mails_to(address)) == MAILS_PER_ADDRESS
    assert _rows(site, address) == 1


def test_sign_ups_per_client_are_limited(site: Site) -> None:
    ip = _fake_ip()
    with site.client(ip) as client:
        for _ in range(SIGNUPS_PER_CLIENT):
            assert _signup(client, _address()).status_code == 200
        address = _address()
        limited = _signup(client, address)
        assert limited.status_code == 429
        assert 0 < int(limited.headers["retry-after"]) <= 3600
    assert site.subscriber(address) is None
    assert site.mails_to(address) == []
    # another client is not affected
    with site.client(_fake_ip()) as other:
        assert _signup(other, _address()).status_code == 200


def test_rate_slots_free_up_after_the_window(site: Site) -> None:
    store, now, hour = site.store, dt.datetime.now(dt.UTC), dt.timedelta(hours=1)
    key = uuid.uuid4().hex
    assert store.take_rate_slot("test", key, limit=2, window=hour, now=now) is None
    later = now + dt.timedelta(minutes=10)
    assert store.take_rate_slot("test", key, limit=2, window=hour, now=later) is None
    retry = store.take_rate_slot("test", key, limit=2, window=hour, now=later)
    assert retry == 50 * 60
    assert store.take_rate_slot("test", key, limit=2, window=hour, now=now + hour) is None


# Invalid input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"email": "not-an-address"}, "invalid e-mail address"),
        ({"email": ""}, "an e-mail address is required"),
        ({"email": "ada@example.org\r\nBcc: victim@example.com"}, "line break"),
        ({"email": "a" * 250 + "@example.org"}, "longer than 254 characters"),
        ({"name": "Ada\r\nBcc: victim@example.com"}, "invalid name: contains a line break"),
        ({"name": "A" * 101}, "invalid name: longer than 100 characters"),
        ({"topics": ["agents", "no-such-topic"]}, "unknown topic &#39;no-such-topic&#39;"),
        ({"topics": []}, "choose at least one topic"),
        ({"timezone": "Mars/Olympus_Mons"}, "unknown time zone &#39;Mars/Olympus_Mons&#39;"),
        ({"timezone": "../../etc/passwd"}, "unknown time zone"),
        ({"timezone": "X" * 200}, "longer than 64 characters"),
        ({"cadence": "hourly"}, "unknown cadence &#39;hourly&#39;"),
    ],
)
def test_invalid_input_is_shown_with_its_message(
    site: Site, visitor: httpx.Client, fields: dict[str, object], message: str
) -> None:
    address = _address()
    response = _signup(visitor, address, **fields)
    assert response.status_code == 400
    html = response.text
    assert message in html
    # summed up at the top, and tied to the field it is about
    assert 'role="alert"' in html and re.search(r'aria-describedby="[^"]*-error"', html)
    # what was typed is kept (escaped)
    typed_email = str(fields.get("email", address))
    if "\r" not in typed_email and len(typed_email) < 254:
        assert f'value="{typed_email}"' in html
    if "name" in fields and "\r" not in str(fields["name"]):
        assert f'value="{fields["name"]}"' in html
    for slug in fields.get("topics", ["agents", "diffusion"]):  # type: ignore[attr-defined]
        if slug == "agents":
            assert 'value="agents" id="topic-agents" checked' in html
    assert site.subscriber(address) is None
    assert site.mails_to(address) == []


def test_hostile_input_is_escaped_when_shown_again(site: Site, visitor: httpx.Client) -> None:
    response = _signup(visitor, '"><script>alert(1)</script>', name="<b>x</b>")
    assert response.status_code == 400
    assert "<script>alert(1)" not in response.text
    assert "&lt;b&gt;x&lt;/b&gt;" in response.text


def test_an_oversized_form_is_refused_before_parsing(site: Site, visitor: httpx.Client) -> None:
    token = _csrf(visitor)
    response = visitor.post(
        "/subscribe", data={"csrf": token, "email": _address(), "name": "x" * 20_000}
    )
    assert response.status_code == 413
    assert "Content-Security-Policy" in response.headers


# Headers ---------------------------------------------------------------------------------------


def test_every_page_sends_the_security_headers(site: Site, visitor: httpx.Client) -> None:
    record, _ = add_subscriber(site.store, _address(), ["agents"])
    for path in ("/", "/subscribe", f"/manage/{record.token}", f"/unsubscribe/{record.token}",
                 "/no-such-page"):
        response = visitor.get(path)
        csp = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
        assert "script-src" not in csp  # no script at all
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] in ("same-origin", "no-referrer")
    manage = visitor.get(f"/manage/{record.token}")
    assert manage.headers["referrer-policy"] == "no-referrer"
    assert manage.headers["cache-control"] == "no-store"


# Confirmation links ----------------------------------------------------------------------------


def test_confirmation_links_are_signed_and_expire(site: Site, visitor: httpx.Client) -> None:
    address = _address()
    _signup(visitor, address)
    pending = site.subscriber(address)
    assert pending is not None
    key = site.store.site_key("web")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    expired = visitor.get(f"/confirm/{confirmation_code(key, pending.token, past)}")
    assert expired.status_code == 410
    assert "expired" in expired.text and f'href="{site.url}/subscribe"' in expired.text
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    good = confirmation_code(key, pending.token, future)
    token, stamp, mac = good.split(".")
    for bad in (
        f"{token}.{int(stamp) + 1}.{mac}",           # a later expiry, same signature
        confirmation_code(b"k" * 32, pending.token, future),  # another key
        f"{token}..{mac}", "nonsense", f"{token}",
    ):
        assert visitor.get(f"/confirm/{bad}").status_code == 404
        assert visitor.post(f"/confirm/{bad}").status_code == 404
    assert site.subscriber(address).status == "pending"  # type: ignore[union-attr]


def test_unconfirmed_sign_ups_are_purged_after_the_expiry(
    site: Site, visitor: httpx.Client
) -> None:
    fresh, stale, former = _address(), _address(), _address()
    _signup(visitor, fresh)
    with site.client(_fake_ip()) as other:
        _signup(other, stale)
    record, _ = add_subscriber(site.store, former, ["agents"])
    site.store.set_subscriber_status(record.id, "unsubscribed")
    with site.client(_fake_ip()) as third:
        _signup(third, former)
    url = _confirm_url(site.mails_to(stale)[0])
    hours = site.runtime.config.subscribe.confirm_hours
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours, minutes=1)
    # only sign-ups older than the expiry: pretend "fresh" came just now, later
    with site.store.write() as session:
        row = session.scalar(select(Subscriber).where(Subscriber.email_key == fresh))
        assert row is not None
        row.confirm_sent_at = later
    assert site.store.purge_expired_signups(hours, now=later) >= 2
    assert site.subscriber(stale) is None
    assert site.subscriber(fresh).status == "pending"  # type: ignore[union-attr]
    assert site.subscriber(former).status == "unsubscribed"  # type: ignore[union-attr]
    assert visitor.get(url).status_code == 404


# Nothing for the unconfirmed -------------------------------------------------------------------


def test_an_unconfirmed_address_gets_no_digest(site: Site) -> None:
    everything = ["agents", "diffusion", "kv-cache", "reasoning", "llm-inference"]
    known = [t.slug for t in site.store.topics()]
    topics = [t for t in everything if t in known]
    pending_address, active_address = _address(), _address()
    with site.client(_fake_ip()) as client:
        _signup(client, pending_address, cadence="immediate", topics=topics)
    with site.client(_fake_ip()) as client:
        _signup(client, active_address, cadence="immediate", topics=topics)
        url = _confirm_url(site.mails_to(active_address)[0])
        page = client.get(url)
        client.post(url, data={"csrf": CSRF_RE.search(page.text).group(1)})  # type: ignore[union-attr]
    pending = site.subscriber(pending_address)
    active = site.subscriber(active_address)
    assert pending is not None and pending.status == "pending"
    assert active is not None and active.status == "active"

    # New papers arrive after both sign-ups, then digests are planned and sent.
    report = ingest_paths(site.store, SEED_FILES, classify=site.runtime.classify)
    assert sum(d.new for d in report.dumps) > 0
    now = dt.datetime.now(dt.UTC)
    plan_digests(site.runtime, now)
    send_pending(site.runtime, now)

    # the confirmed reader gets a digest; the unconfirmed address only its confirmation
    digests = [m for m in site.mails_to(active_address) if "new paper" in str(m["Subject"])]
    assert len(digests) == 1
    assert [str(m["Subject"]) for m in site.mails_to(pending_address)] == [
        "Confirm your subscription"
    ]
    assert site.store.deliveries(subscriber_id=pending.id) == []
    assert site.subscriber(pending_address).status == "pending"  # type: ignore[union-attr]


# Over SMTP -------------------------------------------------------------------------------------


def _smtp_site(site: Site, tmp_path: Path, smtp_port: int) -> tuple[Runtime, socket.socket]:
    sock = loopback_socket()
    config = dataclasses.replace(
        site.runtime.config,
        paths=dataclasses.replace(site.runtime.config.paths, data_dir=tmp_path / "var"),
        http=HttpConfig(address=f"127.0.0.1:{sock.getsockname()[1]}"),
        mail=dataclasses.replace(site.runtime.config.mail, transport="smtp"),
        smtp=dataclasses.replace(site.runtime.config.smtp, host="127.0.0.1", port=smtp_port,
                                 timeout=5),
    )
    return Runtime(config, site.store, site.runtime.topics), sock


def test_the_confirmation_goes_out_over_smtp(site: Site, tmp_path: Path) -> None:
    address = _address()
    with smtp_server() as (inbox, port):
        runtime, sock = _smtp_site(site, tmp_path, port)
        with ServerThread(make_server(runtime), sock) as server, httpx.Client(
            base_url=server.url, headers={"X-Forwarded-For": _fake_ip()}, timeout=10
        ) as client:
            response = _signup(client, address, name="Zoë Bcc: someone")
            assert response.status_code == 200
    [(recipients, content)] = inbox.received
    assert recipients == [address]
    message = email.message_from_bytes(content, policy=email.policy.default)
    assert message["Subject"] == "Confirm your subscription"
    # The address is not confirmed: whatever was typed as a name stays out of the mail.
    assert message["To"].addresses[0].display_name == ""  # type: ignore[union-attr]
    assert "Zoë" not in content.decode("ascii")
    assert message.get_all("Bcc") is None
    assert "/confirm/" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_a_mail_server_that_is_down_gets_a_503(site: Site, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here
    runtime, sock = _smtp_site(site, tmp_path, port)
    with ServerThread(make_server(runtime), sock) as server, httpx.Client(
        base_url=server.url, headers={"X-Forwarded-For": _fake_ip()}, timeout=10
    ) as client:
        response = _signup(client, _address())
    assert response.status_code == 503
    assert response.headers["retry-after"] == "300"
    assert "could not be sent" in response.text


# Manage ----------------------------------------------------------------------------------------


def test_manage_changes_pauses_resumes_and_resets(site: Site, visitor: httpx.Client) -> None:
    record, _ = add_subscriber(site.store, _address(), ["agents"], cadence="daily")
    path = f"/manage/{record.token}"
    page = visitor.get(path)
    assert page.status_code == 200
    assert links.private_feed_url(site.url, record.token, "atom") in page.text
    assert 'id="cadence-daily" checked' in page.text
    token = CSRF_RE.search(page.text).group(1)  # type: ignore[union-attr]

    saved = visitor.post(
        path, data={"csrf": token, "action": "save", "name": "Grace", "cadence": "weekly",
                    "timezone": "Asia/Tokyo", "topics": ["agents", "kv-cache"]},
    )
    assert saved.status_code == 303 and saved.headers["location"] == f"{path}?done=saved"
    after = site.store.subscriber_by_id(record.id)
    assert after is not None
    assert (after.name, after.cadence, after.timezone, set(after.topics)) == (
        "Grace", "weekly", "Asia/Tokyo", {"agents", "kv-cache"}
    )
    assert "Saved." in visitor.get(saved.headers["location"]).text

    bad = visitor.post(
        path, data={"csrf": token, "action": "save", "name": "Grace", "cadence": "weekly",
                    "timezone": "Nowhere/Special", "topics": ["agents"]},
    )
    assert bad.status_code == 400 and "unknown time zone" in bad.text
    assert 'value="Nowhere/Special"' in bad.text
    assert site.store.subscriber_by_id(record.id).timezone == "Asia/Tokyo"  # type: ignore[union-attr]

    assert visitor.post(path, data={"csrf": token, "action": "pause"}).status_code == 303
    assert site.store.subscriber_by_id(record.id).status == "paused"  # type: ignore[union-attr]
    assert "Resume digests" in visitor.get(path).text
    assert visitor.post(path, data={"csrf": token, "action": "resume"}).status_code == 303
    assert site.store.subscriber_by_id(record.id).status == "active"  # type: ignore[union-attr]

    reset = visitor.post(path, data={"csrf": token, "action": "reset"})
    assert reset.status_code == 303
    new_token = site.store.subscriber_by_id(record.id).token  # type: ignore[union-attr]
    assert new_token != record.token
    assert reset.headers["location"] == f"/manage/{new_token}?done=reset"
    for old in (path, f"/feeds/private/{record.token}.atom", f"/unsubscribe/{record.token}"):
        assert visitor.get(old).status_code == 404
    assert "the old ones no longer work" in visitor.get(reset.headers["location"]).text
    assert visitor.post(path, data={"csrf": token, "action": "pause"}).status_code == 404


def test_unsubscribe_then_resubscribe(site: Site, visitor: httpx.Client) -> None:
    record, _ = add_subscriber(site.store, _address(), ["agents"])
    page = visitor.get(f"/unsubscribe/{record.token}")
    assert "<button" in page.text and f'href="/manage/{record.token}"' in page.text
    done = visitor.post(f"/unsubscribe/{record.token}", data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    assert "Re-subscribe" in done.text
    assert site.store.subscriber_by_id(record.id).status == "unsubscribed"  # type: ignore[union-attr]
    manage = visitor.get(f"/manage/{record.token}")
    assert "Re-subscribe" in manage.text
    token = CSRF_RE.search(manage.text).group(1)  # type: ignore[union-attr]
    back = visitor.post(f"/manage/{record.token}", data={"csrf": token, "action": "resume"})
    assert back.status_code == 303
    again = site.store.subscriber_by_id(record.id)
    assert again is not None and again.status == "active"
    assert again.since_batch_id == site.store.latest_batch_id()


def test_self_service_can_be_turned_off(site: Site, tmp_path: Path) -> None:
    sock = loopback_socket()
    config = dataclasses.replace(
        site.runtime.config,
        paths=dataclasses.replace(site.runtime.config.paths, data_dir=tmp_path / "var"),
        http=HttpConfig(address=f"127.0.0.1:{sock.getsockname()[1]}"),
        subscribe=SubscribeConfig(enabled=False),
    )
    runtime = Runtime(config, site.store, site.runtime.topics)
    record, _ = add_subscriber(site.store, _address(), ["agents"])
    with ServerThread(make_server(runtime), sock) as server, httpx.Client(
        base_url=server.url, timeout=10
    ) as client:
        index = client.get("/")
        assert index.status_code == 200
        assert 'action="/subscribe"' not in index.text and "/subscribe" not in index.text
        assert "set-cookie" not in index.headers
        assert client.get("/subscribe").status_code == 404
        assert client.post("/subscribe", data={"email": _address()}).status_code == 404
        assert client.get("/confirm/anything.1.x").status_code == 404
        # links already handed out keep working
        assert client.get(f"/manage/{record.token}").status_code == 200
        assert client.get(f"/unsubscribe/{record.token}").status_code == 200


# Operators -------------------------------------------------------------------------------------


@pytest.fixture
def keep_logging() -> Iterator[None]:
    """cli.main sets up logging on the root logger; put the test runner's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("keep_logging")
def test_subscribers_list_shows_each_state(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    addresses = {state: _address() for state in ("pending", "active", "paused", "unsubscribed")}
    with site.client(_fake_ip()) as client:
        _signup(client, addresses["pending"])
    for state in ("active", "paused", "unsubscribed"):
        record, _ = add_subscriber(site.store, addresses[state], ["agents"])
        if state != "active":
            site.store.set_subscriber_status(record.id, state)
    config_file = tmp_path / "digestd.toml"
    config_file.write_text(
        f'[paths]\ndata_dir = "{tmp_path}"\n[database]\nurl = "{site.database_url}"\n'
    )
    assert cli.main(["subscribers", "list", "--config", str(config_file)]) == 0
    out = capsys.readouterr().out
    for state, address in addresses.items():
        line = next(line for line in out.splitlines() if line.startswith(address))
        assert line.split()[1] == state
    assert cli.main(["subscribers", "list", "--status", "pending", "--config",
                     str(config_file)]) == 0
    pending_out = capsys.readouterr().out
    assert addresses["pending"] in pending_out and addresses["active"] not in pending_out


# Schema and configuration ----------------------------------------------------------------------


def test_the_migrations_build_exactly_the_models(site: Site) -> None:
    # The full-text index (an FTS5 virtual table and its shadow tables on SQLite) has no model.
    def not_the_index(name: str | None, type_: str, _parent: object) -> bool:
        return not (type_ == "table" and name and name.startswith(TERMS_TABLE_PREFIX))

    with site.store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_name": not_the_index})
        assert compare_metadata(context, Base.metadata) == []


def test_the_shipped_config_lists_the_self_service_defaults() -> None:
    config = load_config(REPO / "config" / "digestd.toml", environ={})
    assert config.subscribe == Config().subscribe
    assert config.subscribe.enabled and config.subscribe.confirm_hours == 48


@pytest.mark.parametrize(
    ("text_", "message"),
    [
        ("[subscribe]\nenabled = 'yes'\n", "key 'subscribe.enabled' must be true or false"),
        ("[subscribe]\nconfirm_hours = 0\n", "key 'subscribe.confirm_hours' must be positive"),
        ("[subscribe]\nmails_per_address_per_hour = 0\n", "must be at least 1"),
        ("[subscribe]\ndefault_timezone = 'Mars/Base'\n", "must be an IANA time zone"),
    ],
)
def test_bad_self_service_settings_are_refused(tmp_path: Path, text_: str, message: str) -> None:
    path = tmp_path / "digestd.toml"
    path.write_text(text_)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(path, environ={}, check_dirs=False)


def test_the_daemons_housekeeping_purges_expired_sign_ups(tmp_path: Path) -> None:
    from digestd.daemon import Daemon

    config = dataclasses.replace(
        Config(), paths=PathsConfig(seeds_dir=tmp_path / "seeds", data_dir=tmp_path / "var")
    )
    daemon = Daemon(config)
    try:
        store = daemon.runtime.store
        long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=49)
        for address, when in (("old@example.org", long_ago),
                              ("new@example.org", dt.datetime.now(dt.UTC))):
            store.request_signup(
                email=address, email_key=address, name="", cadence="daily", timezone="UTC",
                topics=["agents"], now=when,
            )
        daemon.housekeeping()
        assert store.subscriber("old@example.org") is None
        assert store.subscriber("new@example.org").status == "pending"  # type: ignore[union-attr]
    finally:
        daemon.runtime.close()
