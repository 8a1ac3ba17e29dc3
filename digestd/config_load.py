"""Loading the configuration: typed defaults, then a TOML file, then ``DIGESTD_*`` environment
variables.

Every value passes through one validation step that names the key and where it came from, so
an operator reading the error knows which line of which file to fix.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
import types
import typing
import zoneinfo
from pathlib import Path
from typing import Any

from digestd.config import (
    MAX_SLUG_LENGTH,
    WEEKDAYS,
    Config,
    PathsConfig,
    TopicConfig,
    split_address,
)
from digestd.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("config/digestd.toml")
#: where a system install keeps it (README, "Running under systemd")
SYSTEM_CONFIG_PATH = Path("/etc/digestd/digestd.toml")

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
    if config.delivery.hard_bounce_score <= 0:
        fail("delivery.hard_bounce_score", "must be positive")
    if config.delivery.soft_bounce_score < 0:
        fail("delivery.soft_bounce_score", "must not be negative (0 ignores soft bounces)")
    if config.delivery.bounce_window_days <= 0:
        fail("delivery.bounce_window_days", "must be positive")
    if config.delivery.max_papers < 1:
        fail("delivery.max_papers", "must be at least 1")
    for key in ("window_days", "min_gain", "section_papers", "feed_items"):
        if getattr(config.rising, key) < 1:
            fail(f"rising.{key}", "must be at least 1")
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


def _is_clock_time(value: str) -> bool:
    hours, sep, minutes = value.partition(":")
    return (
        bool(sep) and hours.isdigit() and minutes.isdigit() and len(minutes) == 2
        and int(hours) < 24 and int(minutes) < 60
    )
