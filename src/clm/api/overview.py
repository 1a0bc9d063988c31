"""The overview's data under ``/api/v1/overview``: customers per stage and health state over
time, this week's biggest movers, churn and revenue retention per month, and the revenue at
risk. Each reads stored histories or the stored current state; the whole-history reads are
stored readings (``clm.analytics.kept``), answered at once and refreshed in the background."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from clm.analytics.movers import Movers, MoversQuery, movers
from clm.analytics.retention_trend import (
    FunnelSummary,
    RetentionTrend,
    default_range,
    funnel_summary,
    retention_trend,
)
from clm.analytics.revenue_at_risk import RevenueAtRisk, revenue_at_risk
from clm.analytics.trends import Grain, TrendQuery, Trends, trends
from clm.api.deps import DatabaseDep, Reader, workspace_id
from clm.api.routing import ClmRoute
from clm.errors import FieldError, ValidationError

router = APIRouter(prefix="/api/v1/overview", tags=["overview"], route_class=ClmRoute)

Since = Annotated[date | None, Query(description="first day (UTC), default a year before until")]
Until = Annotated[date | None, Query(description="last day (UTC), default today")]
MIN_DAY, MAX_DAY = date(1970, 1, 2), date(9998, 12, 31)
MAX_RETENTION_DAYS = 20 * 365  # 240 months: as many points as a chart can show


def _day(value: date | None, field: str) -> date | None:
    if value is not None and not MIN_DAY <= value <= MAX_DAY:
        raise ValidationError("Invalid date", [FieldError((field,), "between 1970 and 9998")])
    return value


@router.get("/trends")
def get_trends(
    db: DatabaseDep,
    key: Reader,
    since: Since = None,
    until: Until = None,
    grain: Annotated[
        Grain, Query(description="a point at the end of each day, week or month")
    ] = "week",
) -> Trends:
    """Customers per stage and per health state, and the mean health score, at the end of
    each day, week or month from ``since`` to ``until`` (the last point of a range ending
    today is now)."""
    query = TrendQuery(since=_day(since, "since"), until=_day(until, "until"), grain=grain)
    return trends(db, workspace_id(key), query)


@router.get("/movers")
def get_movers(
    db: DatabaseDep,
    key: Reader,
    days: Annotated[int, Query(ge=1, le=90, description="the last N days")] = 7,
    limit: Annotated[int, Query(ge=1, le=100, description="customers per list")] = 10,
) -> Movers:
    """The customers whose health fell most and the latest stage moves up or down in the
    last ``days`` days, with the number of each."""
    return movers(db, workspace_id(key), MoversQuery(days=days, limit=limit))


@router.get("/retention")
def get_retention(
    db: DatabaseDep, key: Reader, since: Since = None, until: Until = None
) -> RetentionTrend:
    """Churn rate, new and reactivated buyers, and net and gross revenue retention per month:
    the churn_retention report's definitions (buyers only; a month cut short by the range is
    marked partial and has no NRR/GRR)."""
    last = _day(until, "until") or datetime.now(UTC).date()
    first = _day(since, "since") or default_range(last)[0]
    if first > last:
        raise ValidationError("Invalid range", [FieldError(("since",), "must not be after until")])
    if (last - first).days > MAX_RETENTION_DAYS:
        problem = f"at most {MAX_RETENTION_DAYS // 365} years before until"
        raise ValidationError("Range too long", [FieldError(("since",), problem)])
    return retention_trend(db, workspace_id(key), first, last)


@router.get("/revenue-at-risk")
def get_revenue_at_risk(db: DatabaseDep, key: Reader) -> RevenueAtRisk:
    """The customers at risk or unhappy now (the customer list's ``health_state=at_risk,
    unhappy``), their summed 12-month CLV and their revenue to date."""
    return revenue_at_risk(db, workspace_id(key))


@router.get("/funnel")
def get_funnel(db: DatabaseDep, key: Reader) -> FunnelSummary:
    """The stage funnel report's steps over the whole log (entered, went on, conversion,
    median days), kept between calls; ``ready`` False while the first reading runs."""
    return funnel_summary(db, workspace_id(key))
