"""Cohort retention matrix: customers grouped by the month they were acquired (first event) or
first purchased, and for each month since: the share active (a returning event that month), the
repeat-purchase rate (share with a second purchase by then) and cumulative revenue per customer.
A heat-map reads the lists directly: row = cohort, column = months since its start.

The returning event is the user's choice, as in PostHog's retention insight: a purchase by
default (an email open is no sign of a returning customer), any named event, or ``any`` for any
activity of the customer's own (never what CLM wrote about them)."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from clm.analytics.calendar import month_index, month_of, period_label, period_start
from clm.analytics.query import (
    CohortQuery,
    Period,
    customer_filter,
    iso,
    resolve_period,
    restrict,
)
from clm.analytics.schemas import CohortReport, CohortRow
from clm.analytics.source import ReportSource, by_customer

PURCHASE, ANY = "Order Completed", "any"


def customer_activity(events: ir.Table) -> ir.Table:
    """Events the customer did: what CLM wrote (sends, scores, trait updates) is no activity.

    The same events as ``ReportSource.bounds``, so that a period ending after its last one
    cuts nothing short of the whole log's ``activity_months`` (see ``_months``)."""
    return events.filter(by_customer(events))


def activity_months(events: ir.Table, until: int | None = None) -> ir.Table:
    """One row per customer and calendar month with activity before ``until`` (or ever).

    ``month``, ``revenue`` and ``purchases`` that month, ``earlier_purchases`` (in the months
    before), and per customer ``acquired_ts``/``acquired_month`` (first activity) and
    ``first_purchase_ts``/``first_purchase_month``. Every cohort figure is a filter and a small
    group-by of this table, so the 20M-event log is aggregated once.
    """
    seen = customer_activity(events)
    if until is not None:
        seen = seen.filter(seen.ts < until)
    bought = seen.name == PURCHASE
    per = seen.group_by("customer_id", month=month_index(seen.ts)).aggregate(
        first_ts=seen.ts.min(), revenue=seen.revenue.sum(),
        purchases=ibis.ifelse(bought, 1, 0).cast("int64").sum(),
        first_purchase_ts=seen.ts.min(where=bought),
    )  # fmt: skip
    whole = ibis.window(group_by="customer_id")
    so_far = ibis.window(group_by="customer_id", order_by="month", preceding=None, following=0)
    return per.select(
        "customer_id", "month", "revenue", "purchases",
        earlier_purchases=per.purchases.sum().over(so_far) - per.purchases,
        acquired_ts=per.first_ts.min().over(whole), acquired_month=per.month.min().over(whole),
        first_purchase_ts=per.first_purchase_ts.min().over(whole),
        first_purchase_month=ibis.ifelse(per.purchases > 0, per.month, None).min().over(whole),
    )  # fmt: skip


def keep_activity_months(source: ReportSource) -> ir.Table:
    """The whole log's ``activity_months``, kept by a DuckDB or Spark source once computed."""
    return source.derived("activity_months", lambda: activity_months(source.events))


def _months(source: ReportSource, period: Period) -> ir.Table:
    """``activity_months`` up to ``until``: the source's whole-log table (built once and kept
    by the source) when ``until`` cuts no month short of its events, otherwise computed now."""
    bounds = source.bounds()
    whole_months = bounds is None or period.until > bounds[1]
    if whole_months or period_start(month_of(period.until), "month") == period.until:
        return keep_activity_months(source)
    return activity_months(source.events, period.until)


def cohorts(source: ReportSource, query: CohortQuery | None = None) -> CohortReport:
    """The retention matrix of the cohorts starting in ``[since, until)``."""
    query = query or CohortQuery()
    period = resolve_period(source, query)
    months = restrict(_months(source, period), customer_filter(source, query, period))
    by = query.cohort_by if query.cohort_by == "first_purchase" else "acquired"
    start, cohort = months[f"{by}_ts"], months[f"{by}_month"]
    last_month = month_of(period.until - 1)
    rows = months.filter(
        start >= period.since, start < period.until, months.month <= last_month
    ).mutate(cohort=cohort, age=months.month - cohort)
    rows = rows.filter(rows.age >= 0, rows.age <= query.max_age)
    rows = _returning(source, rows, query.returning_event, period)
    second = (rows.earlier_purchases < 2) & (rows.earlier_purchases + rows.purchases >= 2)
    grid = rows.group_by("cohort", "age").aggregate(
        customers=ibis._.count(), revenue=rows.revenue.sum(),
        repeats=ibis.ifelse(second, 1, 0).cast("int64").sum(),
        returned=ibis.ifelse(rows.returned, 1, 0).cast("int64").sum(),
    )  # fmt: skip
    cells = {(int(r["cohort"]), int(r["age"])): r for r in source.run(grid).to_pylist()}
    # every customer is active in the month their cohort starts (age 0)
    sizes = {cohort: int(r["customers"]) for (cohort, age), r in cells.items() if age == 0}
    result = []
    for cohort in sorted(sizes):
        size = sizes[cohort]
        width = min(query.max_age, last_month - cohort) + 1
        active, revenue, repeat = [], [], []
        cumulative_revenue, cumulative_repeat = 0.0, 0
        for age in range(width):
            cell = cells.get((cohort, age))
            customers = int(cell["returned"] or 0) if cell else 0
            cumulative_revenue += float(cell["revenue"] or 0.0) if cell else 0.0
            cumulative_repeat += int(cell["repeats"] or 0) if cell else 0
            active.append(round(customers / size, 6))
            revenue.append(round(cumulative_revenue / size, 6))
            repeat.append(round(cumulative_repeat / size, 6))
        result.append(
            CohortRow(cohort=period_label(cohort, "month"), customers=size, active_share=active,
                      repeat_purchase_rate=repeat, revenue_per_customer=revenue)
        )  # fmt: skip
    returning = query.returning_event
    return CohortReport(
        since=iso(period.since), until=iso(period.until), cohort_by=query.cohort_by,
        returning_event=returning, cohorts=result,
        definitions=_definitions(by, returning),
    )  # fmt: skip


def _definitions(by: str, returning: str) -> dict[str, str]:
    start = "first activity" if by == "acquired" else "first purchase"
    event = "any activity of their own" if returning == ANY else f"a {returning!r} event"
    return {
        "cohort": f"customers whose {start} is in that month",
        "active": f"share of the cohort with {event} in that month (--returning-event)",
        "repeat purchase": "share with a second purchase by that month (cumulative)",
    }


def _returning(source: ReportSource, rows: ir.Table, event: str, period: Period) -> ir.Table:
    """``rows`` with ``returned``: the customer did the returning event in that month."""
    if event == ANY:
        return rows.mutate(returned=ibis.literal(True))
    if event == PURCHASE:
        return rows.mutate(returned=rows.purchases > 0)
    e = customer_activity(source.events)
    e = e.filter(e.name == event, e.ts >= period.since, e.ts < period.until)
    hits = e.group_by("customer_id", month=month_index(e.ts)).aggregate(n=ibis._.count())
    joined = rows.left_join(hits, ["customer_id", "month"])
    return joined.select(rows, returned=joined.n.notnull())
