"""What every command module shares: the handler type, JSON output, opening the store or the
runtime, and `Commands`, through which a module adds its commands to the parser."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from digestd.config import Config

if TYPE_CHECKING:
    from digestd.runtime import Runtime
    from digestd.store import Store

Handler = Callable[[argparse.Namespace, Config], int]


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


@contextmanager
def open_store(config: Config) -> Iterator[Store]:
    """The store for a command that only reads: nothing is created or migrated.

    A missing database, one that is not digestd's, or one at another revision is one line
    saying so ("no digestd database at ...").
    """
    from digestd.bounce_score import BounceRules
    from digestd.store import Store
    from digestd.store.schema import require_current

    store = Store.open(config.database_url, migrate=False)
    # records show bounce scores as they stand under these rules
    store.bounce_rules = BounceRules.of(config)
    try:
        require_current(store.engine)
        yield store
    finally:
        store.dispose()


@contextmanager
def open_runtime(config: Config) -> Iterator[Runtime]:
    from digestd.runtime import Runtime

    runtime = Runtime.open(config)
    try:
        yield runtime
    finally:
        runtime.close()


def _doc(handler: Handler) -> tuple[str, str]:
    doc = (handler.__doc__ or "").strip()
    return doc.splitlines()[0], doc


class Commands:
    """One level of subcommands (`digestd ...` or `digestd subscribers ...`).

    Command modules add leaves with `command` and groups with `group`; asking twice for the
    same group returns the same one, so several modules can add actions to one group.
    """

    def __init__(self, parser: argparse.ArgumentParser, common: argparse.ArgumentParser,
                 dest: str, metavar: str) -> None:
        self._actions = parser.add_subparsers(dest=dest, metavar=metavar, required=True)
        self._common = common
        self._groups: dict[str, Commands] = {}

    def command(
        self, name: str, handler: Handler, *, uses: tuple[str, ...] = ("data_dir",)
    ) -> argparse.ArgumentParser:
        """Add a command, its help taken from the handler's docstring.

        `uses` names the ``paths`` directories the command needs: only those are checked
        before it runs (`digestd config` works whatever the paths say).
        """
        summary, description = _doc(handler)
        sub = self._actions.add_parser(
            name, parents=[self._common], help=summary, description=description
        )
        sub.set_defaults(handler=handler, uses=uses)
        return sub

    def group(self, name: str, description: str) -> Commands:
        """The command that only groups actions (`digestd topics list`, ...)."""
        if name not in self._groups:
            parser = self._actions.add_parser(
                name, parents=[self._common], help=description, description=description
            )
            self._groups[name] = Commands(
                parser, self._common, dest=f"{name}_command", metavar="ACTION"
            )
        return self._groups[name]
