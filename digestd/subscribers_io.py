"""Subscribers in and out: export (CSV or JSON, with states and optionally the hashes of their
private-link tokens) and import of the same, or of a hand-made CSV.

An export with token hashes restores every private link handed out before (the hashes are all
a link needs to be recognised). An import never subscribes again someone who unsubscribed,
unless asked to (`resubscribe`): an opt-out in the file is recorded, one in the database kept.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

from digestd.errors import OptedOutError, SubscriberError
from digestd.store import Store
from digestd.subscribers import add_subscriber

FIELDS = ("email", "name", "topics", "cadence", "timezone", "status", "created", "confirmed")
STATES = ("pending", "active", "paused", "unsubscribed")


def export_subscribers(
    store: Store, *, fmt: str, token_hashes: bool = False, status: str | None = None
) -> str:
    records = store.subscribers(status=status)
    hashes = store.token_hashes([r.id for r in records]) if token_hashes else {}
    rows: list[dict[str, Any]] = []
    for record in records:
        row = {k: v for k, v in record.as_json().items() if k in FIELDS}
        if token_hashes:
            row["token_hashes"] = hashes.get(record.id, [])
        rows.append(row)
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False, indent=2) + "\n"
    out = io.StringIO()
    columns = [*FIELDS, *(["token_hashes"] if token_hashes else [])]
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({
            **row,
            "topics": " ".join(row["topics"]),
            **({"token_hashes": " ".join(row["token_hashes"])} if token_hashes else {}),
            "confirmed": row.get("confirmed") or "",
        })
    return out.getvalue()


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    #: addresses that unsubscribed and were left so (no --resubscribe)
    kept_unsubscribed: list[str] = field(default_factory=list)
    #: (line or item number, message) per refused row
    errors: list[tuple[int, str]] = field(default_factory=list)


def import_subscribers(store: Store, text: str, *, resubscribe: bool = False) -> ImportReport:
    """Add or update subscribers from CSV (header row) or from a JSON export."""
    report = ImportReport()
    for number, row in _rows(text):
        try:
            _import_row(store, row, resubscribe, report)
        except OptedOutError:
            report.kept_unsubscribed.append(str(row.get("email", "")))
        except SubscriberError as exc:
            report.errors.append((number, str(exc)))
    return report


def _rows(text: str) -> list[tuple[int, dict[str, Any]]]:
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except ValueError as exc:
            raise SubscriberError(f"not valid JSON: {exc}") from exc
        if not all(isinstance(item, dict) for item in items):
            raise SubscriberError("JSON must be a list of objects, as subscribers export writes")
        return list(enumerate(items, start=1))
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "email" not in [f.strip().lower() for f in reader.fieldnames]:
        raise SubscriberError("CSV needs a header row with at least an 'email' column")
    rows = []
    for row in reader:
        rows.append((reader.line_num,
                     {(k or "").strip().lower(): (v or "") for k, v in row.items()}))
    return rows


def _split(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [v for v in re.split(r"[\s,;]+", str(value or "")) if v]


def _import_row(
    store: Store, row: dict[str, Any], resubscribe: bool, report: ImportReport
) -> None:
    status = str(row.get("status") or "active").strip().lower()
    if status not in STATES:
        raise SubscriberError(f"unknown status {status!r}; use one of: {', '.join(STATES)}")
    record, created = add_subscriber(
        store,
        str(row.get("email", "")),
        _split(row.get("topics")),
        cadence=str(row.get("cadence") or "") or None,
        timezone=str(row.get("timezone") or "") or None,
        name=str(row.get("name") or "") or None,
        status=status,
        resubscribe=resubscribe,
    )
    hashes = _split(row.get("token_hashes"))
    if hashes:
        store.add_token_hashes(record.id, hashes)
    if created:
        report.added += 1
    else:
        report.updated += 1
