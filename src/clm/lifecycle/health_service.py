"""Computing, storing and reading health: scores over history, and the present with reasons.

``run_health`` recomputes the stored history: the scorecard's features at every instant one can
change (the same plan as stages, on any engine), scored column-wise; rows are kept where the
state or the whole score changes, up to ``now``. Between those instants a score also moves with
time alone (silence grows against the customer's rhythm); the history is sampled at the
instants, and the pass ends with ``score_health`` at ``now``, so the last row is the present.
The population's purchase rhythm used for the history is the one at ``now``.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import delete, insert, select

from clm.lifecycle.catalog import get_stage_model
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
from clm.lifecycle.health import (
    CompiledScorecard,
    HealthScores,
    contributions_of,
    score,
    score_columns,
    state_label,
)
from clm.lifecycle.health_current import HealthSummary, Step, score_health
from clm.lifecycle.health_explain import drivers, explain_parts
from clm.lifecycle.health_inputs import (
    exit_flags_at,
    get_scorecard,
    inputs_from_table,
    population_prior,
    stage_transitions,
    uses_stage,
)
from clm.lifecycle.history import announce_health
from clm.lifecycle.plan import feature_table, required_properties
from clm.lifecycle.queries import stage_at
from clm.lifecycle.reference import LogEvent, feature_values
from clm.lifecycle.schemas import HealthChange, HealthPublic
from clm.store.engine import Database
from clm.store.models import HealthSnapshot

CHUNK = 5_000


def compute_health_rows(
    db: Database,
    workspace_id: int,
    card: CompiledScorecard,
    engine: EngineName = "sql",
    spark: Any = None,
) -> pa.Table:
    """The factors' features at every instant of every customer, sorted, from ``engine``
    (SQLite/PostgreSQL and Spark run the Ibis plan, DuckDB its columnar path)."""
    wanted = sorted(card.feature_set.features)
    columns = ["customer_id", "ts", "is_event", "cause_message_id", *wanted]
    features = card.feature_set
    if engine == "duckdb":
        table = duckdb_features(export_events(db, workspace_id), features, wanted)
        return table.select(columns)
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
            ordered: pa.Table = table.select(*columns).order_by(["customer_id", "ts"]).to_pyarrow()
    finally:
        if engine == "sql":
            source.backend.disconnect()
        else:
            release_spark_sockets()
    return ordered


def score_history(
    db: Database, workspace_id: int, card: CompiledScorecard, rows: pa.Table, now: int
) -> tuple[HealthScores, np.ndarray]:
    """Scores of every (customer, instant) row, and the mask of rows to keep: those where the
    state or the whole score changes."""
    customer = np.asarray(rows.column("customer_id").to_numpy(), dtype=np.int64)
    ts = np.asarray(rows.column("ts").to_numpy(), dtype=np.int64)
    if uses_stage(card):
        exits = exit_flags_at(stage_transitions(db, workspace_id, now), customer, ts)
    else:
        exits = np.full(len(ts), np.nan)
    prior = population_prior(db, workspace_id, card, now)
    scores = score_columns(card, inputs_from_table(card, rows, ts, exits, prior))
    whole = np.floor(scores.score + 1e-9)
    keep = np.ones(len(ts), dtype=bool)
    if len(ts):
        same = (
            (customer[1:] == customer[:-1])
            & (scores.state[1:] == scores.state[:-1])
            & (whole[1:] == whole[:-1])
        )
        keep[1:] = ~same
    return scores, keep


def run_health(
    db: Database,
    workspace_id: int,
    *,
    engine: EngineName = "sql",
    announce_events: bool = True,
    now: datetime | None = None,
    spark: Any = None,
) -> int:
    """``recompute_health``; returns the history rows stored."""
    return recompute_health(
        db, workspace_id, engine=engine, announce_events=announce_events, now=now, spark=spark
    ).history_rows


def recompute_health(
    db: Database,
    workspace_id: int,
    *,
    engine: EngineName = "sql",
    announce_events: bool = True,
    now: datetime | None = None,
    spark: Any = None,
    on_step: Step | None = None,
) -> HealthSummary:
    """Recompute and store the health history of every customer up to ``now`` (default: the
    present), then score everyone as of ``now``; returns the summary of that last pass.

    Each change of state is also written to the log as a ``health_state_changed`` event with a
    deterministic message id, so reruns never duplicate one; like the stage events, they are
    left out of every feature.
    """
    when = now or datetime.now(UTC)
    cutoff = int(when.timestamp())
    step = on_step or (lambda _: None)
    definition_id, card = get_scorecard(db, workspace_id)
    step("history: features at every instant")
    table = compute_health_rows(db, workspace_id, card, engine, spark)
    table = table.filter(pc.less_equal(table.column("ts"), cutoff))
    step("history: scoring")
    scores, keep = score_history(db, workspace_id, card, table, cutoff)
    kept = np.flatnonzero(keep)
    parts = contributions_of(scores, kept.tolist())
    customer = table.column("customer_id").to_pylist()
    ts = table.column("ts").to_pylist()
    is_event = table.column("is_event").to_pylist()
    causes = table.column("cause_message_id").to_pylist()
    rows = [
        {
            "workspace_id": workspace_id,
            "definition_id": definition_id,
            "customer_id": int(customer[i]),
            "ts": int(ts[i]),
            "occurred_at": datetime.fromtimestamp(int(ts[i]), UTC),
            "score": round(float(scores.score[i]), 4),
            "state": str(scores.state[i]),
            "contributions": part,
            "cause_message_id": causes[i] if is_event[i] else None,
        }
        for i, part in zip(kept.tolist(), parts, strict=True)
    ]
    step("history: storing")
    with db.transaction() as session:
        session.execute(delete(HealthSnapshot).where(HealthSnapshot.definition_id == definition_id))
        for start in range(0, len(rows), CHUNK):
            # Core executemany: the ORM's bulk insert split the rows into ~1 statement per 3
            session.execute(insert(HealthSnapshot.__table__), rows[start : start + CHUNK])  # type: ignore[arg-type]
        if announce_events:
            announce_health(db, session, workspace_id, state_changes(rows))
    engine_now: EngineName = "duckdb" if engine == "duckdb" else "sql"
    summary = score_health(
        db,
        workspace_id,
        now=when,
        engine=engine_now,
        announce_events=announce_events,
        on_step=on_step,
    )
    summary.history_rows += len(rows)
    return summary


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
    """A customer's stored health changes up to ``as_of``, oldest first, each with the score
    and state it came from and the factors that moved it."""
    definition_id, card = get_scorecard(db, workspace_id)
    cutoff = int((as_of or datetime.now(UTC)).timestamp())
    with db.session() as session:
        rows = session.scalars(
            select(HealthSnapshot)
            .where(
                HealthSnapshot.definition_id == definition_id,
                HealthSnapshot.customer_id == customer_id,
                HealthSnapshot.ts <= cutoff,
            )
            .order_by(HealthSnapshot.ts, HealthSnapshot.id)
        ).all()
        changes = []
        before = None
        for r in rows:
            parts = dict(r.contributions or {})
            changes.append(
                HealthChange(
                    at=r.occurred_at,
                    score=r.score,
                    state=r.state,
                    state_label=state_label(r.state),
                    cause_message_id=r.cause_message_id,
                    from_score=before.score if before is not None else None,
                    from_state=before.state if before is not None else None,
                    from_state_label=state_label(before.state) if before is not None else None,
                    drivers=drivers(card, dict(before.contributions or {}), parts)
                    if before is not None
                    else [],
                )
            )
            before = r
        return changes


def explain(
    card: CompiledScorecard,
    values: dict[str, Any],
    customer_id: int,
    at: datetime,
    *,
    exit_stage: bool | None = None,
    prior_gap_days: float = math.nan,
) -> HealthPublic:
    """Score, state and factors (the ones costing the most points first), the top reasons and
    the suggested next action."""
    now = int(at.timestamp())
    total, state, parts = score(
        card, values, now=now, exit_stage=exit_stage, prior_gap_days=prior_gap_days
    )
    return explain_parts(card, customer_id, at, total, state, parts, exit_stage=exit_stage)


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
    """A customer's health at ``at`` (default now), exactly, with its reasons: the reference
    reading of their own events, their stage at ``at`` and the population's rhythm."""
    _, card = get_scorecard(db, workspace_id)
    when = at or datetime.now(UTC)
    events = sorted(log_events(db, workspace_id, customer_id), key=lambda e: e.ts)
    if not events or events[0].ts > when.timestamp():
        return None
    values = feature_values(card.feature_set.features, events, int(when.timestamp()))
    exit_stage = None
    if uses_stage(card):
        stage = stage_at(db, workspace_id, customer_id, when)
        if stage is not None:
            _, model = get_stage_model(db, workspace_id)
            exit_stage = stage.stage in {s.name for s in model.stages if s.exit}
    prior = population_prior(db, workspace_id, card, int(when.timestamp()))
    return explain(card, values, customer_id, when, exit_stage=exit_stage, prior_gap_days=prior)
