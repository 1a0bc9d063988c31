"""Acquisition economics per channel (or campaign): CAC, CLV to CAC, payback period.

* new customers: first purchase (``Order Completed``) in the period; their channel is the first
  touchpoint with a channel up to that purchase (``(direct)`` without one; CLM's own events
  and model scores are never touchpoints: ``source.by_customer``);
* CAC = spend in the period (``spend``, pro rata) / new customers;
* CLV = mean ``clv_12m`` of the latest ``Prediction Scored`` event before ``until`` of the new
  customers that have one; the ratio is CLV / CAC;
* payback: the first 30-day month after acquisition by which the new customers' cumulative
  revenue per customer reaches CAC (None if not yet).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import ibis

from clm.analytics.query import AcquisitionQuery, filtered, iso, ratio, resolve_period
from clm.analytics.schemas import AcquisitionReport, ChannelEconomics
from clm.analytics.source import ReportSource, by_customer
from clm.analytics.spend import SpendRow, spend_in_period

PURCHASE, PREDICTION, DIRECT = "Order Completed", "Prediction Scored", "(direct)"
MONTH = 30 * 86_400


def acquisition(
    source: ReportSource, query: AcquisitionQuery | None = None, spend: Sequence[SpendRow] = ()
) -> AcquisitionReport:
    """CAC, CLV:CAC and payback per channel or campaign for customers acquired in the period."""
    query = query or AcquisitionQuery()
    period = resolve_period(source, query)
    events, _ = filtered(source, query, period)
    early = events.filter(events.ts < period.until)
    bought = early.filter(early.name == PURCHASE)
    first = bought.group_by("customer_id").aggregate(acquired_ts=bought.ts.min())
    first = first.filter(first.acquired_ts >= period.since)
    touch = early.filter(early[query.dimension].notnull(), by_customer(early))
    touch = touch.join(first, "customer_id")
    touch = touch.filter(touch.ts <= touch.acquired_ts)
    order = [touch.ts, touch.message_id]
    touch = touch.mutate(nth=ibis.row_number().over(group_by="customer_id", order_by=order))
    origin = touch.filter(touch.nth == 0).select("customer_id", value=touch[query.dimension])
    scored = early.filter(early.name == PREDICTION, early.clv_12m.notnull())
    scored = scored.mutate(nth=ibis.row_number().over(
        group_by="customer_id", order_by=[scored.ts.desc(), scored.message_id.desc()]))  # fmt: skip
    clv = scored.filter(scored.nth == 0).select("customer_id", "clv_12m")
    new = first.left_join(origin, "customer_id").select(
        first.customer_id, first.acquired_ts, value=origin.value.fill_null(DIRECT)
    )
    new = new.left_join(clv, "customer_id").select(new, clv.clv_12m)
    new = source.reuse(new)  # read by both queries below
    per_value = new.group_by("value").aggregate(
        customers=ibis._.count(), scored=new.clv_12m.count(), clv=new.clv_12m.sum()
    )
    paid = early.filter(early.revenue.notnull()).join(new, "customer_id")
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
    return AcquisitionReport(since=iso(period.since), until=iso(period.until),
                             dimension=query.dimension, channels=rows)  # fmt: skip


def _payback(by_month: dict[int, float], customers: int, cac: float | None) -> int | None:
    if cac is None or not customers:
        return None
    total = 0.0
    for month in range(max(by_month, default=-1) + 1):
        total += by_month.get(month, 0.0)
        if total / customers >= cac - 1e-9:
            return month + 1
    return None
