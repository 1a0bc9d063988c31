"""Editing the health scorecard's weights and thresholds, and what an edit would change.

People tune a scorecard by its numbers, not its YAML: a new weight per factor (0 leaves the
factor out) and the two state thresholds. ``edited_scorecard`` applies such an edit to the
active scorecard, checked field by field; ``preview_scorecard`` scores every customer now under
both scorecards from one feature snapshot (an edit of weights reads the same features), so the
difference is the edit's alone; ``save_scorecard`` stores the edit as the next version, the
earlier ones kept.

An editor previews on every pause in typing, and the snapshot is the slow part (it reads the
whole log), so the last one is kept per workspace for ``SNAPSHOT_SECONDS`` while no event
arrives: a first preview takes as long as a scoring pass, the next ones milliseconds.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
import pyarrow as pa
import yaml
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from clm.errors import FieldError, ValidationError
from clm.lifecycle.catalog import get_definition, list_definitions, save_definition
from clm.lifecycle.health import STATE_LABELS, CompiledScorecard, compile_scorecard
from clm.lifecycle.health_current import score_snapshot
from clm.lifecycle.health_inputs import latest_exit_flags, uses_stage
from clm.lifecycle.schemas import DefinitionInfo
from clm.lifecycle.snapshot import feature_snapshot
from clm.store.engine import Database
from clm.store.models import Event

SNAPSHOT_SECONDS = 300
_SNAPSHOTS = "scorecard_preview_snapshots"
_LOCK = threading.Lock()

Weight = Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)]
Share = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
FactorKey = Annotated[str, Field(max_length=64)]

__all__ = [
    "FactorPublic",
    "ScorecardEdit",
    "ScorecardPreview",
    "ScorecardPublic",
    "edited_scorecard",
    "preview_scorecard",
    "save_scorecard",
    "scorecard_public",
]


class ScorecardEdit(BaseModel):
    """New weights (relative; 0 leaves a factor out) and thresholds; what is left out stays."""

    model_config = ConfigDict(extra="forbid")

    weights: dict[FactorKey, Weight] = Field(default_factory=dict)
    unhappy_below: Share | None = None
    at_risk_below: Share | None = None


class FactorPublic(BaseModel):
    key: str
    label: str
    axis: str
    kind: str
    weight: float  # as written (relative)
    share: float  # of the 100 points, after scaling every weight to add up to 100
    best: float | None
    worst: float | None


class ScorecardPublic(BaseModel):
    definition: DefinitionInfo
    description: str
    unhappy_below: float
    at_risk_below: float
    factors: list[FactorPublic]
    versions: list[DefinitionInfo]  # every stored scorecard version, oldest first


class ScorecardPreview(BaseModel):
    """Every customer scored now under the active scorecard and under the edit."""

    at: datetime
    customers: int
    before: dict[str, int]  # customers per state label, active scorecard
    after: dict[str, int]  # ... under the edit
    changed: int  # customers whose state differs
    moves: dict[str, int]  # "happy and stable -> happy but at risk": n
    mean_score_before: float | None
    mean_score_after: float | None


def scorecard_public(db: Database, workspace_id: int) -> ScorecardPublic:
    info, card, _ = get_definition(db, workspace_id, "health")
    return ScorecardPublic(
        definition=info,
        description=card.definition.description,
        unhappy_below=card.unhappy_below,
        at_risk_below=card.at_risk_below,
        factors=[
            FactorPublic(
                key=key,
                label=factor.label or key,
                axis=factor.axis,
                kind=factor.kind,
                weight=factor.weight,
                share=round(card.weights[key], 2),
                best=factor.best if factor.kind == "feature" else None,
                worst=factor.worst if factor.kind == "feature" else None,
            )
            for key, factor in card.factors.items()
        ],
        versions=list_definitions(db, workspace_id, "health"),
    )


def edited_scorecard(card: CompiledScorecard, edit: ScorecardEdit) -> CompiledScorecard:
    """``card`` with the edit's weights and thresholds, as the next version; a ValidationError
    names each field at fault (an unknown factor, no weight left)."""
    problems = [
        FieldError(("weights", key), f"no factor {key!r} in scorecard {card.name!r}")
        for key in edit.weights
        if key not in card.factors
    ]
    factors = {}
    for key, factor in card.factors.items():
        weight = edit.weights.get(key, factor.weight)
        if weight > 0:
            factors[key] = factor.model_copy(update={"weight": weight})
    if not factors:
        problems.append(FieldError(("weights",), "at least one factor needs a weight above 0"))
    if problems:
        raise ValidationError("The scorecard edit has problems", problems)
    update: dict[str, object] = {"factors": factors, "version": card.version + 1}
    for name in ("unhappy_below", "at_risk_below"):
        value = getattr(edit, name)
        if value is not None:
            update[name] = value
    return compile_scorecard(card.definition.model_copy(update=update))


def scorecard_yaml(card: CompiledScorecard) -> str:
    return yaml.safe_dump(
        card.definition.model_dump(mode="json", exclude_defaults=True), sort_keys=False, width=100
    )


def save_scorecard(
    db: Database, workspace_id: int, edit: ScorecardEdit
) -> tuple[DefinitionInfo, str, str]:
    """Store the edited active scorecard as its next version (made active); returns the new
    version's info, and the YAML before and after (for the audit log)."""
    _, card, before = get_definition(db, workspace_id, "health")
    after = scorecard_yaml(edited_scorecard(card, edit))
    return save_definition(db, workspace_id, "health", after), before, after


def preview_scorecard(
    db: Database,
    workspace_id: int,
    edit: ScorecardEdit,
    at: datetime | None = None,
) -> ScorecardPreview:
    """Customers per state now under the active scorecard and under the edit, and how many
    move. One feature snapshot (DuckDB) serves both: the edit changes weights, not features."""
    info, card, _ = get_definition(db, workspace_id, "health")
    proposed = edited_scorecard(card, edit)
    when, table, exits = _snapshot(db, workspace_id, info.id, card, at)
    now = int(when.timestamp())
    customers = np.asarray(table.column("customer_id").to_numpy(), dtype=np.int64)
    old = score_snapshot(card, table, now, exits).scores
    new = score_snapshot(proposed, table, now, exits).scores
    moved = old.state != new.state
    moves = Counter(
        f"{STATE_LABELS[a]} -> {STATE_LABELS[b]}"
        for a, b in zip(old.state[moved].tolist(), new.state[moved].tolist(), strict=True)
    )
    return ScorecardPreview(
        at=when,
        customers=len(customers),
        before=_per_state(old.state.tolist()),
        after=_per_state(new.state.tolist()),
        changed=int(moved.sum()),
        moves=dict(moves.most_common()),
        mean_score_before=_mean(old.score),
        mean_score_after=_mean(new.score),
    )


def _snapshot_key(db: Database, workspace_id: int, definition_id: int) -> tuple[int, int, Any]:
    with db.session() as session:
        last = session.scalar(select(func.max(Event.id)).where(Event.workspace_id == workspace_id))
    return (workspace_id, definition_id, last)


def _kept_snapshot(
    db: Database, workspace_id: int, key: tuple[int, int, Any]
) -> tuple[datetime, pa.Table, np.ndarray] | None:
    with _LOCK:
        kept = db.extensions.get(_SNAPSHOTS, {}).get(workspace_id)
    if kept and kept[0] == key and time.monotonic() - kept[1] < SNAPSHOT_SECONDS:
        cached: tuple[datetime, pa.Table, np.ndarray] = kept[2]
        return cached
    return None


def snapshot_size(db: Database, workspace_id: int) -> int | None:
    """How many customers the kept feature snapshot holds; None while there is none (or it
    is out of date): the editor's previews score that many customers twice."""
    info, _, _ = get_definition(db, workspace_id, "health")
    kept = _kept_snapshot(db, workspace_id, _snapshot_key(db, workspace_id, info.id))
    return None if kept is None else int(kept[1].num_rows)


def warm_snapshot(db: Database, workspace_id: int) -> int:
    """Build and keep the feature snapshot the previews read; returns its customer count."""
    info, card, _ = get_definition(db, workspace_id, "health")
    _, table, _ = _snapshot(db, workspace_id, info.id, card, None)
    return int(table.num_rows)


def _snapshot(
    db: Database,
    workspace_id: int,
    definition_id: int,
    card: CompiledScorecard,
    at: datetime | None,
) -> tuple[datetime, pa.Table, np.ndarray]:
    """The features and exit-stage flags of every customer as of ``at`` (default now: the
    cached ones while no event arrived and they are under ``SNAPSHOT_SECONDS`` old)."""
    key = _snapshot_key(db, workspace_id, definition_id)
    if at is None:
        cached = _kept_snapshot(db, workspace_id, key)
        if cached is not None:
            return cached
    when = at or datetime.now(UTC)
    now = int(when.timestamp())
    table = feature_snapshot(db, workspace_id, card.feature_set, now, engine="duckdb")
    customers = np.asarray(table.column("customer_id").to_numpy(), dtype=np.int64)
    if uses_stage(card):
        exits = latest_exit_flags(db, workspace_id, customers, now)
    else:
        exits = np.full(len(customers), np.nan)
    if at is None:
        with _LOCK:
            db.extensions.setdefault(_SNAPSHOTS, {})[workspace_id] = (
                key,
                time.monotonic(),
                (when, table, exits),
            )
    return when, table, exits


def _per_state(states: list[str]) -> dict[str, int]:
    counts = Counter(states)
    return {label: counts.get(state, 0) for state, label in STATE_LABELS.items()}


def _mean(scores: np.ndarray) -> float | None:
    if len(scores) == 0:
        return None
    value = float(np.nanmean(scores)) if not np.isnan(scores).all() else math.nan
    return None if math.isnan(value) else round(value, 2)
