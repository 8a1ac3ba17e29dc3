"""Mail to the envelope sender: classification on inputs alone, then the Maildir intake
against the store (SQLite and PostgreSQL) and the CLI."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import email.policy
import json
import mailbox
from pathlib import Path

import pytest

from digestd import cli, links
from digestd.config import (
    BouncesConfig,
    Config,
    DeliveryConfig,
    HttpConfig,
    MailConfig,
    PathsConfig,
    TopicConfig,
)
from digestd.delivery import plan_digests, send_pending
from digestd.delivery.bounces import classify
from digestd.delivery.intake import kept_messages, read_bounces
from digestd.runtime import Runtime
from digestd.store import Store
from digestd.subscribers import add_subscriber

from support import feed_titles

SENDER = "bounces@example.org"
TOKEN = "AbCdEfGhIjKl" + "x" * 43


def dsn(
    recipient: str, *, status: str = "5.1.1", action: str = "failed", to: str | None = None,
    diagnostic: str = "smtp; 550 5.1.1 <{r}>: Recipient address rejected: User unknown",
    original: str = "",
) -> bytes:
    """A delivery status notification the way Postfix writes one (RFC 3464)."""
    to = to or links.verp_address(SENDER, TOKEN)
    original = original or (
        f"From: Digests <digests@example.org>\nTo: {recipient}\nSubject: 3 new papers\n"
        f"Message-ID: <digest.1@example.org>\n"
    )
    return (
        f"Return-Path: <>\nDelivered-To: {to}\n"
        f"From: MAILER-DAEMON@relay.example.org (Mail Delivery System)\n"
        f"Subject: Undelivered Mail Returned to Sender\nTo: {to}\n"
        "Auto-Submitted: auto-replied\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
        "--B\nContent-Description: Notification\nContent-Type: text/plain; charset=us-ascii\n\n"
        "I'm sorry to have to inform you that your message could not\nbe delivered.\n\n"
        "--B\nContent-Description: Delivery report\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; relay.example.org\nArrival-Date: Mon,  2 Mar 2026 07:00:00 +0000\n\n"
        f"Final-Recipient: rfc822; {recipient}\nOriginal-Recipient: rfc822;{recipient}\n"
        f"Action: {action}\nStatus: {status}\n"
        f"Diagnostic-Code: {diagnostic.format(r=recipient)}\n\n"
        "--B\nContent-Description: Undelivered Message Headers\n"
        f"Content-Type: text/rfc822-headers\n\n{original}\n--B--\n"
    ).encode()


def arf(recipient: str, *, to: str = "fbl@example.org", unsubscribe_token: str = TOKEN) -> bytes:
    """A feedback report (RFC 5965) as a mailbox provider sends one for "this is spam"."""
    return (
        f"From: feedback@provider.example\nTo: {to}\nSubject: complaint about message\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="F"\n\n'
        "--F\nContent-Type: text/plain\n\nThis is an email abuse report.\n\n"
        "--F\nContent-Type: message/feedback-report\n\n"
        "Feedback-Type: abuse\nUser-Agent: provider-fbl/1.0\nVersion: 1\n"
        f"Original-Rcpt-To: {recipient}\n\n"
        "--F\nContent-Type: message/rfc822\n\n"
        f"From: Digests <digests@example.org>\nTo: {recipient}\nSubject: 3 new papers\n"
        f"List-Unsubscribe: <https://papers.example.org/unsubscribe/{unsubscribe_token}>\n\n"
        "hello\n\n--F--\n"
    ).encode()


def plain(to: str, subject: str, body: str = "", **headers: str) -> bytes:
    extra = "".join(f"{k.replace('_', '-')}: {v}\n" for k, v in headers.items())
    return (
        f"From: Ada <ada@example.org>\nTo: {to}\nSubject: {subject}\n{extra}"
        f"Message-ID: <m.{abs(hash((to, subject, body)))}@example.org>\n\n{body}\n"
    ).encode()


# Classification --------------------------------------------------------------------------------


def test_a_hard_bounce_names_its_subscriber_by_verp() -> None:
    verdict = classify(dsn("ada@example.net"), SENDER)
    assert verdict.kind == "bounce"
    assert verdict.token == TOKEN
    assert verdict.addresses == ("ada@example.net",)
    assert verdict.reason.startswith("5.1.1 smtp; 550 5.1.1")


def test_a_bounce_without_verp_falls_back_on_the_returned_original() -> None:
    original = (
        "From: d@example.org\nTo: ada@example.net\n"
        f"List-Unsubscribe: <https://papers.example.org/unsubscribe/{TOKEN}>\n"
    )
    verdict = classify(dsn("ada@example.net", to=SENDER, original=original), SENDER)
    assert (verdict.kind, verdict.token) == ("bounce", TOKEN)
    bare = classify(dsn("ada@example.net", to=SENDER), SENDER)
    assert (bare.kind, bare.token, bare.addresses) == ("bounce", None, ("ada@example.net",))


@pytest.mark.parametrize(
    ("action", "status", "kind"), [("delayed", "4.4.1", "delayed"), ("failed", "4.2.2", "soft")]
)
def test_a_delay_is_no_bounce_and_a_given_up_temporary_failure_a_soft_one(
    action: str, status: str, kind: str
) -> None:
    verdict = classify(dsn("a@example.net", action=action, status=status), SENDER)
    assert (verdict.kind, verdict.addresses) == (kind, ("a@example.net",))
    assert verdict.reason.startswith(status)


def test_a_success_notice_is_nothing_to_act_on() -> None:
    assert classify(dsn("a@example.net", action="relayed", status="2.0.0"), SENDER).kind == (
        "auto-reply"
    )


def test_a_complaint_names_its_subscriber() -> None:
    verdict = classify(arf("ada@example.net"), SENDER)
    assert verdict.kind == "complaint"
    assert verdict.token == TOKEN and verdict.addresses == ("ada@example.net",)


def test_an_unsubscribe_mail_needs_the_verp_token() -> None:
    to = links.verp_address(SENDER, TOKEN)
    assert classify(plain(to, "unsubscribe"), SENDER).kind == "unsubscribe"
    assert classify(plain(to, "Re: x", "Unsubscribe\nthanks"), SENDER).kind == "unsubscribe"
    # Anyone can write to the bare address: without the token it names nobody.
    assert classify(plain(SENDER, "unsubscribe"), SENDER).kind == "unknown"


def test_automatic_replies_and_other_mail() -> None:
    to = links.verp_address(SENDER, TOKEN)
    assert classify(plain(to, "Out of office", Auto_Submitted="auto-replied"), SENDER).kind == (
        "auto-reply"
    )
    assert classify(plain(to, "Automatic reply: 3 new papers"), SENDER).kind == "auto-reply"
    assert classify(plain(to, "Question about a paper", "Hi!"), SENDER).kind == "unknown"
    assert classify(b"\xff\xfe garbage \x00", SENDER).kind == "unknown"


# The Maildir intake ----------------------------------------------------------------------------


def _config(tmp_path: Path, **bounces: str) -> Config:
    return dataclasses.replace(
        Config(),
        paths=PathsConfig(seeds_dir=tmp_path / "seeds", data_dir=tmp_path / "var"),
        http=HttpConfig(base_url="https://papers.example.org"),
        mail=MailConfig(from_address="Digests <digests@example.org>", envelope_sender=SENDER),
        bounces=BouncesConfig(maildir=str(tmp_path / "bounces"), **bounces),
        delivery=DeliveryConfig(pause_after_failures=2),
        topics=(TopicConfig("widgets", "Widgets", "widget*"),),
    )


@pytest.fixture
def runtime(store: Store, tmp_path: Path) -> Runtime:
    return Runtime.open(_config(tmp_path), store=store)


def _deliver(runtime: Runtime, *messages: bytes) -> None:
    box = mailbox.Maildir(runtime.config.bounces.maildir, create=True)
    for data in messages:
        box.add(data)
    box.close()


def _left(runtime: Runtime) -> int:
    return len(mailbox.Maildir(runtime.config.bounces.maildir, create=False))


def test_hard_bounces_count_and_pause_at_the_threshold(runtime: Runtime) -> None:
    ada, _ = add_subscriber(runtime.store, "ada@example.net", ["widgets"])
    bob, _ = add_subscriber(runtime.store, "bob@example.net", ["widgets"])
    tokened = dsn("ada@example.net", to=links.verp_address(SENDER, ada.token))
    _deliver(runtime, tokened)
    report = read_bounces(runtime)
    assert (report.read, report.bounces, report.paused, report.kept) == (1, 1, 0, 0)
    after = runtime.store.subscriber("ada@example.net")
    assert after is not None and (after.bounce_count, after.status) == (1, "active")
    # the second: by address only (a token reset meanwhile), and the threshold is reached
    _deliver(runtime, dsn("ada@example.net", to=SENDER))
    report = read_bounces(runtime)
    assert (report.bounces, report.paused) == (1, 1)
    after = runtime.store.subscriber("ada@example.net")
    assert after is not None and (after.bounce_count, after.status) == (2, "paused")
    untouched = runtime.store.subscriber("bob@example.net")
    assert untouched is not None and (untouched.bounce_count, untouched.status) == (0, "active")
    assert _left(runtime) == 0
    # a soft bounce for Bob changes nothing
    _deliver(runtime, dsn("bob@example.net", action="delayed", status="4.4.1",
                          to=links.verp_address(SENDER, bob.token)))
    assert read_bounces(runtime).ignored == 1
    assert runtime.store.subscriber("bob@example.net").bounce_count == 0  # type: ignore[union-attr]


def test_complaints_and_mailed_unsubscribes_unsubscribe(runtime: Runtime) -> None:
    ada, _ = add_subscriber(runtime.store, "ada@example.net", ["widgets"])
    bob, _ = add_subscriber(runtime.store, "bob@example.net", ["widgets"])
    cy, _ = add_subscriber(runtime.store, "cy@example.net", ["widgets"])
    _deliver(
        runtime,
        arf("ada@example.net", unsubscribe_token=ada.token),
        plain(links.verp_address(SENDER, bob.token), "unsubscribe"),
    )
    report = read_bounces(runtime)
    assert (report.read, report.unsubscribed, report.kept) == (2, 2, 0)
    statuses = {s.email: s.status for s in runtime.store.subscribers()}
    assert statuses == {
        "ada@example.net": "unsubscribed", "bob@example.net": "unsubscribed",
        "cy@example.net": "active",
    }
    assert cy.status == "active" and _left(runtime) == 0


def test_what_cannot_be_classified_is_kept_and_listed(
    runtime: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add_subscriber(runtime.store, "ada@example.net", ["widgets"])
    question = plain(SENDER, "A question about your digests", "Hello, how do I ...")
    stranger = dsn("nobody@example.net", to=SENDER)
    _deliver(runtime, question, stranger)
    report = read_bounces(runtime)
    assert (report.read, report.kept, report.bounces) == (2, 2, 0)
    assert _left(runtime) == 0
    kept = kept_messages(runtime.config)
    assert sorted(m.subject for m in kept) == [
        "A question about your digests", "Undelivered Mail Returned to Sender",
    ]
    reasons = {m.subject: m.reason for m in kept}
    assert "not a bounce" in reasons["A question about your digests"]
    assert "nobody digestd knows" in reasons["Undelivered Mail Returned to Sender"]
    # The kept copy is the whole message, readable by any mail client.
    box = mailbox.Maildir(runtime.config.bounces_kept_dir, create=False)
    bodies = [box.get_bytes(k) for k in box.iterkeys()]
    assert any(b.endswith(question) for b in bodies)

    config = tmp_path / "digestd.toml"
    config.write_text(f'[paths]\ndata_dir = "{runtime.config.paths.data_dir}"\n')
    # no database there: the kept mail is listed all the same, the scores are not (exit 1)
    assert cli.main(["bounces", "list", "--json", "--config", str(config)]) == 1
    captured = capsys.readouterr()
    assert "bounce scores not shown" in captured.err
    listed = json.loads(captured.out)
    assert {m["subject"] for m in listed["kept"]} == set(reasons)
    assert listed["scores"] is None
    url = runtime.store.engine.url.render_as_string(hide_password=False)
    config.write_text(
        f'[paths]\ndata_dir = "{runtime.config.paths.data_dir}"\n[database]\nurl = "{url}"\n'
    )
    assert cli.main(["bounces", "list", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "2 kept in" in out and "0 with a bounce score" in out


def test_the_mailto_is_advertised_only_when_its_mailbox_is_read(runtime: Runtime) -> None:
    ada, _ = add_subscriber(runtime.store, "ada@example.net", ["widgets"], cadence="immediate")
    feed_titles(runtime, ["Widget wrangling"])
    now = dt.datetime.now(dt.UTC)
    plan_digests(runtime, now)
    assert send_pending(runtime, now).sent == 1
    box = mailbox.Maildir(runtime.config.outbox_dir, create=False)
    (data,) = [box.get_bytes(k) for k in box.iterkeys()]
    message = email.message_from_bytes(data, policy=email.policy.default)
    verp = links.verp_address(SENDER, ada.token)
    assert message["Return-Path"] == f"<{verp}>"
    assert message["List-Unsubscribe"].endswith(f", <mailto:{verp}?subject=unsubscribe>")
    # what a mail client sends for that mailto, delivered to the bounce mailbox
    _deliver(runtime, plain(verp, "unsubscribe"))
    assert read_bounces(runtime).unsubscribed == 1
    assert runtime.store.subscriber("ada@example.net").status == "unsubscribed"  # type: ignore[union-attr]


def test_an_accepted_digest_does_not_undo_bounces_that_come_back_by_mail(
    runtime: Runtime,
) -> None:
    ada, _ = add_subscriber(runtime.store, "ada@example.net", ["widgets"], cadence="immediate")
    _deliver(runtime, dsn("ada@example.net", to=links.verp_address(SENDER, ada.token)))
    read_bounces(runtime)
    feed_titles(runtime, ["Widget wrangling"])
    now = dt.datetime.now(dt.UTC)
    plan_digests(runtime, now)
    assert send_pending(runtime, now).sent == 1
    assert runtime.store.subscriber("ada@example.net").bounce_count == 1  # type: ignore[union-attr]


def test_a_bounce_mailbox_needs_an_envelope_sender(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "digestd.toml"
    config.write_text(f'[paths]\ndata_dir = "{tmp_path}"\n[bounces]\nmaildir = "{tmp_path}/b"\n')
    assert cli.main(["bounces", "check", "--config", str(config)]) == 2
    assert "mail.envelope_sender must be set" in capsys.readouterr().err
