"""Alembic environment: digestd runs migrations itself at start, on a connection it passes in."""

from alembic import context
from sqlalchemy import create_engine

from digestd.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        # `alembic` run by hand: DIGESTD_DATABASE_URL or the sqlalchemy.url option.
        import os

        url = os.environ.get("DIGESTD_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
        engine = create_engine(url)
        with engine.begin() as conn:
            _configure(conn)
        return
    _configure(connection)


def _configure(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
