"""Rising papers: "+12 since Monday" wherever upvotes are shown, the digests' rising section
and the public rising feed, over small dumps that list papers again with new counts.

The week (UTC): Monday's card dump A, Tuesday's B (Hugging Face JSON and a card dump), a
digest sent Tuesday noon, Thursday's C (an arXiv API listing, and a card dump), Friday's D.

    KV Cache Paging          A 5   B 9    C 17            gains +12 (+8 since the digest)
    Sparse KV Cache Eviction A -   B -    C 4             first counted Thursday: no gain
    KV Cache Quantization    A 10         C 7             goes down: -3, never rising
    KV Cache Merging (text)  A 2                          merged with the id-keyed row:
    Merging Revisited (JSON)       B 8    C (API, -)  D 15   +13 since Monday
    Diffusion Widgets        A 1          C 50            +49, not a KV cache paper
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import email.policy
import email.utils
import json
import mailbox
import re
from pathlib import Path

import feedparser
import httpx
import pytest

from digestd.config import Config, HttpConfig, MailConfig, PathsConfig, RisingConfig
from digestd.delivery import plan_digests, send_pending
from digestd.delivery.ledger import preview_digest
from digestd.digest.select import RISING
from digestd.feeds import render_feed
from digestd.feeds.select import rising_doc
from digestd.ingest import ingest_paths
from digestd.ranking.rising import Count, gain_text, rising, since_label, window_gain
from digestd.runtime import Runtime
from digestd.store import Store
from digestd.subscribers import add_subscriber
from digestd.web.server import ServerThread, loopback_socket, make_server

UTC = dt.UTC
MON = dt.datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
TUE = MON + dt.timedelta(days=1)
THU = MON + dt.timedelta(days=3)
FRI = MON + dt.timedelta(days=4)
BASE_URL = "https://papers.example.org"

PAGING = "KV Cache Paging for Long Context"
EVICTION = "Sparse KV Cache Eviction"
QUANT = "KV Cache Quantization at Scale"
MERGING = "KV Cache Merging Revisited"
WIDGETS = "Diffusion Widgets"
THURSDAY = "KV Cache Offloading on Thursday"


# The pure rules --------------------------------------------------------------------------------


def test_since_label_says_the_day_in_the_readers_zone() -> None:
    now = dt.datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # a Friday
    assert since_label(now - dt.timedelta(hours=3), now) == "today"
    assert since_label(now - dt.timedelta(days=1), now) == "since yesterday"
    assert since_label(TUE, now) == "since Tuesday"
    assert since_label(now - dt.timedelta(days=9), now) == "since Nov 18"
    assert since_label(dt.datetime(2025, 12, 30, tzinfo=UTC), now) == "since Dec 30, 2025"
    # feeds are read later: always the date
    assert since_label(TUE, now, relative=False) == "since Nov 24, 2026"
    # Tuesday 02:00 UTC is still Monday evening in New York
    late = dt.datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    assert since_label(late, now) == "since Tuesday"
    assert since_label(late, now, "America/New_York") == "since Monday"
    assert since_label(late, now, "Not/AZone") == "since Tuesday"  # unknown zone: UTC


def test_gain_text_signs_and_silences() -> None:
    now = FRI
    assert gain_text(12, MON, now) == "+12 since Monday"
    assert gain_text(-3, MON, now) == "-3 since Monday"
    assert gain_text(0, MON, now) == "" and gain_text(None, MON, now) == ""
    assert gain_text(5, None, now) == ""


def test_window_gain_and_ranking() -> None:
    start = TUE + dt.timedelta(hours=4)
    history = [Count(MON, 5), Count(TUE, 9), Count(THU, 17)]
    # the baseline is the last count known when the window opened (Tuesday's 9)
    assert window_gain(history, start) == (8, TUE)
    # nothing counted inside the window: nothing to say
    assert window_gain([Count(MON, 5), Count(TUE, 9)], start) is None
    # first counted inside the window: measured from that first count
    assert window_gain([Count(THU, 4), Count(FRI, 6)], start) == (2, THU)
    ranked = rising(
        [(1, history), (2, [Count(MON, 10), Count(THU, 7)]), (3, [Count(THU, 4)]),
         (4, [Count(MON, 1), Count(FRI, 30)]), (5, [Count(TUE, 1), Count(FRI, 9)])],
        start,
    )
    # down (2) and flat (3) never rise; ties on gain go to the higher count
    assert [(r.paper_id, r.gain) for r in ranked] == [(4, 29), (1, 8), (5, 8)]
    assert [r.paper_id for r in rising([(1, history)], start, min_gain=9)] == []


# The week --------------------------------------------------------------------------------------


def _card(path: Path, papers: list[tuple[str, int | None]]) -> Path:
    blocks = ["Get trending papers in your email inbox!", "Subscribe", "Daily Papers", "Mar 10"]
    for title, upvotes in papers:
        blocks += [title, f"We study {title.lower()} for the KV cache."]
        if upvotes is not None:
            blocks.append(f"  • 3 authors\n·\nMar 5 {upvotes}")
    path.write_text("\n\n".join(blocks) + "\n")
    return path


def _hf(path: Path, arxiv: str, title: str, upvotes: int) -> Path:
    item = {"paper": {"id": arxiv, "title": title, "summary": "We merge KV cache entries.",
                      "upvotes": upvotes, "authors": [{"name": "Ada Lovelace"}]},
            "numComments": 0}
    path.write_text(json.dumps([item]))
    return path


def _api(path: Path, arxiv: str, title: str) -> Path:
    path.write_text(
        '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom" '
        'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">'
        "<opensearch:totalResults>1</opensearch:totalResults>"
        f"<entry><id>http://arxiv.org/abs/{arxiv}</id><title>{title}</title>"
        "<summary>We merge KV cache entries, v2.</summary>"
        "<author><name>Ada Lovelace</name></author></entry></feed>"
    )
    return path


@pytest.fixture
def week(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[Runtime, dict[str, int]]:
    config = dataclasses.replace(
        Config(),
        paths=PathsConfig(seeds_dir=tmp_path / "seeds", data_dir=tmp_path / "var"),
        http=HttpConfig(base_url=BASE_URL),
        mail=MailConfig(transport="maildir", from_address="Digests <d@papers.example.org>"),
        rising=RisingConfig(section_papers=5),
    )
    runtime = Runtime.open(config, store=Store.open(database_url))
    store = runtime.store
    clock = {"now": MON}
    monkeypatch.setattr("digestd.store.papers.utcnow", lambda: clock["now"])

    def ingest(at: dt.datetime, *paths: Path) -> None:
        clock["now"] = at
        report = ingest_paths(store, list(paths), classify=runtime.classify)
        assert all(d.status == "ingested" for d in report.dumps), report.dumps

    # Ada reads about the KV cache in New York and asked for rising papers; Bob did not.
    add_subscriber(store, "ada@example.org", ["kv-cache"], cadence="immediate",
                   timezone="America/New_York", rising=True)
    add_subscriber(store, "bob@example.org", ["kv-cache"], cadence="immediate")
    ingest(MON, _card(tmp_path / "a.txt", [
        (PAGING, 5), (EVICTION, None), (QUANT, 10), (MERGING, 2), (WIDGETS, 1),
    ]))
    ingest(TUE, _hf(tmp_path / "b.json", "2509.30004", "Merging Revisited", 8),
           _card(tmp_path / "b.txt", [(PAGING, 9), (EVICTION, None)]))
    assert store.count_papers() == 6  # the JSON row is a paper of its own, for now
    noon = TUE + dt.timedelta(hours=4)
    plan_digests(runtime, noon)
    assert send_pending(runtime, noon).sent == 2
    ingest(THU, _api(tmp_path / "c.atom", "2509.30004v2", MERGING),
           _card(tmp_path / "c.txt", [(PAGING, 17), (EVICTION, 4), (QUANT, 7), (WIDGETS, 50),
                                      (THURSDAY, None)]))
    ingest(FRI, _hf(tmp_path / "d.json", "2509.30004", MERGING, 15))
    ids = {p.title: p.id for p in store.papers()}
    assert set(ids) == {PAGING, EVICTION, QUANT, MERGING, WIDGETS, THURSDAY}  # merged
    try:
        yield runtime, ids
    finally:
        runtime.close()


def test_the_baseline_survives_merges_and_counts_without_numbers(
    week: tuple[Runtime, dict[str, int]]
) -> None:
    runtime, _ids = week
    papers = {p.title: p for p in runtime.store.papers()}
    facts = {t: (p.first_upvotes, p.upvotes, p.upvote_gain) for t, p in papers.items()}
    assert facts == {
        PAGING: (5, 17, 12),
        EVICTION: (4, 4, 0),  # first counted Thursday
        QUANT: (10, 7, -3),  # went down
        MERGING: (2, 15, 13),  # the text row's Monday count, the JSON row's Friday one
        WIDGETS: (1, 50, 49),
        THURSDAY: (None, None, None),  # never counted
    }
    assert papers[EVICTION].first_upvotes_at == THU
    assert papers[MERGING].first_upvotes_at == MON
    shown = papers[PAGING].as_json()
    assert (shown["upvotes"], shown["upvotes_first"], shown["upvotes_gain"]) == (17, 5, 12)
    assert dt.datetime.fromisoformat(shown["upvotes_first_seen"]) == MON
    assert papers[THURSDAY].as_json()["upvotes_gain"] is None


def test_the_digest_shows_gains_and_the_rising_section_only_to_who_asked(
    week: tuple[Runtime, dict[str, int]]
) -> None:
    runtime, _ids = week
    store = runtime.store
    now = FRI + dt.timedelta(hours=4)
    ada = store.subscriber("ada@example.org")
    bob = store.subscriber("bob@example.org")
    assert ada is not None and bob is not None and ada.rising and not bob.rising
    composed = preview_digest(runtime, ada, now)
    assert composed is not None
    digest = composed.digest
    sections = {s.slug: s for s in digest.sections}
    due = [p.title for s in digest.sections if s.slug == "kv-cache" for p in s.papers]
    assert due == [THURSDAY]  # the one paper new since Tuesday's digest
    # Rising since Ada's previous digest (Tuesday noon): Paging 9 -> 17, Merging 8 -> 15.
    # Quantization went down, Eviction was first counted Thursday, Widgets is not KV cache.
    rising_papers = [(p.title, p.gain) for p in sections[RISING].papers]
    assert rising_papers == [
        (PAGING, "+8 since Tuesday"), (MERGING, "+7 since Tuesday"),
    ]
    assert digest.total == 1 and digest.shown == 1  # rising papers are extras, not due
    text, html = composed.text, composed.html
    assert "== Rising on your topics ==" in text
    assert "17 upvotes (+8 since Tuesday)" in text and "15 upvotes (+7 since Tuesday)" in text
    assert "17 upvotes (+8 since Tuesday)" in html and "Rising on your topics" in html

    bob_digest = preview_digest(runtime, bob, now)
    assert bob_digest is not None
    assert [s.slug for s in bob_digest.digest.sections] == ["kv-cache"]
    assert "Rising" not in bob_digest.text

    # Rising off for Ada: the same digest without the section.
    add_subscriber(store, "ada@example.org", [], rising=False)
    ada = store.subscriber("ada@example.org")
    assert ada is not None and not ada.rising
    plain = preview_digest(runtime, ada, now)
    assert plain is not None and RISING not in {s.slug for s in plain.digest.sections}


def test_a_paper_already_sent_rises_again_only_when_it_gained(
    week: tuple[Runtime, dict[str, int]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, _ids = week
    store = runtime.store
    sent_at = FRI + dt.timedelta(hours=4)
    plan_digests(runtime, sent_at)
    assert send_pending(runtime, sent_at).sent == 2
    # the mails really sent (not only the preview) carry the section, to Ada alone
    outbox = mailbox.Maildir(runtime.config.outbox_dir, create=False)
    mails = [email.message_from_bytes(outbox.get_bytes(key), policy=email.policy.default)
             for key in outbox.iterkeys()]
    sent = {m["To"]: m for m in mails
            if email.utils.parsedate_to_datetime(m["Date"]) >= sent_at}
    friday = {to: msg.get_body(("plain",)).get_content() for to, msg in sent.items()}
    assert "== Rising on your topics ==" in friday["ada@example.org"]
    assert "17 upvotes (+8 since Tuesday)" in friday["ada@example.org"]
    assert "Rising" not in friday["bob@example.org"]
    # Saturday: a new paper (so there is a digest), Paging listed again with the same count,
    # Quantization up from 7 to 9.
    saturday = FRI + dt.timedelta(days=1)
    monkeypatch.setattr("digestd.store.papers.utcnow", lambda: saturday)
    ingest_paths(store, [_card(tmp_path / "e.txt", [
        (PAGING, 17), (QUANT, 9), ("KV Cache Saturday Paper", None),
    ])], classify=runtime.classify)
    ada = store.subscriber("ada@example.org")
    assert ada is not None
    composed = preview_digest(runtime, ada, saturday + dt.timedelta(hours=2))
    assert composed is not None
    sections = {s.slug: s for s in composed.digest.sections}
    # Paging and Merging were in Friday's digest; only Quantization gained since
    assert [(p.title, p.gain) for p in sections[RISING].papers] == [
        (QUANT, "+2 since Thursday")
    ]
    assert "9 upvotes (+2 since Thursday)" in composed.text


def test_the_rising_feed_ranks_by_gain_over_the_window(
    week: tuple[Runtime, dict[str, int]]
) -> None:
    runtime, _ids = week
    now = FRI + dt.timedelta(hours=4)
    doc = rising_doc(runtime.store, runtime.config, now, runtime.store.topics())
    atom = feedparser.parse(render_feed(doc, "atom"))
    assert not atom.bozo
    assert [e.title for e in atom.entries] == [WIDGETS, MERGING, PAGING]
    first = atom.entries[0].content[0].value
    assert "<b>50 upvotes</b> (+49 since Nov 23, 2026)" in first
    assert "(+13 since Nov 23, 2026)" in atom.entries[1].content[0].value
    # dated by the sighting that brought the newest count
    assert dt.datetime(*atom.entries[1].updated_parsed[:6], tzinfo=UTC) == FRI
    assert dt.datetime(*atom.entries[0].updated_parsed[:6], tzinfo=UTC) == THU
    # a two-day window: only what gained since Wednesday noon, measured from the count then
    narrow = dataclasses.replace(
        runtime.config, rising=RisingConfig(window_days=2, min_gain=10)
    )
    doc = rising_doc(runtime.store, narrow, now, runtime.store.topics())
    assert [i.title for i in doc.items] == [WIDGETS]  # Merging +7 and Paging +8 are under 10
    json_feed = json.loads(render_feed(doc, "json"))
    assert "+49 since Nov 23, 2026" in json_feed["items"][0]["content_html"]


def test_pages_feeds_and_the_front_page_show_it(
    week: tuple[Runtime, dict[str, int]]
) -> None:
    from digestd.feeds import build_feeds

    runtime, ids = week
    build_feeds(runtime)
    feeds_dir = runtime.config.feeds_dir
    for fmt in ("rss", "atom", "json"):
        assert (feeds_dir / f"rising.{fmt}").is_file()
    opml = (feeds_dir / "topics.opml").read_text()
    assert f'xmlUrl="{BASE_URL}/feeds/rising.rss"' in opml
    paging = runtime.store.papers_by_ids([ids[PAGING]])[0]
    with ServerThread(make_server(runtime), loopback_socket()) as server, httpx.Client(
        base_url=server.url, timeout=30
    ) as client:
        page = client.get(f"/papers/{paging.slug}").text
        assert re.search(r"17 upvotes \(\+12 since [A-Z][a-z]+ ?\d*[^)]*\)", page)
        never = runtime.store.papers_by_ids([ids[THURSDAY]])[0]
        assert "upvote" not in client.get(f"/papers/{never.slug}").text
        front = client.get("/").text
        assert f'href="{BASE_URL}/feeds/rising.atom"' in front
        served = client.get("/feeds/rising.atom")
        assert served.status_code == 200
        assert [e.title for e in feedparser.parse(served.content).entries][:1] == [WIDGETS]


def test_the_migration_fills_the_baseline_from_stored_sightings(
    week: tuple[Runtime, dict[str, int]]
) -> None:
    runtime, _ids = week
    store = runtime.store
    before = {p.title: (p.first_upvotes, p.first_upvotes_at) for p in store.papers()}
    # back to the revision before the columns existed, and up again: filled from sightings
    store.migrate("0016_bounce_score", downgrade=True)
    store.migrate("head")
    after = {p.title: (p.first_upvotes, p.first_upvotes_at) for p in store.papers()}
    assert after == before
    assert after[MERGING] == (2, MON) and after[THURSDAY] == (None, None)
