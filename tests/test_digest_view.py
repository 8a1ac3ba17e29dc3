"""The private "view in browser" page of a digest, over HTTP against a real server.

Ada follows every starter topic and was subscribed before the sample dumps: her digest holds
every paper the starter topics match (338 when the issue was filed; the count moves with the
topics), of which the e-mail shows 30. The page the e-mail links to must reach every one.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import mailbox
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
from mailkinds import BASE_URL, seeded_runtime

from digestd import links
from digestd.delivery import plan_digests, send_pending
from digestd.runtime import Runtime
from digestd.web.server import ServerThread, loopback_socket, make_server


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Runtime, httpx.Client]]:
    runtime = seeded_runtime(tmp_path_factory.mktemp("view"))
    # After the next daily slot: both readers are due, and the digests go to the outbox.
    now = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    plan_digests(runtime, now)
    assert send_pending(runtime, now).sent == 2
    try:
        with ServerThread(make_server(runtime), loopback_socket()) as server, httpx.Client(
            base_url=server.url, timeout=30
        ) as client:
            yield runtime, client
    finally:
        runtime.close()


def _mail_to(runtime: Runtime, address: str) -> email.message.EmailMessage:
    box = mailbox.Maildir(Path(runtime.config.outbox_dir), create=False)
    for key in box.iterkeys():
        with box.get_file(key) as fh:
            message = email.message_from_binary_file(fh, policy=email.policy.default)
        if message["To"].addresses[0].addr_spec == address:
            return message  # type: ignore[return-value]
    raise AssertionError(f"no mail to {address}")


def _paper_slugs(html: str) -> list[str]:
    return re.findall(r'class="title" href="' + re.escape(BASE_URL) + r'/papers/([^"?]+)', html)


def _all_pages(client: httpx.Client, path: str, headings: list[str] | None = None) -> list[str]:
    """Every paper linked from the view, following its "Next" links."""
    slugs: list[str] = []
    url: str | None = path
    pages = 0
    while url:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        slugs += _paper_slugs(response.text)
        if headings is not None:
            headings += re.findall(r"<h2>([^<]+)</h2>", response.text)
        pages += 1
        following = re.search(r'<a rel="next" href="([^"]+)"', response.text)
        # a relative link (?page=N): it works under any path prefix
        url = urljoin(url, following.group(1).replace("&amp;", "&")) if following else None
        assert pages < 20
    return slugs


def test_the_page_of_a_large_digest_reaches_every_paper(
    site: tuple[Runtime, httpx.Client]
) -> None:
    runtime, client = site
    ada = runtime.store.subscriber("ada@example.org")
    assert ada is not None
    (delivery,) = runtime.store.deliveries(subscriber_id=ada.id)
    total = len(delivery.paper_ids)
    assert total > 300

    message = _mail_to(runtime, "ada@example.org")
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    view = links.digest_url(BASE_URL, ada.token, delivery.digest_key)
    shown = len(set(_paper_slugs(html)))
    assert shown < total
    # "… and N more" and the footer both link the page, in both parts.
    assert re.search(rf'<a href="{re.escape(view)}"[^>]*>\d+ more papers on the web</a>', html)
    assert re.search(r'<a href="[^"]+"[^>]*>View in browser</a>', html)
    assert f"View in browser: {view}" in text and "more papers on the web:" in text

    response = client.get(view.removeprefix(BASE_URL))
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert f"{total} papers in your digest" in response.text
    headings: list[str] = []
    slugs = _all_pages(client, view.removeprefix(BASE_URL), headings)
    assert len(slugs) == len(set(slugs)) == total
    stored = {p.slug for p in runtime.store.papers_by_ids(list(delivery.paper_ids))}
    assert set(slugs) == stored
    # by topic: a heading per followed topic that holds papers (repeated on a new page)
    assert len(set(headings)) >= 5


def test_no_page_leaks_to_another_reader(site: tuple[Runtime, httpx.Client]) -> None:
    runtime, client = site
    ada = runtime.store.subscriber("ada@example.org")
    bob = runtime.store.subscriber("bob@example.org")
    assert ada is not None and bob is not None
    (ada_digest,) = runtime.store.deliveries(subscriber_id=ada.id)
    (bob_digest,) = runtime.store.deliveries(subscriber_id=bob.id)
    key = ada_digest.digest_key
    # Bob's token with the key of Ada's digest: only ever Bob's own digest, never Ada's papers.
    page = client.get(f"/digests/{bob.token}/{key}")
    if bob_digest.digest_key == key:
        assert page.status_code == 200
        slugs = set(_all_pages(client, f"/digests/{bob.token}/{key}"))
        bob_slugs = {p.slug for p in runtime.store.papers_by_ids(list(bob_digest.paper_ids))}
        assert slugs == bob_slugs and len(slugs) < len(ada_digest.paper_ids)
    else:
        assert page.status_code == 404
    for path in (
        f"/digests/{ada.token[:-1]}x/{key}",  # a guessed token
        f"/digests/{ada.token[:12]}/{key}",  # the lookup part alone
        f"/digests/{ada.token}/0-999",  # a digest Ada never got
        f"/digests/{ada.token}/{key}?page=99",
        f"/digests/{ada.token}/{key}?page=0",
    ):
        assert client.get(path).status_code == 404, path


def test_reset_links_closes_the_page(site: tuple[Runtime, httpx.Client]) -> None:
    runtime, client = site
    bob = runtime.store.subscriber("bob@example.org")
    assert bob is not None
    (delivery,) = runtime.store.deliveries(subscriber_id=bob.id)
    old = f"/digests/{bob.token}/{delivery.digest_key}"
    assert client.get(old).status_code == 200
    new_token = runtime.store.rotate_token(bob.id)
    assert client.get(old).status_code == 404
    assert client.get(f"/digests/{new_token}/{delivery.digest_key}").status_code == 200


def _email_sections(html: str) -> list[tuple[str, list[str], int, str | None]]:
    """(heading, paper slugs shown, N of "… and N more", that link) per section of a digest."""
    sections: list[tuple[str, list[str], int, str | None]] = []
    token = re.compile(
        r"<h2[^>]*>([^<]+)</h2>"
        r'|class="title"[^>]* href="' + re.escape(BASE_URL) + r'/papers/([^"?]+)'
        r'|… and (\d+) more on <a href="([^"]+)"'
    )
    for heading, slug, more, href in token.findall(html):
        if heading:
            sections.append((heading, [], 0, None))
        elif slug:
            sections[-1][1].append(slug)
        else:
            name, slugs, _, _ = sections[-1]
            sections[-1] = (name, slugs, int(more), href.replace("&amp;", "&"))
    return sections


def test_and_n_more_leads_to_every_paper_of_that_section(
    site: tuple[Runtime, httpx.Client]
) -> None:
    runtime, client = site
    ada = runtime.store.subscriber("ada@example.org")
    assert ada is not None
    (delivery,) = runtime.store.deliveries(subscriber_id=ada.id)
    message = _mail_to(runtime, "ada@example.org")
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    view = links.digest_url(BASE_URL, ada.token, delivery.digest_key)
    sections = [s for s in _email_sections(html) if s[2]]
    assert len(sections) >= 3  # with 12 topics and 30 slots, most sections had more
    seen: set[str] = set()
    for name, shown, more, href in sections:
        assert href is not None and href.startswith(f"{view}?topic=") and "#topic-" in href
        assert href in text  # the text part links the same place
        response = client.get(href.removeprefix(BASE_URL).split("#")[0])
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        anchor = href.split("#")[1]
        assert f'id="{anchor}"' in response.text
        headings: list[str] = []
        slugs = _all_pages(client, href.removeprefix(BASE_URL).split("#")[0], headings)
        # the section the e-mail showed, in its order, then exactly the N it counted
        assert set(headings) == {name}
        assert slugs[: len(shown)] == shown, name
        assert len(slugs) == len(set(slugs)) == len(shown) + more, name
        assert not seen & set(slugs)  # each paper in one section only
        seen |= set(slugs)
    # a guessed token, or a topic the digest has no section for, opens nothing
    _, _, _, href = sections[0]
    assert href is not None
    path = href.removeprefix(BASE_URL).split("#")[0]
    assert client.get(path.replace(ada.token, ada.token[:-1] + "x")).status_code == 404
    assert client.get(path.split("?")[0] + "?topic=no-such-topic").status_code == 404
