"""Subscribers: validating what people and operators type, before it reaches the store.

Every check raises `SubscriberError` with a message that says what is wrong with which value,
so the CLI, the CSV import and the web form can all show it as it is.
"""

from __future__ import annotations

import csv
import io
import re
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from email_validator import EmailNotValidError, validate_email

from digestd.errors import SubscriberError
from digestd.store import Store, SubscriberRecord

CADENCES = ("immediate", "daily", "weekly")
MAX_NAME = 100
MAX_ADDRESS = 254
# Control characters (CR and LF above all) would let a value start a new mail header.
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


@dataclass(frozen=True)
class Address:
    #: the normalised address, as it goes into To:
    email: str
    #: the form used for uniqueness (case-folded)
    key: str


def normalize_address(raw: str) -> Address:
    if _CONTROL.search(raw):
        raise SubscriberError(
            f"invalid e-mail address {raw!r}: contains a line break or control character"
        )
    text = raw.strip()
    if not text:
        raise SubscriberError("an e-mail address is required")
    if len(text) > MAX_ADDRESS:
        raise SubscriberError(f"invalid e-mail address: longer than {MAX_ADDRESS} characters")
    try:
        valid = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise SubscriberError(f"invalid e-mail address {text!r}: {exc}") from exc
    return Address(valid.normalized, valid.normalized.casefold())


#: what mail clients turn into a link: a scheme, an @, or a dot between word characters
#: and letters ("example.com", "x.co/path"); "J. R. Tolkien" and "Dr. Who" stay fine
_LINK_LIKE = re.compile(r"://|@|\bwww\.|\w\.[^\W\d_]{2,}", re.IGNORECASE)


def normalize_name(raw: str | None) -> str | None:
    if raw is None:
        return None
    if _CONTROL.search(raw):
        raise SubscriberError("invalid name: contains a line break or control character")
    name = " ".join(raw.split())
    if _LINK_LIKE.search(name):
        # A name is echoed in mail ("Hi …,"): a link there would let anybody send a link to
        # any address through the sign-up form.
        raise SubscriberError("invalid name: it looks like a web or e-mail address")
    if len(name) > MAX_NAME:
        raise SubscriberError(f"invalid name: longer than {MAX_NAME} characters")
    return name


def normalize_timezone(raw: str | None) -> str | None:
    if raw is None:
        return None
    name = raw.strip()
    # ZoneInfo would also accept relative paths inside the tz database; keep to plain names.
    if not name or ".." in name or name.startswith("/"):
        raise SubscriberError(f"unknown time zone {raw!r}")
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise SubscriberError(
            f"unknown time zone {raw!r} (use an IANA name such as Europe/Berlin)"
        ) from exc
    return name


def normalize_cadence(raw: str | None) -> str | None:
    if raw is None:
        return None
    cadence = raw.strip().lower()
    if cadence not in CADENCES:
        raise SubscriberError(f"unknown cadence {raw!r}; use one of: {', '.join(CADENCES)}")
    return cadence


def add_subscriber(
    store: Store, email: str, topics: Sequence[str], *, cadence: str | None = None,
    timezone: str | None = None, name: str | None = None, status: str = "active",
    resubscribe: bool = False, rising: bool | None = None, rising_default: bool = False,
) -> tuple[SubscriberRecord, bool]:
    """Add or update a subscriber; returns (record, created). Unknown topics are refused.

    Someone who unsubscribed is not subscribed again (`OptedOutError`) unless `resubscribe`.
    `rising` turns the digests' rising section on or off (None: as it was, and
    `rising_default` for a new subscriber).
    """
    address = normalize_address(email)
    cadence = normalize_cadence(cadence)
    timezone = normalize_timezone(timezone)
    name = normalize_name(name)
    slugs = [s.strip() for s in topics if s.strip()]
    existing = store.subscriber(address.key)
    if not slugs and existing is None:
        raise SubscriberError("a new subscriber needs at least one topic")
    return store.save_subscriber(
        email=address.email,
        email_key=address.key,
        name=name,
        cadence=cadence if cadence or existing else "daily",
        timezone=timezone if timezone or existing else "UTC",
        topics=slugs,
        status=status,
        resubscribe=resubscribe,
        rising=rising if rising is not None or existing is not None else rising_default,
    )


@dataclass(frozen=True)
class Preferences:
    """What the sign-up and manage forms set, validated and normalised."""

    name: str
    cadence: str
    timezone: str
    topics: tuple[str, ...]
    address: Address | None = None


#: the longest time zone name accepted (the longest IANA name has 32 characters)
MAX_TIMEZONE = 64


def parse_preferences(
    *,
    email: str | None,
    name: str,
    cadence: str,
    timezone: str,
    topics: Sequence[str],
    known_topics: Sequence[str],
) -> tuple[Preferences | None, dict[str, str]]:
    """Check a form's values; returns (preferences, {}) or (None, {field: message}).

    Every field is checked, so a person sees all that is wrong at once. `email` None means
    the form has no address field (the manage page).
    """
    errors: dict[str, str] = {}
    address = None
    if email is not None:
        try:
            address = normalize_address(email)
        except SubscriberError as exc:
            errors["email"] = str(exc)
    try:
        clean_name = normalize_name(name) or ""
    except SubscriberError as exc:
        errors["name"] = str(exc)
    try:
        clean_cadence = normalize_cadence(cadence or "")
    except SubscriberError as exc:
        errors["cadence"] = str(exc)
    if len(timezone) > MAX_TIMEZONE:
        errors["timezone"] = f"unknown time zone: longer than {MAX_TIMEZONE} characters"
    else:
        try:
            clean_timezone = normalize_timezone(timezone)
        except SubscriberError as exc:
            errors["timezone"] = str(exc)
    slugs = tuple(dict.fromkeys(t.strip() for t in topics if t.strip()))
    unknown = [s for s in slugs if s not in known_topics]
    if unknown:
        errors["topics"] = f"unknown topic {unknown[0][:64]!r}; choose from the list"
    elif not slugs:
        errors["topics"] = "choose at least one topic"
    if errors:
        return None, errors
    return Preferences(
        clean_name, clean_cadence or "daily", clean_timezone or "UTC", slugs, address
    ), {}


def find_subscriber(store: Store, email: str) -> SubscriberRecord | None:
    return store.subscriber(normalize_address(email).key)


def remove_subscriber(store: Store, email: str) -> None:
    if not store.remove_subscriber(normalize_address(email).key):
        raise SubscriberError(f"no subscriber with address {email!r}")


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    #: (line number, message) per refused row
    errors: list[tuple[int, str]] = field(default_factory=list)


def import_csv(store: Store, text: str | Iterable[str]) -> ImportReport:
    """Add or update subscribers from CSV with a header row.

    Columns: ``email`` (required), ``topics`` (slugs separated by spaces, commas or
    semicolons), and optionally ``name``, ``cadence``, ``timezone``. A bad row is reported
    with its line number and skipped; the other rows go on.
    """
    lines = io.StringIO(text) if isinstance(text, str) else text
    reader = csv.DictReader(lines)
    if not reader.fieldnames or "email" not in [f.strip().lower() for f in reader.fieldnames]:
        raise SubscriberError("CSV needs a header row with at least an 'email' column")
    report = ImportReport()
    for row in reader:
        row = {(k or "").strip().lower(): (v or "") for k, v in row.items()}
        try:
            _record, created = add_subscriber(
                store,
                row.get("email", ""),
                re.split(r"[\s,;]+", row.get("topics", "")),
                cadence=row.get("cadence") or None,
                timezone=row.get("timezone") or None,
                name=row.get("name") or None,
            )
        except SubscriberError as exc:
            report.errors.append((reader.line_num, str(exc)))
            continue
        if created:
            report.added += 1
        else:
            report.updated += 1
    return report
