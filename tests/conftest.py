"""Shared fixtures: a fresh store per test on SQLite, and on PostgreSQL when its URL is set."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from digestd.store import Store

from support import POSTGRES_ENV, migrate_from_template, postgres_schema

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "samples" / "seeds"
SEED_FILES = sorted(SEEDS.glob("*.txt"))


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No DIGESTD_* variable of the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("DIGESTD_") and name != POSTGRES_ENV:
            monkeypatch.delenv(name)


@pytest.fixture
def seed_files() -> list[Path]:
    assert len(SEED_FILES) == 5, f"sample dumps missing from {SEEDS}"
    return SEED_FILES


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A URL whose connections use a schema of their own, dropped after the test."""
    with postgres_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        (tmp_path / "db").mkdir()
        return f"sqlite:///{tmp_path / 'db' / 'digestd.db'}"
    return request.getfixturevalue("postgres_schema_url")


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    migrate_from_template(database_url)
    store = Store.open(database_url)
    try:
        yield store
    finally:
        store.dispose()


@pytest.fixture
def no_ssl_cert_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust only the system's store (or the configured CA file), whatever the developer's
    shell says."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In parallel runs (-n), the modules holding slow tests are handed out first: a test of a
    minute left for the end would run alone while the other processes sit idle."""
    if not hasattr(config, "workerinput"):
        return
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)
