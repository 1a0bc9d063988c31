"""Transaction logs (customer, date, amount, like CDNOW's) as purchase events, column-wise.

The path for millions of rows, so no Python object is made per row: polars types, checks and
derives every column (message id, event time, properties JSON), identities are resolved once
per distinct customer, and the events go to the database as whole columns (``executemany`` of
the varying columns on SQLite, CSV ``COPY`` on PostgreSQL). SQLite's own floor for these rows
is measured by ``benchmarks/ingest/sqlite_floor.py``. Only user ids name customers here,
so resolution reduces to "known user id: its identity; unknown: a new customer", exactly what
the general resolver decides for such a message; the result is the same as the HTTP API's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl
from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from clm.errors import ValidationError
from clm.ingest._files import (
    FileFormat,
    ImportReport,
    Progress,
    RejectedRow,
    as_source,
    read_table,
    refresh_after_import,
    row_error,
)
from clm.ingest.service import known_identities
from clm.store.bulk import (
    insert_event_frame,
    insert_frame,
    sql_literal,
    stored_in_range,
    timestamp_text,
)
from clm.store.engine import Database
from clm.store.ids import allocate_ids
from clm.store.locks import until_commit
from clm.store.models import Customer, Identity, table_of
from clm.store.tombstones import erased_keys, has_tombstones

_ISO_FORMATS = [
    f"%Y-%m-%d{sep}%H:%M:%S{frac}{zone}"
    for sep in ("T", " ")
    for frac in ("", "%.f")
    for zone in ("%:z", "")
] + ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d"]
_SQLITE_IMPORT_CACHE_KIB = 524_288  # 512 MiB while a chunk loads: index pages are not re-spilled
_IMPORT_CONTEXT = '{"library": {"name": "clm-import"}}'
# Built after a large SQLite load rather than during it (the unique index is kept).
_REBUILT_INDEXES = ("ix_events_identity_name_ts", "ix_events_workspace_ts")


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
    chunk_size: int = 250_000,
    progress: Progress | None = None,
) -> ImportReport:
    """Import a transaction log: each row becomes a purchase event of its customer.

    ``date`` may hold dates or datetimes (ISO text, or text in ``date_format``, e.g.
    ``%Y%m%d`` for CDNOW); times without a zone are UTC. Several rows of one customer on one day
    stay several events: that they count as one transaction is a modelling choice made later.
    Each chunk of ``chunk_size`` events is one transaction; on SQLite, an import of several
    chunks at least as large as the stored log is one transaction (the two non-unique event
    indexes are built after the load, see ``_load_rebuilding_indexes``).
    """
    first_line = 1
    resolved = as_source(source)
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
        RejectedRow(line, [row_error(message)])
        for line, message in bad.select("_line", "_error").iter_rows()
    ]
    # In message-id order, the unique index fills left to right instead of splitting pages.
    # Rows sharing an order id are one event: the first (in file order) is kept.
    good = rows.filter(pl.col("_error").is_null()).sort("_message_id", maintain_order=True)
    unique = good.unique("_message_id", keep="first", maintain_order=True)
    report.duplicates += good.height - unique.height
    unique = _refuse_erased(db, workspace_id, unique, report)
    identities = _user_identities(db, workspace_id, unique)
    now = datetime.now(UTC)
    constants = _constants(db.dialect, workspace_id, event, currency, now)
    chunks = (
        _event_columns(db.dialect, unique.slice(start, chunk_size), identities, quantity, currency)
        for start in range(0, unique.height, chunk_size)
    )

    def stored_chunk(part: pl.DataFrame, stored: int) -> None:
        report.stored += stored
        report.duplicates += part.height - stored
        if progress:
            progress(min(report.read, report.stored + report.duplicates + bad.height))

    checkpointer = db.start_checkpointer()  # copies chunk n's WAL while chunk n+1 loads
    try:
        if unique.height > chunk_size and _rebuild_pays(db, workspace_id, unique["_message_id"]):
            with db.transaction() as session:
                _load_rebuilding_indexes(session, chunks, constants, stored_chunk)
        else:
            for part in chunks:
                with db.transaction() as session:
                    stored = _insert_chunk(session, part, constants)
                if checkpointer is not None:
                    checkpointer.poke()
                stored_chunk(part, stored)
    finally:
        db.stop_checkpointer(checkpointer)
    if progress and unique.is_empty():
        progress(report.read)
    refresh_after_import(db, report)
    return report


def _rebuild_pays(db: Database, workspace_id: int, message_ids: pl.Series) -> bool:
    """Whether building the two non-unique event indexes afterwards beats keeping them up to
    date row by row: on SQLite, when the import is at least as large as the whole log and
    none of the workspace's stored events has a message id in its range (a file imported
    again stores nothing: rebuilding would be pure cost).

    Each row inserted into a live index lands on a random page of it (identity, and time
    within the workspace); a rebuild sorts once. ``max(id)`` stands for the count of stored
    events (one B-tree descent instead of a scan; it can only overstate, so at worst a large
    import keeps the row-by-row path)."""
    if db.dialect != "sqlite" or message_ids.is_empty():
        return False
    with db.session() as session:
        last = session.execute(text("SELECT coalesce(max(id), 0) FROM events")).scalar_one()
        if len(message_ids) < int(last):
            return False
        overlap = stored_in_range(session.connection(), workspace_id, message_ids)
    return not overlap


def _load_rebuilding_indexes(
    session: Session,
    chunks: Iterable[pl.DataFrame],
    constants: dict[str, Any],
    stored_chunk: Callable[[pl.DataFrame, int], None],
) -> None:
    """SQLite: drop the two non-unique event indexes, load every chunk and create them again,
    all in the caller's one transaction.

    DDL is transactional in SQLite: if anything fails, the rollback restores the indexes with
    the table, and readers (WAL snapshots) never see the table without them. The unique index
    stays: it is what skips stored message ids. The price is one transaction for the whole
    import: the writer lock is held throughout and the WAL grows to the size of the load
    before its checkpoint."""
    connection = session.connection()
    create = [
        str(sql)
        for sql in connection.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' "
            "AND name IN (?, ?) ORDER BY name",
            _REBUILT_INDEXES,
        ).scalars()
    ]
    with _import_cache(session):
        for name in _REBUILT_INDEXES:
            connection.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
        for part in chunks:
            stored_chunk(part, insert_event_frame(connection, part, constants))
        for sql in create:
            connection.exec_driver_sql(sql)


def _insert_chunk(session: Session, part: pl.DataFrame, constants: dict[str, Any]) -> int:
    with _import_cache(session):
        return insert_event_frame(session.connection(), part, constants)


@contextmanager
def _import_cache(session: Session) -> Iterator[None]:
    """SQLite: the import's large page cache for the session's transaction."""
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        yield
        return
    connection.exec_driver_sql(f"PRAGMA cache_size=-{_SQLITE_IMPORT_CACHE_KIB}")
    try:
        yield
    finally:
        connection.exec_driver_sql("PRAGMA cache_size=-65536")  # the engine's own setting


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
        # NUL is dropped as the HTTP API drops it (PostgreSQL text cannot hold it).
        _without_nul(pl.col(customer)).str.strip_chars().alias("_customer"),
        when.alias("_when"),
        money.alias("_amount"),
        (pl.col(quantity).cast(pl.Float64, strict=False) if quantity else pl.lit(None)).alias(
            "_quantity"
        ),
        (_without_nul(pl.col(order_id)) if order_id else pl.lit(None, pl.String)).alias("_order"),
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
        .when(pl.col("_amount").is_infinite())  # "inf", "1e400": no sum survives them
        .then(pl.lit(f"{amount}: not a finite number"))
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


def _without_nul(column: pl.Expr) -> pl.Expr:
    return column.cast(pl.String).str.replace_all("\x00", "", literal=True)


def _refuse_erased(
    db: Database, workspace_id: int, rows: pl.DataFrame, report: ImportReport
) -> pl.DataFrame:
    """The tombstone rule for files: rows of an erased customer are rejected, by line."""
    with db.session() as session:
        connection = session.connection()
        if rows.is_empty() or not has_tombstones(connection, workspace_id):
            return rows
        keys = [("user_id", str(user)) for user in rows["_customer"].unique().to_list()]
        erased = [value for _, value in erased_keys(connection, workspace_id, keys)]
    if not erased:
        return rows
    refused = rows.filter(pl.col("_customer").is_in(erased))
    report.rejected += [
        RejectedRow(line, [row_error("this customer was erased (privacy); not imported")])
        for line in refused["_line"].to_list()
    ]
    return rows.filter(~pl.col("_customer").is_in(erased))


def _user_identities(db: Database, workspace_id: int, rows: pl.DataFrame) -> pl.DataFrame:
    """(``_customer``, ``_identity``) for every customer of ``rows``; unknown user ids become
    new customers, each with its identity and the link that explains it (``new``, ``event``)."""
    firsts = rows.group_by("_customer").agg(pl.col("_when").min()).sort("_when", "_customer")
    with db.transaction() as session:
        # The HTTP writer's lock: the two never create the same person twice.
        until_commit(session, "ingest", workspace_id)
        known = _known_user_ids(session, workspace_id, firsts["_customer"].to_list())
        fresh = firsts.join(known, on="_customer", how="anti")
        made = _create_customers(session, workspace_id, fresh)
    found = pl.concat([known, made.select("_customer", "_identity", "_customer_id")])
    known_identities(db).learn_rows(workspace_id, "user_id", found.iter_rows())
    return found.select("_customer", "_identity")


def _known_user_ids(session: Session, workspace_id: int, values: list[str]) -> pl.DataFrame:
    """The stored identities of these user ids: one query, the values sent as one array."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        sql = (
            "SELECT value, id, customer_id FROM identities "
            "WHERE workspace_id = %s AND kind = 'user_id' AND value = ANY(%s)"
        )
        found = connection.exec_driver_sql(sql, (workspace_id, values)).all()
    else:
        sql = (
            "SELECT value, id, customer_id FROM identities WHERE workspace_id = ? "
            "AND kind = 'user_id' AND value IN (SELECT value FROM json_each(?))"
        )
        found = connection.exec_driver_sql(sql, (workspace_id, orjson.dumps(values).decode())).all()
    return pl.DataFrame(
        [tuple(row) for row in found],
        schema={"_customer": pl.String, "_identity": pl.Int64, "_customer_id": pl.Int64},
        orient="row",
    )


def _create_customers(session: Session, workspace_id: int, fresh: pl.DataFrame) -> pl.DataFrame:
    """Customers, identities and ``new`` links for ``fresh`` (``_customer``, first ``_when``)."""
    count = fresh.height
    made = fresh.with_columns(
        pl.Series("_customer_id", allocate_ids(session, table_of(Customer), count), pl.Int64),
        pl.Series("_identity", allocate_ids(session, table_of(Identity), count), pl.Int64),
    )
    if not count:
        return made
    connection = session.connection()
    dialect = connection.dialect.name
    if dialect == "sqlite":
        _create_customers_sqlite(connection, workspace_id, made)
        return made
    recorded = timestamp_text(pl.lit(datetime.now(UTC)).dt.replace_time_zone("UTC"), dialect)
    first_seen = timestamp_text(pl.col("_when"), dialect)
    ws = pl.lit(workspace_id, pl.Int64).alias("workspace_id")
    none = pl.lit(None, pl.String)
    insert_frame(connection, "customers", made.select(
        pl.col("_customer_id").alias("id"), ws, pl.col("_customer").alias("user_id"),
        none.alias("email"), pl.lit("{}").alias("traits"), recorded.alias("created_at"),
        pl.lit(None, pl.Int64).alias("merged_into_id"),
    ))  # fmt: skip
    insert_frame(connection, "identities", made.select(
        pl.col("_identity").alias("id"), ws, pl.lit("user_id").alias("kind"),
        pl.col("_customer").alias("value"), pl.col("_customer_id").alias("customer_id"),
        first_seen.alias("first_seen_at"),
    ))  # fmt: skip
    insert_frame(connection, "identity_links", made.select(
        ws, pl.col("_customer_id").alias("customer_id"),
        pl.lit(None, pl.Int64).alias("other_customer_id"), pl.lit("user_id").alias("kind"),
        pl.col("_customer").alias("value"), pl.lit("new").alias("outcome"),
        pl.lit("event").alias("reason"), pl.lit("").alias("message_id"),
        first_seen.alias("occurred_at"), recorded.alias("recorded_at"),
    ))  # fmt: skip
    return made


def _create_customers_sqlite(connection: Connection, workspace_id: int, made: pl.DataFrame) -> None:
    """SQLite: the 4 columns that vary per person bound once, into a temporary table, and the
    three rows of each person written from it by SQLite itself (the shared values as SQL
    literals): a third of the binding ``insert_frame`` would do, no Python per table."""
    recorded = sql_literal(datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"))
    ws = sql_literal(workspace_id)
    people = made.select(
        "_customer_id", "_identity", "_customer", timestamp_text(pl.col("_when"), "sqlite")
    )
    connection.exec_driver_sql(
        "CREATE TEMP TABLE import_people (customer_id, identity_id, value, first_seen)"
    )
    try:
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.executemany(
            "INSERT INTO temp.import_people VALUES (?, ?, ?, ?)", people.iter_rows(buffer_size=4096)
        )
        cursor.close()
        for sql in (
            "INSERT INTO customers (id, workspace_id, user_id, email, traits, created_at, "
            f"merged_into_id) SELECT customer_id, {ws}, value, NULL, '{{}}', {recorded}, NULL",
            "INSERT INTO identities (id, workspace_id, kind, value, customer_id, first_seen_at) "
            f"SELECT identity_id, {ws}, 'user_id', value, customer_id, first_seen",
            "INSERT INTO identity_links (workspace_id, customer_id, other_customer_id, kind, "
            "value, outcome, reason, message_id, occurred_at, recorded_at) "
            f"SELECT {ws}, customer_id, NULL, 'user_id', value, 'new', 'event', '', first_seen, "
            f"{recorded}",
        ):
            connection.exec_driver_sql(f"{sql} FROM temp.import_people ORDER BY rowid")
    finally:
        connection.exec_driver_sql("DROP TABLE temp.import_people")


def _constants(
    dialect: str, workspace_id: int, event: str, currency: str | None, received_at: datetime
) -> dict[str, Any]:
    """The event columns every row of one import shares."""
    received = received_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return {
        "workspace_id": workspace_id, "type": "track", "name": event, "anonymous_id": None,
        "received_at": received if dialect != "postgresql" else f"{received}+00",
        "sent_at": None, "channel": None, "campaign": None, "source": None,
        "currency": currency, "context": _IMPORT_CONTEXT, "traits": None,
    }  # fmt: skip


def _event_columns(
    dialect: str,
    rows: pl.DataFrame,
    identities: pl.DataFrame,
    quantity: str | None,
    currency: str | None,
) -> pl.DataFrame:
    """The varying event columns of ``rows``, driver-ready, built column-wise."""
    props = [pl.lit('{"revenue": '), pl.col("_amount").cast(pl.String)]
    if quantity:
        props.append(
            pl.when(pl.col("_quantity").is_not_null())
            .then(pl.concat_str([pl.lit(', "quantity": '), pl.col("_quantity").cast(pl.String)]))
            .otherwise(pl.lit(""))
        )
    if currency:
        props.append(pl.lit(f', "currency": {orjson.dumps(currency).decode()}'))
    when = timestamp_text(pl.col("_when"), dialect)
    return rows.join(identities, on="_customer", how="left", maintain_order="left").select(
        pl.col("_identity").alias("identity_id"),
        pl.col("_message_id").alias("message_id"),
        pl.col("_customer").alias("user_id"),
        when.alias("timestamp"),
        pl.col("_when").dt.epoch("s").alias("ts"),
        when.alias("original_timestamp"),
        pl.col("_amount").alias("revenue"),
        pl.concat_str([*props, pl.lit("}")]).alias("properties"),
    )
