"""Churn and retention per period: churn rate by the stage model's churn definition (its exit
stages), new customers and reactivations, gross and net revenue retention, and the customers
at risk now with the revenue they carry.

A *customer* here is someone who bought (an ``Order Completed``): leads who never bought are
neither active, new nor churned (``DEFINITIONS`` says it in every report):

* new in a period: customers whose first purchase falls in it;
* active at the start of a period: customers who bought before it and whose stage just before
  it is not an exit stage;
* churned: customers who had bought and moved from a non-exit stage into an exit stage during
  the period; churn rate = churned / active at start (None without a churn stage);
  reactivated: customers who had bought and moved from an exit stage back;
* revenue retention of period *p*: of the customers with revenue in *p-1*, their revenue in *p*
  over their revenue in *p-1* (net), and with each capped at its *p-1* value (gross);
* a period cut short by ``since`` or ``until`` is marked ``partial``: its NRR and GRR compare
  part of a period with a whole one, so they are left out (None), not shown as a drop;
* at risk: of the customers active at ``until`` (bought, not in an exit stage), those whose
  health state is ``at_risk``/``unhappy``, or without one, whose latest P(alive) is below the
  threshold. "Latest" is what CLM knew at ``until``: the scores and states stamped before it,
  or, when ``until`` is left to its default (the end of the customers' events), every score
  in the log, as the acquisition report's default value horizon and the overview's revenue at
  risk read them: scoring runs after the events it reads (a fit as of a day is stamped at
  that day's end, health as time passes), so a period ending just after the last event would
  otherwise drop the scores of the data it covers.

Revenue is the customers' own: an event CLM wrote (``by_customer``) never adds to it, nor does
an ``Order Completed`` CLM wrote make anyone a customer.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from clm.analytics.calendar import (
    DAY,
    Granularity,
    period_index,
    period_label,
    period_start,
    periods_between,
)
from clm.analytics.query import (
    Period,
    RetentionQuery,
    customer_filter,
    flag,
    iso,
    ratio,
    resolve_period,
    restrict,
    unindexed,
)
from clm.analytics.schemas import AtRisk, RetentionPeriod, RetentionReport
from clm.analytics.source import ReportSource, by_customer

BEFORE = -1  # the bucket of everything before ``since``
PURCHASE = "Order Completed"
DEFINITIONS = {
    "customer": "someone who bought (Order Completed); leads who never bought are not counted",
    "new": "customers whose first purchase is in the period",
    "active at start": "customers who bought before the period and are not in a churn stage",
    "churned": "customers who moved into a churn stage in the period; rate = churned / active",
    "at risk": "active customers at the end (bought, not in a churn stage) whose health state is "
    "at risk or unhappy, or without one, whose latest P(alive) is below the threshold; latest: "
    "stamped before until, or without until, the latest CLM has (scored after the last event)",
    "revenue": "the customers' own events' revenue (never an event CLM wrote)",
    "NRR/GRR": "revenue from last period's payers / their revenue last period (GRR caps each "
    "at last period's); not shown for a partial period",
}
YEAR = 365 * 86_400
PREDICTION = "Prediction Scored"
UNHEALTHY = ["at_risk", "unhappy"]  # the health states that count as at risk


def _in(column: ir.StringValue, names: list[str]) -> ir.BooleanValue:
    return column.isin(names) if names else ibis.literal(False)


def retention_events(events: ir.Table) -> ir.Table:
    """The only events this report reads: the customers' own purchases and revenue, and the
    prediction scores (whoever wrote them), with the columns it reads. The acquisition report
    reads the same from a snapshot source (its scores' ``clv_12m``: a score with either)."""
    own = by_customer(events) & ((events.name == PURCHASE) | events.revenue.notnull())
    scored = (events.name == PREDICTION) & (events.p_alive.notnull() | events.clv_12m.notnull())
    kept = events.filter(own | scored)
    return kept.select(
        "customer_id", "ts", "message_id", "name", "channel", "revenue", "p_alive", "clv_12m"
    )


def keep_retention_events(source: ReportSource) -> ir.Table:
    """``retention_events`` of the whole log, kept by a DuckDB or Spark source once computed:
    the report reads them three times (first purchases, revenue per period, the at-risk
    count), and at 1M customers they are 4M of the 20M events."""
    return source.derived("retention_events", lambda: retention_events(source.events))


def first_purchases(events: ir.Table) -> ir.Table:
    """``customer_id, fp``: each customer's first purchase of their own in ``events``."""
    bought = events.filter(events.name == PURCHASE, by_customer(events))
    return bought.group_by("customer_id").aggregate(fp=bought.ts.min())


def keep_first_purchases(source: ReportSource) -> ir.Table:
    """The whole log's ``first_purchases``, kept by a DuckDB or Spark source once computed: a
    customer's first purchase before any ``until`` is their first ever, if that is before it."""
    return source.derived("first_purchases", lambda: first_purchases(keep_retention_events(source)))


def churn_retention(source: ReportSource, query: RetentionQuery | None = None) -> RetentionReport:
    """Churn, reactivation and revenue retention per period, and customers at risk now."""
    query = query or RetentionQuery()
    period = resolve_period(source, query)
    customers = customer_filter(source, query, period)
    # read four times below: SQLite reads the log once, into an indexed temporary table
    events = source.reuse(restrict(keep_retention_events(source), customers), "customer_id")
    transitions = restrict(source.transitions, customers)
    exits = [s.name for s in source.model.stages if s.exit]
    grain = query.granularity
    ever = keep_first_purchases(source) if customers is None else first_purchases(events)
    buyers = _buyers(source, ever.filter(ever.fp < period.until), transitions, exits, period)
    by_bucket = _moves(source, buyers, transitions, exits, period, grain)
    revenue = _revenue(source, events, period, query)
    active = int(by_bucket.get(BEFORE, {}).get("delta") or 0)
    rows = []
    for index in periods_between(period.since, period.until, grain):
        found = by_bucket.get(index, {})
        churned = int(found.get("churned") or 0)
        money = revenue.get(index, (0.0, 0.0, 0.0, 0.0))
        partial = (
            period_start(index, grain) < period.since
            or period_start(index + 1, grain) > period.until
        )
        rows.append(
            RetentionPeriod(
                period=period_label(index, grain),
                start=iso(max(period_start(index, grain), period.since)),
                active_at_start=active, new=int(found.get("new") or 0),
                churned=churned if exits else None,
                churn_rate=ratio(churned, active) if exits else None,
                reactivated=int(found.get("reactivated") or 0) if exits else None,
                revenue=round(money[0], 6), revenue_base=round(money[1], 6), partial=partial,
                net_revenue_retention=None if partial else ratio(money[2], money[1]),
                gross_revenue_retention=None if partial else ratio(money[3], money[1]),
            )
        )  # fmt: skip
        active += int(found.get("delta") or 0)
    return RetentionReport(
        since=iso(period.since), until=iso(period.until), granularity=grain, churn_stages=exits,
        periods=rows, at_risk=_at_risk(source, events, buyers, period, query),
        definitions=DEFINITIONS,
    )  # fmt: skip


def _buyers(
    source: ReportSource, first: ir.Table, transitions: ir.Table, exits: list[str],
    period: Period,
) -> ir.Table:  # fmt: skip
    """One row per buyer (``first``: their first purchase before ``until``): ``customer_id``,
    ``fp``, ``exit_then`` and ``exit_now`` (1 if their stage at ``fp``, or just before
    ``until``, is an exit stage; 0 if not or if they had none). The moves and the at-risk
    count read it.

    Both stages come from one grouped pass over the buyers' stage history: the latest
    transition as one integer max (``ts * 2 + exit``), as in the funnel's journeys; a customer
    never has two transitions at the same instant, and a plain max works on every engine,
    where ``arg_max`` in SQLite must be a query's only aggregate.
    """
    first = source.reuse(first, join_key="customer_id")
    t = transitions.filter(transitions.ts < period.until)
    history = t.join(first, "customer_id")
    latest = history.ts * 2 + flag(_in(history.to_stage, exits))
    stages = history.group_by("customer_id").aggregate(
        then=latest.max(where=history.ts <= history.fp), now=latest.max()
    )
    joined = first.left_join(stages, "customer_id")
    per_buyer = joined.select(
        first.customer_id, first.fp,
        exit_then=flag((joined.then % 2).fill_null(0) != 0),
        exit_now=flag((joined.now % 2).fill_null(0) != 0),
    )  # fmt: skip
    return source.reuse(per_buyer, join_key="customer_id")


def _moves(
    source: ReportSource, buyers: ir.Table, transitions: ir.Table, exits: list[str],
    period: Period, grain: Granularity,
) -> dict[int, dict[str, int]]:  # fmt: skip
    """Per period bucket (``BEFORE`` for all before ``since``): the change in active customers
    (``delta``), ``churned``, ``reactivated`` and ``new``, counting buyers only.

    A customer becomes one at their first purchase: +1 to the active count if their stage then
    (the latest transition at or before it) is not an exit stage. After it, each transition
    changes the count by (alive after) - (alive before); transitions before it change nothing.
    The moves are summed per day first, so that the calendar arithmetic of the period runs on
    a few thousand days, not on every move (periods start at midnight UTC).
    """
    starts = buyers.select(
        ts=buyers.fp, delta=1 - buyers.exit_then,
        churn=ibis.literal(0, "int64"), back=ibis.literal(0, "int64"),
        new=ibis.literal(1, "int64"),
    )  # fmt: skip
    t = transitions.filter(transitions.ts < period.until)
    after = t.join(buyers, "customer_id")
    after = after.filter(after.ts > after.fp)
    # no stage before this move (a purchase before any stage): counted alive at the purchase
    was_alive = ~_in(after.from_stage.fill_null(""), exits)
    now_alive = ~_in(after.to_stage, exits)
    changes = after.select(
        ts=after.ts, delta=flag(now_alive) - flag(was_alive), churn=flag(was_alive & ~now_alive),
        back=flag(_in(after.from_stage, exits) & now_alive), new=ibis.literal(0, "int64"),
    )  # fmt: skip
    u = starts.union(changes, distinct=False)
    # null for the moves before ``since``: they all go into one bucket
    u = u.mutate(day=ibis.ifelse(u.ts < period.since, ibis.null("int64"), u.ts // DAY))
    days = u.group_by("day").aggregate(
        delta=u.delta.sum(), churned=u.churn.sum(), reactivated=u.back.sum(), new=u.new.sum()
    )
    days = days.mutate(
        bucket=ibis.ifelse(days.day.isnull(), BEFORE, period_index(days.day * DAY, grain))
    )
    moves = days.group_by("bucket").aggregate(
        delta=days.delta.sum(), churned=days.churned.sum(), reactivated=days.reactivated.sum(),
        new=days.new.sum(),
    )  # fmt: skip
    return {int(r["bucket"]): r for r in source.run(moves).to_pylist()}


def _revenue(
    source: ReportSource, events: ir.Table, period: Period, query: RetentionQuery
) -> dict[int, tuple[float, float, float, float]]:
    """Per period: (revenue, base from last period's payers, their revenue now, capped)."""
    paid = events.filter(
        events.revenue.notnull(), events.ts >= period.since, events.ts < period.until,
        by_customer(events),
    )  # fmt: skip
    per = paid.group_by(
        "customer_id", p=period_index(paid.ts, query.granularity)
    ).aggregate(rev=paid.revenue.sum())  # fmt: skip
    per = source.reuse(per, join_key="customer_id")  # read twice below (SQLite: indexed)
    totals = per.group_by("p").aggregate(revenue=per.rev.sum())
    before = per.filter(per.rev > 0)
    after = per.view()
    joined = before.left_join(
        after, [before.customer_id == after.customer_id, after.p == before.p + 1]
    )
    now = joined.rev_right.fill_null(0.0)
    kept = joined.group_by(p=joined.p + 1).aggregate(
        base=joined.rev.sum(),
        net=now.sum(),
        gross=ibis.cases((now < 0, 0.0), (now > joined.rev, joined.rev), else_=now).sum(),
    )
    result: dict[int, tuple[float, float, float, float]] = {}
    for row in source.run(totals).to_pylist():
        result[int(row["p"])] = (float(row["revenue"] or 0), 0.0, 0.0, 0.0)
    for row in source.run(kept).to_pylist():
        total = result.get(int(row["p"]), (0.0,))[0]
        result[int(row["p"])] = (total, float(row["base"]), float(row["net"]),
                                 float(row["gross"]))  # fmt: skip
    return result


def _at_risk(
    source: ReportSource, events: ir.Table, buyers: ir.Table, period: Period,
    query: RetentionQuery,
) -> AtRisk:  # fmt: skip
    """Alive customers at risk at ``until``: by their health state (``at_risk`` or
    ``unhappy``) when the health history gives them one, else by P(alive) below the
    threshold (their latest ``Prediction Scored``).

    Alive is the periods' "active" at ``until``: customers who bought (leads are not
    customers) and whose stage just before ``until`` is not an exit stage (or who have none).
    """
    alive = buyers.filter(buyers.exit_now == 0).select("customer_id")
    known = period.until if query.until is not None else None  # None: all CLM knows
    scored = events.filter(events.name == PREDICTION, events.p_alive.notnull())
    if known is not None:
        scored = scored.filter(scored.ts < known)
    scored = scored.mutate(
        rn=ibis.row_number().over(group_by="customer_id",
                                  order_by=[scored.ts.desc(), scored.message_id.desc()])
    )  # fmt: skip
    latest = scored.filter(scored.rn == 0).select("customer_id", "p_alive", "clv_12m")
    recent = events.filter(
        events.revenue.notnull(), events.ts >= period.until - YEAR, events.ts < period.until,
        by_customer(events),
    )  # fmt: skip
    revenue = recent.group_by("customer_id").aggregate(revenue=recent.revenue.sum())
    with_scores = alive.left_join(latest, "customer_id").select(
        alive.customer_id, latest.p_alive, latest.clv_12m
    )
    health = _health_states(source, known)
    with_health = with_scores.left_join(health, "customer_id").select(with_scores, health.state)
    joined = with_health.left_join(revenue, "customer_id").select(
        with_health.p_alive, with_health.clv_12m, with_health.state, revenue.revenue
    )
    risky = ibis.ifelse(
        joined.state.notnull(), _in(joined.state, UNHEALTHY), joined.p_alive < query.at_risk_below
    )
    summary = joined.aggregate(
        alive=joined.count(),
        scored=flag(joined.p_alive.notnull()).sum(),
        health=flag(joined.state.notnull()).sum(),
        customers=flag(risky).sum(),
        revenue=joined.revenue.sum(where=risky),
        clv=joined.clv_12m.sum(where=risky),
    )
    row = source.run(summary).to_pylist()[0]
    return AtRisk(
        threshold=query.at_risk_below, alive_customers=int(row["alive"] or 0),
        scored_customers=int(row["scored"] or 0), health_customers=int(row["health"] or 0),
        customers=int(row["customers"] or 0),
        revenue_12m=round(float(row["revenue"] or 0), 6), clv_12m=round(float(row["clv"] or 0), 6),
    )  # fmt: skip


def _health_states(source: ReportSource, until: int | None) -> ir.Table:
    """``customer_id, state``: each customer's health state just before ``until`` (None: their
    latest; none without a health history)."""
    if source.health is None:
        empty = source.transitions.filter(ibis.literal(False))
        return empty.select("customer_id", state=empty.to_stage)
    h = source.health
    h = h.filter(unindexed(h.ts) < until) if until is not None else h
    # the only aggregate: SQLite's arg_max is a bare column beside max(ts)
    return h.group_by("customer_id").aggregate(state=h.state.argmax(h.ts))
