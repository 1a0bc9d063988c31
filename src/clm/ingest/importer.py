"""Bulk import: event files and transaction logs, from disk or from a DataFrame.

- ``import_events``: one Segment message per row (JSON Lines, or flat CSV/Parquet columns where
  ``properties.x``/``context.x``/``traits.x`` nest). Every row passes the same validation and
  identity resolution as the HTTP API.
- ``import_transactions``: a transaction log (customer, date, amount, like CDNOW's) becomes
  ``Order Completed`` events, vectorised with polars: the path for millions of rows.

Both are idempotent: a row's message id is derived from the row (an explicit ``messageId`` or
order id, else the transaction's own values and its occurrence number), so importing the same
file twice stores nothing new. Rejected rows are reported with their line number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
import polars as pl

from clm.errors import ValidationError
from clm.ingest.identity import IdentityResolver
from clm.ingest.normalize import EventRecord
from clm.ingest.service import known_identities, parse_messages, store_records
from clm.store.bulk import EVENT_COLUMNS, insert_prepared, refresh_statistics
from clm.store.engine import Database

FileFormat = Literal["csv", "jsonl", "parquet", "whitespace"]
Progress = Callable[[int], None]
_NESTED = ("properties", "context", "traits", "integrations")
_ISO_FORMATS = [
    f"%Y-%m-%d{sep}%H:%M:%S{frac}{zone}"
    for sep in ("T", " ")
    for frac in ("", "%.f")
    for zone in ("%:z", "")
] + ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d"]


@dataclass
class RejectedRow:
    """A row that was not imported; ``line`` counts from 1 as an editor does (header = 1)."""

    line: int
    errors: list[dict[str, Any]]


@dataclass
class ImportReport:
    read: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)


def detect_format(path: Path) -> FileFormat:
    suffix = path.suffix.lower()
    formats: dict[str, FileFormat] = {
        ".csv": "csv",
        ".jsonl": "jsonl",
        ".ndjson": "jsonl",
        ".json": "jsonl",
        ".parquet": "parquet",
        ".pq": "parquet",
        ".txt": "whitespace",
        ".tsv": "whitespace",
    }
    if suffix not in formats:
        raise ValidationError(
            f"Cannot tell the format of {path.name}; pass format= csv, jsonl, parquet or whitespace"
        )
    return formats[suffix]


def read_table(path: Path, file_format: FileFormat | None = None) -> tuple[pl.DataFrame, int]:
    """A flat file as strings-preserving columns, and the line number of its first data row."""
    file_format = file_format or detect_format(path)
    if not path.exists():
        raise ValidationError(f"No such file: {path}")
    if file_format == "parquet":
        return pl.read_parquet(path), 1
    if file_format == "csv":
        return pl.read_csv(path, infer_schema=False), 2
    if file_format == "whitespace":
        text = path.read_text()
        lines = text.split()
        header = text.splitlines()[0].split() if text.strip() else []
        if not header or len(lines) % len(header):
            raise ValidationError(f"{path.name}: rows do not all have {len(header)} columns")
        width = len(header)
        columns = {name: lines[width + i :: width] for i, name in enumerate(header)}
        return pl.DataFrame(columns), 2
    raise ValidationError("JSON Lines files are read message by message; use import_events")


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
                    value = orjson.loads(line)
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
    for line, message in _event_rows(_as_source(source), file_format, mapping or {}):
        report.read += 1
        if isinstance(message, str):
            report.rejected.append(RejectedRow(line, [_error(message)]))
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
    _refresh(db, report)
    return report


def _refresh(db: Database, report: ImportReport) -> None:
    if report.stored >= 10_000:  # small imports leave statistics to autovacuum
        with db.transaction() as session:
            refresh_statistics(session.connection())


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


def _as_source(source: Path | str | pl.DataFrame | Any) -> Path | pl.DataFrame:
    if isinstance(source, pl.DataFrame):
        return source
    if isinstance(source, str | Path):
        return Path(source)
    if type(source).__module__.startswith("pandas"):
        frame: pl.DataFrame = pl.from_pandas(source)
        return frame
    raise ValidationError("source must be a path, a polars DataFrame or a pandas DataFrame")


def _error(message: str, loc: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"loc": list(loc), "message": message, "type": "value_error"}


# --- transactions ---------------------------------------------------------------------------


def import_transactions(
    db: Database,
    workspace_id: int,
    source: Path | str | pl.DataFrame | Any,
    *,
    customer: str = "customer_id",
    date: str = "date",
    amount: str = "amount",
    quantity: str | None = None,
    order_id: str | None = None,
    date_format: str | None = None,
    currency: str | None = None,
    event: str = "Order Completed",
    file_format: FileFormat | None = None,
    chunk_size: int = 200_000,
    progress: Progress | None = None,
) -> ImportReport:
    """Import a transaction log: each row becomes a purchase event of its customer.

    ``date`` may hold dates or datetimes (ISO text, or text in ``date_format``, e.g.
    ``%Y%m%d`` for CDNOW); times without a zone are UTC. Several rows of one customer on one day
    stay several events: that they count as one transaction is a modelling choice made later.
    """
    first_line = 1
    resolved = _as_source(source)
    if isinstance(resolved, Path):
        table, first_line = read_table(resolved, file_format)
    else:
        table = resolved
    missing = [c for c in (customer, date, amount, quantity, order_id) if c and c not in table]
    if missing:
        raise ValidationError(
            f"Column(s) not found: {', '.join(missing)}; the file has {', '.join(table.columns)}"
        )
    report = ImportReport(read=table.height)
    rows = _transaction_frame(
        table, customer, date, amount, quantity, order_id, date_format, first_line
    )
    bad = rows.filter(pl.col("_error").is_not_null())
    report.rejected = [
        RejectedRow(line, [_error(message)])
        for line, message in bad.select("_line", "_error").iter_rows()
    ]
    # In message-id order, the unique index fills left to right instead of splitting pages.
    good = rows.filter(pl.col("_error").is_null()).sort("_message_id")
    identity_ids = _user_identities(db, workspace_id, good)
    now = datetime.now(UTC)
    for start in range(0, good.height, chunk_size):
        part = good.slice(start, chunk_size)
        values = _event_values(
            db.dialect, workspace_id, part, identity_ids, event, currency, quantity, now
        )
        with db.transaction() as session:
            stored = insert_prepared(session.connection(), values)
        report.stored += stored
        report.duplicates += part.height - stored
        if progress:
            progress(min(report.read, start + part.height + bad.height))
    _refresh(db, report)
    return report


def _transaction_frame(
    table: pl.DataFrame,
    customer: str,
    date: str,
    amount: str,
    quantity: str | None,
    order_id: str | None,
    date_format: str | None,
    first_line: int,
) -> pl.DataFrame:
    """Typed columns and, per row, the first reason it cannot be imported (or null)."""
    raw_date = pl.col(date)
    dtype = table.schema[date]
    if dtype == pl.Date:
        when = raw_date.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    elif isinstance(dtype, pl.Datetime):
        when = raw_date.dt.replace_time_zone("UTC") if dtype.time_zone is None else raw_date
        when = when.dt.convert_time_zone("UTC")
    else:
        text = raw_date.cast(pl.String).str.strip_chars().str.replace(r"Z$", "+00:00")
        # Naive times are taken as UTC; times with an offset are converted to UTC. Without a
        # format, each value may be any ISO 8601 form (polars would guess one for all).
        formats = [date_format] if date_format else _ISO_FORMATS
        when = pl.coalesce(
            text.str.to_datetime(f, strict=False, time_unit="us", time_zone="UTC") for f in formats
        )
    money = pl.col(amount).cast(pl.Float64, strict=False)
    frame = table.with_row_index("_row").select(
        (pl.col("_row").cast(pl.Int64) + first_line).alias("_line"),
        pl.col(customer).cast(pl.String).str.strip_chars().alias("_customer"),
        when.alias("_when"),
        money.alias("_amount"),
        (pl.col(quantity).cast(pl.Float64, strict=False) if quantity else pl.lit(None)).alias(
            "_quantity"
        ),
        (pl.col(order_id).cast(pl.String) if order_id else pl.lit(None, pl.String)).alias("_order"),
    )
    error = (
        pl.when(pl.col("_customer").is_null() | (pl.col("_customer") == ""))
        .then(pl.lit(f"{customer}: missing customer"))
        .when(pl.col("_customer").str.len_chars() > 200)
        .then(pl.lit(f"{customer}: longer than 200 characters"))
        .when(pl.col("_when").is_null())
        .then(pl.lit(f"{date}: not a date" + (f" in format {date_format}" if date_format else "")))
        .when(pl.col("_amount").is_null() | pl.col("_amount").is_nan())
        .then(pl.lit(f"{amount}: not a number"))
        .when(pl.col("_amount") < 0)
        .then(pl.lit(f"{amount}: negative; import refunds as their own events"))
        .otherwise(pl.lit(None, pl.String))
    )
    frame = frame.with_columns(error.alias("_error"))
    occurrence = pl.int_range(pl.len()).over("_customer", "_when", "_amount")
    natural = pl.format(
        "txn:{}:{}:{}:{}",
        pl.col("_customer"),
        pl.col("_when").dt.strftime("%Y%m%dT%H%M%S"),
        pl.col("_amount").round(6).cast(pl.String),
        occurrence,
    )
    message_id = (
        pl.when(pl.col("_order").is_not_null())
        .then(pl.format("txn:order:{}", pl.col("_order")))
        .otherwise(natural)
    )
    return frame.with_columns(message_id.alias("_message_id"))


def _user_identities(db: Database, workspace_id: int, rows: pl.DataFrame) -> dict[str, int]:
    """The identity id of each customer (made on first sight), by the same rules as the API."""
    customers = rows.group_by("_customer").agg(pl.col("_when").min()).sort("_when")
    resolver_ids: dict[str, int] = {}
    known = known_identities(db)
    with db.transaction() as session:
        resolver = IdentityResolver(session, workspace_id, datetime.now(UTC))
        records = [
            EventRecord(
                message_id="", type="track", name=None, user_id=user, anonymous_id=None,
                timestamp=when, received_at=when, sent_at=None, original_timestamp=None,
                channel=None, campaign=None, source=None, revenue=None, currency=None,
                properties={}, context={}, traits=None,
            )
            for user, when in customers.iter_rows()
        ]  # fmt: skip
        resolver.prefetch(records)
        identities = [resolver.resolve(record) for record in records]
        resolver.flush()
        for record, identity in zip(records, identities, strict=True):
            assert record.user_id is not None and identity.id is not None
            resolver_ids[record.user_id] = identity.id
    known.learn(workspace_id, resolver)
    return resolver_ids


def _event_values(
    dialect: str,
    workspace_id: int,
    rows: pl.DataFrame,
    identity_ids: dict[str, int],
    event: str,
    currency: str | None,
    quantity: str | None,
    received_at: datetime,
) -> list[tuple[Any, ...]]:
    """Driver-ready rows in ``EVENT_COLUMNS`` order, built column-wise."""
    sqlite = dialect != "postgresql"
    stamp = "%Y-%m-%d %H:%M:%S.%6f" if sqlite else "%Y-%m-%d %H:%M:%S.%6f+00"
    received = received_at.strftime("%Y-%m-%d %H:%M:%S.%f") + ("" if sqlite else "+00")
    props = [pl.format('"revenue": {}', pl.col("_amount").cast(pl.String))]
    if quantity:
        props.append(
            pl.when(pl.col("_quantity").is_not_null())
            .then(pl.format(', "quantity": {}', pl.col("_quantity").cast(pl.String)))
            .otherwise(pl.lit(""))
        )
    if currency:
        props.append(pl.lit(f', "currency": {orjson.dumps(currency).decode()}'))
    mapping = pl.DataFrame(
        {"_customer": list(identity_ids), "_identity": list(identity_ids.values())},
        schema={"_customer": pl.String, "_identity": pl.Int64},
    )
    frame = rows.join(mapping, on="_customer", how="left").select(
        pl.lit(workspace_id).alias("workspace_id"),
        pl.col("_identity").alias("identity_id"),
        pl.col("_message_id").alias("message_id"),
        pl.lit("track").alias("type"),
        pl.lit(event).alias("name"),
        pl.col("_customer").alias("user_id"),
        pl.lit(None, pl.String).alias("anonymous_id"),
        pl.col("_when").dt.strftime(stamp).alias("timestamp"),
        pl.col("_when").dt.epoch("s").alias("ts"),
        pl.lit(received).alias("received_at"),
        pl.lit(None, pl.String).alias("sent_at"),
        pl.col("_when").dt.strftime(stamp).alias("original_timestamp"),
        pl.lit(None, pl.String).alias("channel"),
        pl.lit(None, pl.String).alias("campaign"),
        pl.lit(None, pl.String).alias("source"),
        pl.col("_amount").alias("revenue"),
        pl.lit(currency, pl.String).alias("currency"),
        pl.concat_str([pl.lit("{"), *props, pl.lit("}")]).alias("properties"),
        pl.lit('{"library": {"name": "clm-import"}}').alias("context"),
        pl.lit(None, pl.String).alias("traits"),
    )
    assert tuple(frame.columns) == EVENT_COLUMNS
    return frame.rows()
