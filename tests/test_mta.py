"""The private Postfix fixture itself: relays only to loopback, refuses, greylists, bounces."""

from __future__ import annotations

import smtplib
from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller
from mta import Postfix

from support import free_port, wait_for

pytestmark = pytest.mark.slow


class RefusingHop:
    """A next hop that refuses one recipient for good and accepts the rest."""

    def __init__(self, refused: str):
        self.refused = refused
        self.received: list[list[str]] = []

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address == self.refused:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.received.append(list(envelope.rcpt_tos))
        return "250 Message accepted"


def test_relays_greylists_bounces_to_the_envelope_sender_and_survives_a_stop():
    Postfix.skip_unless_available()
    hop = RefusingHop("gone@example.net")
    port = free_port()
    controller = Controller(hop, hostname="127.0.0.1", port=port)
    controller.start()
    replies = {"grey@example.net": "450 4.7.1 Greylisted"}
    try:
        with Postfix(
            relay_port=port, maildir_domains=["example.org"], recipient_replies=replies
        ) as mta:
            with smtplib.SMTP("127.0.0.1", mta.port) as client:
                refused = client.sendmail(
                    "bounces+tok3n@example.org",
                    ["gone@example.net", "here@example.net", "grey@example.net"],
                    b"From: list@example.org\r\nSubject: digest\r\n\r\nx\r\n",
                )
            assert refused["grey@example.net"][0] == 450
            (raw,) = mta.wait_for_maildir("example.org", 1)
            mta.wait_until_empty()
            wait_for(lambda: hop.received, 10, "the accepted recipient")
            assert hop.received == [["here@example.net"]]
            dsn = message_from_bytes(raw)
            assert dsn["To"] == "bounces+tok3n@example.org"
            assert dsn.get_content_type() == "multipart/report"
            status = next(
                p for p in dsn.walk() if p.get_content_type() == "message/delivery-status"
            )
            assert "gone@example.net" in status.as_string()
            assert "5.1.1" in status.as_string()

            mta.stop()
            with pytest.raises(ConnectionRefusedError):
                smtplib.SMTP("127.0.0.1", mta.port)
            mta.start()
            with smtplib.SMTP("127.0.0.1", mta.port) as client:
                client.sendmail("list@example.org", ["b@example.net"], b"Subject: 2\r\n\r\nx\r\n")
            mta.wait_until_empty()
            assert hop.received[-1] == ["b@example.net"]
    finally:
        controller.stop()


def test_refuses_relaying_for_loopback_clients():
    """(The client refusal, 554 Client host rejected, is driven in test_queue_postfix.py.)"""
    Postfix.skip_unless_available()
    message = b"Subject: x\r\n\r\nx\r\n"
    with (
        Postfix(discard=True, refuse="relay") as mta,
        smtplib.SMTP("127.0.0.1", mta.port) as client,
        pytest.raises(smtplib.SMTPRecipientsRefused) as caught,
    ):
        client.sendmail("list@example.org", ["a@example.net"], message)
    code, reply = caught.value.recipients["a@example.net"]
    assert code == 554 and b"Relay access denied" in reply
