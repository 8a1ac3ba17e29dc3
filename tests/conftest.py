"""Shared fixtures: a fresh store per test on SQLite, and on PostgreSQL when its URL is set."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from digestd.store import Store

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "samples" / "seeds"
SEED_FILES = sorted(SEEDS.glob("*.txt"))
POSTGRES_ENV = "DIGESTD_TEST_POSTGRES_URL"
POSTGRES_HINT = (
    f"PostgreSQL tests need {POSTGRES_ENV}, e.g. "
    f"{POSTGRES_ENV}=postgresql+psycopg://postgres@127.0.0.1:5432/test make test "
    "(.ci/run sets it)"
)


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


def _postgres_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(POSTGRES_HINT)
    return url


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A URL whose connections use a schema of their own, dropped after the test."""
    base = make_url(_postgres_url())
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = base.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'digestd.db'}"
    return request.getfixturevalue("postgres_schema_url")


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store.open(database_url)
    try:
        yield store
    finally:
        store.dispose()
