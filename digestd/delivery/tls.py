"""TLS for the connections digestd opens itself (the SMTP relay, the IMAP bounce mailbox).

Always verified, certificate chain and host name, against a configured CA file or the
system's trust store. The standard library's own default for smtplib and imaplib without a
context verifies nothing, so every TLS connection gets its context from here.
"""

from __future__ import annotations

import ipaddress
import ssl

from digestd.errors import ConfigError


def client_context(ca_file: str, key: str) -> ssl.SSLContext:
    """A verifying client context; `ca_file` (PEM) instead of the system's store when set.
    A file that cannot be read or holds no certificate is a ConfigError naming `key`."""
    try:
        return ssl.create_default_context(cafile=ca_file or None)
    except ssl.SSLError as exc:
        reason = exc.reason or exc
        raise ConfigError(f"{key} {ca_file}: no PEM certificate in it ({reason})") from exc
    except OSError as exc:
        raise ConfigError(f"{key} {ca_file}: cannot read: {exc.strerror or exc}") from exc


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine: the only place a password may go unencrypted."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
