"""RFM: recency, frequency and monetary quintile scores, and the named segments marketers use.

Scores are computed over the purchases (``Order Completed``) before an instant. Each score is
``1 + floor(5 * rank / n)`` with ``rank`` the 0-based *minimum* rank among the ``n`` buyers
(ties share a score, so the same numbers always give the same score on every engine); a more
recent last purchase, more purchases and more revenue score higher. Segments read the recency
score ``R`` and ``FM = (F + M + 1) // 2``:

* R 5: New (FM 1), Potential loyalists (FM 2-3), Champions (FM 4-5);
* R 4: Promising (FM 1), Potential loyalists (FM 2-3), Loyal (FM 4-5);
* R 3: About to sleep (FM 1-2), Need attention (FM 3), Loyal (FM 4-5);
* R 2: Hibernating (FM 1-2), At risk (FM 3-4), Can't lose them (FM 5);
* R 1: Lost (FM 1-2), At risk (FM 3-4), Can't lose them (FM 5).
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from clm.analytics.query import SEGMENTS, ReportQuery, customer_filter, iso, resolve_period
from clm.analytics.schemas import RfmReport, ScoreCell, SegmentMove, SegmentSummary
from clm.analytics.segments import rfm_scores
from clm.analytics.source import ReportSource
from clm.lifecycle.engines import quiet_engines

NONE = "(no purchase)"


def rfm(source: ReportSource, query: ReportQuery | None = None) -> RfmReport:
    """Segments at ``until`` (counts, revenue, averages), the R x FM grid, and how customers
    moved between segments from ``since`` to ``until``."""
    query = query or ReportQuery()
    period = resolve_period(source, query)
    customers = customer_filter(source, query, period)
    now = rfm_scores(source.events, period.until)
    if customers is not None:
        now = now.filter(now.customer_id.isin(customers.customer_id))
    # the summary, the grid and the movement all read the scores: computed once
    with quiet_engines():  # caching runs the query now, with the engine's own warnings
        now = now.cache()
    summary = now.group_by("segment").aggregate(
        customers=ibis._.count(), revenue=now.monetary.sum(), recency=now.recency_days.mean(),
        frequency=now.frequency.cast("float64").mean(), monetary=now.monetary.mean(),
    )  # fmt: skip
    found = {r["segment"]: r for r in source.run(summary).to_pylist()}
    total = sum(int(r["customers"]) for r in found.values())
    segments = [
        SegmentSummary(
            segment=name, customers=int(r["customers"]) if r else 0,
            share=round(int(r["customers"]) / total, 6) if r and total else None,
            revenue=round(float(r["revenue"] or 0), 6) if r else 0.0,
            avg_recency_days=_round(r["recency"]) if r else None,
            avg_frequency=_round(r["frequency"]) if r else None,
            avg_monetary=_round(r["monetary"]) if r else None,
        )
        for name in SEGMENTS
        for r in [found.get(name)]
    ]  # fmt: skip
    grid = now.group_by("r", "fm").aggregate(customers=ibis._.count())
    cells = [
        ScoreCell(recency=int(c["r"]), frequency_monetary=int(c["fm"]),
                  customers=int(c["customers"]))
        for c in source.run(grid).to_pylist()
    ]  # fmt: skip
    return RfmReport(
        since=iso(period.since), until=iso(period.until), segments=segments,
        grid=sorted(cells, key=lambda c: (-c.recency, -c.frequency_monetary)),
        movement=_movement(source, now, period.since),
    )  # fmt: skip


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def _movement(source: ReportSource, now: ir.Table, since: int) -> list[SegmentMove]:
    before = rfm_scores(source.events, since).select("customer_id", before=ibis._.segment)
    current = now.select("customer_id", "segment")
    joined = current.left_join(before, "customer_id").select(current.segment, before.before)
    moves = joined.group_by(
        from_segment=joined.before.fill_null(NONE), to_segment=joined.segment
    ).aggregate(customers=ibis._.count())
    order = {name: i for i, name in enumerate([NONE, *SEGMENTS])}
    rows = [
        SegmentMove(from_segment=r["from_segment"], to_segment=r["to_segment"],
                    customers=int(r["customers"]))
        for r in source.run(moves).to_pylist()
    ]  # fmt: skip
    return sorted(rows, key=lambda m: (order[m.from_segment], order[m.to_segment]))
