"""Bulk import: event files and transaction logs, from disk or from a DataFrame.

- ``import_events``: one Segment message per row (JSON Lines, or flat CSV/Parquet columns where
  ``properties.x``/``context.x``/``traits.x`` nest). Every row passes the same validation and
  identity resolution as the HTTP API.
- ``import_transactions`` (in ``clm.ingest.transactions``): a transaction log (customer, date,
  amount, like CDNOW's) becomes ``Order Completed`` events, column-wise: the path for millions
  of rows.

Both are idempotent: a row's message id is derived from the row (an explicit ``messageId`` or
order id, else the transaction's own values and its occurrence number), so importing the same
file twice stores nothing new. Rejected rows are reported with their line number.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from clm.ingest import jsontext
from clm.ingest._files import (
    FileFormat,
    ImportReport,
    Progress,
    RejectedRow,
    as_source,
    detect_format,
    read_table,
    refresh_after_import,
    row_error,
)
from clm.ingest.service import parse_messages, store_records
from clm.ingest.transactions import import_transactions
from clm.store.engine import Database

__all__ = [
    "FileFormat",
    "ImportReport",
    "RejectedRow",
    "detect_format",
    "import_events",
    "import_transactions",
    "read_table",
]
_NESTED = ("properties", "context", "traits", "integrations")


# --- events -------------------------------------------------------------------------------


def _nest(row: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    """A flat row as a Segment message: mapped names, dotted columns nested, JSON decoded."""
    message: dict[str, Any] = {}
    for column, value in row.items():
        name = mapping.get(column, column)
        if value is None or (isinstance(value, str) and value == ""):
            continue
        head, _, rest = name.partition(".")
        if rest and head in _NESTED:
            message.setdefault(head, {})[rest] = value
        elif name in _NESTED and isinstance(value, str):
            try:
                message[name] = orjson.loads(value)
            except orjson.JSONDecodeError:
                message[name] = value  # left for validation to reject, with the field named
        else:
            message[name] = value
    message.setdefault("type", "track")
    return message


def _event_rows(
    source: Path | pl.DataFrame, file_format: FileFormat | None, mapping: dict[str, str]
) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line, message or an error text) for every row of the source."""
    if isinstance(source, pl.DataFrame):
        for index, row in enumerate(source.iter_rows(named=True)):
            yield index + 1, _nest(row, mapping)
        return
    file_format = file_format or detect_format(source)
    if file_format == "jsonl":
        with source.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    value = jsontext.loads(line)
                except orjson.JSONDecodeError as exc:
                    yield number, f"not valid JSON: {exc}"
                    continue
                yield (
                    number,
                    _nest(value, mapping) if isinstance(value, dict) else ("must be a JSON object"),
                )
        return
    table, first_line = read_table(source, file_format)
    for index, row in enumerate(table.iter_rows(named=True)):
        yield first_line + index, _nest(row, mapping)


def import_events(
    db: Database,
    workspace_id: int,
    source: Path | str | pl.DataFrame | Any,
    *,
    file_format: FileFormat | None = None,
    mapping: dict[str, str] | None = None,
    chunk_size: int = 5_000,
    progress: Progress | None = None,
) -> ImportReport:
    """Import Segment messages from a file or a pandas/polars DataFrame.

    ``mapping`` renames source columns to message fields, e.g. ``{"user": "userId",
    "action": "event", "amount": "properties.revenue"}``.
    """
    report = ImportReport()
    chunk: list[tuple[int, dict[str, Any]]] = []
    for line, message in _event_rows(as_source(source), file_format, mapping or {}):
        report.read += 1
        if isinstance(message, str):
            report.rejected.append(RejectedRow(line, [row_error(message)]))
        else:
            chunk.append((line, message))
        if len(chunk) >= chunk_size:
            _import_chunk(db, workspace_id, chunk, report)
            chunk = []
            if progress:
                progress(report.read)
    _import_chunk(db, workspace_id, chunk, report)
    if progress:
        progress(report.read)
    report.rejected.sort(key=lambda rejected: rejected.line)
    refresh_after_import(db, report)
    return report


def _import_chunk(
    db: Database, workspace_id: int, chunk: list[tuple[int, dict[str, Any]]], report: ImportReport
) -> None:
    if not chunk:
        return
    records, rejected = parse_messages([message for _, message in chunk], datetime.now(UTC))
    report.rejected += [RejectedRow(chunk[r.index][0], r.errors) for r in rejected]
    stored, duplicates = store_records(db, workspace_id, records)
    report.stored += stored
    report.duplicates += duplicates
