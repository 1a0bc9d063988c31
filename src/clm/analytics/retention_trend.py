"""Churn and revenue retention per month for the overview: the ``churn_retention`` report's
own periods (buyers only, partial periods marked, NRR/GRR left out where partial), kept
between calls (``clm.analytics.kept``) because the report reads the whole log: reused while
the newest event, transition and health snapshot ids and the active definitions are
unchanged, served up to ``STALE_AFTER`` seconds old while it is re-read. The first reading of
a large log can take minutes; the answer then says ``ready: false`` and the page asks again.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from pydantic import BaseModel, Field
from sqlalchemy import func, select

from clm.analytics.kept import Kept, kept_for
from clm.analytics.reports import run_report
from clm.analytics.retention import DEFINITIONS
from clm.analytics.schemas import FunnelReport, FunnelStep, RetentionPeriod, RetentionReport
from clm.store.engine import Database
from clm.store.models import Event, HealthSnapshot, LifecycleDefinition, StageTransition

STALE_AFTER = 600.0  # seconds a result may lag the data it describes
WAIT = 5.0  # seconds a request waits for a reading before answering "not ready"


class RetentionTrend(BaseModel):
    since: datetime
    until: datetime
    churn_stages: list[str]
    periods: Annotated[list[RetentionPeriod], Field(description="one per month, oldest first")]
    definitions: dict[str, str]
    computed_at: datetime | None
    ready: Annotated[bool, Field(description="False: the first reading is still running")]
    current: Annotated[bool, Field(description="False: the data moved since; being refreshed")]


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
        ready=True, current=True,
    )  # fmt: skip


def retention_trend(db: Database, workspace_id: int, since: date, until: date) -> RetentionTrend:
    """Churn rate and NRR/GRR per month from ``since`` to ``until`` (days, both included);
    ``ready`` False (no periods) while the first reading is still running."""
    key = (str(db.engine.url), workspace_id, since, until)
    kept: Kept[RetentionTrend] = kept_for(
        db, "clm.analytics.retention_trend", stale_after=STALE_AFTER, wait=WAIT
    )
    found, current = kept.get(
        key, _version(db, workspace_id), lambda: _compute(db, workspace_id, since, until)
    )
    if found is None:
        start = datetime(since.year, since.month, since.day, tzinfo=UTC)
        return RetentionTrend(
            since=start, until=start, churn_stages=[], periods=[], definitions=DEFINITIONS,
            computed_at=None, ready=False, current=False,
        )  # fmt: skip
    return found if current else found.model_copy(update={"current": False})


class FunnelSummary(BaseModel):
    """The funnel report's steps (entered, went on, conversion, median days), kept as above."""

    steps: list[FunnelStep]
    definitions: dict[str, str]
    computed_at: datetime | None
    ready: bool
    current: bool


def funnel_summary(db: Database, workspace_id: int) -> FunnelSummary:
    """The stage funnel over the whole log (the funnel report with its defaults); ``ready``
    False (no steps) while the first reading is still running."""

    def compute() -> FunnelSummary:
        report = run_report(db, workspace_id, "funnel", {})
        assert isinstance(report, FunnelReport)
        return FunnelSummary(
            steps=report.steps, definitions=report.definitions, computed_at=datetime.now(UTC),
            ready=True, current=True,
        )  # fmt: skip

    kept: Kept[FunnelSummary] = kept_for(
        db, "clm.analytics.funnel_summary", stale_after=STALE_AFTER, wait=WAIT
    )
    found, current = kept.get((workspace_id,), _version(db, workspace_id), compute)
    if found is None:
        return FunnelSummary(steps=[], definitions={}, computed_at=None, ready=False, current=False)
    return found if current else found.model_copy(update={"current": False})
