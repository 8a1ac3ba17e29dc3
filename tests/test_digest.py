"""Digest rendering and the MIME message, on inputs alone: no database, no network.

Golden files in tests/golden/ hold the rendered text, HTML and headers of a fixed digest;
regenerate them with ``DIGESTD_UPDATE_GOLDEN=1 pytest tests/test_digest.py`` and review the diff.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import email.policy
import os
import re
from pathlib import Path

import pytest

from digestd.config import Config, DeliveryConfig, HttpConfig, MailConfig
from digestd.digest import Composer, build_digest, build_message, highlight, message_id, shorten
from digestd.digest import render as render_module
from digestd.store import PaperMatch, PaperRecord, SelectedPaper, SubscriberRecord

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE_GOLDEN = "DIGESTD_UPDATE_GOLDEN"
# Read at import: the autouse fixture clears DIGESTD_* variables before each test runs.
UPDATING = bool(os.environ.get(UPDATE_GOLDEN))
NOW = dt.datetime(2025, 6, 3, 6, 30, tzinfo=dt.UTC)
TOKEN = "AbCdEfGhIjKl" + "s3cr3t-" * 5
NAMES = {"kv-cache": "KV cache", "quant": "Quantization", "agents": "Agents"}


def _paper(paper_id: int, title: str, abstract: str, **fields: object) -> PaperRecord:
    values: dict[str, object] = {
        "id": paper_id,
        "key": f"key-{paper_id}",
        "slug": f"paper-{paper_id}",
        "title": title,
        "abstract": abstract,
        "authors_count": None,
        "organization_id": None,
        "organization": None,
        "published": dt.date(2025, 6, 1),
        "upvotes": None,
        "links": (),
        "batch_id": 1,
        "first_seen_at": NOW,
        "updated_at": NOW,
    }
    values.update(fields)
    return PaperRecord(**values)  # type: ignore[arg-type]


def _match(slug: str, score: float, terms: tuple[str, ...], hl: tuple[str, ...]) -> PaperMatch:
    return PaperMatch(slug, score, terms, hl)


def _subscriber(
    sid: int = 7, email_address: str = "ada@example.org", name: str = "Ada Lovelace",
    topics: tuple[str, ...] = ("kv-cache", "quant"),
) -> SubscriberRecord:
    return SubscriberRecord(
        id=sid, email=email_address, name=name, cadence="daily", timezone="Europe/Berlin",
        token=TOKEN, status="active", topics=topics, since_batch_id=0, bounce_count=0,
        created_at=dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC), confirmed_at=None,
        last_slot_at=None,
    )


def _config(**delivery: int) -> Config:
    return dataclasses.replace(
        Config(),
        http=HttpConfig(base_url="https://papers.example.org"),
        mail=MailConfig(
            from_address="Paper digests <digest@example.org>", list_id="papers.example.org"
        ),
        delivery=DeliveryConfig(**delivery),
    )


FIXED = [
    SelectedPaper(
        _paper(
            1,
            "Squeezing the KV Cache: 2-bit Quantization for Long Contexts",
            "Long contexts make the KV cache the largest consumer of accelerator memory. "
            "We show that 2-bit quantization of keys and values keeps accuracy within 0.1 "
            "points on long-context benchmarks while cutting memory by 7x. Our method needs no "
            "retraining, runs as a drop-in kernel and composes with paged attention. We also "
            "study which layers tolerate aggressive quantization and find that the first and "
            "last layers need more bits than the rest, which motivates a simple mixed "
            "precision schedule. Code: https://github.com/example/squeeze",
            organization="Example Labs", organization_id="example", upvotes=42,
            links=("https://github.com/example/squeeze", "javascript:alert(1)"),
        ),
        (
            _match("kv-cache", 9.0, ("kv cache",), ("KV Cache", "KV cache")),
            _match("quant", 5.0, ("quantiz*",), ("Quantization", "quantization")),
        ),
    ),
    SelectedPaper(
        _paper(
            2,
            "Outlier-aware <Quantization> & friends",
            "A short abstract about quantization.",
            authors_count=3, published=None, upvotes=1,
        ),
        (_match("quant", 4.0, ("quantiz*",), ("Quantization", "quantization")),),
    ),
    SelectedPaper(
        _paper(3, "Paged KV caches, revisited", "No more than this.", upvotes=0),
        (_match("kv-cache", 3.0, ('"kv cache"',), ("KV caches",)),),
    ),
]


def _compose(selected=FIXED, subscriber=None, config=None):  # type: ignore[no-untyped-def]
    composer = Composer(config or _config())
    return composer.compose(
        subscriber or _subscriber(), selected, NAMES, digest_key="0-4", now=NOW
    )


# Pure pieces -----------------------------------------------------------------------------------


def test_shorten_cuts_on_a_word() -> None:
    text = " ".join(f"word{i}" for i in range(100))
    short, cut = shorten(text, words=60)
    assert cut and short.endswith("word59…")
    assert shorten("two words", words=60) == ("two words", False)
    long_word = "x" * 5000
    short, cut = shorten(long_word)
    assert cut and len(short) <= 481


def test_highlight_escapes_everything_but_its_own_spans() -> None:
    marked = highlight("<b>KV cache</b> & kv  cache; kvcache", ["KV cache"])
    assert str(marked) == (
        '&lt;b&gt;<span class="hl">KV cache</span>&lt;/b&gt; &amp; '
        '<span class="hl">kv  cache</span>; kvcache'
    )
    # a highlight made of markup is escaped like the rest
    hostile = highlight("a <script>x</script> b", ["<script>x</script>"])
    assert "<script>" not in str(hostile)
    assert '<span class="hl">&lt;script&gt;x&lt;/script&gt;</span>' in str(hostile)


def test_paper_in_two_topics_is_shown_once_under_its_best() -> None:
    digest = build_digest(FIXED, NAMES, date=NOW.date(), max_papers=30)
    assert [s.slug for s in digest.sections] == ["kv-cache", "quant"]
    assert [p.id for p in digest.sections[0].papers] == [1, 3]
    assert [p.id for p in digest.sections[1].papers] == [2]
    assert digest.sections[0].papers[0].also_in == ("Quantization",)
    # only plain web links survive
    assert [link.url for link in digest.sections[0].papers[0].links] == [
        "https://github.com/example/squeeze"
    ]


# The message -------------------------------------------------------------------------------------


def test_message_structure_and_headers() -> None:
    composed = _compose()
    raw = composed.message.as_bytes()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    assert msg["From"] == "Paper digests <digest@example.org>"
    assert msg["To"].addresses[0].display_name == "Ada Lovelace"
    assert msg["To"].addresses[0].addr_spec == "ada@example.org"
    assert msg["Subject"] == (
        "3 new papers: Squeezing the KV Cache: 2-bit Quantization for Long Contexts"
    )
    assert msg["Date"].datetime == NOW
    assert msg["Message-ID"] == composed.message_id
    assert re.fullmatch(r"<digest\.[0-9a-f]{24}\.0-4@example\.org>", msg["Message-ID"])
    assert msg["List-Id"] == "digestd <papers.example.org>"
    unsubscribe = f"https://papers.example.org/unsubscribe/{TOKEN}"
    # No mailto: nothing reads the From address's mailbox (see test_bounces for when it is)
    assert msg["List-Unsubscribe"] == f"<{unsubscribe}>"
    assert msg["Feedback-ID"] == "digest:digestd"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text, html = parts[0].get_content(), parts[1].get_content()
    assert unsubscribe in text and unsubscribe in html
    assert f"https://papers.example.org/manage/{TOKEN}" in html
    assert f"https://papers.example.org/feeds/private/{TOKEN}.atom" in html
    assert "you follow KV cache, Quantization at ada@example.org" in html
    assert 'class="preheader"' in html


def test_message_id_is_the_same_for_every_attempt() -> None:
    first, again = _compose(), _compose()
    assert first.message_id == again.message_id
    other = _compose(subscriber=_subscriber(sid=8))
    assert other.message_id != first.message_id
    ids = {message_id(7, key, "salt", "example.org") for key in ("0-4", "0-5", "4-5")}
    assert len(ids) == 3


def test_hostile_title_cannot_add_a_header() -> None:
    hostile = "Widgets\r\nBcc: evil@example.com\r\n\r\n<script>alert(1)</script> ]]>"
    selected = [SelectedPaper(_paper(9, hostile, "About <b>widgets</b>."), ())]
    composed = _compose(selected)
    raw = composed.message.as_bytes()
    assert not re.search(rb"^Bcc:", raw, re.MULTILINE)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Bcc"] is None
    assert "\n" not in msg["Subject"] and "Bcc: evil@example.com" in msg["Subject"]
    html = msg.get_body(("html",)).get_content()
    assert "<script>" not in html and "<b>widgets" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; ]]&gt;" in html

    # the builder on its own, given a subject that still holds line breaks
    message = build_message(
        subject="1 new paper: x\r\nBcc: evil@example.com\nX-Evil: 1",
        text="t", html="<p>h</p>", from_address="d <d@example.org>",
        to_email="ada@example.org", to_name="Ada\r\nCc: evil@example.com",
        message_id="<x@example.org>", date=NOW, list_id="l.example.org",
        unsubscribe_url="https://example.org/unsubscribe/t\r\nBcc: evil@example.com",
    )
    raw = message.as_bytes()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Bcc"] is None and parsed["Cc"] is None and parsed["X-Evil"] is None
    assert not re.search(rb"^(Bcc|Cc|X-Evil):", raw, re.MULTILINE)
    assert [a.addr_spec for a in parsed["To"].addresses] == ["ada@example.org"]


def test_personal_values_are_escaped_in_html() -> None:
    subscriber = _subscriber(name='Bob "<b>" & Co')
    composed = _compose(subscriber=subscriber)
    assert "Hi Bob," in composed.html
    sneaky = _subscriber(name="<img src=x onerror=alert(1)>")
    html = _compose(subscriber=sneaky).html
    assert "<img" not in html and "Hi &lt;img," in html


def test_html_stays_under_100_kb_however_many_papers() -> None:
    word = "widget " * 200
    selected = [
        SelectedPaper(
            _paper(
                i, f"A very long widget title {i} " + "x" * 900, word * 5,
                links=tuple(f"https://example.org/{i}/{'p' * 250}/{n}" for n in range(10)),
                organization="Org " + "o" * 300, upvotes=i,
            ),
            (_match("kv-cache", 100.0 - i / 1000, ("widget*",), ("widget", "widget title")),),
        )
        for i in range(500)
    ]
    for max_papers in (30, 1000):
        composed = _compose(selected, config=_config(max_papers=max_papers))
        size = len(composed.html.encode())
        assert size < 100_000, size
        assert composed.digest.total == 500
        assert 1 <= composed.digest.shown <= max_papers
        more = composed.digest.more
        assert f"{more} more papers on the web</a>" in composed.html
        assert "https://papers.example.org/digests/" in composed.html
        assert f"https://papers.example.org/feeds/private/{TOKEN}.atom" in composed.html


def test_dark_mode_survives_inlining() -> None:
    html = _compose().html
    assert html.startswith("<!DOCTYPE html>")
    assert '<meta name="color-scheme" content="light dark">' in html
    assert "@media (prefers-color-scheme: dark)" in html
    # and the light styles were inlined
    assert re.search(r'<span class="hl" style="[^"]*background-color', html)


def test_inliner_runs_once_per_template_and_jinja_once_per_distinct_body(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    real = render_module.inline_css

    def counting(document: str) -> str:
        calls.append(len(document))
        return real(document)

    monkeypatch.setattr(render_module, "inline_css", counting)
    composer = Composer(_config())
    bodies = set()
    for sid in range(10):
        subscriber = _subscriber(sid=sid, email_address=f"reader{sid}@example.org", name=f"R{sid}")
        composed = composer.compose(subscriber, FIXED, NAMES, digest_key="0-4", now=NOW)
        assert f"reader{sid}@example.org" in composed.html
        bodies.add(composed.html)
    assert len(calls) == 1  # the template, when it was loaded
    assert composer.renderer.renders == 1
    assert len(bodies) == 10
    # another topic grouping is another body: rendered, but not inlined again
    composer.compose(
        _subscriber(topics=("quant",)), FIXED, NAMES, digest_key="0-4", now=NOW
    )
    assert composer.renderer.renders == 2
    assert len(calls) == 1


# Golden files ------------------------------------------------------------------------------------


def _normalise(text: str) -> str:
    text = re.sub(r"=_digestd_[0-9a-f]{24}", "=====BOUNDARY==", text)
    text = re.sub(r"^Date: .*$", "Date: <date>", text, flags=re.MULTILINE)
    return re.sub(r"^Message-ID: .*$", "Message-ID: <id>", text, flags=re.MULTILINE)


def _check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATING:
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert path.is_file(), f"{path} missing: run with {UPDATE_GOLDEN}=1 to create it"
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{name} differs from its golden file ({UPDATE_GOLDEN}=1 rewrites)"


def test_golden_text_part() -> None:
    _check_golden("digest.txt", _compose().text)


def test_golden_html_part() -> None:
    _check_golden("digest.html", _compose().html)


def test_golden_headers() -> None:
    message = _compose().message
    headers = message.as_bytes(policy=message.policy.clone(linesep="\n")).split(b"\n\n")[0]
    _check_golden("digest.headers", _normalise(headers.decode("ascii") + "\n"))
