"""Churn and revenue retention per month for the overview: the ``churn_retention`` report's
own periods (buyers only, partial periods marked, NRR/GRR left out where partial), and the
stage funnel: stored readings (``clm.analytics.kept``) because each report reads the whole
log. A reading is current while what its report reads is unchanged: the same facts as the
Reports page's readings (``report_readings.inputs_version``: the newest event, identity link,
erasure or purge, transition or health snapshot, and the active definitions); an older one
is served, marked not current, while it is re-read in the background. Only the very first
reading of a workspace (before the live loop or ``clm demo`` stored one) makes a request
wait; the answer then says ``ready: false`` and the page asks again.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, Field, TypeAdapter

from clm.analytics.kept import Kind, readings_of
from clm.analytics.report_readings import inputs_version
from clm.analytics.reports import REPORTS, run_report
from clm.analytics.retention import DEFINITIONS
from clm.analytics.schemas import FunnelReport, FunnelStep, RetentionPeriod, RetentionReport
from clm.store.engine import Database

DEFAULT_SPAN_DAYS = 365  # the overview's default range: the last year
WAIT = 5.0  # seconds a request waits for a first reading before answering "not ready"
REFRESH_EVERY = 300.0  # seconds between re-readings of a whole-log report by one process


class RetentionTrend(BaseModel):
    since: datetime
    until: datetime
    churn_stages: list[str]
    periods: Annotated[list[RetentionPeriod], Field(description="one per month, oldest first")]
    definitions: dict[str, str]
    computed_at: datetime | None
    ready: Annotated[bool, Field(description="False: the first reading is still running")]
    current: Annotated[bool, Field(description="False: the data moved since; being refreshed")]


def report_version(db: Database, workspace_id: int, name: str) -> dict[str, Any]:
    """What report ``name`` reads, cheaply: the facts a Reports page reading of it is versioned
    by (``clm.analytics.report_readings.inputs_version``), so an identity merge or an erasure
    outdates the overview as it does the report, even in a workspace with no new event."""
    return inputs_version(db, workspace_id, REPORTS[name].reads)


def _compute(
    db: Database, workspace_id: int, since: date, until: date
) -> tuple[RetentionTrend, dict[str, Any]]:
    began, version = datetime.now(UTC), report_version(db, workspace_id, "churn_retention")
    params = {
        "since": since.isoformat(),
        "until": (until + timedelta(days=1)).isoformat(),
        "granularity": "month",
    }
    report = run_report(db, workspace_id, "churn_retention", params)
    assert isinstance(report, RetentionReport)
    return RetentionTrend(
        since=report.since, until=report.until, churn_stages=report.churn_stages,
        periods=report.periods, definitions=DEFINITIONS, computed_at=began,
        ready=True, current=True,
    ), version  # fmt: skip


RETENTION = Kind("retention", TypeAdapter(RetentionTrend), wait=WAIT, min_interval=REFRESH_EVERY)


def retention_params(since: date, until: date) -> dict[str, str]:
    return {"since": since.isoformat(), "until": until.isoformat()}


def default_range(today: date) -> tuple[date, date]:
    """The overview's range when none is chosen: the year up to today."""
    return today - timedelta(days=DEFAULT_SPAN_DAYS), today


def store_retention(db: Database, workspace_id: int, since: date, until: date) -> bool:
    """Store the retention trend unless the stored one is current or young (the live loop,
    ``clm demo``); True when it read it."""
    return readings_of(db).ensure(
        RETENTION, workspace_id, retention_params(since, until),
        version=lambda _: report_version(db, workspace_id, "churn_retention"),
        compute=lambda: _compute(db, workspace_id, since, until),
    )  # fmt: skip


def retention_trend(db: Database, workspace_id: int, since: date, until: date) -> RetentionTrend:
    """Churn rate and NRR/GRR per month from ``since`` to ``until`` (days, both included);
    ``ready`` False (no periods) while the first reading is still running."""
    reading, current = readings_of(db).get(
        RETENTION, workspace_id, retention_params(since, until),
        version=lambda _: report_version(db, workspace_id, "churn_retention"),
        compute=lambda: _compute(db, workspace_id, since, until),
    )  # fmt: skip
    if reading is None:
        start = datetime(since.year, since.month, since.day, tzinfo=UTC)
        return RetentionTrend(
            since=start, until=start, churn_stages=[], periods=[], definitions=DEFINITIONS,
            computed_at=None, ready=False, current=False,
        )  # fmt: skip
    found = reading.value
    return found if current else found.model_copy(update={"current": False})


class FunnelSummary(BaseModel):
    """The funnel report's steps (entered, went on, conversion, median days), kept as above."""

    steps: list[FunnelStep]
    definitions: dict[str, str]
    computed_at: datetime | None
    ready: bool
    current: bool


def _funnel(db: Database, workspace_id: int) -> tuple[FunnelSummary, dict[str, Any]]:
    began, version = datetime.now(UTC), report_version(db, workspace_id, "funnel")
    report = run_report(db, workspace_id, "funnel", {})
    assert isinstance(report, FunnelReport)
    return FunnelSummary(
        steps=report.steps, definitions=report.definitions, computed_at=began,
        ready=True, current=True,
    ), version  # fmt: skip


FUNNEL = Kind("funnel", TypeAdapter(FunnelSummary), wait=WAIT, min_interval=REFRESH_EVERY)


def store_funnel(db: Database, workspace_id: int) -> bool:
    """Store the funnel unless the stored one is current or young (the live loop, ``clm
    demo``); True when it read it."""
    return readings_of(db).ensure(
        FUNNEL, workspace_id, {},
        version=lambda _: report_version(db, workspace_id, "funnel"),
        compute=lambda: _funnel(db, workspace_id),
    )  # fmt: skip


def funnel_summary(db: Database, workspace_id: int) -> FunnelSummary:
    """The stage funnel over the whole log (the funnel report with its defaults); ``ready``
    False (no steps) while the first reading is still running."""
    reading, current = readings_of(db).get(
        FUNNEL, workspace_id, {},
        version=lambda _: report_version(db, workspace_id, "funnel"),
        compute=lambda: _funnel(db, workspace_id),
    )  # fmt: skip
    if reading is None:
        return FunnelSummary(steps=[], definitions={}, computed_at=None, ready=False, current=False)
    found = reading.value
    return found if current else found.model_copy(update={"current": False})
