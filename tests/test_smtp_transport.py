"""The SMTP transport against real servers on loopback: STARTTLS and implicit TLS with a verified
certificate, login with the password from a file or the environment, one connection for many
messages, the rate limit, and timeouts against servers that stop answering."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import email
import email.policy
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from digestd.config import SmtpConfig
from digestd.config_load import load_config
from digestd.delivery import smtp as smtp_module
from digestd.delivery.pace import Pacer
from digestd.delivery.smtp import PASSWORD_ENV, SmtpTransport
from digestd.digest.message import build_message
from digestd.errors import ConfigError, TemporaryDeliveryError

from support import Certificate, free_port, loopback_certificates

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
USER = "digestd"
PASSWORD = "s3cret-pass-word"


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Certificate]:
    return loopback_certificates(tmp_path_factory.mktemp("certs"))


# An aiosmtpd server on loopback that records what it saw -------------------------------------


@dataclasses.dataclass
class Received:
    #: the client's (host, port): one per TCP connection
    peer: tuple[str, int]
    #: the TLS version of the connection the message came over, None for plaintext
    tls: str | None
    #: the user name that logged in, None without login
    login: str | None
    recipients: list[str]
    content: bytes

    def parsed(self) -> EmailMessage:
        return email.message_from_bytes(self.content, policy=email.policy.default)  # type: ignore[return-value]


class Recorder:
    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.mail_commands = 0
        #: answer the RCPT TO of the first message with this, once
        self.refuse_first_rcpt: str | None = None

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # type: ignore[no-untyped-def]
        self.mail_commands += 1
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if self.refuse_first_rcpt:
            reply, self.refuse_first_rcpt = self.refuse_first_rcpt, None
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        tls = server.transport.get_extra_info("ssl_object")
        self.messages.append(Received(
            peer=session.peer,
            tls=tls.version() if tls else None,
            login=session.auth_data if session.authenticated else None,
            recipients=list(envelope.rcpt_tos),
            content=envelope.content,
        ))
        return "250 Message accepted"

    @property
    def connections(self) -> int:
        return len({m.peer for m in self.messages})


class Authenticator:
    """Accepts USER with PASSWORD; counts attempts (to prove none happened in plaintext)."""

    def __init__(self) -> None:
        self.attempts = 0

    def __call__(self, server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        self.attempts += 1
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == USER.encode()
            and auth_data.password == PASSWORD.encode()
        )
        # handled=False: aiosmtpd answers a failure with its own 535
        return AuthResult(success=ok, handled=False, auth_data=USER if ok else None)


@contextlib.contextmanager
def _serve(handler: Recorder, **kwargs: Any) -> Iterator[int]:
    port = free_port()
    controller = Controller(handler, hostname=HOST, port=port, **kwargs)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def _settings(port: int, **kwargs: Any) -> SmtpConfig:
    return SmtpConfig(host=HOST, port=port, timeout=5, **kwargs)


def _message(n: int = 0, to: str = "ada@example.org") -> EmailMessage:
    """A digest as the project builds it, with non-ASCII text to prove nothing gets mangled."""
    return build_message(
        subject=f"Naïve widgets №{n} — über alles",
        text=f"Message {n}: Ünïcödé text.\n\n. a line starting with a dot\n",
        html=f"<p>Message {n}: <b>Ünïcödé</b></p>",
        from_address="Digests <digests@example.org>",
        to_email=to,
        to_name="Ada Lovelace",
        message_id=f"<test.{n}@example.org>",
        date=dt.datetime(2026, 3, 10, 8, 0, tzinfo=dt.UTC),
        list_id="digest.example.org",
        unsubscribe_url=f"https://digest.example.org/unsubscribe/{n}",
    )


def _assert_intact(received: Received, sent: EmailMessage) -> None:
    # byte for byte what the transport put on the wire (dot-stuffing undone by the server) ...
    assert received.content == sent.as_bytes(policy=sent.policy.clone(linesep="\r\n"))
    # ... and, read back by the email parser, the same headers and text
    got = received.parsed()
    for header in ("From", "To", "Subject", "Message-ID", "Date", "List-Unsubscribe"):
        assert got[header] == sent[header], header
    for kind in ("plain", "html"):
        body = got.get_body((kind,)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
        assert body == sent.get_body((kind,)).get_content()  # type: ignore[union-attr]
    assert received.recipients == [sent["To"].addresses[0].addr_spec]


def _send_all(transport: SmtpTransport, messages: list[EmailMessage]) -> None:
    try:
        for message in messages:
            transport.send(message)
    finally:
        transport.close()


# Configuration ------------------------------------------------------------------------------


def test_shipped_smtp_section_matches_the_defaults() -> None:
    assert load_config(REPO / "config" / "digestd.toml", environ={}).smtp == SmtpConfig()


def test_an_unusable_ca_file_is_a_configuration_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(ConfigError, match=r"smtp\.ca_file .*missing\.pem: cannot read"):
        SmtpTransport(_settings(25, security="starttls", ca_file=str(missing)))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"smtp\.ca_file .*garbage\.pem: no PEM certificate"):
        SmtpTransport(_settings(25, security="tls", ca_file=str(garbage)))


# STARTTLS and implicit TLS --------------------------------------------------------------------


@pytest.mark.parametrize("trust", ["ca_file", "SSL_CERT_FILE"])
def test_starttls_verifies_the_certificate_and_delivers_over_one_connection(
    certificates: dict[str, Certificate], monkeypatch: pytest.MonkeyPatch, trust: str,
    no_ssl_cert_file: None,
) -> None:
    cert = certificates["localhost"]
    handler = Recorder()
    ca_file = str(cert.cert)
    if trust == "SSL_CERT_FILE":  # what an operator without smtp.ca_file can do
        monkeypatch.setenv("SSL_CERT_FILE", ca_file)
        ca_file = ""
    # require_starttls: the server refuses MAIL FROM before TLS, so delivery proves TLS was on.
    with _serve(handler, tls_context=cert.server_context(), require_starttls=True) as port:
        transport = SmtpTransport(_settings(port, security="starttls", ca_file=ca_file))
        sent = [_message(n) for n in range(3)]
        _send_all(transport, sent)
    assert transport.connections == 1 and handler.connections == 1
    assert len(handler.messages) == 3
    for received, message in zip(handler.messages, sent, strict=True):
        assert received.tls is not None and received.tls.startswith("TLSv1.")
        _assert_intact(received, message)


def test_implicit_tls_delivers_over_one_connection(
    certificates: dict[str, Certificate], no_ssl_cert_file: None
) -> None:
    cert = certificates["localhost"]
    handler = Recorder()
    with _serve(handler, ssl_context=cert.server_context()) as port:
        transport = SmtpTransport(_settings(port, security="tls", ca_file=str(cert.cert)))
        sent = [_message(n) for n in range(3)]
        _send_all(transport, sent)
    assert transport.connections == 1 and handler.connections == 1
    for received, message in zip(handler.messages, sent, strict=True):
        assert received.tls is not None
        _assert_intact(received, message)


@pytest.mark.parametrize("security", ["starttls", "tls"])
@pytest.mark.parametrize(
    ("certificate", "trusted", "reason"),
    [
        ("localhost", False, r"self[- ]signed certificate"),  # nobody vouches for it
        ("elsewhere", True, r"not valid for '127\.0\.0\.1'"),  # trusted, for another name
    ],
)
def test_an_untrusted_certificate_is_a_clear_temporary_error(
    certificates: dict[str, Certificate], no_ssl_cert_file: None,
    security: str, certificate: str, trusted: bool, reason: str,
) -> None:
    cert = certificates[certificate]
    handler = Recorder()
    tls = {"ssl_context": cert.server_context()} if security == "tls" else {
        "tls_context": cert.server_context()
    }
    with _serve(handler, **tls) as port:
        transport = SmtpTransport(
            _settings(port, security=security, ca_file=str(cert.cert) if trusted else "")
        )
        with pytest.raises(TemporaryDeliveryError) as caught:
            transport.send(_message())
        transport.close()
    message = str(caught.value)
    assert f"SMTP server {HOST}:{port} has an untrusted TLS certificate" in message
    assert re.search(reason, message) and "smtp.ca_file" in message
    assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)
    assert handler.mail_commands == 0 and handler.messages == []  # no plaintext fallback
    assert transport.connections == 0


def test_starttls_not_offered_sends_nothing(no_ssl_cert_file: None) -> None:
    handler = Recorder()
    with _serve(handler) as port:  # a server without tls_context does not offer STARTTLS
        transport = SmtpTransport(_settings(port, security="starttls"))
        with pytest.raises(TemporaryDeliveryError, match="does not offer STARTTLS") as caught:
            transport.send(_message())
        transport.close()
    assert f"{HOST}:{port}" in str(caught.value) and "smtp.security" in str(caught.value)
    assert handler.mail_commands == 0 and handler.messages == []


# Login ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _auth_server(
    certificates: dict[str, Certificate], authenticator: Authenticator, handler: Recorder
) -> Iterator[int]:
    # auth_required: no MAIL FROM without login; auth_require_tls: AUTH only after STARTTLS.
    with _serve(
        handler, tls_context=certificates["localhost"].server_context(), require_starttls=True,
        authenticator=authenticator, auth_required=True, auth_require_tls=True,
    ) as port:
        yield port


def _auth_settings(
    port: int, certificates: dict[str, Certificate], **kwargs: Any
) -> SmtpConfig:
    return _settings(
        port, security="starttls", ca_file=str(certificates["localhost"].cert), username=USER,
        **kwargs,
    )


def test_login_with_the_password_file(
    certificates: dict[str, Certificate], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    no_ssl_cert_file: None,
) -> None:
    secret = tmp_path / "smtp-password"
    secret.write_text(PASSWORD + "\n")  # as `echo ... > file` leaves it
    monkeypatch.setenv(PASSWORD_ENV, "not-this-one")  # the file wins over the environment
    handler, authenticator = Recorder(), Authenticator()
    with _auth_server(certificates, authenticator, handler) as port:
        transport = SmtpTransport(_auth_settings(port, certificates, password_file=str(secret)))
        _send_all(transport, [_message(0), _message(1)])
    assert authenticator.attempts == 1  # once per connection, not per message
    assert [m.login for m in handler.messages] == [USER, USER]
    assert all(m.tls for m in handler.messages)


def test_login_with_the_password_from_the_environment(
    certificates: dict[str, Certificate], monkeypatch: pytest.MonkeyPatch,
    no_ssl_cert_file: None,
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    handler, authenticator = Recorder(), Authenticator()
    with _auth_server(certificates, authenticator, handler) as port:
        # the default environ is os.environ, as make_transport passes it
        transport = SmtpTransport(_auth_settings(port, certificates))
        _send_all(transport, [_message()])
    assert [m.login for m in handler.messages] == [USER]


def test_a_refused_login_is_temporary_and_never_shows_the_password(
    certificates: dict[str, Certificate], no_ssl_cert_file: None
) -> None:
    wrong = "wrong-horse-battery"
    handler, authenticator = Recorder(), Authenticator()
    with _auth_server(certificates, authenticator, handler) as port:
        transport = SmtpTransport(
            _auth_settings(port, certificates), environ={PASSWORD_ENV: wrong}
        )
        with pytest.raises(TemporaryDeliveryError) as caught:
            transport.send(_message())
        transport.close()
    message = str(caught.value)
    assert f"SMTP server {HOST}:{port} refused the login of '{USER}'" in message
    assert "535" in message and PASSWORD_ENV in message
    encoded = base64.b64encode(f"\0{USER}\0{wrong}".encode()).decode()
    for text in (message, str(caught.value.__cause__), repr(caught.value.__cause__)):
        assert wrong not in text and encoded not in text
    assert authenticator.attempts >= 1 and handler.messages == []


def test_login_without_tls_is_not_attempted_where_the_server_wants_tls(
    certificates: dict[str, Certificate], no_ssl_cert_file: None
) -> None:
    handler, authenticator = Recorder(), Authenticator()
    with _auth_server(certificates, authenticator, handler) as port:
        settings = dataclasses.replace(_auth_settings(port, certificates), security="none")
        transport = SmtpTransport(settings, environ={PASSWORD_ENV: PASSWORD})
        with pytest.raises(TemporaryDeliveryError, match="does not offer STARTTLS or login"):
            transport.send(_message())
        transport.close()
    assert authenticator.attempts == 0 and handler.messages == []


def test_password_problems_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"smtp\.password_file .*nowhere: cannot read"):
        SmtpTransport(_settings(25, username=USER, password_file=str(tmp_path / "nowhere")))
    # smtplib sends AUTH in ASCII only: say so now rather than crash every delivery run.
    with pytest.raises(ConfigError, match="non-ASCII") as caught:
        SmtpTransport(_settings(25, username=USER), environ={PASSWORD_ENV: "pässword"})
    assert "pässword" not in str(caught.value)


# Connection reuse ---------------------------------------------------------------------------


def test_a_connection_the_client_closed_after_421_is_opened_again() -> None:
    """smtplib closes the socket itself on a 421 to RCPT TO; the next message must not fail."""
    handler = Recorder()
    handler.refuse_first_rcpt = "421 4.3.2 Service shutting down"
    with _serve(handler) as port:
        transport = SmtpTransport(_settings(port))
        with pytest.raises(TemporaryDeliveryError, match="421"):
            transport.send(_message(0))
        _send_all(transport, [_message(1), _message(2)])
    assert transport.connections == 2
    assert [m.parsed()["Message-ID"] for m in handler.messages] == [
        "<test.1@example.org>", "<test.2@example.org>"
    ]
    assert handler.connections == 1  # both on the second connection


# Rate limit -------------------------------------------------------------------------------------


def _timed_sends(
    port: int, monkeypatch: pytest.MonkeyPatch, count: int, **kwargs: Any
) -> tuple[float, list[float]]:
    sleeps: list[float] = []
    real_sleep = time.sleep

    def spy(seconds: float) -> None:
        sleeps.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(smtp_module.time, "sleep", spy)
    transport = SmtpTransport(_settings(port, **kwargs))
    started = time.monotonic()
    _send_all(transport, [_message(n) for n in range(count)])
    return time.monotonic() - started, sleeps


def test_the_rate_limit_spaces_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    handler = Recorder()
    slots: list[float] = []
    real_wait = Pacer.wait

    def noted(pacer: Pacer) -> None:
        real_wait(pacer)
        slots.append(time.monotonic())  # when this message may go

    monkeypatch.setattr(Pacer, "wait", noted)
    with _serve(handler) as port:
        elapsed, sleeps = _timed_sends(port, monkeypatch, 5, rate_limit=20.0)
    assert len(handler.messages) == 5
    # 5 messages at 20 per second: the n-th goes n/20 s after the first, or later. The
    # sleeps make up only what sending itself did not take (less on a busy machine).
    since_first = [slot - slots[0] for slot in slots]
    assert len(since_first) == 5
    assert all(t >= n / 20 - 0.005 for n, t in enumerate(since_first)), since_first
    assert elapsed >= 4 / 20
    assert sum(sleeps) <= 4 / 20 + 0.01


def test_without_a_rate_limit_nothing_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    handler = Recorder()
    with _serve(handler) as port:
        _, sleeps = _timed_sends(port, monkeypatch, 5)
    assert len(handler.messages) == 5 and sleeps == []


# Timeouts against servers that stop answering ---------------------------------------------------


class SilentServer:
    """A raw TCP server on loopback that speaks SMTP up to `stall_at`, then goes quiet.

    stall_at="connect": accepts and never says a word (nor a TLS handshake);
    stall_at="end-of-data": answers until the message's final ".", then never replies.
    """

    def __init__(self, stall_at: str):
        self.stall_at = stall_at
        self.stop = threading.Event()
        self.listener = socket.create_server((HOST, 0))
        self.listener.settimeout(0.05)
        self.port = int(self.listener.getsockname()[1])
        self.accepted = 0
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            thread = threading.Thread(target=self._talk, args=(client,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _talk(self, client: socket.socket) -> None:
        with client:
            client.settimeout(0.05)
            if self.stall_at == "end-of-data":
                self._converse(client)
            self.stop.wait()

    def _converse(self, client: socket.socket) -> None:
        client.sendall(b"220 silent.example ESMTP\r\n")
        buffer = b""
        in_data = False
        while not self.stop.is_set():
            try:
                chunk = client.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                return
            buffer += chunk
            while b"\r\n" in buffer:
                line, buffer = buffer.split(b"\r\n", 1)
                if in_data:
                    if line == b".":
                        return  # the message is complete: never answer it
                    continue
                verb = line[:4].upper()
                if verb == b"DATA":
                    in_data = True
                    client.sendall(b"354 go ahead\r\n")
                else:
                    client.sendall(b"250 OK\r\n")

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=2)
        self.listener.close()


@pytest.fixture
def silent_server() -> Iterator[Callable[[str], SilentServer]]:
    servers: list[SilentServer] = []

    def start(stall_at: str) -> SilentServer:
        servers.append(SilentServer(stall_at))
        return servers[-1]

    try:
        yield start
    finally:
        for server in servers:
            server.close()


TIMEOUT = 0.5


def _send_timed(transport: SmtpTransport) -> tuple[float, TemporaryDeliveryError]:
    started = time.monotonic()
    with pytest.raises(TemporaryDeliveryError) as caught:
        transport.send(_message())
    return time.monotonic() - started, caught.value


@pytest.mark.parametrize("security", ["none", "tls"])
def test_a_server_that_never_answers_times_out(
    silent_server: Callable[[str], SilentServer], security: str, no_ssl_cert_file: None
) -> None:
    """No banner (plain SMTP) or no TLS handshake (implicit TLS): a temporary error in time."""
    server = silent_server("connect")
    transport = SmtpTransport(dataclasses.replace(
        _settings(server.port, security=security), timeout=TIMEOUT
    ))
    elapsed, error = _send_timed(transport)
    transport.close()
    assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + 1.0
    assert f"{HOST}:{server.port}" in str(error) and "timed out" in str(error)
    assert server.accepted == 1 and transport.connections == 0


def test_a_server_that_stalls_after_data_times_out_and_is_left(
    silent_server: Callable[[str], SilentServer],
) -> None:
    server = silent_server("end-of-data")
    transport = SmtpTransport(dataclasses.replace(_settings(server.port), timeout=TIMEOUT))
    elapsed, error = _send_timed(transport)
    assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + 1.0
    assert f"{HOST}:{server.port}" in str(error) and "timed out" in str(error)
    # The stalled connection is dropped: the next attempt opens a new one.
    _send_timed(transport)
    transport.close()
    assert (transport.connections, server.accepted) == (2, 2)


@pytest.mark.parametrize("host", ["smtp.example.org", "192.0.2.10"])
def test_a_login_in_clear_over_the_network_is_refused(host: str) -> None:
    settings = SmtpConfig(host=host, port=25, security="none", username=USER)
    with pytest.raises(ConfigError, match="unencrypted") as caught:
        SmtpTransport(settings, environ={PASSWORD_ENV: PASSWORD})
    assert PASSWORD not in str(caught.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_a_login_in_clear_to_a_local_relay_is_allowed(host: str) -> None:
    settings = SmtpConfig(host=host, port=25, security="none", username=USER)
    SmtpTransport(settings, environ={PASSWORD_ENV: PASSWORD}).close()


@pytest.mark.parametrize(
    "data",
    [
        b"From: a\r\n\r\n.starts\r\n..two\r\nmid.dle\r\n.\r\n",
        b".first line\r\nlast without a line end",
        b"ends with a dot line\r\n.",
        b"plain\r\n",
        b"",
    ],
)
def test_data_is_quoted_as_smtplib_quotes_it(data: bytes) -> None:
    import smtplib

    expected = smtplib._quote_periods(data)  # type: ignore[attr-defined]
    if expected[-2:] != b"\r\n":
        expected += b"\r\n"
    assert smtp_module._stuffed(data) == expected + b".\r\n"


@pytest.mark.parametrize(
    ("address", "options"),
    [
        ("reader1@example.org", []),
        ("reader1@example.org", ["size=12345"]),
        ("bounces+AbC-_9@mail.example.co.uk", ["size=1", "BODY=8BITMIME"]),
        ("Ada <ada@example.org>", []),
        ("o'brien@example.org", ["size=3"]),
    ],
)
def test_mail_and_rcpt_commands_are_smtplibs(address: str, options: list[str]) -> None:
    import smtplib

    def commands(client_class: type) -> list[tuple[str, str]]:
        sent: list[tuple[str, str]] = []
        client = client_class()
        client.does_esmtp = True
        client.putcmd = lambda cmd, args="": sent.append((cmd, args))
        client.getreply = lambda: (250, b"ok")
        client.mail(address, options)
        client.rcpt(address, options)
        return sent

    assert commands(smtp_module._Client) == commands(smtplib.SMTP)
