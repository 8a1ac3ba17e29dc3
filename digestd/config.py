"""Configuration schema: every section, its keys, their types and typed defaults.

The loaded `Config` is immutable; reloading builds a new one and swaps it in only when it
validates. How a file and the environment become a `Config` is `digestd.config_load`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class PathsConfig:
    #: where dumps are dropped; scanned by the daemon
    seeds_dir: Path = Path("seeds")
    #: holds the SQLite database, the feeds and the Maildir outbox unless configured otherwise
    data_dir: Path = Path("var")
    #: Jinja2 templates (email/ and web/) to use instead of the ones digestd ships
    templates_dir: Path | None = None


@dataclass(frozen=True)
class DatabaseConfig:
    #: SQLAlchemy URL; empty means SQLite at <data_dir>/digestd.db
    url: str = ""
    #: create or migrate the schema when `digestd run` (or a command that writes) starts;
    #: off, only `digestd migrate` changes it
    auto_migrate: bool = True


#: longest topic slug: the topics table's column, and what feed and topic page URLs accept
MAX_SLUG_LENGTH = 64


@dataclass(frozen=True)
class IngestConfig:
    #: seconds between scans of the seeds directory
    scan_interval: float = 60.0
    #: a file whose size or mtime changed less than this many seconds ago is left for later
    settle_seconds: float = 2.0
    #: larger files are refused (status failed) instead of being read into memory
    max_dump_bytes: int = 256 * 1024 * 1024
    #: scan as soon as a dump lands in the seeds directory (inotify), not only on the interval
    watch: bool = True


@dataclass(frozen=True)
class HttpConfig:
    #: host:port the HTTP server listens on
    address: str = "127.0.0.1:8080"
    #: public URL used in links inside feeds and e-mails; empty means http://<address>
    base_url: str = ""


@dataclass(frozen=True)
class MetricsConfig:
    #: serve /metrics (Prometheus text format)
    enabled: bool = False
    #: client networks allowed to read /metrics; others get 403
    allow: tuple[str, ...] = ("127.0.0.1/32", "::1/128")


@dataclass(frozen=True)
class LogConfig:
    #: "text" (key=value lines) or "json" (one JSON object per line)
    format: str = "text"
    #: DEBUG, INFO, WARNING or ERROR; --log-level overrides it
    level: str = "INFO"
    #: one line per HTTP request (logger digestd.access)
    access_log: bool = False


@dataclass(frozen=True)
class FeedsConfig:
    #: papers in a feed's current document, newest arrival first; older ones are archived
    max_items: int = 50
    #: Cache-Control max-age for served feeds, in seconds
    max_age: int = 300


@dataclass(frozen=True)
class MailConfig:
    #: "maildir" (the outbox under data_dir) or "smtp"
    transport: str = "maildir"
    #: the From header of every digest
    from_address: str = "digestd <digestd@localhost>"
    #: the List-Id header's identifier
    list_id: str = "digest.digestd.localhost"
    #: the envelope sender (Return-Path) of digests, e.g. "bounces@example.org": each digest
    #: goes out as bounces+<subscriber token>@example.org (VERP), so a bounce names its
    #: subscriber; empty means the From address, and no VERP
    envelope_sender: str = ""
    #: the Feedback-ID header (Gmail's feedback loop groups complaints by it)
    feedback_id: str = "digest:digestd"
    #: PEM file of the RSA private key to DKIM-sign every mail with; empty means no signing
    dkim_key_file: str = ""
    #: the DKIM selector: the public key is published at <selector>._domainkey.<domain>
    dkim_selector: str = ""
    #: the signing domain (d=); empty means the domain of the From address
    dkim_domain: str = ""


@dataclass(frozen=True)
class BouncesConfig:
    """Where mail to the envelope sender (bounces, complaints, unsubscribe requests) is read."""

    #: a Maildir the envelope sender's mail is delivered to; empty means none
    maildir: str = ""
    #: an IMAP server holding the envelope sender's mailbox; empty means none
    imap_host: str = ""
    imap_port: int = 993
    #: "tls" (implicit TLS, usually port 993), "starttls" or "none" (loopback only)
    imap_security: str = "tls"
    #: PEM file of the CA(s) trusted for the IMAP server's certificate instead of the system's
    #: trust store (a mail server with an internal CA); empty means the system's trust store
    imap_ca_file: str = ""
    imap_username: str = ""
    #: a file holding the IMAP password; DIGESTD_IMAP_PASSWORD also works
    imap_password_file: str = ""
    imap_folder: str = "INBOX"
    #: seconds between two reads of the mailbox
    check_interval: float = 300.0


@dataclass(frozen=True)
class SmtpConfig:
    host: str = "localhost"
    port: int = 25
    #: "none", "starttls" or "tls" (implicit TLS, usually port 465)
    security: str = "none"
    #: PEM file of the CA(s) trusted for the server's certificate instead of the system's
    #: trust store (a relay with an internal CA); empty means the system's trust store
    ca_file: str = ""
    username: str = ""
    #: a file holding the password (preferred); DIGESTD_SMTP_PASSWORD also works
    password_file: str = ""
    timeout: float = 30.0
    #: messages per second at most, across all connections; 0 means no limit
    rate_limit: float = 0.0
    #: connections used in parallel by one sending run, each with its own claims
    connections: int = 1


@dataclass(frozen=True)
class ScheduleConfig:
    #: local time (in each subscriber's time zone) of daily digests, HH:MM
    daily_time: str = "08:00"
    #: weekday of weekly digests, e.g. "monday"
    weekly_day: str = "monday"
    #: local time of weekly digests, HH:MM
    weekly_time: str = "08:00"


@dataclass(frozen=True)
class DeliveryConfig:
    #: temporary replies about the recipient (4xx) before the delivery is marked failed;
    #: an unreachable or refusing relay charges no attempt
    max_attempts: int = 5
    #: seconds before the first retry; doubled on each further attempt
    retry_backoff: float = 60.0
    #: bounce score at which a subscriber is paused (see the README's bounces section)
    pause_after_failures: int = 3
    #: what a hard bounce (a recipient refused, a 5.x.x report) adds to the score
    hard_bounce_score: float = 1.0
    #: what a soft bounce (a 4.x.x report: the remote server gave up) adds; 0 ignores them
    soft_bounce_score: float = 0.5
    #: days without a bounce after which the score starts again from zero
    bounce_window_days: float = 7.0
    #: papers shown in one e-mail at most; the rest are linked (keeps HTML under Gmail's clip)
    max_papers: int = 30
    #: hours a digest may wait in the queue (relay down, say) before it expires; 5 days,
    #: as MTAs keep mail
    max_queue_hours: float = 120.0


@dataclass(frozen=True)
class FeedbackConfig:
    #: "more/less like this" links in digests and the per-reader model; false hides the links
    enabled: bool = True
    #: ratings a reader needs before their model re-ranks their digests
    min_ratings: int = 3
    #: how far the model may move a paper within its topic, in normalised-score units (0-1),
    #: reached from 10 ratings on (fewer ratings move papers proportionally less)
    weight: float = 1.0
    #: papers from outside the reader's topics added as "you might also like" (0: none)
    also_like: int = 3


@dataclass(frozen=True)
class RisingConfig:
    """Papers gaining upvotes (see digestd.ranking.rising)."""

    #: days of sightings the rising feed (and a digest's rising section, at most) looks back
    window_days: int = 7
    #: upvotes a paper must gain in the window to rise
    min_gain: int = 1
    #: whether new subscribers get a "rising" section in their digests
    section_default: bool = False
    #: papers in a digest's rising section
    section_papers: int = 5
    #: papers in the rising feed
    feed_items: int = 30


@dataclass(frozen=True)
class SubscribeConfig:
    #: whether people can sign themselves up on the web (/subscribe, /confirm)
    enabled: bool = True
    #: hours a confirmation link stays valid; unconfirmed sign-ups are purged after it
    confirm_hours: float = 48.0
    #: confirmation (or manage-link) mails to one address per hour at most
    mails_per_address_per_hour: int = 3
    #: sign-ups from one client (IP) address per hour at most
    signups_per_client_per_hour: int = 10
    #: the time zone the sign-up form suggests
    default_timezone: str = "UTC"


@dataclass(frozen=True)
class RetentionConfig:
    #: days a finished delivery (sent, failed, expired) stays in the ledger; 0 keeps them all
    deliveries_days: int = 180
    #: days the record of which dump listed a paper stays; 0 keeps them all
    sightings_days: int = 180
    #: days a mail stays in the Maildir outbox; 0 keeps them all
    outbox_days: int = 30
    #: "keep" ingested dumps in the seeds directory, or "move" them to seeds/.done/
    dumps: str = "keep"


@dataclass(frozen=True)
class TopicConfig:
    slug: str
    name: str
    query: str
    description: str = ""
    #: papers matching the query with a lower score are not in the topic
    min_score: float = 0.0


@dataclass(frozen=True)
class Config:
    paths: PathsConfig = field(default_factory=PathsConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    feeds: FeedsConfig = field(default_factory=FeedsConfig)
    mail: MailConfig = field(default_factory=MailConfig)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    bounces: BouncesConfig = field(default_factory=BouncesConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    subscribe: SubscribeConfig = field(default_factory=SubscribeConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    rising: RisingConfig = field(default_factory=RisingConfig)
    #: empty means the built-in starter topics
    topics: tuple[TopicConfig, ...] = ()
    #: the file this came from, or None for built-in defaults
    source: Path | None = None

    # Derived places -------------------------------------------------------------------------

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite:///{self.paths.data_dir / 'digestd.db'}"

    @property
    def templates_dir(self) -> Path:
        """paths.templates_dir when set, else the templates shipped with digestd."""
        if self.paths.templates_dir is not None:
            return self.paths.templates_dir
        from digestd.resources import templates_dir

        return templates_dir()

    @property
    def feeds_dir(self) -> Path:
        return self.paths.data_dir / "feeds"

    @property
    def outbox_dir(self) -> Path:
        return self.paths.data_dir / "outbox"

    @property
    def reads_bounces(self) -> bool:
        """Whether a mailbox of the envelope sender is read (bounces, unsubscribe mails)."""
        bounces = self.bounces
        return bool(self.mail.envelope_sender and (bounces.maildir or bounces.imap_host))

    @property
    def bounces_kept_dir(self) -> Path:
        """Mail to the envelope sender that could not be classified, kept for an operator."""
        return self.paths.data_dir / "bounces-kept"

    @property
    def http_host_port(self) -> tuple[str, int]:
        return split_address(self.http.address)

    @property
    def base_url(self) -> str:
        if self.http.base_url:
            return self.http.base_url.rstrip("/")
        host, port = self.http_host_port
        return f"http://{host}:{port}"

    def redacted(self) -> dict[str, Any]:
        """The configuration as a dict with secrets masked, for support requests."""
        data = dataclasses.asdict(self)
        data["source"] = str(self.source) if self.source else None
        if "@" in data["database"]["url"] and ":" in data["database"]["url"].split("@")[0]:
            scheme, rest = data["database"]["url"].split("://", 1)
            credentials, host = rest.split("@", 1)
            data["database"]["url"] = f"{scheme}://{credentials.split(':')[0]}:***@{host}"
        return _jsonable(data)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got {address!r}")
    return host.strip("[]"), int(port)
