"""Each customer's current health, scored column-wise as of one instant, and when it is due.

``score_health`` scores a workspace's customers (or the given ones) exactly as of ``now``: one
feature snapshot (``snapshot.py``; DuckDB at scale, or SQL in the database), the stage at
``now``, the population's purchase rhythm, then NumPy arithmetic (``health.score_columns``).
It stores the current score (``health_scores``), appends a ``health_history`` row where the
state or the whole score changed, writes ``health_state_changed`` events for changes of state,
and records ``next_due``: the first instant at which the score would move by a whole point or
cross a state threshold by the passing of time alone (silence growing, a window emptying, a
rating fading), so the live loop re-scores exactly the customers that are due
(``health_due``) or touched by new events.

``next_due`` is the earliest of: the next time an event leaves a window the score reads; the
time the score or an axis share reaches its next whole point or threshold at its present rate
of change (measured over one hour: exact for the linear factors until they clip, early and
so safe for the fading ones); and 30 days, as a backstop. None when nothing moves with time.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import BaseModel
from sqlalchemy import and_, delete, func, insert, select

from clm.lifecycle.engines import EngineName
from clm.lifecycle.health import (
    CADENCE_FEATURES,
    STATE_LABELS,
    CompiledScorecard,
    Floats,
    HealthInputs,
    HealthScores,
    contributions_of,
    population_gap_days,
    score_columns,
)
from clm.lifecycle.health_inputs import (
    Ints,
    column_array,
    get_scorecard,
    inputs_from_table,
    latest_exit_flags,
    population_prior,
    uses_cadence,
    uses_stage,
)
from clm.lifecycle.history import announce_health
from clm.lifecycle.snapshot import NEXT_EXIT, feature_snapshot
from clm.store.engine import Database
from clm.store.models import HealthScore, HealthSnapshot

CHUNK = 5_000
PROBE = 3_600  # seconds: the step over which the rate of change is measured
BACKSTOP = 30 * 86_400
Step = Callable[[str], None]


@dataclass
class ScoredBatch:
    """Scores of the customers of one snapshot, as of ``now``, with their next due time."""

    now: int
    customers: Ints
    scores: HealthScores
    next_due: Floats  # NaN: not due by time alone


class HealthSummary(BaseModel):
    """What one scoring pass did: customers scored, how many in each state, which states
    changed (``"happy -> at_risk": n``; ``"new -> happy"`` for first scores)."""

    now: datetime
    scored: int
    counts: dict[str, int]
    changes: dict[str, int] = {}
    history_rows: int = 0
    next_due: datetime | None = None
    seconds: float = 0.0

    def line(self) -> str:
        """One line for people: the states, then what changed."""
        states = ", ".join(
            f"{self.counts.get(s, 0):,} {label}" for s, label in STATE_LABELS.items()
        )
        moved = {k: v for k, v in self.changes.items() if not k.startswith("new")}
        changed = (
            "; changed: " + ", ".join(f"{k} {v:,}" for k, v in sorted(moved.items()))
            if moved
            else "; no state changed"
        )
        first = sum(v for k, v in self.changes.items() if k.startswith("new"))
        news = f" ({first:,} scored for the first time)" if first else ""
        when = f"{self.now:%Y-%m-%d %H:%M} UTC"
        return f"{self.scored:,} customers as of {when}: {states}{changed}{news}"


def compute_scores(
    db: Database,
    workspace_id: int,
    card: CompiledScorecard,
    now: int,
    *,
    engine: EngineName = "sql",
    customer_ids: Sequence[int] | None = None,
    events: pa.Table | None = None,
    exit_stage: Callable[[Ints], Floats] | None = None,
    adjust: Callable[[pa.Table], pa.Table] | None = None,
    on_step: Step | None = None,
) -> ScoredBatch:
    """Scores as of ``now`` without storing anything (the backtest uses this too, with
    ``adjust`` replacing snapshot columns such as P(alive) refitted at the cutoff)."""
    step = on_step or (lambda _: None)
    step("reading features")
    table = feature_snapshot(
        db, workspace_id, card.feature_set, now, engine=engine, customer_ids=customer_ids,
        events=events,
    )  # fmt: skip
    if adjust is not None:
        table = adjust(table)
    customers = np.asarray(table.column("customer_id").to_numpy(), dtype=np.int64)
    step("reading stages")
    if not uses_stage(card):
        exits = np.full(len(customers), np.nan)
    elif exit_stage is not None:
        exits = exit_stage(customers)
    else:
        exits = latest_exit_flags(db, workspace_id, customers, now)
    prior: float | None = None  # every customer: read from the snapshot itself
    if uses_cadence(card) and customer_ids is not None:
        prior = population_prior(db, workspace_id, card, now, engine, events)
    step("scoring")
    return score_snapshot(card, table, now, exits, prior)


def score_snapshot(
    card: CompiledScorecard, table: pa.Table, now: int, exits: Floats, prior: float | None = None
) -> ScoredBatch:
    """Scores (and next due times) of a feature snapshot: pure NumPy, no database. ``prior``:
    the population's typical gap between purchases; None reads it from the snapshot itself
    (right when the snapshot holds every customer)."""
    customers = np.asarray(table.column("customer_id").to_numpy(), dtype=np.int64)
    if prior is None:
        prior = math.nan
        if uses_cadence(card):
            prior = population_gap_days({n: column_array(table, n) for n in CADENCE_FEATURES})
    stamps = np.full(len(customers), now, dtype=np.int64)
    inputs = inputs_from_table(card, table, stamps, exits, prior)
    scores = score_columns(card, inputs)
    exits_next = column_array(table, NEXT_EXIT)
    due = _next_due(card, inputs, scores, np.asarray(exits_next, dtype=np.float64))
    return ScoredBatch(now, customers, scores, due)


def _next_due(
    card: CompiledScorecard, inputs: HealthInputs, scores: HealthScores, window_exit: Floats
) -> Floats:
    later = HealthInputs(
        {
            name: inputs.columns[name] + PROBE
            if card.feature_set.features[name].type == "days"
            else inputs.columns[name]
            for name in inputs.columns
        },
        inputs.now + PROBE,
        inputs.exit_stage,
        inputs.prior_gap_days,
    )
    probe = score_columns(card, later)
    waits = [_time_to_whole(scores.score, probe.score)]
    for axis, threshold in (("sentiment", card.unhappy_below), ("risk", card.at_risk_below)):
        now_share = getattr(scores, f"{axis}_share")
        next_share = getattr(probe, f"{axis}_share")
        waits.append(_time_to_level(now_share, next_share, threshold))
    wait = np.fmin.reduce(waits)
    moving = ~np.isnan(wait)
    due = np.where(moving, inputs.now + np.clip(wait, 60.0, BACKSTOP), np.nan)
    return np.fmin(due, np.where(window_exit > inputs.now, window_exit, np.nan))


def _time_to_whole(now: Floats, later: Floats) -> Floats:
    """Seconds until the score reaches its next whole number at its present rate (NaN: never)."""
    rate = (later - now) / PROBE
    with np.errstate(divide="ignore", invalid="ignore"):
        down = (now - (np.ceil(now - 1e-9) - 1.0)) / -rate
        up = (np.floor(now + 1e-9) + 1.0 - now) / rate
    wait = np.where(rate < -1e-12, down, np.where(rate > 1e-12, up, np.nan))
    return np.asarray(wait, dtype=np.float64)


def _time_to_level(now: Floats, later: Floats, level: float) -> Floats:
    """Seconds until a share crosses ``level`` at its present rate (NaN: never)."""
    rate = (later - now) / PROBE
    with np.errstate(divide="ignore", invalid="ignore"):
        wait = (level - now) / rate
    return np.where((wait > 0) & np.isfinite(wait), wait, np.nan)


def score_health(
    db: Database,
    workspace_id: int,
    *,
    now: datetime | None = None,
    customer_ids: Sequence[int] | None = None,
    engine: EngineName = "sql",
    announce_events: bool = True,
    on_step: Step | None = None,
) -> HealthSummary:
    """Score the given customers (all when None) exactly as of ``now`` (default: the present)
    and store the current scores, the history rows that changed and their ``next_due``."""
    started = time.perf_counter()
    when = now or datetime.now(UTC)
    stamp = int(when.timestamp())
    definition_id, card = get_scorecard(db, workspace_id)
    batch = compute_scores(
        db, workspace_id, card, stamp, engine=engine, customer_ids=customer_ids, on_step=on_step
    )
    if on_step:
        on_step("storing")
    summary = _store(db, workspace_id, definition_id, batch, when, announce_events)
    summary.seconds = time.perf_counter() - started
    return summary


def _previous(
    db: Database, definition_id: int, customers: Ints, now: int
) -> dict[int, tuple[str, float]]:
    """The latest stored history row at or before ``now`` per customer: (state, score)."""
    latest = (
        select(HealthSnapshot.customer_id, func.max(HealthSnapshot.ts).label("ts"))
        .where(HealthSnapshot.definition_id == definition_id, HealthSnapshot.ts <= now)
        .group_by(HealthSnapshot.customer_id)
    )
    if len(customers) <= 10_000:
        latest = latest.where(HealthSnapshot.customer_id.in_([int(c) for c in customers]))
    sub = latest.subquery()
    query = (
        select(HealthSnapshot.customer_id, HealthSnapshot.state, HealthSnapshot.score)
        .join(
            sub,
            and_(HealthSnapshot.customer_id == sub.c.customer_id, HealthSnapshot.ts == sub.c.ts),
        )
        .where(HealthSnapshot.definition_id == definition_id)
        .order_by(HealthSnapshot.id)
    )
    with db.session() as session:
        return {int(c): (str(s), float(v)) for c, s, v in session.execute(query)}


def _store(
    db: Database,
    workspace_id: int,
    definition_id: int,
    batch: ScoredBatch,
    when: datetime,
    announce_events: bool,
) -> HealthSummary:
    previous = _previous(db, definition_id, batch.customers, batch.now)
    scores, current, history, changes = batch.scores, [], [], []
    moves: Counter[str] = Counter()
    every = contributions_of(scores, range(len(batch.customers)))
    for row, customer in enumerate(batch.customers.tolist()):
        state, total = str(scores.state[row]), float(scores.score[row])
        parts = every[row]
        due = batch.next_due[row]
        current.append(
            {
                "workspace_id": workspace_id,
                "definition_id": definition_id,
                "customer_id": customer,
                "scored_at": batch.now,
                "score": round(total, 4),
                "state": state,
                "contributions": parts,
                "next_due": None if math.isnan(due) else int(due),
            }
        )
        before = previous.get(customer)
        if (
            before is not None
            and before[0] == state
            and math.floor(before[1] + 1e-9) == math.floor(total + 1e-9)
        ):
            continue
        record = {
            "workspace_id": workspace_id,
            "definition_id": definition_id,
            "customer_id": customer,
            "ts": batch.now,
            "occurred_at": when,
            "score": round(total, 4),
            "state": state,
            "contributions": parts,
            "cause_message_id": None,
        }
        history.append(record)
        if before is None or before[0] != state:
            moves[f"{before[0] if before else 'new'} -> {state}"] += 1
            changes.append({**record, "from_state": before[0] if before else None})
    with db.transaction() as session:
        ids = [int(c) for c in batch.customers]
        for start in range(0, len(ids), CHUNK):
            session.execute(
                delete(HealthScore).where(
                    HealthScore.definition_id == definition_id,
                    HealthScore.customer_id.in_(ids[start : start + CHUNK]),
                )
            )
        for start in range(0, len(current), CHUNK):
            session.execute(insert(HealthScore.__table__), current[start : start + CHUNK])  # type: ignore[arg-type]
        for start in range(0, len(history), CHUNK):
            session.execute(insert(HealthSnapshot.__table__), history[start : start + CHUNK])  # type: ignore[arg-type]
        if announce_events and changes:
            announce_health(db, session, workspace_id, changes)
    counts = Counter(str(s) for s in scores.state)
    dues = batch.next_due[~np.isnan(batch.next_due)]
    return HealthSummary(
        now=when,
        scored=len(batch.customers),
        counts={s: counts.get(s, 0) for s in STATE_LABELS},
        changes=dict(moves),
        history_rows=len(history),
        next_due=datetime.fromtimestamp(int(dues.min()), UTC) if len(dues) else None,
    )


def health_due(db: Database, workspace_id: int, now: datetime) -> list[int]:
    """Customers whose stored score is due at ``now`` (time alone would have changed it)."""
    definition_id, _ = get_scorecard(db, workspace_id)
    with db.session() as session:
        rows = session.scalars(
            select(HealthScore.customer_id)
            .where(
                HealthScore.definition_id == definition_id,
                HealthScore.next_due.is_not(None),
                HealthScore.next_due <= int(now.timestamp()),
            )
            .order_by(HealthScore.customer_id)
        )
        return [int(c) for c in rows]


def stored_scores(db: Database, workspace_id: int, customer_ids: Sequence[int]) -> dict[int, Any]:
    """The stored current scores of some customers (for reading without re-scoring)."""
    definition_id, _ = get_scorecard(db, workspace_id)
    with db.session() as session:
        rows = session.scalars(
            select(HealthScore).where(
                HealthScore.definition_id == definition_id,
                HealthScore.customer_id.in_(sorted(set(customer_ids))),
            )
        )
        return {r.customer_id: (r.score, r.state, r.next_due) for r in rows}
