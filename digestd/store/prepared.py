"""Core statements compiled once and run on a plain DBAPI cursor, for the per-message writes.

A sending run writes to the ledger once per message. Through SQLAlchemy each statement costs
a pool checkout (a round trip on PostgreSQL, where connections are pinged before use), the
compiled-cache lookup and the result's machinery, several times the statement itself. A
`Prepared` statement is compiled for the dialect once; each run binds its values through the
column types' own processors, so what reaches the database is what SQLAlchemy would send.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Dialect
from sqlalchemy.sql import Executable


class Prepared:
    """One statement for one dialect: `arguments(values)` gives the cursor's parameters."""

    __slots__ = ("_fixed", "_names", "_processors", "sql")

    def __init__(self, statement: Executable, dialect: Dialect):
        compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
        self.sql: str = compiled.string
        #: the order of the parameters, for a positional paramstyle (qmark); None for named
        self._names: list[str] | None = (
            list(compiled.positiontup) if compiled.positional else None
        )
        #: values fixed in the statement (status="sent"), processed once
        self._fixed: dict[str, Any] = {}
        self._processors: dict[str, Callable[[Any], Any]] = {}
        for name, bind in compiled.binds.items():
            if name.startswith("%("):  # the same parameters, keyed by object identity
                continue
            processor = bind.type.bind_processor(dialect)
            if bind.required:
                if processor is not None:
                    self._processors[name] = processor
            else:
                value = bind.effective_value
                self._fixed[name] = processor(value) if processor is not None else value

    def arguments(self, values: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        bound = dict(self._fixed)
        processors = self._processors
        for name, value in values.items():
            processor = processors.get(name)
            bound[name] = processor(value) if processor is not None and value is not None else value
        if self._names is None:
            return bound
        return tuple(bound[name] for name in self._names)
