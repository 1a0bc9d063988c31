"""Computing stage history: full runs, incremental updates and ticks.

* ``run_lifecycle``: recompute every customer's history from the log (after a model change, or
  to start). The history of other model versions is left untouched.
* ``update_lifecycle``: only the customers with events newer than the last run are recomputed,
  from all their events, so late events are handled exactly like a full run would.
* ``tick``: an update, then announce the transitions whose time has come (lapses).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from sqlalchemy import func, select

from clm.lifecycle.catalog import get_stage_model
from clm.lifecycle.columnar import duckdb_transitions
from clm.lifecycle.compiled import CompiledModel
from clm.lifecycle.engines import (
    EngineName,
    export_events,
    quiet_engines,
    release_spark_sockets,
    spark_session,
    sql_source,
)
from clm.lifecycle.history import announce, replace_history, transition_rows
from clm.lifecycle.plan import required_properties, transitions
from clm.lifecycle.schemas import RunResult
from clm.store.engine import Database
from clm.store.locks import one_at_a_time
from clm.store.models import Customer, Event, Identity, LifecycleRun, StageTransition
from clm.store.own_events import LIFECYCLE_OUTPUTS, own_event_clause
from clm.store.settled import settled_top

Progress = Callable[[str], None]
StepProgress = Callable[[str, int, int], None]  # what is being done, steps done, steps in all


def compute_transitions(
    db: Database,
    workspace_id: int,
    model: CompiledModel,
    engine: EngineName = "sql",
    customer_ids: Sequence[int] | None = None,
    spark: Any = None,
    progress: StepProgress | None = None,
) -> pa.Table:
    """The stage history as an Arrow table, computed on ``engine``; ``progress`` hears of
    each step (DuckDB reports each range of customers it finishes)."""

    def step(what: str, done: int = 0, total: int = 1) -> None:
        if progress is not None:
            progress(what, done, total)

    if engine == "sql":
        source = sql_source(db, workspace_id, customer_ids)
        step("computing stages in the database")
        try:
            with quiet_engines():
                return transitions(source.events, model, source.prop).to_pyarrow()
        finally:
            source.backend.disconnect()
            step("computing stages in the database", 1)
    step("reading the event log")
    events = export_events(db, workspace_id, customer_ids)
    props = required_properties(model.features)
    if engine == "duckdb":
        step("scanning the log with DuckDB")
        return duckdb_transitions(
            events, model, on_range=lambda done, total: step("computing stages", done, total)
        )
    step("computing stages with Spark")
    with quiet_engines():
        from clm.lifecycle.engines import spark_source

        source = spark_source(spark or spark_session(), events, props)
        result: pa.Table = transitions(source.events, model, source.prop).to_pyarrow()
        release_spark_sockets()
    step("computing stages with Spark", 1)
    return result


def settled_event_id(
    db: Database, workspace_id: int, fallback: int, settle_seconds: float | None = None
) -> int:
    """The watermark a run may record: every event with an id at or below it is committed
    (and so read by the run), or never will be (``clm.store.settled``). If a writer that may
    hold a smaller id is still open after ``settle_seconds``, the previous watermark
    (``fallback``) is kept and the next update re-processes the overlap, which is idempotent."""
    top = settled_top(db, "events", workspace_id=workspace_id, settle_seconds=settle_seconds)
    return fallback if top is None else top


def _watermark(db: Database, definition_id: int) -> int | None:
    with db.session() as session:
        found = session.scalar(
            select(func.max(LifecycleRun.last_event_id)).where(
                LifecycleRun.definition_id == definition_id
            )
        )
    return None if found is None else int(found)


def touched_customers(db: Database, workspace_id: int, after_event_id: int) -> list[int]:
    """Customers with events newer than ``after_event_id``, as identity resolution says now."""
    query = (
        select(Identity.customer_id)
        .join(Event, Event.identity_id == Identity.id)
        .where(
            Event.workspace_id == workspace_id,
            Event.id > after_event_id,
            # the lifecycle's own outputs do not touch a customer (CLM's scores do: P(alive))
            ~(own_event_clause(Event.channel) & Event.name.in_(LIFECYCLE_OUTPUTS)),
        )
        .distinct()
    )
    with db.session() as session:
        return sorted(int(c) for c in session.scalars(query))


def _merged_away(db: Database, workspace_id: int, definition_id: int) -> list[int]:
    """Customers merged into others since: their history now belongs to the survivor."""
    query = (
        select(StageTransition.customer_id)
        .join(Customer, Customer.id == StageTransition.customer_id)
        .where(
            StageTransition.definition_id == definition_id,
            Customer.workspace_id == workspace_id,
            Customer.merged_into_id.is_not(None),
        )
        .distinct()
    )
    with db.session() as session:
        return [int(c) for c in session.scalars(query)]


def _store(
    db: Database,
    workspace_id: int,
    definition_id: int,
    model: CompiledModel,
    table: pa.Table,
    customer_ids: Sequence[int] | None,
    mode: str,
    last_event_id: int,
    started: datetime,
    now: datetime | None,
    do_announce: bool,
) -> tuple[int, int]:
    rows = transition_rows(table, workspace_id, definition_id, model)
    with db.transaction() as session:
        replace_history(session, definition_id, rows, customer_ids)
        written = 0
        if do_announce:
            written = announce(db, session, workspace_id, definition_id, model, now or _now())
        session.add(
            LifecycleRun(
                workspace_id=workspace_id,
                definition_id=definition_id,
                mode=mode,
                last_event_id=last_event_id,
                customers=len(set(table.column("customer_id").to_pylist())),
                rows_written=len(rows),
                started_at=started,
                finished_at=_now(),
            )
        )
    return len(rows), written


def _now() -> datetime:
    return datetime.now(UTC)


def run_lifecycle(
    db: Database,
    workspace_id: int,
    *,
    model_name: str | None = None,
    engine: EngineName = "sql",
    announce_events: bool = True,
    now: datetime | None = None,
    spark: Any = None,
    settle_seconds: float | None = None,
) -> RunResult:
    """Recompute the whole stage history of a workspace under its active model."""
    clock, started = time.perf_counter(), _now()
    info, model = get_stage_model(db, workspace_id, model_name)
    last_event_id = settled_event_id(db, workspace_id, 0, settle_seconds)
    table = compute_transitions(db, workspace_id, model, engine, spark=spark)
    stored, written = _store(
        db,
        workspace_id,
        info.id,
        model,
        table,
        None,
        "full",
        last_event_id,
        started,
        now,
        announce_events,
    )
    return RunResult(
        mode="full",
        model=info.name,
        model_version=info.version,
        engine=engine,
        customers=len(set(table.column("customer_id").to_pylist())),
        transitions=stored,
        events_written=written,
        last_event_id=last_event_id,
        seconds=round(time.perf_counter() - clock, 3),
    )


def update_lifecycle(
    db: Database,
    workspace_id: int,
    *,
    model_name: str | None = None,
    engine: EngineName = "duckdb",
    announce_events: bool = True,
    now: datetime | None = None,
    spark: Any = None,
    settle_seconds: float | None = None,
) -> RunResult:
    """Recompute only the customers touched by events since the last run (or all, the first
    time); equal to a full run by construction, proven by the property tests."""
    info, model = get_stage_model(db, workspace_id, model_name)
    watermark = _watermark(db, info.id)
    if watermark is None:
        return run_lifecycle(
            db,
            workspace_id,
            model_name=model_name,
            engine=engine,
            announce_events=announce_events,
            now=now,
            spark=spark,
            settle_seconds=settle_seconds,
        )
    clock, started = time.perf_counter(), _now()
    last_event_id = settled_event_id(db, workspace_id, watermark, settle_seconds)
    customers = touched_customers(db, workspace_id, watermark)
    stale = _merged_away(db, workspace_id, info.id)
    table = (
        compute_transitions(db, workspace_id, model, engine, customers, spark)
        if customers
        else _empty_transitions()
    )
    stored, written = _store(
        db,
        workspace_id,
        info.id,
        model,
        table,
        [*customers, *stale],
        "incremental",
        last_event_id,
        started,
        now,
        announce_events,
    )
    return RunResult(
        mode="incremental",
        model=info.name,
        model_version=info.version,
        engine=engine,
        customers=len(customers),
        transitions=stored,
        events_written=written,
        last_event_id=last_event_id,
        seconds=round(time.perf_counter() - clock, 3),
    )


def _empty_transitions() -> pa.Table:
    return pa.table(
        {
            "customer_id": pa.array([], pa.int64()),
            "ts": pa.array([], pa.int64()),
            "from_stage": pa.array([], pa.string()),
            "to_stage": pa.array([], pa.string()),
            "rule": pa.array([], pa.string()),
            "cause_message_id": pa.array([], pa.string()),
        }
    )


def tick(
    db: Database,
    workspace_id: int,
    *,
    model_name: str | None = None,
    now: datetime | None = None,
    engine: EngineName = "duckdb",
) -> RunResult:
    """The scheduled job: take in new events, then announce every transition now due.

    One tick per workspace at a time, across processes (two workers, a shell's ``clm lifecycle
    tick``): two interleaved incremental updates could each store the same customer's history.
    """
    with one_at_a_time(db, "lifecycle", workspace_id):
        result = update_lifecycle(db, workspace_id, model_name=model_name, engine=engine, now=now)
        info, model = get_stage_model(db, workspace_id, model_name)
        with db.transaction() as session:
            written = announce(db, session, workspace_id, info.id, model, now or _now())
    return result.model_copy(
        update={"mode": "tick", "events_written": result.events_written + written}
    )
