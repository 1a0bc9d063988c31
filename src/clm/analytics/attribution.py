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

from collections import defaultdict

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from clm.analytics.attribution_models import (
    CONVERSION,
    NULL,
    START,
    markov_credits,
    shapley_values,
)
from clm.analytics.journey_paths import RULES, PathCounts, Stays, Touchpoints, path_counts
from clm.analytics.query import (
    AttributionQuery,
    Period,
    customer_filter,
    iso,
    ratio,
    resolve_period,
    restrict,
)
from clm.analytics.schemas import AttributionReport, ChannelCredit, PairAttribution
from clm.analytics.source import ReportSource, by_customer

DAY = 86_400
DIRECT = "(direct)"
DEFINITIONS = {
    "journey": "one stay of a customer in the from-stage; it converts when it ends by moving "
    "to the to-stage in the period",
    "touchpoint": "an event of the customer's own with a channel (campaign, name); never an "
    "event CLM wrote (system channel) or a model's score",
    "lookback": "touchpoints up to lookback_days before the journey's last event: the move, "
    "or for a customer still in the stage their last touchpoint (the same for both)",
    "(direct)": "journeys without a touchpoint in the window",
}


def stays(transitions: ir.Table, until: int | None) -> ir.Table:
    """``customer_id, stage, start_ts, end_ts, next_stage``: each stay in a stage before
    ``until`` (every stay for None; end and next stage null while it lasts)."""
    t = transitions if until is None else transitions.filter(transitions.ts < until)
    w = ibis.window(group_by="customer_id", order_by=t.ts)
    return t.select(
        "customer_id", stage=t.to_stage, start_ts=t.ts, end_ts=t.ts.lead().over(w),
        next_stage=t.to_stage.lead().over(w),
    )  # fmt: skip


def _touches(source: ReportSource, events: ir.Table, dimension: str,
             until: int | None) -> ir.Table:  # fmt: skip
    """``customer_id, touch_ts, touch_id, value``: the customers' touchpoints (before
    ``until``, if given), sorted by customer and time (``Touchpoints`` orders ties by message
    id)."""
    # the cast drops PostgreSQL's varchar(16) of ``type``, which a cached COALESCE would keep
    typed = events.name.fill_null(events.type.cast("string"))
    value = typed if dimension == "type" else events[dimension]
    # CLM's own events never count
    e = events.filter(by_customer(events))
    if until is not None:
        e = e.filter(source.scan_ts(e) < until)
    e = e.select("customer_id", touch_ts=e.ts, touch_id=e.message_id, value=value)
    return e.filter(e.value.notnull()).order_by(["customer_id", "touch_ts"])


def _journeys(transitions: ir.Table, period: Period | None, stage: str | None) -> ir.Table:
    """The stays that overlap the period (``next_stage`` and ``end_ts`` null while it lasts;
    every stay of the history for no period)."""
    s = stays(transitions, period.until if period else None)
    if period is not None:
        s = s.filter(s.start_ts < period.until, s.end_ts.isnull() | (s.end_ts >= period.since))
    if stage is not None:
        s = s.filter(s.stage == stage)
    # nullable: Ibis types a lead() as never null, and Arrow would refuse the nulls
    return s.select(
        "customer_id", "start_ts", "stage",
        end_ts=s.end_ts.cast(dt.Int64(nullable=True)),
        next_stage=s.next_stage.cast(dt.String(nullable=True)),
    )  # fmt: skip


def keep_attribution_inputs(source: ReportSource, dimension: str = "channel") -> None:
    """Read now the whole log's touchpoints (of ``dimension``) and stays, which a DuckDB or
    Spark source keeps for its attribution reports, instead of in the first one."""
    _kept_touches(source, dimension)
    _kept_stays(source)


def _kept_touches(source: ReportSource, dimension: str) -> Touchpoints:
    expr = _touches(source, source.events, dimension, None)
    return source.kept(_touches_name(dimension), lambda: Touchpoints.from_arrow(source.run(expr)))


def kept_touchpoints(source: ReportSource, dimension: str) -> Touchpoints | None:
    """The whole log's touchpoints of ``dimension`` if this source keeps them already (a
    snapshot source after ``prepare_source`` or an attribution report), else None."""
    kept = source.kept_already(_touches_name(dimension))
    return kept if isinstance(kept, Touchpoints) else None


def _touches_name(dimension: str) -> str:
    return f"attribution touchpoints {dimension}"


def _kept_stays(source: ReportSource) -> Stays:
    return source.kept(
        "attribution stays",
        lambda: Stays.from_arrow(source.run(_journeys(source.transitions, None, None))),
    )


def _path_counts(source: ReportSource, query: AttributionQuery, period: Period,
                 shapley: int | None) -> PathCounts:  # fmt: skip
    """Two flat reads (touchpoints sorted, stays), then every count in NumPy
    (``journey_paths``): the engine does not join journeys to touchpoints, which cost most
    of the report (a range join and four windows over its rows).

    A snapshot source (DuckDB, Spark) reads the whole log's touchpoints and stays once and
    keeps them sorted; each report cuts them to its period in NumPy. With a customer filter,
    or on a SQL source (live tables), they are read for the report's period and customers.
    """
    customers = customer_filter(source, query, period)
    if source.snapshot and customers is None:
        touches = _kept_touches(source, query.dimension)
        stays_of = _kept_stays(source)
    else:
        events = restrict(source.events, customers)
        transitions = restrict(source.transitions, customers)
        touches = Touchpoints.from_arrow(
            source.run(_touches(source, events, query.dimension, period.until))
        )
        stays_of = Stays.from_arrow(source.run(_journeys(transitions, period, query.from_stage)))
    journeys = stays_of.journeys(period.since, period.until, query.from_stage)
    return path_counts(touches.before(period.until), journeys, query.lookback_days,
                       query.half_life_days, shapley)  # fmt: skip


def markov_attribution(
    source: ReportSource, query: AttributionQuery | None = None
) -> dict[tuple[str, str], dict[str, float]]:
    """Markov removal-effect credits alone, per (from, to) stage pair: the same numbers as the
    ``markov`` column of ``attribution``, without the rule-based models and Shapley values."""
    query = query or AttributionQuery()
    period = resolve_period(source, query)
    data = _Collected(_path_counts(source, query, period, None))
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
    data = _Collected(_path_counts(source, query, period, query.max_shapley_channels))
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
    """What the models read, grouped by (stage, outcome); the Markov chains need totals,
    touched, steps and ends, the other models the rest."""

    def __init__(self, counts: PathCounts) -> None:
        self.totals = {(r["stage"], r["outcome"]): int(r["journeys"]) for r in counts.totals}
        self.touched, self.steps, self.ends = counts.touched, counts.steps, counts.ends
        self.credits, self.reach = counts.credits, counts.reach
        self.masks, self.values = counts.masks, counts.values

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
