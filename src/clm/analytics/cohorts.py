"""Cohort retention matrix: customers grouped by the month they were acquired (first event) or
first purchased, and for each month since: the share active (any event that month), the
repeat-purchase rate (share with a second purchase by then) and cumulative revenue per customer.
A heat-map reads the lists directly: row = cohort, column = months since its start."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from clm.analytics.calendar import month_index, month_of, period_label
from clm.analytics.query import CohortQuery, Period, filtered, iso, resolve_period
from clm.analytics.schemas import CohortReport, CohortRow
from clm.analytics.source import ReportSource

PURCHASE = "Order Completed"
SYSTEM_EVENTS = ("Prediction Scored",)  # written by models, not by the customer


def customer_activity(events: ir.Table) -> ir.Table:
    """Events the customer did (model scores left out)."""
    return events.filter(~events.name.fill_null("").isin(list(SYSTEM_EVENTS)))


def cohort_starts(events: ir.Table, cohort_by: str, until: int) -> ir.Table:
    """``customer_id, start_ts``: when each customer was acquired or first purchased."""
    seen = customer_activity(events).filter(events.ts < until)
    if cohort_by == "first_purchase":
        seen = seen.filter(seen.name == PURCHASE)
    return seen.group_by("customer_id").aggregate(start_ts=seen.ts.min())


def cohorts(source: ReportSource, query: CohortQuery | None = None) -> CohortReport:
    """The retention matrix of the cohorts starting in ``[since, until)``."""
    query = query or CohortQuery()
    period = resolve_period(source, query)
    events, _ = filtered(source, query, period)
    starts = cohort_starts(events, query.cohort_by, period.until)
    starts = starts.filter(starts.start_ts >= period.since)
    starts = starts.mutate(cohort=month_index(starts.start_ts))
    sizes = {
        int(r["cohort"]): int(r["n"])
        for r in source.run(starts.group_by("cohort").aggregate(n=ibis._.count())).to_pylist()
    }
    activity = _activity(source, events, starts, period, query.max_age)
    repeats = _second_purchases(source, events, starts, period, query.max_age)
    last_month = month_of(period.until - 1)
    rows = []
    for cohort in sorted(sizes):
        size = sizes[cohort]
        width = min(query.max_age, last_month - cohort) + 1
        active, revenue, repeat = [], [], []
        cumulative_revenue, cumulative_repeat = 0.0, 0
        for age in range(width):
            customers, money = activity.get((cohort, age), (0, 0.0))
            cumulative_revenue += money
            cumulative_repeat += repeats.get((cohort, age), 0)
            active.append(round(customers / size, 6))
            revenue.append(round(cumulative_revenue / size, 6))
            repeat.append(round(cumulative_repeat / size, 6))
        rows.append(
            CohortRow(cohort=period_label(cohort, "month"), customers=size, active_share=active,
                      repeat_purchase_rate=repeat, revenue_per_customer=revenue)
        )  # fmt: skip
    return CohortReport(
        since=iso(period.since), until=iso(period.until), cohort_by=query.cohort_by, cohorts=rows
    )


def _activity(
    source: ReportSource, events: ir.Table, starts: ir.Table, period: Period, max_age: int
) -> dict[tuple[int, int], tuple[int, float]]:
    seen = customer_activity(events).filter(events.ts < period.until)
    joined = seen.join(starts, "customer_id")
    joined = joined.mutate(age=month_index(joined.ts) - joined.cohort)
    joined = joined.filter(joined.age >= 0, joined.age <= max_age)
    grid = joined.group_by("cohort", "age").aggregate(
        customers=joined.customer_id.nunique(), revenue=joined.revenue.sum()
    )
    return {
        (int(r["cohort"]), int(r["age"])): (int(r["customers"]), float(r["revenue"] or 0.0))
        for r in source.run(grid).to_pylist()
    }


def _second_purchases(
    source: ReportSource, events: ir.Table, starts: ir.Table, period: Period, max_age: int
) -> dict[tuple[int, int], int]:
    bought = events.filter(events.name == PURCHASE, events.ts < period.until)
    bought = bought.mutate(
        nth=ibis.row_number().over(group_by="customer_id",
                                   order_by=[bought.ts, bought.message_id])
    )  # fmt: skip
    second = bought.filter(bought.nth == 1).join(starts, "customer_id")
    second = second.mutate(age=month_index(second.ts) - second.cohort)
    second = second.filter(second.age >= 0, second.age <= max_age)
    grid = second.group_by("cohort", "age").aggregate(n=ibis._.count())
    return {(int(r["cohort"]), int(r["age"])): int(r["n"]) for r in source.run(grid).to_pylist()}
