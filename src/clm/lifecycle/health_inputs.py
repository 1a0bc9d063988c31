"""What a health score reads besides the customer's features: the scorecard, the stage (is the
customer in an exit stage?) and the population's typical gap between purchases."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from sqlalchemy import and_, func, select

from clm.lifecycle.catalog import get_definition, get_stage_model
from clm.lifecycle.engines import EngineName
from clm.lifecycle.features import compile_features
from clm.lifecycle.health import (
    CADENCE_FEATURES,
    CompiledScorecard,
    Floats,
    HealthInputs,
    population_gap_days,
)
from clm.lifecycle.snapshot import feature_snapshot
from clm.store.engine import Database
from clm.store.models import StageTransition

Ints = npt.NDArray[np.int64]


def get_scorecard(
    db: Database, workspace_id: int, name: str | None = None
) -> tuple[int, CompiledScorecard]:
    info, compiled, _ = get_definition(db, workspace_id, "health", name)
    return info.id, compiled


def uses_cadence(card: CompiledScorecard) -> bool:
    return any(f.kind == "cadence" for f in card.factors.values())


def uses_stage(card: CompiledScorecard) -> bool:
    return any(f.kind == "stage" for f in card.factors.values())


def stage_transitions(
    db: Database, workspace_id: int, until: int, customer_ids: Sequence[int] | None = None
) -> tuple[Ints, Ints, Floats]:
    """The active stage model's transitions up to ``until``: customer, time and whether the
    stage entered is an exit stage (1.0) or not (0.0), sorted by customer and time."""
    info, model = get_stage_model(db, workspace_id)
    exits = [s.name for s in model.stages if s.exit]
    query = select(
        StageTransition.customer_id, StageTransition.ts, StageTransition.to_stage.in_(exits)
    ).where(StageTransition.definition_id == info.id, StageTransition.ts <= until)
    if customer_ids is not None:
        query = query.where(StageTransition.customer_id.in_(sorted(set(customer_ids))))
    with db.session() as session:
        rows = session.execute(
            query.order_by(StageTransition.customer_id, StageTransition.ts)
        ).all()
    if not rows:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    customer, ts, exit_ = zip(*rows, strict=True)
    return (
        np.array(customer, dtype=np.int64),
        np.array(ts, dtype=np.int64),
        np.array(exit_, dtype=np.float64),
    )


def latest_exit_flags(db: Database, workspace_id: int, customers: Ints, now: int) -> Floats:
    """Per customer (any order), 1.0 when their stage at ``now`` is an exit stage, 0.0 when it is
    another stage, NaN when they have no stage yet."""
    info, model = get_stage_model(db, workspace_id)
    exits = [s.name for s in model.stages if s.exit]
    latest = (
        select(StageTransition.customer_id, func.max(StageTransition.ts).label("ts"))
        .where(StageTransition.definition_id == info.id, StageTransition.ts <= now)
        .group_by(StageTransition.customer_id)
        .subquery()
    )
    query = (
        select(StageTransition.customer_id, StageTransition.to_stage.in_(exits))
        .join(
            latest,
            and_(
                StageTransition.customer_id == latest.c.customer_id,
                StageTransition.ts == latest.c.ts,
            ),
        )
        .where(StageTransition.definition_id == info.id)
    )
    if len(customers) <= 10_000:
        query = query.where(StageTransition.customer_id.in_([int(c) for c in customers]))
    with db.session() as session:
        found = {int(c): float(e) for c, e in session.execute(query)}
    return np.array([found.get(int(c), math.nan) for c in customers], dtype=np.float64)


def exit_flags_at(transitions: tuple[Ints, Ints, Floats], customer: Ints, ts: Ints) -> Floats:
    """Per (customer, instant) row, sorted by customer and time: whether the stage at that
    instant is an exit stage (NaN before the customer's first transition)."""
    t_customer, t_ts, t_exit = transitions
    if len(customer) == 0:
        return np.empty(0)
    if len(t_customer) == 0:
        return np.full(len(customer), np.nan)
    ids = np.unique(np.concatenate([t_customer, customer]))
    low = min(int(t_ts.min()), int(ts.min()))
    span = max(int(t_ts.max()), int(ts.max())) - low + 1
    t_key = np.searchsorted(ids, t_customer) * span + (t_ts - low)
    r_key = np.searchsorted(ids, customer) * span + (ts - low)
    index = np.searchsorted(t_key, r_key, side="right") - 1
    safe = np.maximum(index, 0)
    same = (index >= 0) & (t_customer[safe] == customer)
    return np.where(same, t_exit[safe], np.nan)


def population_prior(
    db: Database,
    workspace_id: int,
    card: CompiledScorecard,
    now: int,
    engine: EngineName = "sql",
    events: pa.Table | None = None,
) -> float:
    """The population's typical gap between purchases as of ``now`` (NaN when nobody bought
    twice): one small aggregate over every customer's purchases."""
    if not uses_cadence(card):
        return math.nan
    features, _ = compile_features(set(CADENCE_FEATURES), card.definition.features, {})
    table = feature_snapshot(db, workspace_id, features, now, engine=engine, events=events)
    return population_gap_days({n: column_array(table, n) for n in CADENCE_FEATURES})


def column_array(table: pa.Table, name: str) -> npt.NDArray[Any]:
    """A column as NumPy: numbers as float64 with NaN for null, text as objects."""
    column = table.column(name)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return np.asarray(column.to_pylist(), dtype=object)
    if pa.types.is_boolean(column.type):
        column = column.cast(pa.int8())
    return np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def inputs_from_table(
    card: CompiledScorecard, table: pa.Table, now: Ints, exit_stage: Floats, prior: float
) -> HealthInputs:
    columns = {name: column_array(table, name) for name in card.feature_set.features}
    return HealthInputs(columns, now, exit_stage, prior)
