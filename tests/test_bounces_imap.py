"""The bounce intake over IMAP, against a real Dovecot on loopback (tests/imapd.py): in
plaintext, over implicit TLS and STARTTLS with a self-signed CA given as bounces.imap_ca_file,
refusing a certificate the CA did not sign, and never falling back to plaintext."""

from __future__ import annotations

import dataclasses
import imaplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from imapd import Dovecot
from test_bounces import SENDER, _config, dsn, plain

from digestd import links
from digestd.config import BouncesConfig, Config
from digestd.delivery.intake import ImapSource, kept_messages, read_bounces
from digestd.errors import ConfigError, DeliveryError
from digestd.gcpause import collector_paused
from digestd.runtime import Runtime
from digestd.subscribers import add_subscriber

from support import Certificate, loopback_certificates, wait_for


@pytest.fixture(scope="module")
def imap() -> Iterator[Dovecot]:
    Dovecot.skip_unless_available()
    with Dovecot() as server:
        yield server


@contextmanager
def _client(server: Dovecot, ca: Certificate | None = None) -> Iterator[imaplib.IMAP4]:
    """Logged in as the mailbox's owner: in plaintext, or over IMAPS trusting `ca`."""
    if ca is None:
        client = imaplib.IMAP4("127.0.0.1", server.port)
    else:
        context = ssl.create_default_context(cafile=str(ca.cert))
        client = imaplib.IMAP4_SSL("127.0.0.1", server.tls_port, ssl_context=context)
    try:
        client.login(server.user, server.password)
        yield client
    finally:
        client.logout()


def _append(server: Dovecot, *messages: bytes, ca: Certificate | None = None) -> None:
    with _client(server, ca) as client:
        for data in messages:
            status, _ = client.append("INBOX", None, None, data.replace(b"\n", b"\r\n"))
            assert status == "OK"


def _count(server: Dovecot) -> int:
    with _client(server) as client:
        status, data = client.select("INBOX")
        assert status == "OK"
        return int(data[0])


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
    config = dataclasses.replace(_config(tmp_path), bounces=BouncesConfig(
        imap_host="127.0.0.1", imap_port=imap.port, imap_security="none",
        imap_username=imap.user,
    ))
    runtime = Runtime.open(config)
    refused = len(imap.refused())
    try:
        with collector_paused():
            with pytest.raises(DeliveryError, match=f"cannot read imap 127.0.0.1:{imap.port}"):
                read_bounces(runtime)
            # the refused connection is closed at once, not when a garbage collection finds
            # it (the collector is off): the server sees it end
            wait_for(lambda: len(imap.refused()) > refused, 30, "the refused login's end")
    finally:
        runtime.close()


# Over TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Certificate]:
    return loopback_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def imaps(certificates: dict[str, Certificate]) -> Iterator[Dovecot]:
    Dovecot.skip_unless_available()
    with Dovecot(tls=certificates["localhost"]) as server:
        yield server


def _tls_config(
    tmp_path: Path, server: Dovecot, security: str, ca: Certificate | None = None,
    *, port: int | None = None,
) -> Config:
    """The intake reading `server` with this imap_security (on the port that goes with it,
    unless `port` is given), trusting `ca` (None: the system's store)."""
    password = tmp_path / "imap-password"
    password.write_text(server.password + "\n")
    return dataclasses.replace(_config(tmp_path), bounces=BouncesConfig(
        imap_host="127.0.0.1",
        imap_port=port or (server.tls_port if security == "tls" else server.port),
        imap_security=security, imap_ca_file=str(ca.cert) if ca else "",
        imap_username=server.user, imap_password_file=str(password),
    ))


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_bounces_are_read_over_tls_with_the_configured_ca(
    imaps: Dovecot, certificates: dict[str, Certificate], tmp_path: Path, security: str,
    no_ssl_cert_file: None,
) -> None:
    runtime = Runtime.open(_tls_config(tmp_path, imaps, security, certificates["localhost"]))
    try:
        ada, _ = add_subscriber(runtime.store, "ada@example.net", ["widgets"])
        before = len(imaps.logins())
        _append(imaps, dsn("ada@example.net", to=links.verp_address(SENDER, ada.token)),
                ca=certificates["localhost"])
        # Dovecot writes its log a moment later: wait for the append's login line
        wait_for(lambda: len(imaps.logins()) == before + 1, 5, "the append's login line")
        report = read_bounces(runtime)
        assert (report.read, report.bounces) == (1, 1)
        assert runtime.store.subscriber("ada@example.net").bounce_count == 1  # type: ignore[union-attr]
        # The server saw our login come over TLS (Dovecot logs the connection's security).
        wait_for(lambda: len(imaps.logins()) == before + 2, 5, "the intake's login line")
        login = imaps.logins()[-1]
        assert "user=<bounces>" in login and ", TLS," in login, login
    finally:
        runtime.close()


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_a_certificate_the_ca_did_not_sign_is_refused_before_the_login(
    imaps: Dovecot, certificates: dict[str, Certificate], tmp_path: Path, security: str,
    no_ssl_cert_file: None,
) -> None:
    wrong_ca = _tls_config(tmp_path, imaps, security, certificates["elsewhere"])
    system_store = _tls_config(tmp_path, imaps, security)
    logins, ended = len(imaps.logins()), len(imaps.unauthenticated())
    for config in (wrong_ca, system_store):
        with pytest.raises(DeliveryError, match="untrusted TLS certificate") as caught:
            ImapSource(config)
        assert "bounces.imap_ca_file" in str(caught.value)
        assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)
    # Both connections ended without a login attempt: the password never left digestd.
    # the server logs a disconnect when it notices it, which a loaded machine may delay; a
    # late line of an earlier test's connection may come too, so at least two
    wait_for(lambda: len(imaps.unauthenticated()) >= ended + 2, 30, "the two disconnects")
    assert len(imaps.logins()) == logins


def test_starttls_never_falls_back_to_plaintext(imap: Dovecot, tmp_path: Path) -> None:
    """A server that does not offer STARTTLS (or an attacker who strips it) gets no login."""
    logins, ended = len(imap.logins()), len(imap.unauthenticated())
    with collector_paused():  # and both connections are closed at once
        with pytest.raises(DeliveryError, match="does not offer STARTTLS") as caught:
            ImapSource(_tls_config(tmp_path, imap, "starttls"))
        assert "not sent in clear" in str(caught.value)
        # implicit TLS against a plaintext port fails in the handshake, and logs in nowhere
        with pytest.raises(DeliveryError, match=f"cannot read imap 127.0.0.1:{imap.port}"):
            ImapSource(_tls_config(tmp_path, imap, "tls", port=imap.port))
        wait_for(lambda: len(imap.unauthenticated()) >= ended + 2, 30, "the two disconnects")
    assert len(imap.logins()) == logins


def test_a_plaintext_login_to_another_host_is_refused(tmp_path: Path) -> None:
    config = dataclasses.replace(_config(tmp_path), bounces=BouncesConfig(
        imap_host="imap.example.org", imap_port=143, imap_security="none",
        imap_username="bounces",
    ))
    with pytest.raises(ConfigError, match="password would cross the network"):
        ImapSource(config, environ={"DIGESTD_IMAP_PASSWORD": "secret"})


def test_an_unusable_imap_ca_file_is_a_configuration_error(tmp_path: Path) -> None:
    config = dataclasses.replace(_config(tmp_path), bounces=BouncesConfig(
        imap_host="127.0.0.1", imap_security="tls", imap_ca_file=str(tmp_path / "missing.pem"),
    ))
    with pytest.raises(ConfigError, match=r"bounces\.imap_ca_file .*missing\.pem: cannot read"):
        ImapSource(config)
