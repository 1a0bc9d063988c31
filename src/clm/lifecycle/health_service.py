"""Computing, storing and reading health: scores over history, and the present with reasons."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select

from clm.lifecycle.catalog import get_definition
from clm.lifecycle.columnar import duckdb_features
from clm.lifecycle.engines import (
    EngineName,
    export_events,
    quiet_engines,
    release_spark_sockets,
    spark_session,
    spark_source,
    sql_source,
)
from clm.lifecycle.health import STATE_LABELS, CompiledScorecard, health_changes, score
from clm.lifecycle.history import announce_health
from clm.lifecycle.plan import feature_table, required_properties
from clm.lifecycle.reference import LogEvent, feature_values
from clm.lifecycle.schemas import FactorContribution, HealthChange, HealthPublic
from clm.store.engine import Database
from clm.store.models import HealthSnapshot

CHUNK = 5_000


def get_scorecard(
    db: Database, workspace_id: int, name: str | None = None
) -> tuple[int, CompiledScorecard]:
    info, compiled, _ = get_definition(db, workspace_id, "health", name)
    return info.id, compiled


def compute_health_rows(
    db: Database,
    workspace_id: int,
    card: CompiledScorecard,
    engine: EngineName = "sql",
    spark: Any = None,
) -> list[dict[str, Any]]:
    """The factors' features at every instant of every customer, sorted, from ``engine``
    (SQLite/PostgreSQL and Spark run the Ibis plan, DuckDB its columnar path)."""
    wanted = sorted({f.feature for f in card.factors.values()})
    columns = ["customer_id", "ts", "is_event", "cause_message_id", *wanted]
    features = card.feature_set
    if engine == "duckdb":
        table = duckdb_features(export_events(db, workspace_id), features, wanted)
        return table.select(columns).to_pylist()  # type: ignore[no-any-return]
    if engine == "sql":
        source = sql_source(db, workspace_id)
    else:
        events = export_events(db, workspace_id)
        props = required_properties(features.features)
        with quiet_engines():
            source = spark_source(spark or spark_session(), events, props)
    try:
        with quiet_engines():
            table = feature_table(source.events, features, source.prop)
            ordered = table.select(*columns).order_by(["customer_id", "ts"]).to_pyarrow()
    finally:
        if engine == "sql":
            source.backend.disconnect()
        else:
            release_spark_sockets()
    return ordered.to_pylist()  # type: ignore[no-any-return]


def run_health(
    db: Database,
    workspace_id: int,
    *,
    engine: EngineName = "sql",
    announce_events: bool = True,
    now: datetime | None = None,
    spark: Any = None,
) -> int:
    """Recompute and store the health history of every customer; returns rows stored.

    Each change of state whose time has come (``ts <= now``) is also written to the log as a
    ``health_state_changed`` event with a deterministic message id, so reruns never duplicate
    one; like the stage events, they are left out of every feature.
    """
    definition_id, card = get_scorecard(db, workspace_id)
    changes = health_changes(card, compute_health_rows(db, workspace_id, card, engine, spark))
    rows = [
        {
            "workspace_id": workspace_id,
            "definition_id": definition_id,
            "customer_id": int(row["customer_id"]),
            "ts": int(row["ts"]),
            "occurred_at": datetime.fromtimestamp(int(row["ts"]), UTC),
            "score": round(total, 4),
            "state": state,
            "contributions": json.loads(json.dumps(contributions)),
            "cause_message_id": row["cause_message_id"] if row["is_event"] else None,
        }
        for row, total, state, contributions in changes
    ]
    with db.transaction() as session:
        session.execute(delete(HealthSnapshot).where(HealthSnapshot.definition_id == definition_id))
        for start in range(0, len(rows), CHUNK):
            session.execute(insert(HealthSnapshot), rows[start : start + CHUNK])
        if announce_events:
            changed = state_changes(rows)
            cutoff = int((now or datetime.now(UTC)).timestamp())
            announce_health(db, session, workspace_id, [r for r in changed if r["ts"] <= cutoff])
    return len(rows)


def state_changes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The stored rows (sorted by customer and time) where the state itself changes."""
    changed = []
    previous: tuple[int, str] | None = None
    for row in rows:
        key = (row["customer_id"], row["state"])
        if previous is None or key[0] != previous[0] or key[1] != previous[1]:
            from_state = previous[1] if previous and previous[0] == key[0] else None
            changed.append({**row, "from_state": from_state})
        previous = key
    return changed


def health_history(
    db: Database, workspace_id: int, customer_id: int, as_of: datetime | None = None
) -> list[HealthChange]:
    definition_id, _ = get_scorecard(db, workspace_id)
    cutoff = int((as_of or datetime.now(UTC)).timestamp())
    with db.session() as session:
        rows = session.scalars(
            select(HealthSnapshot)
            .where(
                HealthSnapshot.definition_id == definition_id,
                HealthSnapshot.customer_id == customer_id,
                HealthSnapshot.ts <= cutoff,
            )
            .order_by(HealthSnapshot.ts)
        )
        return [
            HealthChange(
                at=r.occurred_at,
                score=r.score,
                state=r.state,
                state_label=STATE_LABELS[r.state],
                cause_message_id=r.cause_message_id,
            )
            for r in rows
        ]


def explain(
    card: CompiledScorecard, values: dict[str, Any], customer_id: int, at: datetime
) -> HealthPublic:
    """Score, state and factors, the ones costing the most points first."""
    total, state, contributions = score(card, values)
    factors = [
        FactorContribution(
            factor=key,
            label=card.factors[key].label or key,
            axis=card.factors[key].axis,
            value=c["value"],
            points=round(c["points"], 2),
            weight=round(card.weights[key], 2),
        )
        for key, c in contributions.items()
    ]
    factors.sort(key=lambda f: f.points - f.weight)
    return HealthPublic(
        customer_id=customer_id,
        at=at,
        score=round(total, 2),
        state=state,
        state_label=STATE_LABELS[state],
        factors=factors,
    )


def log_events(db: Database, workspace_id: int, customer_id: int) -> list[LogEvent]:
    table = export_events(db, workspace_id, [customer_id]).to_pylist()
    return [
        LogEvent(
            customer_id=r["customer_id"],
            ts=r["ts"],
            message_id=r["message_id"],
            name=r["name"],
            type=r["type"],
            channel=r["channel"],
            campaign=r["campaign"],
            source=r["source"],
            revenue=r["revenue"],
            properties=json.loads(r["properties"] or "{}"),
        )
        for r in table
    ]


def health_now(
    db: Database, workspace_id: int, customer_id: int, at: datetime | None = None
) -> HealthPublic | None:
    """A customer's health at ``at`` (default now), exactly, with its reasons."""
    _, card = get_scorecard(db, workspace_id)
    when = at or datetime.now(UTC)
    events = sorted(log_events(db, workspace_id, customer_id), key=lambda e: e.ts)
    if not events or events[0].ts > when.timestamp():
        return None
    values = feature_values(card.feature_set.features, events, int(when.timestamp()))
    return explain(card, values, customer_id, when)
