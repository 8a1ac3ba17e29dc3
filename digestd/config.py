"""Configuration: typed defaults, then a TOML file, then ``DIGESTD_*`` environment variables.

Every value passes through one validation step that names the key and where it came from, so
an operator reading the error knows which line of which file to fix. The loaded `Config` is
immutable; reloading builds a new one and swaps it in only when it validates.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
import types
import typing
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from digestd.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("config/digestd.toml")
#: where a system install keeps it (README, "Running under systemd")
SYSTEM_CONFIG_PATH = Path("/etc/digestd/digestd.toml")


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
    #: consecutive permanent failures after which a subscriber is paused
    pause_after_failures: int = 3
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


def _is_clock_time(value: str) -> bool:
    hours, sep, minutes = value.partition(":")
    return (
        bool(sep) and hours.isdigit() and minutes.isdigit() and len(minutes) == 2
        and int(hours) < 24 and int(minutes) < 60
    )


def split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got {address!r}")
    return host.strip("[]"), int(port)


# Environment variables an operator may set, and the key each one overrides.
ENVIRONMENT_KEYS: dict[str, tuple[str, str]] = {
    "DIGESTD_SEEDS_DIR": ("paths", "seeds_dir"),
    "DIGESTD_DATA_DIR": ("paths", "data_dir"),
    "DIGESTD_TEMPLATES_DIR": ("paths", "templates_dir"),
    "DIGESTD_DATABASE_URL": ("database", "url"),
    "DIGESTD_AUTO_MIGRATE": ("database", "auto_migrate"),
    "DIGESTD_HTTP_ADDRESS": ("http", "address"),
    "DIGESTD_BASE_URL": ("http", "base_url"),
    "DIGESTD_TRANSPORT": ("mail", "transport"),
    "DIGESTD_SMTP_HOST": ("smtp", "host"),
    "DIGESTD_SMTP_PORT": ("smtp", "port"),
    "DIGESTD_SCAN_INTERVAL": ("ingest", "scan_interval"),
    "DIGESTD_LOG_FORMAT": ("log", "format"),
    "DIGESTD_LOG_LEVEL": ("log", "level"),
}


def resolve_config_path(
    explicit: str | os.PathLike[str] | None, environ: typing.Mapping[str, str] = os.environ
) -> Path | None:
    """--config, else $DIGESTD_CONFIG, else config/digestd.toml, else /etc/digestd/digestd.toml
    (the first that exists), else None: the built-in defaults."""
    if explicit:
        return Path(explicit)
    env = environ.get("DIGESTD_CONFIG")
    if env:
        return Path(env)
    for candidate in (DEFAULT_CONFIG_PATH, SYSTEM_CONFIG_PATH):
        if candidate.is_file():
            return candidate
    return None


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: typing.Mapping[str, str] | None = None,
    check_dirs: bool = True,
) -> Config:
    """Build the configuration; raise `ConfigError` naming the key and its source."""
    environ = os.environ if environ is None else environ
    config_path = resolve_config_path(path, environ)
    raw: dict[str, Any] = {}
    source_name = "built-in defaults"
    if config_path is not None:
        source_name = str(config_path)
        try:
            with open(config_path, "rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"{config_path}: configuration file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_path}: not valid TOML: {exc}") from exc
        except OSError as exc:
            raise ConfigError(f"{config_path}: cannot read: {exc.strerror}") from exc

    sections: dict[str, Any] = {}
    for name, value in raw.items():
        section_fields = {f.name: f for f in dataclasses.fields(Config) if f.name != "source"}
        if name not in section_fields:
            raise ConfigError(f"{source_name}: unknown key {name!r}")
        if name == "topics":
            sections[name] = _build_topics(value, source_name)
        else:
            section_type = typing.get_type_hints(Config)[name]
            sections[name] = _build_section(section_type, value, name, source_name)

    config = Config(**sections, source=config_path)
    config = _apply_environment(config, environ)
    _validate(config, check_dirs=check_dirs, environ=environ)
    return config


def _build_section(cls: type, value: Any, name: str, source: str) -> Any:
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: key {name!r} must be a table ([{name}])")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, item in value.items():
        if key not in known:
            raise ConfigError(f"{source}: unknown key '{name}.{key}'")
        kwargs[key] = _coerce(item, hints[key], f"{name}.{key}", source)
    return cls(**kwargs)


def _build_topics(value: Any, source: str) -> tuple[TopicConfig, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{source}: key 'topics' must be an array of tables ([[topics]])")
    topics = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise ConfigError(f"{source}: topics[{index}] must be a table")
        missing = {"slug", "name", "query"} - set(item)
        if missing:
            raise ConfigError(f"{source}: topics[{index}] needs {', '.join(sorted(missing))}")
        topics.append(_build_section(TopicConfig, item, f"topics[{index}]", source))
    return tuple(topics)


def _coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    """Check one value against its annotated type, converting only where it is lossless."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    if hint is Path:
        if isinstance(value, str) and value:
            return Path(value)
        expected = "a non-empty path string"
    elif hint is bool:
        if isinstance(value, bool):
            return value
        expected = "true or false"
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        expected = "an integer"
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        expected = "a number"
    elif hint is str:
        if isinstance(value, str):
            return value
        expected = "a string"
    elif typing.get_origin(hint) is tuple:
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return tuple(value)
        expected = "an array of strings"
    else:  # pragma: no cover - a new field type needs a rule above
        raise TypeError(f"no coercion rule for {hint!r}")
    raise ConfigError(f"{source}: key '{key}' must be {expected}, got {value!r}")


def _apply_environment(config: Config, environ: typing.Mapping[str, str]) -> Config:
    for variable, (section_name, key) in ENVIRONMENT_KEYS.items():
        if variable not in environ:
            continue
        raw = environ[variable]
        section = getattr(config, section_name)
        hint = typing.get_type_hints(type(section))[key]
        value: Any = raw
        if hint is bool:
            value = {"true": True, "1": True, "yes": True, "on": True, "false": False,
                     "0": False, "no": False, "off": False}.get(raw.strip().lower(), raw)
        if hint in (int, float):
            try:
                value = hint(raw)
            except ValueError:
                kind = "an integer" if hint is int else "a number"
                raise ConfigError(
                    f"environment variable {variable} must be {kind}, got {raw!r}"
                ) from None
        value = _coerce(value, hint, f"{section_name}.{key}", f"environment variable {variable}")
        config = dataclasses.replace(
            config, **{section_name: dataclasses.replace(section, **{key: value})}
        )
    return config


def _validate(
    config: Config, *, check_dirs: bool, environ: typing.Mapping[str, str] | None = None
) -> None:
    where = str(config.source) if config.source else "built-in defaults"
    # A value set by a DIGESTD_* variable is blamed on the variable, not on a file it never
    # came from.
    from_environment = {
        f"{section}.{key}": variable
        for variable, (section, key) in ENVIRONMENT_KEYS.items()
        if environ is not None and variable in environ
    }

    def fail(key: str, message: str) -> typing.NoReturn:
        if key in from_environment:
            raise ConfigError(f"environment variable {from_environment[key]} ({key}) {message}")
        raise ConfigError(f"{where}: key '{key}' {message}")

    try:
        split_address(config.http.address)
    except ValueError as exc:
        fail("http.address", str(exc))
    if config.http.base_url and not config.http.base_url.startswith(("http://", "https://")):
        fail("http.base_url", f"must start with http:// or https://, got {config.http.base_url!r}")
    if config.mail.transport not in ("maildir", "smtp"):
        fail("mail.transport", f"must be 'maildir' or 'smtp', got {config.mail.transport!r}")
    if config.smtp.security not in ("none", "starttls", "tls"):
        fail("smtp.security", f"must be 'none', 'starttls' or 'tls', got {config.smtp.security!r}")
    if not 0 < config.smtp.port < 65536:
        fail("smtp.port", f"must be a TCP port, got {config.smtp.port}")
    if config.mail.envelope_sender and config.mail.envelope_sender.count("@") != 1:
        fail("mail.envelope_sender", f"must be an address, got {config.mail.envelope_sender!r}")
    if config.mail.envelope_sender and "+" in config.mail.envelope_sender.split("@")[0]:
        fail("mail.envelope_sender", "must not hold a '+': digestd adds +<token> itself")
    if bool(config.mail.dkim_key_file) != bool(config.mail.dkim_selector):
        fail("mail.dkim_selector", "and mail.dkim_key_file are needed together for DKIM")
    if config.bounces.imap_security not in ("none", "starttls", "tls"):
        fail(
            "bounces.imap_security",
            f"must be 'none', 'starttls' or 'tls', got {config.bounces.imap_security!r}",
        )
    if not 0 < config.bounces.imap_port < 65536:
        fail("bounces.imap_port", f"must be a TCP port, got {config.bounces.imap_port}")
    if config.bounces.check_interval <= 0:
        fail("bounces.check_interval", "must be positive")
    if (config.bounces.maildir or config.bounces.imap_host) and not config.mail.envelope_sender:
        fail(
            "bounces",
            "reads the envelope sender's mail, so mail.envelope_sender must be set too",
        )
    if not 1 <= config.smtp.connections <= 64:
        fail("smtp.connections", f"must be 1 to 64, got {config.smtp.connections}")
    if config.feeds.max_items < 1:
        fail("feeds.max_items", "must be at least 1")
    if config.ingest.scan_interval <= 0:
        fail("ingest.scan_interval", "must be positive")
    if config.ingest.settle_seconds < 0:
        fail("ingest.settle_seconds", "must not be negative")
    if config.ingest.max_dump_bytes < 1:
        fail("ingest.max_dump_bytes", "must be positive")
    for key in ("daily_time", "weekly_time"):
        if not _is_clock_time(getattr(config.schedule, key)):
            fail(f"schedule.{key}", f"must be HH:MM, got {getattr(config.schedule, key)!r}")
    if config.schedule.weekly_day.lower() not in WEEKDAYS:
        fail("schedule.weekly_day", f"must be a weekday name, got {config.schedule.weekly_day!r}")
    if config.delivery.max_attempts < 1:
        fail("delivery.max_attempts", "must be at least 1")
    if config.delivery.max_queue_hours <= 0:
        fail("delivery.max_queue_hours", "must be positive")
    if config.delivery.pause_after_failures < 1:
        fail("delivery.pause_after_failures", "must be at least 1")
    if config.delivery.max_papers < 1:
        fail("delivery.max_papers", "must be at least 1")
    if config.subscribe.confirm_hours <= 0:
        fail("subscribe.confirm_hours", "must be positive")
    for key in ("mails_per_address_per_hour", "signups_per_client_per_hour"):
        if getattr(config.subscribe, key) < 1:
            fail(f"subscribe.{key}", "must be at least 1")
    try:
        zoneinfo.ZoneInfo(config.subscribe.default_timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        fail(
            "subscribe.default_timezone",
            f"must be an IANA time zone, got {config.subscribe.default_timezone!r}",
        )
    if config.log.format not in ("text", "json"):
        fail("log.format", f"must be 'text' or 'json', got {config.log.format!r}")
    if config.log.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        fail("log.level", f"must be DEBUG, INFO, WARNING or ERROR, got {config.log.level!r}")
    for network in config.metrics.allow:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            fail("metrics.allow", f"must list IP networks like 10.0.0.0/8, got {network!r}")
    if config.database.url and "://" not in config.database.url:
        # no password in it to hide: without "://" there is no user:password@ part either
        fail("database.url", f"must be an SQLAlchemy URL, got {config.database.url!r}")
    for key in ("deliveries_days", "sightings_days", "outbox_days"):
        if getattr(config.retention, key) < 0:
            fail(f"retention.{key}", "must not be negative (0 keeps everything)")
    if config.retention.dumps not in ("keep", "move"):
        fail("retention.dumps", f"must be 'keep' or 'move', got {config.retention.dumps!r}")
    slugs = [t.slug for t in config.topics]
    for index, topic in enumerate(config.topics):
        if not topic.slug or not all(c.isascii() and (c.isalnum() or c == "-") for c in topic.slug):
            fail(f"topics[{index}].slug", "must be letters, digits and hyphens")
        if len(topic.slug) > MAX_SLUG_LENGTH:
            # the database column and the feed and page URLs hold at most this many
            fail(f"topics[{index}].slug", f"must be at most {MAX_SLUG_LENGTH} characters")
        if slugs.count(topic.slug) > 1:
            fail(f"topics[{index}].slug", f"{topic.slug!r} is defined twice")
    if check_dirs:
        require_dirs(config, "seeds_dir", "data_dir", "templates_dir")


def require_dirs(config: Config, *keys: str) -> None:
    """Check that the directories named by these ``paths`` keys exist.

    The built-in seeds/ and var/ are created on first use; a directory an operator named must
    already exist, since a typo there would otherwise scatter state on the disk. Commands
    check only the directories they use.
    """
    where = str(config.source) if config.source else "built-in defaults"
    defaults = PathsConfig()
    for key in keys:
        path = getattr(config.paths, key)
        if path is None or path == getattr(defaults, key):
            continue
        if not path.is_dir():
            raise ConfigError(
                f"{where}: key 'paths.{key}' names a directory that does not exist: {path}"
            )
