"""Acquisition economics per channel (or campaign): CAC, CLV to CAC, payback period.

The acquisition window (``since``/``until``) and the value horizon (``value_until``) are apart:
CLV and payback of the customers acquired in a window are read up to the horizon (default: the
whole log). Without ``since``/``until`` the window is the customers' span widened to whole
spend periods (a month of spend is not cut where the first event happens to fall).

* new customers: first purchase (``Order Completed``, the customer's own: not one CLM wrote)
  in the period; their channel is the first
  touchpoint with a channel up to that purchase (``(direct)`` without one; CLM's own events
  and model scores are never touchpoints: ``source.by_customer``);
* CAC = spend in the period (``spend``, pro rata) / new customers;
* CLV = mean ``clv_12m`` of the latest ``Prediction Scored`` event before ``value_until`` of
  the new customers that have one; the ratio is CLV / CAC;
* payback: the first 30-day month after acquisition by which the new customers' cumulative
  revenue per customer (up to ``value_until``) reaches CAC (None if not yet).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import ibis
import ibis.expr.types as ir

from clm.analytics.attribution import kept_touchpoints
from clm.analytics.query import (
    AcquisitionQuery,
    Period,
    customer_filter,
    iso,
    ratio,
    resolve_period,
    restrict,
)
from clm.analytics.retention import keep_first_purchases, keep_retention_events
from clm.analytics.schemas import AcquisitionReport, ChannelEconomics
from clm.analytics.source import ReportSource, by_customer
from clm.analytics.spend import SpendRow, spend_in_period

PURCHASE, PREDICTION, DIRECT = "Order Completed", "Prediction Scored", "(direct)"
MONTH = 30 * 86_400
DEFINITIONS = {
    "new customers": "first purchase of the customer's own (not one CLM wrote) in the "
    "acquisition window (since..until)",
    "channel": "first touchpoint of the customer's own up to that purchase; CLM's events "
    "never count; (direct) without one",
    "CAC": "spend in the window (pro rata for partly covered spend periods) / new customers",
    "CLV 12m": "mean clv_12m of the new customers' latest score before the value horizon "
    "(value_until; default: the whole log)",
    "payback": "30-day months after acquisition until the customers' own revenue per customer "
    "reaches CAC",
}


def acquisition(
    source: ReportSource, query: AcquisitionQuery | None = None, spend: Sequence[SpendRow] = ()
) -> AcquisitionReport:
    """CAC, CLV:CAC and payback per channel or campaign for customers acquired in the period."""
    query = query or AcquisitionQuery()
    period = _whole_spend_periods(resolve_period(source, query), query, spend)
    customers = customer_filter(source, query, period)
    horizon = int(query.value_until.timestamp()) if query.value_until else None
    # a snapshot source that keeps churn's slim table of the purchases, revenue and scores
    # (4M of 20M events at 1M customers) and each customer's first purchase (after
    # ``prepare_source`` or a churn report) reads those, not the log; a one-shot source does
    # not build them (at 1M: +1.6 s of CPU for one report)
    whole = customers is None and source.derives("retention_events", "first_purchases")
    valued = keep_retention_events(source) if whole else restrict(source.events, customers)
    known = valued if horizon is None else valued.filter(valued.ts < horizon)
    first = source.keyed(_first_purchases(source, customers, period, whole), "customer_id")
    origin = source.keyed(_first_touches(source, customers, first, period, query.dimension),
                          "customer_id")  # fmt: skip
    scored = known.filter(known.name == PREDICTION, known.clv_12m.notnull())
    scored = scored.mutate(nth=ibis.row_number().over(
        group_by="customer_id",
        order_by=[source.scan_ts(scored).desc(), scored.message_id.desc()]))  # fmt: skip
    clv = scored.filter(scored.nth == 0).select("customer_id", "clv_12m")
    clv = source.keyed(clv, "customer_id")
    new = first.left_join(origin, "customer_id").select(
        first.customer_id, first.acquired_ts, value=origin.value.fill_null(DIRECT)
    )
    new = new.left_join(clv, "customer_id").select(new, clv.clv_12m)
    new = source.reuse(new, join_key="customer_id")  # read by both queries below
    per_value = new.group_by("value").aggregate(
        customers=ibis._.count(), scored=new.clv_12m.count(), clv=new.clv_12m.sum()
    )
    paid = known.filter(known.revenue.notnull(), by_customer(known)).join(new, "customer_id")
    paid = paid.filter(paid.ts >= paid.acquired_ts)
    months = paid.group_by(
        "value", month=((paid.ts - paid.acquired_ts) // MONTH).cast("int64")
    ).aggregate(revenue=paid.revenue.sum())  # fmt: skip
    revenue: dict[str, dict[int, float]] = defaultdict(dict)
    for r in source.run(months).to_pylist():
        revenue[r["value"]][int(r["month"])] = float(r["revenue"] or 0.0)
    costs = spend_in_period(list(spend), period.since, period.until, query.dimension)
    found = {r["value"]: r for r in source.run(per_value).to_pylist()}
    rows = []
    for value in sorted(set(found) | set(costs)):
        r = found.get(value, {})
        customers, cost = int(r.get("customers") or 0), costs.get(value)
        cac = round(cost / customers, 6) if cost is not None and customers else None
        clv = ratio(float(r.get("clv") or 0.0), int(r.get("scored") or 0))
        rows.append(
            ChannelEconomics(
                value=value, spend=round(cost, 6) if cost is not None else None,
                new_customers=customers, cac=cac, clv_12m=clv,
                clv_to_cac=ratio(clv, cac) if clv is not None and cac else None,
                payback_months=_payback(revenue.get(value, {}), customers, cac),
            )
        )  # fmt: skip
    return AcquisitionReport(
        since=iso(period.since), until=iso(period.until), dimension=query.dimension,
        value_until=iso(horizon) if horizon is not None else None, channels=rows,
        definitions=DEFINITIONS,
    )  # fmt: skip


def _first_purchases(source: ReportSource, customers: ir.Table | None, period: Period,
                     whole: bool) -> ir.Table:  # fmt: skip
    """``customer_id, acquired_ts``: the customers whose first purchase of their own falls in
    the period. The first purchase before ``until`` is the first ever if it is before it, so
    with ``whole`` (the source keeps them, no customer filter) it is read from the kept ones."""
    if whole:
        ever = keep_first_purchases(source)
        first = ever.select("customer_id", acquired_ts=ever.fp)
        return first.filter(first.acquired_ts >= period.since, first.acquired_ts < period.until)
    events = restrict(source.events, customers)
    early = events.filter(events.ts < period.until)
    bought = early.filter(early.name == PURCHASE, by_customer(early))
    first = bought.group_by("customer_id").aggregate(acquired_ts=bought.ts.min())
    return first.filter(first.acquired_ts >= period.since)


def _first_touches(source: ReportSource, customers: ir.Table | None, first: ir.Table,
                   period: Period, dimension: str) -> ir.Table:  # fmt: skip
    """``customer_id, value``: the new customers' first touchpoint (of their own, with a
    ``dimension``) up to their first purchase, by time then message id.

    That is the customer's first touchpoint of the whole log if it is not after the purchase:
    where the source keeps the whole log's touchpoints sorted (attribution's, after
    ``prepare_source``) it is the head of each customer's block, with no pass over the log
    (1M customers / 20M events: 3-4 s of CPU for the window below). Elsewhere the engine finds
    it among the touchpoints before the purchase."""
    firsts = _kept_first_touches(source, dimension) if customers is None else None
    if firsts is not None:
        heads = first.join(firsts, "customer_id")
        heads = heads.filter(heads.first_ts <= heads.acquired_ts)
        return heads.select("customer_id", "value")
    events = restrict(source.events, customers)
    early = events.filter(events.ts < period.until)
    touch = early.filter(early[dimension].notnull(), by_customer(early))
    touch = touch.join(first, "customer_id")
    touch = touch.filter(touch.ts <= touch.acquired_ts)
    order = [touch.ts, touch.message_id]
    touch = touch.mutate(nth=ibis.row_number().over(group_by="customer_id", order_by=order))
    return touch.filter(touch.nth == 0).select("customer_id", value=touch[dimension])


def _kept_first_touches(source: ReportSource, dimension: str) -> ir.Table | None:
    """``customer_id, first_ts, value``: each customer's first touchpoint of the whole log,
    where the source keeps the log's touchpoints (else None); made once per source."""
    touches = kept_touchpoints(source, dimension)
    if touches is None:
        return None
    return source.kept(f"first touches {dimension}", lambda: source.view(
        f"clm_first_touches_{dimension}", touches.firsts()))  # fmt: skip


def _whole_spend_periods(period: Period, query: AcquisitionQuery,
                         spend: Sequence[SpendRow]) -> Period:  # fmt: skip
    """The default window widened to the whole spend periods it touches (an explicit
    ``since`` or ``until`` is kept)."""
    since, until = period.since, period.until
    touching = [r for r in spend if r.period_start < until and r.period_end > since]
    if query.since is None and touching:
        since = min(since, *(r.period_start for r in touching))
    if query.until is None and touching:
        until = max(until, *(r.period_end for r in touching))
    return Period(since, until)


def _payback(by_month: dict[int, float], customers: int, cac: float | None) -> int | None:
    if cac is None or not customers:
        return None
    total = 0.0
    for month in range(max(by_month, default=-1) + 1):
        total += by_month.get(month, 0.0)
        if total / customers >= cac - 1e-9:
            return month + 1
    return None
