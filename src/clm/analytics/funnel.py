"""Stage funnel and velocity: counts per stage at a date, cohort conversion between consecutive
stages, time to the next stage, drop-off, backward moves, re-entries and the flow of
transitions (Sankey-ready).

Funnel cohorts: a customer *reaches* stage *i* the first time they enter stage *i* or any later
(non-exit) stage, so a customer who skips a stage still counts as having passed it. The cohort
of step *i → i+1* is every customer who reached *i* in ``[since, until)``; converted are those
of them who reached *i+1* before ``until``. Conversion can never exceed the cohort.

Velocity (median and p90 days from *i* to *i+1*) counts only the customers who went through
stage *i* itself: those who first reached *i* by entering it, not by skipping it. A skipped stage
was not passed in 0 days; it was not passed at all (``timed`` says how many were measured).
"""

from __future__ import annotations

from collections.abc import Sequence
from math import ceil

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import numpy as np

from clm.analytics.query import (
    FunnelQuery,
    Period,
    filtered,
    flag,
    iso,
    latest_stage,
    ratio,
    resolve_period,
)
from clm.analytics.schemas import FlowLink, FunnelReport, FunnelStep, Reentry, StageCount
from clm.analytics.source import ReportSource
from clm.lifecycle.engines import quiet_engines

DEFINITIONS = {
    "entered": "customers who first reached the stage (or a later one) in the period",
    "converted": "of them, those who reached the next stage (or a later one) by the end",
    "median/p90 days": "time to the next stage of the customers who went through the stage "
    "itself ('timed'); a customer who skipped it is not counted as passing it in 0 days",
}

DAY = 86_400
NEW = "(new)"


def stage_position(column: ir.StringValue, stages: Sequence[str]) -> ir.IntegerValue:
    """The funnel position of a stage name; -1 for exit stages."""
    return ibis.cases(*[(column == name, i) for i, name in enumerate(stages)], else_=-1)


def nearest_rank(counts: Sequence[tuple[int, int]], q: float) -> int | None:
    """The q-quantile (nearest-rank method) of values given as (value, count) pairs."""
    values = np.array([v for v, _ in counts], dtype=np.int64)
    return _nearest_rank(values, np.array([n for _, n in counts], dtype=np.int64), q)


def _nearest_rank(values: np.ndarray, counts: np.ndarray, q: float) -> int | None:
    """``nearest_rank`` on arrays: the engine returns millions of distinct durations."""
    total = int(counts.sum())
    if total == 0:
        return None
    order = np.argsort(values, kind="stable")
    seen = np.cumsum(counts[order])
    return int(values[order][np.searchsorted(seen, max(1, ceil(q * total)))])


def _days(seconds: int | None) -> float | None:
    return None if seconds is None else round(seconds / DAY, 4)


def funnel(source: ReportSource, query: FunnelQuery | None = None) -> FunnelReport:
    """Stage funnel and velocity over ``[since, until)``; stage counts at ``at``."""
    query = query or FunnelQuery()
    period = resolve_period(source, query)
    at = int(query.at.timestamp()) if query.at else period.until
    _, transitions = filtered(source, query, period)
    model = source.model
    stages = [s.name for s in model.stages if not s.exit]
    everyone = [s.name for s in model.stages]
    # One pass over the stage history, one row per customer; every figure below reads it.
    with quiet_engines():  # caching runs the query now, with the engine's own warnings
        journey = customer_journeys(transitions, stages, everyone, period).cache()
    found = _stage_counts(source, journey, transitions, everyone, at, period)
    steps = _steps(source, journey, stages, [everyone.index(s) for s in stages], period)
    in_period = transitions.filter(transitions.ts >= period.since, transitions.ts < period.until)
    flow = _flow(source, in_period)
    position = {name: i for i, name in enumerate(stages)}
    backward = [
        f for f in flow
        if position.get(f.source, -1) > position.get(f.target, -1) >= 0
    ]  # fmt: skip
    nodes = [NEW] if any(f.source == NEW for f in flow) else []
    return FunnelReport(
        since=iso(period.since), until=iso(period.until), at=iso(at), model=model.name,
        counts=[StageCount(stage=s.name, customers=found.get(s.name, 0)) for s in model.stages],
        steps=steps, backward=backward,
        reentries=_reentries(source, journey, everyone, period.since),
        flow_nodes=nodes + [s.name for s in model.stages], flow=flow, definitions=DEFINITIONS,
    )  # fmt: skip


def customer_journeys(
    transitions: ir.Table, stages: Sequence[str], everyone: Sequence[str], period: Period
) -> ir.Table:
    """One row per customer with a transition before ``until``: ``r{i}``, when they first
    reached funnel stage *i* (or one beyond it); ``first{j}``, when they first entered stage
    *j*; ``entries{j}``, how often they entered it in the period; and ``last``, their stage
    just before ``until`` (its index in ``everyone``; -1 for a stage the model lacks)."""
    t = transitions.filter(transitions.ts < period.until)
    position = stage_position(t.to_stage, stages)
    in_period = t.ts >= period.since
    # the latest transition's stage as one integer max (ts * K + index + 1): a customer never
    # has two transitions at the same instant, and a plain max works on every engine, where
    # arg_max in SQLite must be a query's only aggregate (``latest_stage``)
    width = len(everyone) + 1
    latest = (t.ts * width + stage_position(t.to_stage, everyone) + 1).max()
    return t.group_by("customer_id").aggregate(
        **{f"r{i}": _maybe(t.ts.min(where=position >= i)) for i in range(len(stages))},
        **{f"first{j}": _maybe(t.ts.min(where=t.to_stage == name))
           for j, name in enumerate(everyone)},
        **{f"entries{j}": flag(in_period & (t.to_stage == name)).sum()
           for j, name in enumerate(everyone)},
        last=(latest % width - 1).cast("int64"),
    )  # fmt: skip


def _stage_counts(
    source: ReportSource, journey: ir.Table, transitions: ir.Table, everyone: Sequence[str],
    at: int, period: Period,
) -> dict[str, int]:  # fmt: skip
    """Customers per stage just before ``at``: read from the journeys when ``at`` is their
    ``until`` (one pass over the history less), else from the history."""
    if at == period.until:
        counts = journey.group_by("last").aggregate(customers=ibis._.count())
        return {
            everyone[int(r["last"])]: int(r["customers"])
            for r in source.run(counts).to_pylist()
            if 0 <= int(r["last"]) < len(everyone)
        }
    latest = latest_stage(transitions, at)
    counts = latest.group_by("stage").aggregate(customers=ibis._.count())
    return {r["stage"]: int(r["customers"]) for r in source.run(counts).to_pylist()}


def _maybe(value: ir.IntegerValue) -> ir.IntegerValue:
    """A filtered minimum is null when no row matches; Ibis types it as never null, and the
    cached table (SQLite) then refuses the nulls."""
    return value.cast(dt.Int64(nullable=True))


def _steps(
    source: ReportSource,
    reach: ir.Table,
    stages: Sequence[str],
    index: Sequence[int],
    period: Period,
) -> list[FunnelStep]:
    if len(stages) < 2:
        return []
    entered = {
        i: reach[f"r{i}"].between(period.since, period.until - 1) for i in range(len(stages))
    }
    sums = reach.aggregate(
        **{f"entered{i}": flag(entered[i]).sum() for i in range(len(stages) - 1)},
        **{f"converted{i}": flag(entered[i] & reach[f"r{i + 1}"].notnull()).sum()
           for i in range(len(stages) - 1)},
    )  # fmt: skip
    totals = source.run(sums).to_pylist()[0]
    parts = [
        # went through stage i itself: first reached it by entering it (not by skipping it)
        reach.filter(
            entered[i], reach[f"r{i + 1}"].notnull(), reach[f"first{index[i]}"] == reach[f"r{i}"]
        )
        .mutate(seconds=reach[f"r{i + 1}"] - reach[f"r{i}"])
        .group_by("seconds")
        .aggregate(n=ibis._.count())
        .mutate(step=ibis.literal(i, "int64"))
        for i in range(len(stages) - 1)
    ]
    union = parts[0].union(*parts[1:], distinct=False) if len(parts) > 1 else parts[0]
    durations = source.run(union)
    step_of = durations["step"].to_numpy()
    seconds, n = durations["seconds"].to_numpy(), durations["n"].to_numpy()
    steps = []
    for i in range(len(stages) - 1):
        cohort = int(totals[f"entered{i}"] or 0)
        converted = int(totals[f"converted{i}"] or 0)
        mine = step_of == i
        times, counts = seconds[mine].astype(np.int64), n[mine].astype(np.int64)
        steps.append(
            FunnelStep(
                from_stage=stages[i], to_stage=stages[i + 1], entered=cohort,
                converted=converted, dropped=cohort - converted,
                conversion_rate=ratio(converted, cohort),
                drop_off_rate=ratio(cohort - converted, cohort),
                timed=int(counts.sum()), median_days=_days(_nearest_rank(times, counts, 0.5)),
                p90_days=_days(_nearest_rank(times, counts, 0.9)),
            )
        )  # fmt: skip
    return steps


def _flow(source: ReportSource, in_period: ir.Table) -> list[FlowLink]:
    links = in_period.group_by(
        source=in_period.from_stage.fill_null(NEW), target=in_period.to_stage
    ).aggregate(value=ibis._.count())
    rows = source.run(links).to_pylist()
    return sorted(
        (FlowLink(source=r["source"], target=r["target"], value=int(r["value"])) for r in rows),
        key=lambda f: (-f.value, f.source, f.target),
    )


def _reentries(
    source: ReportSource, journey: ir.Table, everyone: Sequence[str], since: int
) -> list[Reentry]:
    """Entries into a stage in the period other than a customer's first entry into it."""
    again: dict[str, ir.Value] = {}
    for j in range(len(everyone)):
        entries, first = journey[f"entries{j}"], journey[f"first{j}"]
        # the first entry is one of the period's entries unless it came before the period
        repeat = entries - flag(first >= since)
        again[f"reentries{j}"] = repeat.sum()
        again[f"customers{j}"] = flag(repeat > 0).sum()
    row = source.run(journey.aggregate(**again)).to_pylist()[0]
    return [
        Reentry(stage=name, reentries=int(row[f"reentries{j}"] or 0),
                customers=int(row[f"customers{j}"] or 0))
        for j, name in enumerate(everyone)
        if row[f"reentries{j}"]
    ]  # fmt: skip
