"""The bounce intake over IMAP, against a real Dovecot on loopback (tests/imapd.py)."""

from __future__ import annotations

import dataclasses
import imaplib
from collections.abc import Iterator
from pathlib import Path

import pytest
from imapd import Dovecot
from test_bounces import SENDER, _config, dsn, plain

from digestd import links
from digestd.config import BouncesConfig
from digestd.delivery.intake import kept_messages, read_bounces
from digestd.runtime import Runtime
from digestd.subscribers import add_subscriber


@pytest.fixture(scope="module")
def imap() -> Iterator[Dovecot]:
    Dovecot.skip_unless_available()
    with Dovecot() as server:
        yield server


def _append(server: Dovecot, *messages: bytes) -> None:
    client = imaplib.IMAP4("127.0.0.1", server.port)
    try:
        client.login(server.user, server.password)
        for data in messages:
            status, _ = client.append("INBOX", None, None, data.replace(b"\n", b"\r\n"))
            assert status == "OK"
    finally:
        client.logout()


def _count(server: Dovecot) -> int:
    client = imaplib.IMAP4("127.0.0.1", server.port)
    try:
        client.login(server.user, server.password)
        status, data = client.select("INBOX")
        assert status == "OK"
        return int(data[0])
    finally:
        client.logout()


def test_bounces_and_unsubscribes_are_read_over_imap(imap: Dovecot, tmp_path: Path) -> None:
    config = _config(tmp_path)
    password = tmp_path / "imap-password"
    password.write_text(imap.password + "\n")
    config = dataclasses.replace(config, bounces=BouncesConfig(
        imap_host="127.0.0.1", imap_port=imap.port, imap_security="none",
        imap_username=imap.user, imap_password_file=str(password),
    ))
    runtime = Runtime.open(config)
    try:
        ada, _ = add_subscriber(runtime.store, "ada@example.net", ["widgets"])
        bob, _ = add_subscriber(runtime.store, "bob@example.net", ["widgets"])
        _append(
            imap,
            dsn("ada@example.net", to=links.verp_address(SENDER, ada.token)),
            plain(links.verp_address(SENDER, bob.token), "unsubscribe"),
            plain(SENDER, "Where is my digest?", "It did not come today."),
        )
        assert _count(imap) == 3
        report = read_bounces(runtime)
        assert (report.read, report.bounces, report.unsubscribed, report.kept) == (3, 1, 1, 1)
        assert runtime.store.subscriber("ada@example.net").bounce_count == 1  # type: ignore[union-attr]
        assert runtime.store.subscriber("bob@example.net").status == "unsubscribed"  # type: ignore[union-attr]
        # Handled mail leaves the IMAP folder; the unknown one is kept locally first.
        assert _count(imap) == 0
        assert [m.subject for m in kept_messages(config)] == ["Where is my digest?"]
        assert read_bounces(runtime).read == 0
    finally:
        runtime.close()


def test_a_wrong_imap_password_is_one_clear_error(imap: Dovecot, tmp_path: Path) -> None:
    from digestd.errors import DeliveryError

    config = dataclasses.replace(_config(tmp_path), bounces=BouncesConfig(
        imap_host="127.0.0.1", imap_port=imap.port, imap_security="none",
        imap_username=imap.user,
    ))
    runtime = Runtime.open(config)
    try:
        with pytest.raises(DeliveryError, match=f"cannot read imap 127.0.0.1:{imap.port}"):
            read_bounces(runtime)
    finally:
        runtime.close()
