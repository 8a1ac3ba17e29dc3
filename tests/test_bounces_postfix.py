"""Remote bounces end to end, with Debian's Postfix on loopback as the relay (tests/mta.py).

digestd hands each digest to Postfix, which accepts it and passes it to the next hop (an
aiosmtpd server on loopback). The next hop refuses one recipient with 550, so Postfix sends a
delivery status notification to the digest's VERP envelope sender, which it delivers into a
Maildir; the intake reads that Maildir. A mailed "unsubscribe" takes the same road. Nothing
leaves the machine.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import shutil
import smtplib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dkim
import pytest
from aiosmtpd.controller import Controller
from mta import Postfix

from digestd import links
from digestd.config import (
    BouncesConfig,
    Config,
    DeliveryConfig,
    HttpConfig,
    MailConfig,
    PathsConfig,
    SmtpConfig,
    TopicConfig,
)
from digestd.delivery import plan_digests, send_pending
from digestd.delivery.intake import read_bounces
from digestd.runtime import Runtime
from digestd.subscribers import add_subscriber

from support import SmtpInbox, feed_titles, free_port

GONE = "gone@example.net"


class NextHop(SmtpInbox):
    """The remote server: one mailbox no longer exists."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if address == GONE:
            return "550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.fixture
def relay() -> Iterator[tuple[NextHop, Postfix]]:
    Postfix.skip_unless_available()
    hop = NextHop()
    port = free_port()
    controller = Controller(hop, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with Postfix(relay_port=port, maildir_domains=("example.org",)) as mta:
            yield hop, mta
    finally:
        controller.stop()


def _dkim_key(directory: Path) -> tuple[Path, bytes]:
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to make a test key: apt-get install openssl")
    key = directory / "dkim.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:2048", "-out", str(key)], check=True, capture_output=True)
    der = subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    return key, b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


@pytest.mark.slow
def test_a_remote_bounce_pauses_and_a_mailed_unsubscribe_unsubscribes(
    relay: tuple[NextHop, Postfix], tmp_path: Path
) -> None:
    hop, mta = relay
    key, record = _dkim_key(tmp_path)
    config = dataclasses.replace(
        Config(),
        paths=PathsConfig(seeds_dir=tmp_path / "seeds", data_dir=tmp_path / "var"),
        http=HttpConfig(base_url="https://papers.example.org"),
        mail=MailConfig(
            transport="smtp", from_address="Digests <digests@example.org>",
            envelope_sender="bounces@example.org", dkim_key_file=str(key),
            dkim_selector="s1",
        ),
        smtp=SmtpConfig(host="127.0.0.1", port=mta.port, timeout=10),
        bounces=BouncesConfig(maildir=str(mta.maildir("example.org"))),
        delivery=DeliveryConfig(pause_after_failures=2),
        topics=(TopicConfig("widgets", "Widgets", "widget*"),),
    )
    runtime = Runtime.open(config)
    try:
        gone, _ = add_subscriber(runtime.store, GONE, ["widgets"], cadence="immediate")
        ok, _ = add_subscriber(runtime.store, "ok@example.net", ["widgets"], cadence="immediate")
        for round_number in (1, 2):
            feed_titles(runtime, [f"Widget study number {round_number}"])
            now = dt.datetime.now(dt.UTC)
            plan_digests(runtime, now)
            # Postfix accepts both: the refusal comes later, from the next hop.
            assert send_pending(runtime, now).sent == 2
            mta.wait_until_empty()
            mta.wait_for_maildir("example.org", 1)
            report = read_bounces(runtime)
            assert (report.bounces, report.kept) == (1, 0), report
            after = runtime.store.subscriber(GONE)
            assert after is not None and after.bounce_count == round_number
            assert after.status == ("active" if round_number == 1 else "paused")
        assert runtime.store.subscriber("ok@example.net").status == "active"  # type: ignore[union-attr]
        assert [r for rcpts, _ in hop.received for r in rcpts] == ["ok@example.net"] * 2
        # Postfix's DSN went to the VERP address of the subscriber who bounced.
        assert f"to=<{links.verp_address('bounces@example.org', gone.token)}>" in mta.log()

        # The DKIM signature made by digestd verifies after Postfix added its headers.
        def dns(name: bytes, timeout: int = 5) -> bytes | None:
            return record if name == b"s1._domainkey.example.org." else None

        for _, data in hop.received:
            assert data.startswith(b"Received: ") or b"\nReceived: " in data[:2000]
            assert dkim.verify(data, dnsfunc=dns)

        # A reader answers the List-Unsubscribe mailto through the relay.
        verp = links.verp_address("bounces@example.org", ok.token)
        with smtplib.SMTP("127.0.0.1", mta.port, timeout=10) as client:
            client.sendmail(
                "ok@example.net", [verp],
                f"From: ok@example.net\r\nTo: {verp}\r\nSubject: unsubscribe\r\n"
                "Message-ID: <u1@example.net>\r\n\r\n\r\n",
            )
        mta.wait_for_maildir("example.org", 1)
        report = read_bounces(runtime)
        assert report.unsubscribed == 1, report
        assert runtime.store.subscriber("ok@example.net").status == "unsubscribed"  # type: ignore[union-attr]
    finally:
        runtime.close()
