"""Where the reports read from: the event log and the stage history, on any lifecycle engine.

A ``ReportSource`` holds two Ibis tables on one backend, with the same columns on every engine:

* ``events``: ``customer_id, ts, message_id, name, type, channel, campaign, revenue`` plus the
  properties the reports read (numbers ``score``, ``clv_12m``, ``p_alive``, ``revision``;
  text ``survey_type``, ``response_id``); the lifecycle's
  own outputs (stage and health changes) are left out, as in the lifecycle engines;
* ``transitions``: ``customer_id, ts, from_stage, to_stage`` of the active (or named) stage
  model version;
* ``health`` (or None): ``customer_id, ts, state`` of the active health scorecard's history
  (``happy``, ``at_risk``, ``unhappy`` from ``ts`` on); empty when health was never computed.

Besides the lifecycle's events, CLM writes others into the log at its own clock: engagement
sends, blocks and rewards, playbooks' trait updates and prediction scores, all on the
``system`` channel. They stay in ``events``, but ``by_customer`` tells them apart: the default
period of a report spans what the customers did, so a demo of a 1998 log whose emails go out
today does not end today.

``sql`` reads both straight from SQLite or PostgreSQL; ``duckdb`` and ``spark`` read an export
of both (the same export the lifecycle engines use), so one Ibis plan runs everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import ibis
import ibis.expr.types as ir
import pyarrow as pa
from sqlalchemy import select

from clm.lifecycle.catalog import get_stage_model
from clm.lifecycle.compiled import CompiledModel
from clm.lifecycle.engines import (
    EngineName,
    export_events,
    flatten,
    quiet_engines,
    release_spark_sockets,
    spark_session,
    sql_backend,
    sql_source,
)
from clm.store.engine import Database
from clm.store.models import HealthSnapshot, LifecycleDefinition, StageTransition
from clm.store.own_events import MODEL_EVENTS, OWN_CHANNEL

T = TypeVar("T")
NUMBER_PROPERTIES = ("score", "clv_12m", "p_alive", "revision")
STRING_PROPERTIES = ("survey_type", "response_id")
PROPERTIES = [*((k, "number") for k in NUMBER_PROPERTIES),
              *((k, "string") for k in STRING_PROPERTIES)]  # fmt: skip
RENAMES = [f"p__{kind}__{key} AS {key}" for key, kind in PROPERTIES]
EVENT_COLUMNS = ("customer_id", "ts", "message_id", "name", "type", "channel", "campaign",
                 "revenue")  # fmt: skip
HEALTH_SCHEMA = pa.schema([("customer_id", pa.int64()), ("ts", pa.int64()), ("state", pa.string())])
TRANSITION_SCHEMA = pa.schema(
    [
        ("customer_id", pa.int64()),
        ("ts", pa.int64()),
        ("from_stage", pa.string()),
        ("to_stage", pa.string()),
    ]
)


@dataclass
class ReportSource:
    """The two tables every report reads, on one backend, and the stage model behind them."""

    events: ir.Table
    transitions: ir.Table
    model: CompiledModel
    engine: str
    backend: Any
    health: ir.Table | None = None
    _bounds: tuple[int, int] | None = field(default=None, init=False)
    _derived: dict[str, ir.Table] = field(default_factory=dict, init=False)
    _kept: dict[str, Any] = field(default_factory=dict, init=False)

    def run(self, expr: ir.Table) -> pa.Table:
        """Execute an expression on this source's engine and return Arrow."""
        with quiet_engines():
            table: pa.Table = expr.to_pyarrow()
        if self.engine == "spark":
            release_spark_sockets()
        return table

    def bounds(self) -> tuple[int, int] | None:
        """(first, last) ts of the customers' own events: the default period of a report.

        What CLM writes itself (``by_customer``) is left out, so that emails sent today do not
        stretch a report over years without a customer event. A log with nothing but CLM's
        events falls back to those; None for an empty log.
        """
        if self._bounds is None:
            e = self.events
            span = self._span(e.filter(by_customer(e))) or self._span(e)
            if span is None:
                return None
            self._bounds = span
        return self._bounds

    def _span(self, events: ir.Table) -> tuple[int, int] | None:
        """(min, max) ts of ``events``, None when there are none. On SQLite as two queries: a
        lone ``min`` or ``max`` is read from an end of the (workspace, ts) index (the demo:
        0.2 s of CPU for one scan of the log -> 0.03 s). PostgreSQL reads an aggregate from an
        index only over one table (the events view is a join), DuckDB and Spark scan their
        snapshot: one pass for both."""
        if self.engine == "sql" and self.backend.name == "sqlite":
            lo = self.run(events.aggregate(ts=events.ts.min())).column("ts")[0].as_py()
            hi = self.run(events.aggregate(ts=events.ts.max())).column("ts")[0].as_py()
        else:
            row = self.run(events.aggregate(lo=events.ts.min(), hi=events.ts.max())).to_pylist()
            lo, hi = row[0]["lo"], row[0]["hi"]
        return None if lo is None else (int(lo), int(hi))

    def derived(self, name: str, build: Callable[[], ir.Table]) -> ir.Table:
        """A table derived from the whole log, computed once and kept while the source is open.

        Only DuckDB and Spark sources keep it: they read a snapshot (the export taken when the
        source was opened), so it cannot go stale. A SQL source reads the live tables, where
        new events may arrive at any time, so there it is computed by every query.
        """
        if self.engine == "sql":
            return build()
        if name not in self._derived:
            with quiet_engines():  # caching runs the query now, with the engine's own warnings
                self._derived[name] = build().cache()
        return self._derived[name]

    @property
    def snapshot(self) -> bool:
        """True when the source reads a snapshot of the log (DuckDB, Spark: the export taken
        when it was opened), so what is derived from it can be kept; False for a SQL source,
        which reads the live tables."""
        return self.engine != "sql"

    def kept(self, name: str, build: Callable[[], T]) -> T:
        """A value derived from the whole log in Python (arrays, not a table), computed once
        and kept while a snapshot source is open; a SQL source computes it on every call."""
        if not self.snapshot:
            return build()
        if name not in self._kept:
            self._kept[name] = build()
        value: T = self._kept[name]
        return value

    def kept_already(self, name: str) -> object | None:
        """What ``kept`` holds under ``name`` if something computed it already (a report, or
        ``prepare_source``), else None: for a report that reads a kept value when there is
        one but would pay more to build it than to go without (one-shot sources)."""
        return self._kept.get(name)

    def derives(self, *names: str) -> bool:
        """True when this source keeps the ``derived`` tables ``names`` already, as
        ``kept_already`` for values."""
        return all(name in self._derived for name in names)

    def view(self, name: str, rows: pa.Table) -> ir.Table:
        """``rows`` (Arrow, computed in Python) as a view named ``name`` on this source's
        engine, to join with its tables. A bare memtable would do on DuckDB, but Spark does not
        register one inside a cached table (``reuse``)."""
        with quiet_engines():
            return self.backend.create_view(name, ibis.memtable(rows), overwrite=True)

    def reuse(self, expr: ir.Table, join_key: str | None = None) -> ir.Table:
        """``expr`` computed once into a temporary table on DuckDB and Spark, where that saves
        re-reading the log. SQL engines keep it inline (SQLite's planner indexes a subquery for
        a join but scans an unindexed temporary table once per outer row), except on SQLite
        when it is joined on ``join_key``: then it becomes a temporary table indexed on that
        key, because SQLite joins two window subqueries by a nested scan (the feedback
        report's answers x RFM segments: 6.8 s -> 0.3 s at 20,000 customers)."""
        if self.engine == "sql":
            return expr if join_key is None else self.keyed(expr, join_key)
        if any(expr.equals(kept) for kept in self._derived.values()):
            return expr  # already a table this source keeps
        with quiet_engines():  # caching runs the query now, with the engine's own warnings
            return expr.cache()

    def keyed(self, expr: ir.Table, key: str) -> ir.Table:
        """``expr`` for one later query that joins it on ``key``: on SQLite a temporary table
        indexed on ``key``, elsewhere ``expr`` itself (their planners hash-join a subquery;
        a copy would only cost). SQLite may join a window subquery on the right of a join by
        scanning it once per outer row: the acquisition report's new customers, one query
        with their first touch and latest score as window subqueries, ran for minutes on the
        demo; from three indexed tables, 0.6 s of CPU."""
        if self.engine != "sql" or self.backend.name != "sqlite":
            return expr
        with quiet_engines():
            cached = expr.cache()
        table = cached.get_name().split(".")[-1]  # ibis names it temp.<table>
        self.backend.raw_sql(f'CREATE INDEX temp."{table}_{key}" ON "{table}" ("{key}")').close()
        return cached

    def scan_ts(self, events: ir.Table) -> ir.IntegerValue:
        """``events.ts`` for a filter that keeps most of the log (``ts < until``), or for the
        order of a window over the log (latest score, latest answer).

        On SQLite it is written ``ts + 0``, so the planner scans the table instead of walking
        the (workspace, ts) index and fetching each wide row by its id in time order: 0.12 s
        of CPU against 1.0 s for the demo's 300,000 events (a window ordered by plain ``ts``
        makes it walk the index too: the demo's latest scores, 0.95 -> 0.2 s). Other engines
        read it as it is.
        """
        if self.engine == "sql" and self.backend.name == "sqlite":
            return events.ts + 0
        return events.ts

    def close(self) -> None:
        if self.engine == "sql":
            self.backend.disconnect()


def by_customer(events: ir.Table) -> ir.BooleanValue:
    """True for an event the customer did (a touchpoint), False for one CLM wrote about them.

    ``store.own_events.is_touchpoint`` as an Ibis expression: not CLM's own (the ``system``
    channel: sends, blocks, rewards, referral conversions, trait updates, stage changes,
    scores), and not a model's score (``Prediction Scored``) whatever its channel. Customer
    actions that CLM records (``Email Opened``/``Email Clicked`` on the ``email`` channel,
    survey answers, unsubscribes) are the customer's. Every report reads touchpoints and
    activity through this one test: attribution, first touch, default periods, cohorts.
    """
    return (events.channel.fill_null("") != OWN_CHANNEL) & ~events.name.fill_null("").isin(
        list(MODEL_EVENTS)
    )


def _typed_events(events: ir.Table, props: dict[str, ir.Value]) -> ir.Table:
    return events.select(
        *[events[c] for c in EVENT_COLUMNS],
        **{k: v.cast("float64" if k in NUMBER_PROPERTIES else "string") for k, v in props.items()},
    )


def export_transitions(db: Database, definition_id: int) -> pa.Table:
    """The stored stage history of one model version as Arrow."""
    query = select(
        StageTransition.customer_id, StageTransition.ts, StageTransition.from_stage,
        StageTransition.to_stage,
    ).where(StageTransition.definition_id == definition_id)  # fmt: skip
    with db.engine.connect() as conn:
        rows = conn.execute(query).all()
    columns: list[list[Any]] = [[row[i] for row in rows] for i in range(len(TRANSITION_SCHEMA))]
    return pa.Table.from_arrays(
        [pa.array(c, type=f.type) for c, f in zip(columns, TRANSITION_SCHEMA, strict=True)],
        schema=TRANSITION_SCHEMA,
    )


def active_health_definition(db: Database, workspace_id: int) -> int | None:
    """The id of the workspace's active health scorecard, or None (never installs one)."""
    query = select(LifecycleDefinition.id).where(
        LifecycleDefinition.workspace_id == workspace_id,
        LifecycleDefinition.kind == "health",
        LifecycleDefinition.active.is_(True),
    )
    with db.session() as session:
        return session.scalars(query.order_by(LifecycleDefinition.id)).first()


def export_health(db: Database, definition_id: int | None) -> pa.Table:
    """The stored health history of one scorecard version as Arrow (empty for None)."""
    rows: list[Any] = []
    if definition_id is not None:
        query = select(HealthSnapshot.customer_id, HealthSnapshot.ts, HealthSnapshot.state).where(
            HealthSnapshot.definition_id == definition_id
        )
        with db.engine.connect() as conn:
            rows = list(conn.execute(query))
    columns = [[row[i] for row in rows] for i in range(len(HEALTH_SCHEMA))]
    return pa.Table.from_arrays(
        [pa.array(c, type=f.type) for c, f in zip(columns, HEALTH_SCHEMA, strict=True)],
        schema=HEALTH_SCHEMA,
    )


def duckdb_report_source(
    events: pa.Table | str | Path,
    transitions: pa.Table | str | Path,
    model: CompiledModel,
    threads: int | None = None,
    health: pa.Table | None = None,
) -> ReportSource:
    """DuckDB over an events export (Arrow or Parquet, ``properties`` as JSON text) and a
    transitions table; both are loaded into DuckDB once, so every report reads columns."""
    import duckdb

    con = duckdb.connect()
    # no report reads rows in the order a table was written (every result is aggregated,
    # then keyed or sorted here); letting DuckDB drop that order saves 15-25% CPU at 20M events
    con.execute("SET preserve_insertion_order = false")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    flat = flatten(events, PROPERTIES, con)
    renames = ", ".join(RENAMES)
    flat.create_view("analytics_flat")
    columns = ", ".join(EVENT_COLUMNS)  # our constants, not user input
    con.execute(f"CREATE TABLE analytics_events AS SELECT {columns}, {renames} FROM analytics_flat")  # noqa: S608
    if isinstance(transitions, pa.Table):
        con.register("analytics_raw_transitions", transitions)
        origin = "analytics_raw_transitions"
    else:
        origin = f"read_parquet('{transitions}')"
    select = "SELECT customer_id, ts, from_stage, to_stage FROM"
    con.execute(f"CREATE TABLE analytics_transitions AS {select} {origin}")
    with quiet_engines():
        backend = ibis.duckdb.from_connection(con)
        events_table = backend.table("analytics_events")
        transitions_table = backend.table("analytics_transitions")
        health_table = None
        if health is not None:
            health_table = backend.create_table("analytics_health", health.cast(HEALTH_SCHEMA))
    return ReportSource(
        events_table, transitions_table, model, "duckdb", backend, health=health_table
    )


def spark_report_source(
    session: Any,
    events: pa.Table,
    transitions: pa.Table,
    model: CompiledModel,
    health: pa.Table | None = None,
) -> ReportSource:
    """PySpark over the same export (flattened by DuckDB, then handed to Spark as Arrow).

    The tables go to Spark as Arrow, never through pandas: pandas turns a null float into NaN
    and a null string into NaN too, which Spark keeps as values (``NaN`` is not null there), so
    sums over revenue and ``from_stage IS NULL`` (a customer's first stage) came out wrong.
    """
    flat = flatten(events, PROPERTIES)
    table = flat.select(", ".join([*EVENT_COLUMNS, *RENAMES])).to_arrow_table()
    with quiet_engines():
        session.createDataFrame(table).createOrReplaceTempView("clm_report_events")
        frame = session.createDataFrame(transitions.cast(TRANSITION_SCHEMA))
        frame.createOrReplaceTempView("clm_report_transitions")
        if health is not None:
            states = session.createDataFrame(health.cast(HEALTH_SCHEMA))
            states.createOrReplaceTempView("clm_report_health")
        backend = ibis.pyspark.connect(session)
        return ReportSource(
            backend.table("clm_report_events"), backend.table("clm_report_transitions"), model,
            "spark", backend,
            health=backend.table("clm_report_health") if health is not None else None,
        )  # fmt: skip


def open_report_source(
    db: Database,
    workspace_id: int,
    engine: EngineName = "sql",
    *,
    model: str | None = None,
    spark: Any = None,
) -> ReportSource:
    """A report source over a workspace's log and stage history on ``engine``."""
    info, compiled = get_stage_model(db, workspace_id, model)
    health_id = active_health_definition(db, workspace_id)
    if engine == "sql":
        backend = sql_backend(db)
        source = sql_source(db, workspace_id, backend=backend)
        events = _typed_events(
            source.events, {k: source.prop(source.events, k, kind) for k, kind in PROPERTIES}
        )
        history = backend.table("stage_transitions")
        transitions = history.filter(history.definition_id == info.id).select(
            "customer_id", "ts", "from_stage", "to_stage"
        )
        states = backend.table("health_history")
        health = states.filter(states.definition_id == (health_id or -1)).select(
            "customer_id", "ts", "state"
        )
        return ReportSource(events, transitions, compiled, "sql", backend, health=health)
    exported = export_events(db, workspace_id)
    history_table = export_transitions(db, info.id)
    health_table = export_health(db, health_id)
    if engine == "duckdb":
        return duckdb_report_source(exported, history_table, compiled, health=health_table)
    if engine == "spark":
        return spark_report_source(
            spark or spark_session(), exported, history_table, compiled, health_table
        )
    raise ValueError(f"unknown engine {engine!r}")


@contextmanager
def report_source(
    db: Database,
    workspace_id: int,
    engine: EngineName = "sql",
    *,
    model: str | None = None,
    spark: Any = None,
) -> Iterator[ReportSource]:
    """``open_report_source`` as a context manager that closes the connection after."""
    source = open_report_source(db, workspace_id, engine, model=model, spark=spark)
    try:
        yield source
    finally:
        source.close()
