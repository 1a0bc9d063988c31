"""Churn and revenue retention per month for the overview: the ``churn_retention`` report's
own periods (buyers only, partial periods marked, NRR/GRR left out where partial), kept
between calls because the report reads the whole log.

A result is reused while the data it was computed from is unchanged (the newest event, stage
transition and health snapshot ids, and the active definitions). When they moved, a result
younger than ``STALE_AFTER`` is still served, marked with when it was computed, while one
thread recomputes it; an older one is recomputed before answering.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from pydantic import BaseModel, Field
from sqlalchemy import func, select

from clm.analytics.reports import run_report
from clm.analytics.retention import DEFINITIONS
from clm.analytics.schemas import RetentionPeriod, RetentionReport
from clm.store.engine import Database
from clm.store.models import Event, HealthSnapshot, LifecycleDefinition, StageTransition

STALE_AFTER = 600.0  # seconds a result may lag the data it describes
MAX_ENTRIES = 64


class RetentionTrend(BaseModel):
    since: datetime
    until: datetime
    churn_stages: list[str]
    periods: Annotated[list[RetentionPeriod], Field(description="one per month, oldest first")]
    definitions: dict[str, str]
    computed_at: datetime
    current: Annotated[bool, Field(description="False: the data moved since; being refreshed")]


_Key = tuple[str, int, str, str]
_cache: dict[_Key, tuple[tuple[int, ...], float, RetentionTrend]] = {}
_running: set[_Key] = set()
_lock = threading.Lock()


def _version(db: Database, workspace_id: int) -> tuple[int, ...]:
    """What the report depends on, cheaply: the newest row ids (primary keys, one index probe
    each) and the active definitions' ids."""
    with db.session() as session:
        newest = [
            int(session.scalar(select(func.max(column))) or 0)
            for column in (Event.id, StageTransition.id, HealthSnapshot.id)
        ]
        active = session.scalars(
            select(LifecycleDefinition.id)
            .where(
                LifecycleDefinition.workspace_id == workspace_id,
                LifecycleDefinition.active.is_(True),
            )
            .order_by(LifecycleDefinition.id)
        ).all()
    return (*newest, *(int(a) for a in active))


def _compute(db: Database, workspace_id: int, since: date, until: date) -> RetentionTrend:
    params = {
        "since": since.isoformat(),
        "until": (until + timedelta(days=1)).isoformat(),
        "granularity": "month",
    }
    report = run_report(db, workspace_id, "churn_retention", params)
    assert isinstance(report, RetentionReport)
    return RetentionTrend(
        since=report.since, until=report.until, churn_stages=report.churn_stages,
        periods=report.periods, definitions=DEFINITIONS, computed_at=datetime.now(UTC),
        current=True,
    )  # fmt: skip


def _refresh(db: Database, workspace_id: int, key: _Key, since: date, until: date) -> None:
    try:
        version = _version(db, workspace_id)
        result = _compute(db, workspace_id, since, until)
        with _lock:
            _store(key, version, result)
    finally:
        with _lock:
            _running.discard(key)


def _store(key: _Key, version: tuple[int, ...], result: RetentionTrend) -> None:
    if len(_cache) >= MAX_ENTRIES and key not in _cache:
        del _cache[min(_cache, key=lambda k: _cache[k][1])]
    _cache[key] = (version, time.monotonic(), result)


def retention_trend(db: Database, workspace_id: int, since: date, until: date) -> RetentionTrend:
    """Churn rate and NRR/GRR per month from ``since`` to ``until`` (days, both included)."""
    key: _Key = (str(db.engine.url), workspace_id, since.isoformat(), until.isoformat())
    version = _version(db, workspace_id)
    with _lock:
        found = _cache.get(key)
    if found is not None:
        seen, at, result = found
        if seen == version:
            return result
        if time.monotonic() - at < STALE_AFTER:
            with _lock:
                start = key not in _running
                _running.add(key)
            if start:
                threading.Thread(
                    target=_refresh, args=(db, workspace_id, key, since, until), daemon=True
                ).start()
            return result.model_copy(update={"current": False})
    result = _compute(db, workspace_id, since, until)
    with _lock:
        _store(key, version, result)
    return result
