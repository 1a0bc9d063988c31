"""Touchpoint attribution of stage transitions, for every pair of stages.

A *journey* is one stay of a customer in a stage that overlaps the period. It *converts* to
stage T when the stay ends by moving to T within the period; otherwise (it moved elsewhere, or
is still going at ``until``) it does not. Its touchpoints are the customer's events with a value
of the dimension (channel, campaign, or the touchpoint type = event name; never CLM's own events:
``source.by_customer``) in the lookback window, ordered by time.

The lookback window is the same for journeys that converted and those that did not: it ends at
the journey's last event, and reaches ``lookback_days`` back from there. A journey that ended by
a move (to T or elsewhere) ends at the move; one still going at ``until`` ends at the customer's
last touchpoint before ``until``, or at its start if that is later (the stay's entry is then its
last event). So a customer still in the stage keeps the touches that led up to their latest
activity, as a converter keeps those that led up to the move, rather than losing every touch
older than ``lookback_days`` before the report's end. Time decay is measured from the same end.

Rule-based credits (first-touch, last-touch, linear, time-decay with a half-life,
position-based 40/20/40) share each transition's single credit among its touchpoints; a
transition without touchpoints credits ``(direct)``. So per pair the credits of every model sum
to the number of transitions. Markov removal effects and Shapley values
(``attribution_models``) also read the journeys that did not convert, as do the per-channel
conversion rates, so a channel's effect is not just its volume.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import ibis
import ibis.expr.types as ir

from clm.analytics.attribution_models import (
    CONVERSION,
    NULL,
    START,
    markov_credits,
    shapley_values,
)
from clm.analytics.query import AttributionQuery, Period, filtered, iso, ratio, resolve_period
from clm.analytics.schemas import AttributionReport, ChannelCredit, PairAttribution
from clm.analytics.source import ReportSource, by_customer
from clm.lifecycle.engines import quiet_engines

DAY = 86_400
DIRECT = "(direct)"
RULES = ("first_touch", "last_touch", "linear", "time_decay", "position_based")
DEFINITIONS = {
    "journey": "one stay of a customer in the from-stage; it converts when it ends by moving "
    "to the to-stage in the period",
    "touchpoint": "an event of the customer's own with a channel (campaign, name); never an "
    "event CLM wrote (system channel) or a model's score",
    "lookback": "touchpoints up to lookback_days before the journey's last event: the move, "
    "or for a customer still in the stage their last touchpoint (the same for both)",
    "(direct)": "journeys without a touchpoint in the window",
}


def stays(transitions: ir.Table, until: int) -> ir.Table:
    """``customer_id, stage, start_ts, end_ts, next_stage``: each stay in a stage before
    ``until`` (end and next stage null while it lasts)."""
    t = transitions.filter(transitions.ts < until)
    w = ibis.window(group_by="customer_id", order_by=t.ts)
    return t.select(
        "customer_id", stage=t.to_stage, start_ts=t.ts, end_ts=t.ts.lead().over(w),
        next_stage=t.to_stage.lead().over(w),
    )  # fmt: skip


def last_touches(touches: ir.Table) -> ir.Table:
    """``customer_id, last_touch``: each customer's latest touchpoint (before ``until``)."""
    return touches.group_by("customer_id").aggregate(last_touch=touches.touch_ts.max())


def journeys(transitions: ir.Table, period: Period, stage: str | None, last: ir.Table) -> ir.Table:
    """The journeys of the period with their ``end``: the move, or for a stay still going at
    ``until`` its last event (the module docstring; ``last`` is ``last_touches``);
    ``outcome`` null when it did not move."""
    s = stays(transitions, period.until)
    s = s.filter(s.start_ts < period.until, s.end_ts.isnull() | (s.end_ts >= period.since))
    if stage is not None:
        s = s.filter(s.stage == stage)
    s = s.left_join(last, "customer_id").select(s, last.last_touch)
    moved = s.end_ts.notnull()
    latest = ibis.greatest(s.start_ts, s.last_touch.fill_null(s.start_ts))
    return s.select(
        "customer_id", "stage", "start_ts",
        outcome=ibis.ifelse(moved, s.next_stage, ibis.null("string")),
        end=ibis.ifelse(moved, s.end_ts, latest),
    )  # fmt: skip


def _touches(events: ir.Table, dimension: str, until: int) -> ir.Table:
    # the cast drops PostgreSQL's varchar(16) of ``type``, which a cached COALESCE would keep
    typed = events.name.fill_null(events.type.cast("string"))
    value = typed if dimension == "type" else events[dimension]
    e = events.filter(events.ts < until, by_customer(events))  # CLM's own events never count
    e = e.select("customer_id", touch_ts=e.ts, touch_id=e.message_id, value=value)
    return e.filter(e.value.notnull())


def _journey_touches(j: ir.Table, touches: ir.Table, query: AttributionQuery) -> ir.Table:
    lookback = int(query.lookback_days * DAY)
    jt = j.join(touches, "customer_id")
    jt = jt.filter(jt.touch_ts >= jt.end - lookback, jt.touch_ts <= jt.end)
    w = ibis.window(group_by=["customer_id", "start_ts"], order_by=[jt.touch_ts, jt.touch_id])
    whole = ibis.window(group_by=["customer_id", "start_ts"])
    decay = (
        -(jt.end - jt.touch_ts).cast("float64") * (math.log(2) / (query.half_life_days * DAY))
    ).exp()
    # one select, so the engine partitions the joined rows once for all four windows
    return jt.mutate(pos=ibis.row_number().over(w), n=jt.touch_ts.count().over(whole),
                     prev=jt.value.lag().over(w), decay=decay,
                     decay_sum=decay.sum().over(whole))  # fmt: skip


def _rule_credits(jt: ir.Table) -> dict[str, ir.Value]:
    first, last = jt.pos == 0, jt.pos == jt.n - 1
    n = jt.n.cast("float64")
    middle = ibis.ifelse(jt.n > 2, 0.2 / (n - 2), 0.0)
    position = ibis.cases((jt.n == 1, 1.0), (jt.n == 2, 0.5), (first | last, 0.4), else_=middle)
    shares = {
        "first_touch": ibis.ifelse(first, 1.0, 0.0),
        "last_touch": ibis.ifelse(last, 1.0, 0.0),
        "linear": 1.0 / n,
        "time_decay": jt.decay / jt.decay_sum,
        "position_based": position,
    }
    # PostgreSQL reads 1.0 as NUMERIC (and Ibis drops a cast to what it thinks is a double
    # already): multiplying by a DOUBLE 1 makes every share a double on every engine
    unit = n / n
    return {rule: (share * unit).sum() for rule, share in shares.items()}


def _journey_tables(
    source: ReportSource, query: AttributionQuery, period: Period
) -> tuple[ir.Table, ir.Table]:
    """The journeys and their touchpoints, computed once into temporary tables: every
    aggregate reads them (without that, SQLite re-ran the join for each query: 14 minutes for
    the 2,000-customer demo, against 4 s on DuckDB)."""
    events, transitions = filtered(source, query, period)
    with quiet_engines():  # caching runs the query now, with the engine's own warnings
        touches = _touches(events, query.dimension, period.until)
        # an indexed temporary table on SQLite: joined as a grouped subquery, its planner
        # re-aggregated the touches per stay (81 s of CPU on the demo)
        last = source.reuse(last_touches(touches), join_key="customer_id")
        j = journeys(transitions, period, query.from_stage, last).cache()
        return j, _journey_touches(j, touches, query).cache()


KEYS = ["stage", "outcome"]


def _paths(source: ReportSource, j: ir.Table, jt: ir.Table) -> _Collected:
    """What the Markov chains need: journeys and touched journeys per (stage, outcome), and the
    counts of consecutive touchpoints and of last touchpoints."""
    run = source.run
    totals = run(j.group_by(KEYS).aggregate(journeys=ibis._.count())).to_pylist()
    touched_j = jt.filter(jt.pos == 0).group_by(KEYS).aggregate(touched=ibis._.count())
    touched = {(r["stage"], r["outcome"]): int(r["touched"]) for r in run(touched_j).to_pylist()}
    steps = jt.group_by(*KEYS, "value", prev=jt.prev.fill_null(START)).aggregate(n=ibis._.count())
    ends = jt.filter(jt.pos == jt.n - 1).group_by([*KEYS, "value"]).aggregate(n=ibis._.count())
    return _Collected(totals, touched, run(steps).to_pylist(), run(ends).to_pylist())


def markov_attribution(
    source: ReportSource, query: AttributionQuery | None = None
) -> dict[tuple[str, str], dict[str, float]]:
    """Markov removal-effect credits alone, per (from, to) stage pair: the same numbers as the
    ``markov`` column of ``attribution``, without the rule-based models and Shapley values."""
    query = query or AttributionQuery()
    period = resolve_period(source, query)
    data = _paths(source, *_journey_tables(source, query, period))
    credits = {}
    for stage, target in data.pairs():
        if query.to_stage is None or target == query.to_stage:
            counts = _markov_counts(data, stage, target)
            moves = data.totals.get((stage, target), 0)
            credits[(stage, target)] = markov_credits(counts, moves, _channels(counts))[0]
    return credits


def attribution(source: ReportSource, query: AttributionQuery | None = None) -> AttributionReport:
    """Credits per channel (campaign, type) for each pair of stages with moves in the period."""
    query = query or AttributionQuery()
    period = resolve_period(source, query)
    j, jt = _journey_tables(source, query, period)
    run = source.run
    data = _paths(source, j, jt)
    converted = jt.filter(jt.outcome.notnull())
    credits = run(converted.group_by([*KEYS, "value"]).aggregate(**_rule_credits(converted)))
    with quiet_engines():  # read twice below
        reach = jt.select(*KEYS, "value", "customer_id", "start_ts").distinct().cache()
    reach_rows = run(reach.group_by([*KEYS, "value"]).aggregate(journeys=ibis._.count()))
    values = sorted({r["value"] for r in reach_rows.to_pylist()})
    masks: list[dict[str, Any]] | None = None
    if not values:  # no journey has a touchpoint (the direct ones are counted apart)
        masks = []
    elif len(values) + 1 <= query.max_shapley_channels:
        bit = ibis.cases(*[(reach.value == v, 1 << i) for i, v in enumerate(values)], else_=0)
        per_journey = (
            reach.mutate(bit=bit)
            .group_by([*KEYS, "customer_id", "start_ts"])
            .aggregate(mask=ibis._.bit.sum())
        )
        masks = run(per_journey.group_by([*KEYS, "mask"]).aggregate(n=ibis._.count())).to_pylist()
    data.credits, data.reach = credits.to_pylist(), reach_rows.to_pylist()
    data.masks, data.values = masks, values
    pairs = [
        _pair(data, stage, target)
        for stage, target in data.pairs()
        if query.to_stage is None or target == query.to_stage
    ]
    return AttributionReport(
        since=iso(period.since), until=iso(period.until), dimension=query.dimension,
        lookback_days=query.lookback_days, half_life_days=query.half_life_days, pairs=pairs,
        definitions=DEFINITIONS,
    )  # fmt: skip


class _Collected:
    """What the engine returned, grouped by (stage, outcome); the Markov chains need the
    first four, the other models the rest."""

    def __init__(self, totals: list[dict[str, Any]], touched: dict[tuple[str, str | None], int],
                 steps: list[dict[str, Any]], ends: list[dict[str, Any]]) -> None:  # fmt: skip
        self.totals = {(r["stage"], r["outcome"]): int(r["journeys"]) for r in totals}
        self.touched, self.steps, self.ends = touched, steps, ends
        self.credits: list[dict[str, Any]] = []
        self.reach: list[dict[str, Any]] = []
        self.masks: list[dict[str, Any]] | None = None
        self.values: list[str] = []

    def pairs(self) -> list[tuple[str, str]]:
        order = sorted({(s, o) for s, o in self.totals if o is not None})
        return order

    def journeys_of(self, stage: str) -> int:
        return sum(n for (s, _), n in self.totals.items() if s == stage)

    def direct(self, stage: str, outcome: str | None) -> int:
        return self.totals.get((stage, outcome), 0) - self.touched.get((stage, outcome), 0)


def _pair(data: _Collected, stage: str, target: str) -> PairAttribution:
    moves = data.totals.get((stage, target), 0)
    all_journeys = data.journeys_of(stage)
    rows: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(RULES, 0.0))
    for r in data.credits:
        if (r["stage"], r["outcome"]) == (stage, target):
            rows[r["value"]] = {rule: float(r[rule]) for rule in RULES}
    direct_moves = data.direct(stage, target)
    if direct_moves:
        rows[DIRECT] = dict.fromkeys(RULES, float(direct_moves))
    reach: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in data.reach:
        if r["stage"] == stage:
            reach[r["value"]][0] += int(r["journeys"])
            reach[r["value"]][1] += int(r["journeys"]) if r["outcome"] == target else 0
    direct_all = sum(data.direct(s, o) for (s, o) in data.totals if s == stage)
    if direct_all:
        reach[DIRECT] = [direct_all, direct_moves]
    counts = _markov_counts(data, stage, target)
    channels = sorted(reach)
    markov, effects = markov_credits(counts, moves, channels)
    shapley = _shapley(data, stage, target)
    return PairAttribution(
        from_stage=stage, to_stage=target, transitions=moves, journeys=all_journeys,
        conversion_rate=ratio(moves, all_journeys), shapley_available=shapley is not None,
        channels=[
            ChannelCredit(
                value=c, **{rule: round(rows[c][rule], 6) for rule in RULES},
                markov=round(markov[c], 6) + 0.0, removal_effect=round(effects[c], 6) + 0.0,
                shapley=round(shapley.get(c, 0.0), 6) if shapley is not None else None,
                journeys=reach[c][0], converted_journeys=reach[c][1],
                conversion_rate=ratio(reach[c][1], reach[c][0]),
            )
            for c in channels
        ],
    )  # fmt: skip


def _markov_counts(data: _Collected, stage: str, target: str) -> dict[tuple[str, str], float]:
    """Counts of consecutive states of the journeys out of ``stage``; a journey ends in
    conversion when it moved to ``target``, and one without touchpoints is ``(direct)``."""
    counts: dict[tuple[str, str], float] = defaultdict(float)
    for r in data.steps:
        if r["stage"] == stage:
            counts[(r["prev"], r["value"])] += int(r["n"])
    for r in data.ends:
        if r["stage"] == stage:
            end = CONVERSION if r["outcome"] == target else NULL
            counts[(r["value"], end)] += int(r["n"])
    for (s, o), _ in data.totals.items():
        if s == stage and (n := data.direct(s, o)):
            counts[(START, DIRECT)] += n
            counts[(DIRECT, CONVERSION if o == target else NULL)] += n
    return counts


def _channels(counts: dict[tuple[str, str], float]) -> list[str]:
    """The touchpoint values (and ``(direct)``) that appear in a chain."""
    return sorted({state for pair in counts for state in pair} - {START, CONVERSION, NULL})


def _shapley(data: _Collected, stage: str, target: str) -> dict[str, float] | None:
    if data.masks is None:
        return None
    by_set: dict[frozenset[str], float] = defaultdict(float)
    for r in data.masks:
        if (r["stage"], r["outcome"]) == (stage, target):
            members = frozenset(v for i, v in enumerate(data.values) if int(r["mask"]) >> i & 1)
            by_set[members] += int(r["n"])
    if direct := data.direct(stage, target):
        by_set[frozenset([DIRECT])] += direct
    return shapley_values(by_set)
