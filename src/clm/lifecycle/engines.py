"""The four engines: where the events come from, and how each reads a JSON property.

* ``sql``: Ibis on the very database CLM stores into (SQLite or PostgreSQL), through the
  ``customer_events`` view; JSON properties with each dialect's own functions.
* ``duckdb``: in-process, over an Arrow table or Parquet file exported from the log; DuckDB
  computes the per-event signals of the Ibis plan, NumPy sorts them by customer range and
  evaluates features, stages and health features (``columnar.py``, the fast path).
* ``spark``: PySpark over the same export.
For DuckDB and Spark, the needed properties are first flattened into typed columns by DuckDB's
JSON functions, so both engines read them the same way.

The lifecycle's own outputs (stage and health changes: ``lifecycle_output``, by channel and name,
never by message id) are always left out.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pyarrow as pa
from sqlalchemy import bindparam, text

from clm.lifecycle.plan import PropFn
from clm.store.engine import Database
from clm.store.own_events import LIFECYCLE_OUTPUT_SQL, LIFECYCLE_OUTPUTS, OWN_CHANNEL

EngineName = Literal["sql", "duckdb", "spark"]
# The message-id prefix of the lifecycle's own events: it makes their writes idempotent, and is
# never used to recognise them (a client's id may start with anything): the lifecycle's inputs
# leave out its outputs by channel and name (``store.own_events.LIFECYCLE_OUTPUTS``).
OWN_EVENTS_PREFIX = "clm-lc-"
COLUMNS = (
    "customer_id",
    "ts",
    "message_id",
    "name",
    "type",
    "channel",
    "campaign",
    "source",
    "revenue",
)
ARROW_SCHEMA = pa.schema(
    [
        ("customer_id", pa.int64()),
        ("ts", pa.int64()),
        ("message_id", pa.string()),
        ("name", pa.string()),
        ("type", pa.string()),
        ("channel", pa.string()),
        ("campaign", pa.string()),
        ("source", pa.string()),
        ("revenue", pa.float64()),
        ("properties", pa.string()),
    ]
)


@dataclass
class Source:
    """An events table on some engine, and how to read its JSON properties."""

    events: ir.Table
    prop: PropFn
    backend: Any


# --- SQLite / PostgreSQL: Ibis on the store itself ---------------------------------------


@ibis.udf.scalar.builtin(  # type: ignore[untyped-decorator]
    name="json_extract"
)
def _sqlite_json_extract(doc: str, path: str) -> str: ...  # type: ignore[empty-body]


@ibis.udf.scalar.builtin(  # type: ignore[untyped-decorator]
    name="json_type"
)
def _sqlite_json_type(doc: str, path: str) -> str: ...  # type: ignore[empty-body]


_JSONB = dt.JSON(binary=True)


@ibis.udf.scalar.builtin(  # type: ignore[untyped-decorator]
    name="jsonb_typeof", signature=((_JSONB,), dt.string)
)
def _pg_jsonb_typeof(doc: Any) -> Any: ...


@ibis.udf.scalar.builtin(  # type: ignore[untyped-decorator]
    name="jsonb_extract_path", signature=((_JSONB, dt.string), _JSONB)
)
def _pg_jsonb_path(doc: Any, key: Any) -> Any: ...


@ibis.udf.scalar.builtin(  # type: ignore[untyped-decorator]
    name="jsonb_extract_path_text", signature=((_JSONB, dt.string), dt.string)
)
def _pg_jsonb_text(doc: Any, key: Any) -> Any: ...


def _sqlite_prop(table: ir.Table, key: str, want: str) -> ir.Value:
    doc = table.properties.cast("string")
    kind = _sqlite_json_type(doc, f"$.{key}")
    value = _sqlite_json_extract(doc, f"$.{key}")
    if want == "number":
        return ibis.ifelse(
            kind.isin(["integer", "real"]), value.cast("float64"), ibis.null("float64")
        )
    return ibis.ifelse(kind == "text", value, ibis.null("string"))


def _pg_prop(table: ir.Table, key: str, want: str) -> ir.Value:
    doc = table.properties
    kind = _pg_jsonb_typeof(_pg_jsonb_path(doc, key))
    value = _pg_jsonb_text(doc, key)
    if want == "number":
        return ibis.ifelse(kind == "number", value.cast("float64"), ibis.null("float64"))
    return ibis.ifelse(kind == "string", value, ibis.null("string"))


def sql_backend(db: Database) -> Any:
    """An Ibis connection to the same database as ``db``."""
    url = db.engine.url
    if db.dialect == "sqlite":
        return ibis.sqlite.connect(url.database or ":memory:")
    import psycopg

    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return ibis.postgres.from_connection(psycopg.connect(conninfo, autocommit=True))


def sql_source(
    db: Database, workspace_id: int, customer_ids: Sequence[int] | None = None, backend: Any = None
) -> Source:
    backend = backend or sql_backend(db)
    view = backend.table("customer_events")
    events = view.filter(view.workspace_id == workspace_id, ~lifecycle_output(view))
    if customer_ids is not None:
        events = events.filter(events.customer_id.isin(list(customer_ids)))
    events = events.select(*COLUMNS, "properties")
    prop = _sqlite_prop if db.dialect == "sqlite" else _pg_prop
    return Source(events, prop, backend)


# --- DuckDB and Spark: over an export of the log ----------------------------------------


_EXPORT = text(  # the f-strings below interpolate a constant
    "SELECT customer_id, ts, message_id, name, type, channel, campaign, source, revenue, "  # noqa: S608
    f"properties FROM customer_events WHERE workspace_id = :ws AND NOT {LIFECYCLE_OUTPUT_SQL}"
)
_EXPORT_SOME = text(
    "SELECT customer_id, ts, message_id, name, type, channel, campaign, source, revenue, "  # noqa: S608
    f"properties FROM customer_events WHERE workspace_id = :ws AND NOT {LIFECYCLE_OUTPUT_SQL} "
    "AND customer_id IN :ids"
).bindparams(bindparam("ids", expanding=True))


def export_events(
    db: Database, workspace_id: int, customer_ids: Iterable[int] | None = None
) -> pa.Table:
    """The workspace's events (resolved to customers) as an Arrow table, properties as JSON."""
    params: dict[str, Any] = {"ws": workspace_id}
    rows: list[Sequence[Any]] = []
    with db.engine.connect() as conn:
        if customer_ids is None:
            rows.extend(conn.execute(_EXPORT, params))
        else:
            ids = sorted({int(c) for c in customer_ids})
            for start in range(0, len(ids), 500):
                chunk = {**params, "ids": ids[start : start + 500]}
                rows.extend(conn.execute(_EXPORT_SOME, chunk))
    columns: list[list[Any]] = [list(c) for c in zip(*rows, strict=True)] if rows else []
    if not columns:
        columns = [[] for _ in ARROW_SCHEMA]
    columns[9] = [p if isinstance(p, str) else json.dumps(p or {}) for p in columns[9]]
    return pa.Table.from_arrays(
        [pa.array(col, type=f.type) for col, f in zip(columns, ARROW_SCHEMA, strict=True)],
        schema=ARROW_SCHEMA,
    )


def flat_column(key: str, want: str) -> str:
    return f"p__{want}__{key}"


def flatten(
    events: pa.Table | str | Path, properties: Iterable[tuple[str, str]], con: Any = None
) -> Any:
    """DuckDB relation of the events with each needed property as a typed column."""
    import duckdb

    con = con or duckdb.connect()
    if isinstance(events, pa.Table):
        con.register("raw_events", events)
        source = "raw_events"
    else:
        source = f"read_parquet('{events}')"
    extra = []
    for key, want in sorted(properties):
        path = f"'$.{key}'"
        kind = f"json_type(properties, {path})"
        if want == "number":
            expr = (
                f"CASE WHEN {kind} IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'HUGEINT') THEN "
                f"CAST(json_extract_string(properties, {path}) AS DOUBLE) END"
            )
        else:
            expr = f"CASE WHEN {kind} = 'VARCHAR' THEN json_extract_string(properties, {path}) END"
        extra.append(f"{_only_if_present(key, expr)} AS {flat_column(key, want)}")
    select = ", ".join([*COLUMNS, *extra])
    where = f"NOT {LIFECYCLE_OUTPUT_SQL}"
    return con.sql(f"SELECT {select} FROM {source} WHERE {where}")  # noqa: S608 - names checked


def _only_if_present(key: str, expr: str) -> str:
    """``expr`` guarded by a substring test: parsing JSON is by far the costliest step of a
    scan, and most events do not carry the key. Exact: without a backslash (an escape) in the
    document, a key can only be present if its JSON spelling appears verbatim."""
    spelled = json.dumps(key, ensure_ascii=False)
    if "\\" in spelled or "'" in spelled:
        return expr
    return (
        f"CASE WHEN contains(properties, '{spelled}') OR contains(properties, '\\') THEN {expr} END"
    )


def _flat_prop(table: ir.Table, key: str, want: str) -> ir.Value:
    return table[flat_column(key, want)]


def duckdb_source(
    events: pa.Table | str | Path, properties: Iterable[tuple[str, str]], threads: int | None = None
) -> Source:
    import duckdb

    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    relation = flatten(events, properties, con)
    relation.create_view("flat_events")
    backend = ibis.duckdb.from_connection(con)
    return Source(backend.table("flat_events"), _flat_prop, backend)


@contextmanager
def quiet_engines() -> Iterator[None]:
    """PySpark raises a few known deprecation warnings of its own, and Ibis 12 reads a pandas
    option that pandas 3 deprecates: hide those only."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"The 'future\.infer_string' option")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"pyspark.*")
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"pyspark.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ibis.*")
        yield


def release_spark_sockets() -> None:
    """PySpark leaves the local sockets it fetched results through to the garbage collector;
    collect them now, with their ResourceWarning silenced, rather than at a random later time."""
    import gc

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ResourceWarning)
        gc.collect()


def spark_session(cores: int = 2) -> Any:
    """A local Spark session tuned for small machines (UTC, few shuffle partitions)."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    with quiet_engines():
        from pyspark.sql import SparkSession

        session = (
            SparkSession.builder.master(f"local[{cores}]")
            .appName("clm-lifecycle")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.shuffle.partitions", str(cores * 4))
            .config("spark.driver.memory", "4g")
            .getOrCreate()
        )
        session.sparkContext.setLogLevel("ERROR")
        return session


def spark_source(
    session: Any,
    events: pa.Table | str | Path,
    properties: Iterable[tuple[str, str]],
    view: str = "clm_events",
) -> Source:
    flat = flatten(events, properties)
    with quiet_engines():
        if isinstance(events, pa.Table):
            frame = session.createDataFrame(flat.to_arrow_table())
        else:
            path = Path(str(events)).with_suffix(".flat.parquet")
            flat.write_parquet(str(path))
            frame = session.read.parquet(str(path))
        frame.createOrReplaceTempView(view)
        backend = ibis.pyspark.connect(session)
        return Source(backend.table(view), _flat_prop, backend)


def lifecycle_output(events: ir.Table) -> ir.BooleanValue:
    """True for the lifecycle's own outputs (stage and health changes): CLM's own events
    (``store.own_events``) with those names. The lifecycle reads every other event, CLM's
    prediction scores included (P(alive)); its activity features leave out the rest of CLM's
    own events by their ``where`` (``coalesce(channel, '') != 'system'``)."""
    return (events.channel.fill_null("") == OWN_CHANNEL) & events.name.fill_null("").isin(
        list(LIFECYCLE_OUTPUTS)
    )
