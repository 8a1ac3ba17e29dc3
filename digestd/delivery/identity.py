"""Whether the configured sender can send real mail: checked at start and by `config --check`.

Maildir delivery is for trying digestd out, so only SMTP is held to this: mail from a
``localhost`` domain is refused or filed as spam by every provider, and links to a loopback
or missing base URL are dead for every reader (the unsubscribe link included).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from digestd.config import Config
from digestd.digest.message import parse_from
from digestd.errors import ConfigError

_LOCAL_SUFFIXES = (".localhost", ".local", ".localdomain", ".internal", ".invalid", ".test")


def _local_domain(domain: str) -> bool:
    domain = domain.lower().rstrip(".")
    if domain == "localhost" or domain.endswith(_LOCAL_SUFFIXES) or "." not in domain:
        return True
    try:
        address = ipaddress.ip_address(domain.strip("[]"))
    except ValueError:
        return False
    return address.is_loopback or address.is_private


def _loopback_host(host: str) -> bool:
    if host in ("localhost", "") or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def sender_problems(config: Config) -> tuple[list[str], list[str]]:
    """(refusals, notes): what stops real mail going out, and what only weakens it."""
    refusals: list[str] = []
    notes: list[str] = []
    if config.mail.transport != "smtp":
        return refusals, notes
    mail = config.mail
    domain = parse_from(mail.from_address).domain
    if _local_domain(domain):
        refusals.append(
            f"mail.from_address {parse_from(mail.from_address).addr_spec} is in a local "
            "domain that no mail server accepts mail from: set it to an address of your "
            "own domain before sending by SMTP"
        )
    if mail.envelope_sender and _local_domain(mail.envelope_sender.rpartition("@")[2]):
        refusals.append(
            f"mail.envelope_sender {mail.envelope_sender} is in a local domain: bounces "
            "could never come back; set it to an address of your own domain"
        )
    if not config.http.base_url:
        refusals.append(
            f"http.base_url is not set: every link in the mail (unsubscribe included) would "
            f"point at {config.base_url}; set it to the public https:// URL of this server"
        )
    else:
        url = urlsplit(config.http.base_url)
        if _loopback_host((url.hostname or "").lower()):
            refusals.append(
                f"http.base_url {config.http.base_url} is a loopback address that readers "
                "cannot open; set it to the public https:// URL of this server"
            )
        elif url.scheme == "http":
            notes.append(
                f"http.base_url {config.http.base_url} is http: digests go out without "
                "List-Unsubscribe-Post (one-click unsubscribe needs https, RFC 8058)"
            )
    return refusals, notes


def check_sender(config: Config) -> list[str]:
    """Raise ConfigError with the first refusal; return the notes worth logging."""
    refusals, notes = sender_problems(config)
    if refusals:
        raise ConfigError(refusals[0])
    if config.mail.dkim_key_file:
        from digestd.delivery.signing import make_signer

        make_signer(config)  # raises ConfigError for a missing or unusable key
    return notes
