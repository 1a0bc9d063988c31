"""RFM scores and segments of each buyer: the one scoring that reports and report filters share.

Lives apart from ``rfm`` (the report) so that ``query`` (the filters, including ``segment``)
can use it without importing the report that itself builds on ``query``.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from clm.analytics.source import by_customer

PURCHASE = "Order Completed"
DAY = 86_400


def _score(rank: ir.IntegerValue, n: ir.IntegerValue) -> ir.IntegerValue:
    return ((rank * 5) // n + 1).cast("int64")


def segment_of(r: ir.IntegerValue, fm: ir.IntegerValue) -> ir.StringValue:
    return ibis.cases(
        ((r == 5) & (fm >= 4), "Champions"),
        ((r >= 3) & (fm >= 4), "Loyal"),
        ((r <= 2) & (fm == 5), "Can't lose them"),
        ((r <= 2) & (fm >= 3), "At risk"),
        ((r == 5) & (fm == 1), "New"),
        ((r == 4) & (fm == 1), "Promising"),
        (r >= 4, "Potential loyalists"),
        ((r == 3) & (fm == 3), "Need attention"),
        (r == 3, "About to sleep"),
        (r == 2, "Hibernating"),
        else_="Lost",
    )


def rfm_scores(events: ir.Table, as_of: int) -> ir.Table:
    """Per buyer before ``as_of``: recency (days), frequency, monetary, R/F/M scores, segment.

    Purchases are the customers' own (``by_customer``): an ``Order Completed`` CLM wrote
    makes no one a buyer."""
    bought = events.filter(events.name == PURCHASE, events.ts < as_of, by_customer(events))
    per = bought.group_by("customer_id").aggregate(
        last_ts=bought.ts.max(), frequency=bought.count(), monetary=bought.revenue.sum()
    )
    per = per.mutate(monetary=per.monetary.fill_null(0.0))
    n = per.customer_id.count().over(ibis.window())
    # Ranked in cents: a parallel engine sums floats in any order, and the last bits of two
    # equal spends must not make one customer outrank the other from one run to the next.
    cents = per.monetary.round(2)
    per = per.mutate(
        r=_score(ibis.rank().over(order_by=per.last_ts), n),
        f=_score(ibis.rank().over(order_by=per.frequency), n),
        m=_score(ibis.rank().over(order_by=cents), n),
        recency_days=(as_of - per.last_ts).cast("float64") / DAY,
    )
    per = per.mutate(fm=((per.f + per.m + 1) // 2).cast("int64"))
    return per.mutate(segment=segment_of(per.r, per.fm))
