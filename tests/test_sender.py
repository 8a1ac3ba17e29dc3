"""Who the mail says it is from: the sender checks, VERP envelope senders, Feedback-ID and
DKIM signatures that still verify after a relay on loopback has added its headers."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import email
import email.policy
import shutil
import smtplib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dkim
import pytest
from aiosmtpd.controller import Controller
from mailkinds import NOW, every_kind, mail_config, seeded_runtime

from digestd import cli, links
from digestd.config import Config, HttpConfig, MailConfig, PathsConfig, SmtpConfig
from digestd.delivery import plan_digests, send_pending
from digestd.delivery.identity import sender_problems
from digestd.runtime import Runtime
from digestd.store import Store
from digestd.subscribers import add_subscriber

from support import SmtpInbox, feed_titles, free_port, smtp_server

SMTP_CONFIG = dict(transport="smtp", from_address="Digests <digests@papers.example.org>")


def _config(base_url: str = "https://papers.example.org", **mail: str) -> Config:
    return dataclasses.replace(
        Config(), http=HttpConfig(base_url=base_url),
        mail=MailConfig(**{**SMTP_CONFIG, **mail}),  # type: ignore[arg-type]
    )


# Sender checks -------------------------------------------------------------------------------


@pytest.mark.parametrize(("config", "words"), [
    (_config(from_address="digestd <digestd@localhost>"), "mail.from_address digestd@localhost"),
    (_config(from_address="x@mail.internal"), "mail.from_address x@mail.internal"),
    (_config(base_url=""), "http.base_url is not set"),
    (_config(base_url="http://127.0.0.1:8080"), "loopback"),
    (_config(base_url="https://localhost"), "loopback"),
    (_config(envelope_sender="bounces@localhost"), "mail.envelope_sender"),
])
def test_smtp_with_a_sender_nobody_accepts_is_refused(config: Config, words: str) -> None:
    refusals, _ = sender_problems(config)
    assert refusals and words in refusals[0]
    assert "\n" not in refusals[0]


def test_a_real_sender_passes_and_maildir_is_never_held_to_it() -> None:
    assert sender_problems(_config()) == ([], [])
    assert sender_problems(Config()) == ([], [])  # maildir, localhost: a first run


def test_an_http_base_url_sends_without_one_click_and_says_so(tmp_path: Path) -> None:
    config = _config(base_url="http://papers.example.org")
    refusals, notes = sender_problems(config)
    assert refusals == [] and "without List-Unsubscribe-Post" in notes[0]
    runtime = seeded_runtime(tmp_path)
    runtime.config = dataclasses.replace(
        runtime.config, http=HttpConfig(base_url="http://papers.example.org")
    )
    message = every_kind(runtime)["digest-small"]
    assert message["List-Unsubscribe"].startswith("<http://papers.example.org/unsubscribe/")
    assert message["List-Unsubscribe-Post"] is None


def _write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "digestd.toml"
    path.write_text(f'[paths]\ndata_dir = "{tmp_path}"\n' + text)
    return path


def test_config_check_refuses_in_one_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = _write_config(tmp_path, '[mail]\ntransport = "smtp"\n')
    assert cli.main(["config", "--check", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("digestd: mail.from_address digestd@localhost")
    assert len(err.splitlines()) == 1
    # `digestd run` refuses to start on the same configuration, with the same line.
    assert cli.main(["run", "--config", str(path)]) == 2
    assert capsys.readouterr().err.strip() == err


def test_config_check_notes_http_and_passes(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = _write_config(
        tmp_path,
        '[http]\nbase_url = "http://papers.example.org"\n'
        '[mail]\ntransport = "smtp"\nfrom_address = "d@papers.example.org"\n',
    )
    assert cli.main(["config", "--check", "--config", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "note: http.base_url http://papers.example.org is http" in captured.err


def test_config_check_refuses_a_missing_dkim_key(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = _write_config(
        tmp_path,
        '[mail]\ndkim_key_file = "/nonexistent/key.pem"\ndkim_selector = "s1"\n',
    )
    assert cli.main(["config", "--check", "--config", str(path)]) == 2
    assert "mail.dkim_key_file /nonexistent/key.pem: cannot read" in capsys.readouterr().err


# VERP and Feedback-ID ---------------------------------------------------------------------------


def test_verp_addresses_round_trip() -> None:
    token = "AbCdEfGhIjKl-s3cr3t_x"
    address = links.verp_address("bounces@example.org", token)
    assert address == f"bounces+{token}@example.org"
    assert links.verp_token(address, "bounces@example.org") == token
    assert links.verp_token(f"<{address.upper()}>", "bounces@example.org") == token.upper()
    assert links.verp_token("bounces@example.org", "bounces@example.org") is None
    assert links.verp_token(f"other+{token}@example.org", "bounces@example.org") is None
    assert links.verp_token(f"bounces+{token}@example.net", "bounces@example.org") is None


@pytest.fixture
def runtime(store: Store, tmp_path: Path) -> Runtime:
    return Runtime.open(mail_config(tmp_path), store=store)


def test_each_digest_goes_out_from_its_subscribers_verp_address(runtime: Runtime) -> None:
    ada, _ = add_subscriber(runtime.store, "ada@example.org", ["kv-cache"], cadence="immediate")
    bob, _ = add_subscriber(runtime.store, "bob@example.org", ["kv-cache"], cadence="immediate")
    feed_titles(runtime, ["KV cache compression", "Paged KV cache eviction"])
    with smtp_server() as (inbox, port):
        runtime.config = dataclasses.replace(
            runtime.config,
            mail=dataclasses.replace(runtime.config.mail, envelope_sender="bounces@example.org",
                                     **SMTP_CONFIG),
            smtp=SmtpConfig(host="127.0.0.1", port=port, timeout=5),
        )
        plan_digests(runtime, NOW)
        report = send_pending(runtime, NOW)
    assert report.sent == 2
    senders = {rcpts[0]: sender for sender, rcpts, _ in inbox.envelopes}
    assert senders == {
        "ada@example.org": f"bounces+{ada.token}@example.org",
        "bob@example.org": f"bounces+{bob.token}@example.org",
    }
    for sender in senders.values():
        token = links.verp_token(sender, "bounces@example.org")
        found = runtime.store.subscriber_by_token(token or "")
        assert found is not None and sender.endswith(f"+{found.token}@example.org")
    message = email.message_from_bytes(inbox.received[0][1], policy=email.policy.default)
    assert message["Feedback-ID"] == "digest:digestd"
    # Nothing reads the envelope sender's mailbox here: no mailto is advertised.
    assert "mailto:" not in message["List-Unsubscribe"]


# DKIM -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """(private key file, the public key's DNS TXT record)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to make a test key: apt-get install openssl")
    directory = tmp_path_factory.mktemp("dkim")
    key = directory / "dkim.pem"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
         "-out", str(key)], check=True, capture_output=True,
    )
    public = subprocess.run(
        ["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"],
        check=True, capture_output=True,
    ).stdout
    return key, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


class Relay:
    """A loopback relay: takes a message, adds its trace headers, passes it on."""

    def __init__(self, next_port: int):
        self.next_port = next_port

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        trace = (
            b"Received: from client.example.org (localhost [127.0.0.1])\r\n"
            b"\tby relay.example.org (digestd-test) with ESMTP id 4XyZ;\r\n"
            b"\tMon, 2 Mar 2026 07:00:01 +0000\r\n"
            b"X-Relay-Scanned: clean\r\n"
        )
        with smtplib.SMTP("127.0.0.1", self.next_port, timeout=5) as client:
            client.sendmail(envelope.mail_from, envelope.rcpt_tos, trace + envelope.content)
        return "250 relayed"


@pytest.fixture
def relayed() -> Iterator[tuple[SmtpInbox, int]]:
    """A relay on loopback in front of a final server; yields (final inbox, relay port)."""
    with smtp_server() as (inbox, final_port):
        port = free_port()
        controller = Controller(Relay(final_port), hostname="127.0.0.1", port=port)
        controller.start()
        try:
            yield inbox, port
        finally:
            controller.stop()


def test_a_dkim_signature_verifies_after_a_relay(
    tmp_path: Path, dkim_key: tuple[Path, bytes], relayed: tuple[SmtpInbox, int]
) -> None:
    key, record = dkim_key
    inbox, relay_port = relayed
    runtime = seeded_runtime(tmp_path)
    runtime.config = dataclasses.replace(
        runtime.config,
        paths=PathsConfig(seeds_dir=tmp_path / "seeds", data_dir=tmp_path / "var"),
        mail=dataclasses.replace(
            runtime.config.mail, envelope_sender="bounces@papers.example.org",
            dkim_key_file=str(key), dkim_selector="s2026", **SMTP_CONFIG,
        ),
        smtp=SmtpConfig(host="127.0.0.1", port=relay_port, timeout=10),
    )
    confirmation = every_kind(runtime)["confirmation"]
    after_the_daily_slot = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    plan_digests(runtime, after_the_daily_slot)
    assert send_pending(runtime, after_the_daily_slot).sent == 2
    from digestd.web.mail import send_notice

    send_notice(runtime.config, confirmation)
    assert len(inbox.received) == 3

    def dns(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name == b"s2026._domainkey.papers.example.org." else None

    for _, data in inbox.received:
        assert data.startswith(b"Received: from client.example.org")
        assert dkim.verify(data, dnsfunc=dns), data[:600]
        signature = email.message_from_bytes(data, policy=email.policy.default)[
            "DKIM-Signature"
        ]
        tags = dict(
            t.strip().split("=", 1) for t in "".join(str(signature).split()).split(";") if t
        )
        assert tags["d"] == "papers.example.org" and tags["s"] == "s2026"
        signed = tags["h"].lower().split(":")
        assert "from" in signed and "subject" in signed
    digest = inbox.received[0][1]
    signed = str(email.message_from_bytes(digest, policy=email.policy.default)["DKIM-Signature"])
    assert "list-unsubscribe:" in "".join(signed.split()).lower()
    assert "list-unsubscribe-post" in "".join(signed.split()).lower()
    # The list headers are covered: a changed unsubscribe link breaks the signature.
    forged = digest.replace(b"List-Unsubscribe: <https://", b"List-Unsubscribe: <https://x", 1)
    assert forged != digest and not dkim.verify(forged, dnsfunc=dns)
