"""Every customer's features as of one instant: one aggregate over the log, on every engine.

The stage engine needs features at every instant a stage can change (``plan.feature_table``);
a health score is needed *now* (or at a backtest cutoff), so here the events up to ``now`` are
aggregated once per customer: counts and sums (a windowed one keeps the events after
``now - window``), first/last timestamps, and a ``last`` value as the largest value among the
matching events at the customer's latest matching instant (the same tie rule as the
reference). ``days_since`` features are ``now - of`` and expressions are evaluated on the
aggregates, so a value equals ``reference.feature_values(..., now)`` exactly.

Also per customer: ``next_window_exit``, the first instant after ``now`` at which one of the
windowed features loses an event (a score reading it may change then without any new event).
Written once in Ibis: SQLite and PostgreSQL run it in the database that stores the log, DuckDB
over an export (the fast path at scale).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from clm.lifecycle.engines import (
    EngineName,
    duckdb_source,
    export_events,
    quiet_engines,
    sql_source,
)
from clm.lifecycle.expressions import to_ibis
from clm.lifecycle.features import AGGREGATES, FeatureSet
from clm.lifecycle.plan import PropFn, required_properties, signals
from clm.store.engine import Database

__all__ = ["duckdb_snapshot", "feature_snapshot", "snapshot_table"]

NEXT_EXIT = "next_window_exit"


def _no_props(key: str, want: str) -> ir.Value:
    raise AssertionError("properties are only read by event filters")


def snapshot_table(events: ir.Table, feature_set: FeatureSet, prop: PropFn, now: int) -> ir.Table:
    """One row per customer with an event at or before ``now``: every feature as of ``now``.

    One grouping over the log, one over the few events ``last`` features read, one join: the
    query stays flat (SQLite's parser refuses deeply nested ones); expressions are inlined
    into one final projection."""
    features = feature_set.features
    past = events.filter(events.ts <= now)
    sig = signals(past, features, prop)
    lasts = [name for name, f in features.items() if f.kind == "last"]
    aggregates: dict[str, ir.Value] = {}
    exits: list[str] = []
    for name, f in features.items():
        if f.kind not in AGGREGATES or f.kind == "last":
            continue
        hit = sig[f"c__{name}"]
        inside: ir.BooleanValue = ibis.literal(True)
        if f.window:
            inside = sig.ts > now - f.window
            aggregates[f"x__{name}"] = ibis.ifelse(
                inside & (hit > 0), sig.ts + f.window, ibis.null("int64")
            ).min()
            exits.append(f"x__{name}")
        stamp = ibis.ifelse(hit > 0, sig.ts, ibis.null("int64"))
        if f.kind == "count":  # as a float: PostgreSQL divides integers as integers
            aggregates[name] = ibis.ifelse(inside, hit, 0).sum().cast("float64")
        elif f.kind == "exists":
            aggregates[name] = ibis.ifelse(inside, hit, 0).sum() > 0
        elif f.kind == "sum":
            aggregates[name] = ibis.ifelse(inside, sig[f"s__{name}"], 0.0).sum()
        elif f.kind == "first_ts":
            aggregates[name] = stamp.min()
        else:  # last_ts
            aggregates[name] = stamp.max()
    table = sig.group_by("customer_id").aggregate(**aggregates)
    if lasts:
        table = table.left_join(_last_values(sig, lasts), "customer_id")
        if "customer_id_right" in table.columns:
            table = table.drop("customer_id_right")
    derived: dict[str, ir.Value] = {}

    def resolve(name: str) -> ir.Value:
        return derived[name] if name in derived else table[name]

    for name, f in features.items():
        if f.kind == "days_since":
            derived[name] = ibis.literal(now, "int64") - table[f.of or ""]
        elif f.kind == "expr":
            assert f.expr is not None
            derived[name] = to_ibis(f.expr, resolve, _no_props)
    next_exit = ibis.least(*[table[x] for x in exits]) if exits else ibis.null("int64")
    columns = {name: resolve(name) for name in features}
    return table.select("customer_id", **{NEXT_EXIT: next_exit}, **columns)


def duckdb_snapshot(
    events: pa.Table | str | Path,
    feature_set: FeatureSet,
    now: int,
    customer_ids: Sequence[int] | None = None,
) -> pa.Table:
    """The snapshot computed by DuckDB over an Arrow table or a Parquet file of the log."""
    source = duckdb_source(events, required_properties(feature_set.features))
    source.backend.con.execute("SET enable_progress_bar = false")
    table = source.events
    if customer_ids is not None:
        table = table.filter(table.customer_id.isin(sorted(set(customer_ids))))
    try:
        with quiet_engines():
            result = snapshot_table(table, feature_set, source.prop, now)
            arrow: pa.Table = result.order_by("customer_id").to_pyarrow()
    finally:
        source.backend.disconnect()
    return arrow


def _last_values(sig: ir.Table, lasts: list[str]) -> ir.Table:
    """Per customer, each ``last`` feature: the largest value among its matching events at the
    latest matching instant. Only the events some ``last`` feature matches are windowed (a few
    per cent of a log, survey answers and scores), so the sort stays small."""
    hits = sig.filter(ibis.or_(*[sig[f"c__{name}"] > 0 for name in lasts]))
    window = ibis.window(group_by="customer_id")
    latest = {
        f"t__{name}": ibis.ifelse(hits[f"c__{name}"] > 0, hits.ts, ibis.null("int64"))
        .max()
        .over(window)
        for name in lasts
    }
    hits = hits.mutate(**latest)
    values = {}
    for name in lasts:
        at_latest = (hits[f"c__{name}"] > 0) & (hits.ts == hits[f"t__{name}"])
        value = hits[f"v__{name}"]
        values[name] = ibis.ifelse(at_latest, value, ibis.null(value.type())).max()
    return hits.group_by("customer_id").aggregate(**values)


def feature_snapshot(
    db: Database,
    workspace_id: int,
    feature_set: FeatureSet,
    now: int,
    *,
    engine: EngineName = "sql",
    customer_ids: Sequence[int] | None = None,
    events: pa.Table | None = None,
) -> pa.Table:
    """The snapshot of a workspace's customers (or of ``customer_ids``), sorted by customer.

    ``engine="sql"`` runs in the database itself; ``"duckdb"`` over ``events`` (the log as
    Arrow) when given, else over an export of the log."""
    if engine == "spark":
        raise ValueError("health snapshots run on sql or duckdb")
    if engine == "duckdb":
        if events is None:
            return duckdb_snapshot(export_events(db, workspace_id, customer_ids), feature_set, now)
        return duckdb_snapshot(events, feature_set, now, customer_ids)
    ids = sorted(set(customer_ids)) if customer_ids is not None else None
    source = sql_source(db, workspace_id, ids)
    try:
        with quiet_engines():
            result = snapshot_table(source.events, feature_set, source.prop, now)
            arrow: pa.Table = result.order_by("customer_id").to_pyarrow()
    finally:
        source.backend.disconnect()
    return arrow
