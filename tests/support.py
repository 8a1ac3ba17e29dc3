"""Helpers several test modules share: loopback ports, waiting, PostgreSQL schemas, dumps.

Plain functions rather than fixtures because module-scoped fixtures and subprocess-driven
tests need them too.
"""

from __future__ import annotations

import atexit
import dataclasses
import itertools
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from digestd.config import Config, DeliveryConfig
    from digestd.runtime import Runtime

POSTGRES_ENV = "DIGESTD_TEST_POSTGRES_URL"
POSTGRES_HINT = (
    f"PostgreSQL tests need {POSTGRES_ENV}, e.g. "
    f"{POSTGRES_ENV}=postgresql+psycopg://postgres@127.0.0.1:5432/test make test "
    "(.ci/run sets it)"
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    predicate: Callable[[], object], timeout: float, what: str, *, interval: float = 0.05
) -> Any:
    """The first truthy value of `predicate`, polled until `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A URL whose connections use a fresh schema of their own, dropped afterwards.

    Skips the test, saying how to run it, when no PostgreSQL URL is configured.
    """
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(POSTGRES_HINT)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield _schema_url(base, schema)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def _schema_url(base: str, schema: str) -> str:
    # Commits need not wait for the disk: the tests never crash the server, only clients,
    # and a test's commits are most of its time on PostgreSQL otherwise.
    options = f"-csearch_path={schema} -csynchronous_commit=off"
    return make_url(base).update_query_dict({"options": options}).render_as_string(
        hide_password=False
    )


# A database at the newest revision, copied from one migrated once per test process: running
# every migration again for each test's fresh database was a sixth of the suite's time.

_migrated: dict[str, Any] = {}


def migrate_from_template(url: str) -> None:
    """Bring the empty database at `url` (a SQLite file not yet made, or a fresh schema from
    `postgres_schema`) to the newest revision, by copying a database migrated once.

    The copy holds what the migrations leave (tables, indexes, their rows, the stamped
    revision); `Store.open` on it finds nothing to do. Migrations themselves are tested in
    test_migrations.py and test_cli_migrate.py, on fresh databases.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        assert parsed.database and not Path(parsed.database).exists(), parsed.database
        shutil.copyfile(_sqlite_template(), parsed.database)
        return
    template = _postgres_template()
    if template is None:  # no usable pg_dump here: the schema is migrated as digestd would
        from digestd.store import Store

        Store.open(url).dispose()
        return
    schema = parsed.query["options"].split("search_path=", 1)[1].split()[0]
    script = template.replace(_TEMPLATE_SCHEMA, schema)
    engine = create_engine(url)
    try:
        connection = engine.raw_connection()
        try:
            # One round trip: psycopg sends a script without parameters as one simple query.
            connection.cursor().execute(script)
            connection.commit()
        finally:
            connection.close()
    finally:
        engine.dispose()


def _sqlite_template() -> Path:
    if "sqlite" not in _migrated:
        from digestd.store import Store

        directory = tempfile.mkdtemp(prefix="digestd-template-")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        path = Path(directory) / "digestd.db"
        store = Store.open(f"sqlite:///{path}")
        store.checkpoint()  # the whole database in the one file that is copied
        store.dispose()
        _migrated["sqlite"] = path
    return _migrated["sqlite"]


_TEMPLATE_SCHEMA = f"digestd_template_{uuid.uuid4().hex[:12]}"


def _postgres_template() -> str | None:
    """The SQL that makes a migrated schema, as pg_dump writes it, for `_TEMPLATE_SCHEMA`;
    None when pg_dump is not installed (Debian: postgresql-client) or cannot read the server
    (a client older than the server), and then each schema is migrated instead, only slower."""
    if "postgres" not in _migrated:
        from digestd.store import Store

        base = os.environ[POSTGRES_ENV]
        admin = create_engine(base)
        try:
            with admin.begin() as connection:
                connection.execute(text(f'CREATE SCHEMA "{_TEMPLATE_SCHEMA}"'))
            Store.open(_schema_url(base, _TEMPLATE_SCHEMA)).dispose()
            target = make_url(base).set(drivername="postgresql")
            try:
                dump = subprocess.run(
                    ["pg_dump", "--schema", _TEMPLATE_SCHEMA, "--no-owner", "--no-privileges",
                     "--inserts", target.render_as_string(hide_password=False)],
                    capture_output=True, text=True, check=True, timeout=120,
                ).stdout
            except (OSError, subprocess.CalledProcessError) as exc:
                warnings.warn(f"pg_dump unusable ({exc}); each PostgreSQL test schema is "
                              "migrated instead", stacklevel=2)
                dump = None
        finally:
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{_TEMPLATE_SCHEMA}" CASCADE'))
            admin.dispose()
        if dump is None:
            _migrated["postgres"] = None
            return None
        # The schema exists already; psql's own commands (\restrict) are not SQL; the
        # session settings pg_dump starts with would outlive the script on the connection.
        kept = [line for line in dump.splitlines()
                if not line.startswith(("\\", "SET ", "SELECT pg_catalog.set_config("))
                and line != f"CREATE SCHEMA {_TEMPLATE_SCHEMA};"]
        _migrated["postgres"] = "\n".join(kept)
    return _migrated["postgres"]


_dump_numbers = itertools.count()


def feed_titles(runtime: Runtime, titles: list[str]) -> None:
    """Ingest a card-layout dump holding these titles (abstracts mention the title's words)."""
    from digestd.ingest import ingest_paths

    blocks = ["new", "Get trending papers in your email inbox!", "Subscribe", "Daily Papers",
              "byAK and the research community", "Mar 10"]
    for title in titles:
        blocks += [title, f"We study {title.lower()} at scale.", "  • 3 authors\n·\nMar 5 7"]
    directory = runtime.config.paths.data_dir.parent / "dumps"
    directory.mkdir(exist_ok=True)
    path = directory / f"{next(_dump_numbers):04d}.txt"
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    report = ingest_paths(runtime.store, [path], classify=runtime.classify)
    assert report.dumps[0].status == "ingested", report.dumps[0].error


@contextmanager
def backend_database(backend: str, sqlite_path: Path) -> Iterator[str]:
    """A fresh database URL for `backend`: SQLite at `sqlite_path`, or a PostgreSQL schema."""
    if backend == "sqlite":
        yield f"sqlite:///{sqlite_path}"
        return
    with postgres_schema() as url:
        yield url


class SmtpInbox:
    """An aiosmtpd handler that keeps every message it accepts, with its envelope recipients."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], bytes]] = []
        #: (MAIL FROM, RCPT TOs, content) of each message, for the envelope sender
        self.envelopes: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.received.append((list(envelope.rcpt_tos), envelope.content))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"


Handler = TypeVar("Handler")


@overload
def smtp_server() -> AbstractContextManager[tuple[SmtpInbox, int]]: ...
@overload
def smtp_server(handler: Handler) -> AbstractContextManager[tuple[Handler, int]]: ...
def smtp_server(handler: object = None) -> AbstractContextManager[tuple[object, int]]:
    """A real SMTP server (aiosmtpd) on a free loopback port, and its handler: `handler`, or
    an `SmtpInbox` that records what it received."""
    return _serving(SmtpInbox() if handler is None else handler)


@contextmanager
def _serving(handler: Handler) -> Iterator[tuple[Handler, int]]:
    from aiosmtpd.controller import Controller

    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def relay_config(
    tmp_path: Path, port: int, delivery: DeliveryConfig, *, timeout: float = 5
) -> Config:
    """Digests sent by SMTP to a relay on loopback at `port`, one topic ("widgets")."""
    import dataclasses

    from digestd.config import Config, HttpConfig, MailConfig, PathsConfig, SmtpConfig, TopicConfig

    return dataclasses.replace(
        Config(),
        paths=PathsConfig(seeds_dir=tmp_path / "seeds", data_dir=tmp_path / "var"),
        http=HttpConfig(base_url="https://digest.example.org"),
        mail=MailConfig(
            transport="smtp", from_address="Digests <digests@example.org>",
            list_id="digest.example.org",
        ),
        smtp=SmtpConfig(host="127.0.0.1", port=port, timeout=timeout),
        delivery=delivery,
        topics=(TopicConfig("widgets", "Widgets", "widget*"),),
    )


# Certificates made by the openssl command line (no extra Python dependency) -----------------


@dataclasses.dataclass(frozen=True)
class Certificate:
    """A self-signed certificate: its own CA, handed to a client as the CA file."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


def make_certificate(directory: Path, name: str, san: str) -> Certificate:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", f"/CN={name}", "-addext", f"subjectAltName={san}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return Certificate(cert, key)


def loopback_certificates(directory: Path) -> dict[str, Certificate]:
    """"localhost": valid for localhost and 127.0.0.1; "elsewhere": for another name only."""
    return {
        "localhost": make_certificate(directory, "localhost", "DNS:localhost,IP:127.0.0.1"),
        "elsewhere": make_certificate(directory, "elsewhere", "DNS:mail.example.org"),
    }


# A real browser ------------------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's chromium, headless, driven by Playwright (never Playwright's own download)."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: `make test` installs Debian's chromium "
            "(or: apt-get install -y chromium)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            browser.close()


def seed_readers(tmp: Path, readers: int) -> tuple[list[tuple[Any, Any]], dict[str, str]]:
    """Readers of overlapping starter topics over three seed dumps, each with the papers due to
    them: [(SubscriberRecord, selected papers)], and the topics' names by slug."""
    from digestd.config import Config, PathsConfig
    from digestd.ingest import ingest_paths
    from digestd.runtime import Runtime
    from digestd.store import Store
    from digestd.subscribers import add_subscriber
    from digestd.topics import STARTER_TOPICS

    seeds = sorted((Path(__file__).resolve().parents[1] / "samples" / "seeds").glob("*.txt"))
    config = Config(paths=PathsConfig(seeds_dir=tmp / "seeds", data_dir=tmp / "var"))
    runtime = Runtime.open(config, store=Store.open(f"sqlite:///{tmp / 'd.db'}"))
    try:
        ingest_paths(runtime.store, seeds[:3], classify=runtime.classify)
        slugs = [t.slug for t in STARTER_TOPICS]
        for number in range(readers):
            topics = [slugs[number % len(slugs)], slugs[(number * 5 + 2) % len(slugs)]]
            add_subscriber(runtime.store, f"s{number}@example.org", topics, cadence="immediate")
        found = []
        for subscriber in runtime.store.subscribers(status="active"):
            since_start = dataclasses.replace(subscriber, since_batch_id=0)
            selected = runtime.store.due_papers(since_start)
            if selected:
                found.append((subscriber, selected))
        return found, {t.slug: t.name for t in runtime.store.topics()}
    finally:
        runtime.close()
