"""Stage funnel and velocity: counts per stage at a date, cohort conversion between consecutive
stages, time to the next stage, drop-off, backward moves, re-entries and the flow of
transitions (Sankey-ready).

Funnel cohorts: a customer *reaches* stage *i* the first time they enter stage *i* or any later
(non-exit) stage, so a customer who skips a stage still counts as having passed it. The cohort
of step *i → i+1* is every customer who reached *i* in ``[since, until)``; converted are those
of them who reached *i+1* before ``until``. Conversion can never exceed the cohort.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import ceil

import ibis
import ibis.expr.types as ir

from clm.analytics.query import (
    FunnelQuery,
    Period,
    filtered,
    iso,
    latest_stage,
    ratio,
    resolve_period,
)
from clm.analytics.schemas import FlowLink, FunnelReport, FunnelStep, Reentry, StageCount
from clm.analytics.source import ReportSource

DAY = 86_400
NEW = "(new)"


def stage_position(column: ir.StringValue, stages: Sequence[str]) -> ir.IntegerValue:
    """The funnel position of a stage name; -1 for exit stages."""
    return ibis.cases(*[(column == name, i) for i, name in enumerate(stages)], else_=-1)


def nearest_rank(counts: Sequence[tuple[int, int]], q: float) -> int | None:
    """The q-quantile (nearest-rank method) of values given as (value, count) pairs."""
    total = sum(n for _, n in counts)
    if total == 0:
        return None
    rank, seen = max(1, ceil(q * total)), 0
    for value, n in sorted(counts):
        seen += n
        if seen >= rank:
            return value
    return None  # pragma: no cover - rank <= total


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
    counts = latest_stage(transitions, at).group_by("stage").aggregate(customers=ibis._.count())
    found = {r["stage"]: int(r["customers"]) for r in source.run(counts).to_pylist()}
    steps = _steps(source, transitions, stages, period)
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
        steps=steps, backward=backward, reentries=_reentries(source, transitions, period),
        flow_nodes=nodes + [s.name for s in model.stages], flow=flow,
    )  # fmt: skip


def _steps(
    source: ReportSource, transitions: ir.Table, stages: Sequence[str], period: Period
) -> list[FunnelStep]:
    if len(stages) < 2:
        return []
    t = transitions.filter(transitions.ts < period.until)
    t = t.mutate(position=stage_position(t.to_stage, stages))
    reach = t.group_by("customer_id").aggregate(
        **{f"r{i}": t.ts.min(where=t.position >= i) for i in range(len(stages))}
    )
    entered = {
        i: reach[f"r{i}"].between(period.since, period.until - 1) for i in range(len(stages))
    }
    sums = reach.aggregate(
        **{f"entered{i}": entered[i].sum() for i in range(len(stages) - 1)},
        **{f"converted{i}": (entered[i] & reach[f"r{i + 1}"].notnull()).sum()
           for i in range(len(stages) - 1)},
    )  # fmt: skip
    totals = source.run(sums).to_pylist()[0]
    parts = [
        reach.filter(entered[i], reach[f"r{i + 1}"].notnull())
        .mutate(seconds=reach[f"r{i + 1}"] - reach[f"r{i}"])
        .group_by("seconds")
        .aggregate(n=ibis._.count())
        .mutate(step=ibis.literal(i, "int64"))
        for i in range(len(stages) - 1)
    ]
    union = parts[0].union(*parts[1:], distinct=False) if len(parts) > 1 else parts[0]
    durations: dict[int, list[tuple[int, int]]] = {}
    for row in source.run(union).to_pylist():
        durations.setdefault(int(row["step"]), []).append((int(row["seconds"]), int(row["n"])))
    steps = []
    for i in range(len(stages) - 1):
        cohort = int(totals[f"entered{i}"] or 0)
        converted = int(totals[f"converted{i}"] or 0)
        times = durations.get(i, [])
        steps.append(
            FunnelStep(
                from_stage=stages[i], to_stage=stages[i + 1], entered=cohort,
                converted=converted, dropped=cohort - converted,
                conversion_rate=ratio(converted, cohort),
                drop_off_rate=ratio(cohort - converted, cohort),
                median_days=_days(nearest_rank(times, 0.5)),
                p90_days=_days(nearest_rank(times, 0.9)),
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


def _reentries(source: ReportSource, transitions: ir.Table, period: Period) -> list[Reentry]:
    t = transitions.filter(transitions.ts < period.until)
    t = t.mutate(visit=ibis.row_number().over(group_by=["customer_id", "to_stage"], order_by=t.ts))
    again = t.filter(t.visit > 0, t.ts >= period.since)
    counts = again.group_by(stage=again.to_stage).aggregate(
        reentries=ibis._.count(), customers=again.customer_id.nunique()
    )
    found = {r["stage"]: r for r in source.run(counts).to_pylist()}
    return [
        Reentry(stage=s.name, reentries=int(found[s.name]["reentries"]),
                customers=int(found[s.name]["customers"]))
        for s in source.model.stages
        if s.name in found
    ]  # fmt: skip
