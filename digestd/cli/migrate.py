"""digestd migrate: create the database, or move its schema to a revision."""

from __future__ import annotations

import argparse

from digestd.cli.common import Commands
from digestd.config import Config

ORDER = 15


def cmd_migrate(args: argparse.Namespace, config: Config) -> int:
    """Create the database, or bring its schema to the newest revision (or to --to REV).

    The only command that changes a schema, besides `digestd run` (and the commands that
    write) while database.auto_migrate is on. Going back to an older revision keeps every row
    of the tables that revision has; --list shows the revisions this digestd knows.
    """
    from digestd.store import Store
    from digestd.store.schema import display_url, revisions, schema_state

    known = revisions()
    if args.list:
        for revision in known:
            print(revision)
        return 0
    config.paths.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store.open(config.database_url, migrate=False)
    try:
        where = display_url(store.engine)
        before = schema_state(store.engine).revision
        after = store.migrate_to(args.to or known[-1])
    finally:
        store.dispose()
    if before == after:
        print(f"{where}: already at {after}")
    else:
        print(f"{where}: migrated from {before or 'nothing'} to {after}")
    return 0


def register(commands: Commands) -> None:
    migrate = commands.command("migrate", cmd_migrate)
    migrate.add_argument(
        "--to", metavar="REV", help="this revision instead of the newest (older ones downgrade)"
    )
    migrate.add_argument(
        "--list", action="store_true", help="print the revisions this digestd knows, oldest first"
    )
