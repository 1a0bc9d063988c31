"""The obvious pandas implementation of the funnel, churn and retention, cohort and RFM reports,
for the demo run of ``run.py`` (``--demo``): each reads the log from the database with one query
(``load``, timed apart), computes the report's figures with the default parameters, and is
checked equal to CLM's own report before either is timed.

Written from the reports' definitions, not from their code: states instead of +1/-1 moves
(churn), ``merge_asof`` for the stage at an instant, ``rank(method="min")`` for RFM scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import text

from clm.store.engine import Database

OWN_CHANNEL, MODEL_EVENTS = "system", ("Prediction Scored",)
PURCHASE, DAY = "Order Completed", 86_400
SEGMENT_RULES = [  # (R test, FM test, segment), first match wins, as in the RFM report's text
    (lambda r: r == 5, lambda fm: fm >= 4, "Champions"),
    (lambda r: r >= 3, lambda fm: fm >= 4, "Loyal"),
    (lambda r: r <= 2, lambda fm: fm == 5, "Can't lose them"),
    (lambda r: r <= 2, lambda fm: fm >= 3, "At risk"),
    (lambda r: r == 5, lambda fm: fm == 1, "New"),
    (lambda r: r == 4, lambda fm: fm == 1, "Promising"),
    (lambda r: r >= 4, lambda fm: fm >= 0, "Potential loyalists"),
    (lambda r: r == 3, lambda fm: fm == 3, "Need attention"),
    (lambda r: r == 3, lambda fm: fm >= 0, "About to sleep"),
    (lambda r: r == 2, lambda fm: fm >= 0, "Hibernating"),
]


@dataclass
class DemoLog:
    events: pd.DataFrame  # customer_id, ts, name, channel, revenue (CLM's lifecycle outputs out)
    transitions: pd.DataFrame  # customer_id, ts, from_stage, to_stage of the active model
    stages: list[str]  # funnel stages in order (not exit)
    exits: list[str]

    @property
    def mine(self) -> pd.DataFrame:
        """The customers' own events: not on the system channel, not a model's score."""
        e = self.events
        return e[(e.channel.fillna("") != OWN_CHANNEL) & ~e.name.fillna("").isin(MODEL_EVENTS)]

    def period(self) -> tuple[int, int]:
        """The reports' default period: the customers' own events, until just after the last."""
        mine = self.mine
        return int(mine.ts.min()), int(mine.ts.max()) + 1


def load(db: Database, workspace_id: int, definition_id: int, stages: list[str],
         exits: list[str]) -> DemoLog:  # fmt: skip
    """One query per table, as a pandas user would write it."""
    events = pd.read_sql(
        text(
            "SELECT customer_id, ts, name, channel, revenue FROM customer_events "
            "WHERE workspace_id = :ws AND NOT (coalesce(channel, '') = 'system' AND "
            "coalesce(name, '') IN ('lifecycle_stage_changed', 'health_state_changed'))"
        ),
        db.engine, params={"ws": workspace_id},
    )  # fmt: skip
    transitions = pd.read_sql(
        text("SELECT customer_id, ts, from_stage, to_stage FROM stage_transitions "
             "WHERE definition_id = :d"),
        db.engine, params={"d": definition_id},
    )  # fmt: skip
    return DemoLog(events, transitions, stages, exits)


def _nearest_rank(values: np.ndarray, q: float) -> float | None:
    if len(values) == 0:
        return None
    return float(np.sort(values)[max(1, ceil(q * len(values))) - 1])


def funnel(log: DemoLog) -> dict[str, Any]:
    """Stage counts at the end, and per step: entered, converted, median days (went through)."""
    since, until = log.period()
    t = log.transitions[log.transitions.ts < until]
    position = t.to_stage.map({s: i for i, s in enumerate(log.stages)}).fillna(-1)
    reach = pd.DataFrame(
        {i: t.ts.where(position >= i).groupby(t.customer_id).min() for i in range(len(log.stages))}
    )
    first = {s: t.ts.where(t.to_stage == s).groupby(t.customer_id).min() for s in log.stages}
    steps = []
    for i in range(len(log.stages) - 1):
        entered = reach[i].between(since, until - 1)
        converted = entered & reach[i + 1].notna()
        through = converted & (first[log.stages[i]].reindex(reach.index) == reach[i])
        seconds = (reach[i + 1] - reach[i])[through].to_numpy()
        median = _nearest_rank(seconds, 0.5)
        steps.append((int(entered.sum()), int(converted.sum()),
                      None if median is None else round(median / DAY, 4)))  # fmt: skip
    latest = t.sort_values("ts").groupby("customer_id").to_stage.last()
    return {"counts": latest.value_counts().to_dict(), "steps": steps}


def _month(ts: pd.Series) -> pd.Series:
    moment = pd.to_datetime(ts, unit="s", utc=True)
    return moment.dt.year * 12 + moment.dt.month - 1


def _month_start(index: int) -> int:
    return int(pd.Timestamp(year=index // 12, month=index % 12 + 1, day=1, tz="UTC").timestamp())


def churn_retention(log: DemoLog) -> list[tuple[Any, ...]]:
    """Per month: active at start, new, churned, reactivated, revenue, NRR, GRR."""
    since, until = log.period()
    mine = log.mine
    first = mine[(mine.name == PURCHASE) & (mine.ts < until)].groupby("customer_id").ts.min()
    moves = log.transitions[log.transitions.ts < until].sort_values("ts")
    moves = moves.join(first.rename("fp"), on="customer_id")
    after = moves[moves.fp.notna() & (moves.ts > moves.fp)]
    churn = (~after.from_stage.isin(log.exits)) & after.to_stage.isin(log.exits)
    back = after.from_stage.isin(log.exits) & ~after.to_stage.isin(log.exits)
    paid = mine[mine.revenue.notna() & (mine.ts >= since) & (mine.ts < until)]
    per = paid.groupby(["customer_id", _month(paid.ts).rename("month")]).revenue.sum()
    buyers = first.rename("fp").reset_index().sort_values("fp")
    rows = []
    lo_month, hi_month = (
        int(_month(pd.Series([since])).iloc[0]),
        int(_month(pd.Series([until - 1])).iloc[0]),
    )
    for month in range(lo_month, hi_month + 1):
        start, end = max(_month_start(month), since), min(_month_start(month + 1), until)
        partial = _month_start(month) < since or _month_start(month + 1) > until
        before = buyers[buyers.fp < start].assign(at=start)
        history = moves[["customer_id", "ts", "to_stage"]].rename(columns={"ts": "at"})
        stage = pd.merge_asof(
            before.sort_values("at"), history, on="at", by="customer_id", allow_exact_matches=False
        )
        active = int((~stage.to_stage.isin(log.exits)).sum())
        inside = (after.ts >= start) & (after.ts < end)
        new = int(((first >= start) & (first < end)).sum())
        now = (
            per.xs(month, level="month")
            if month in per.index.get_level_values(1)
            else pd.Series(dtype=float)
        )
        last = (
            per.xs(month - 1, level="month")
            if month - 1 in per.index.get_level_values(1)
            else pd.Series(dtype=float)
        )
        payers = last[last > 0]
        kept = now.reindex(payers.index, fill_value=0.0)
        base = float(payers.sum())
        nrr = round(float(kept.sum()) / base, 6) if base and not partial else None
        grr = (
            round(float(np.minimum(kept.clip(lower=0), payers).sum()) / base, 6)
            if base and not partial
            else None
        )
        rows.append((active, new, int((churn & inside).sum()), int((back & inside).sum()),
                     round(float(now.sum()), 2), nrr, grr))  # fmt: skip
    return rows


def cohorts(log: DemoLog, max_age: int = 24) -> list[tuple[Any, ...]]:
    """Per acquisition month: size, share with a purchase at each age, revenue per customer."""
    since, until = log.period()
    mine = log.mine[log.mine.ts < until]
    mine = mine.assign(month=_month(mine.ts))
    acquired = mine.groupby("customer_id").agg(start=("ts", "min"), cohort=("month", "min"))
    acquired = acquired[(acquired.start >= since) & (acquired.start < until)]
    joined = mine.join(acquired, on="customer_id", how="inner")
    joined["age"] = joined.month - joined.cohort
    last_month = int(_month(pd.Series([until - 1])).iloc[0])
    joined = joined[(joined.age <= max_age) & (joined.month <= last_month)]
    sizes = acquired.groupby("cohort").size()
    buyers = joined[joined.name == PURCHASE].groupby(["cohort", "age"]).customer_id.nunique()
    revenue = joined.groupby(["cohort", "age"]).revenue.sum()
    result = []
    for cohort, size in sizes.items():
        width = min(max_age, last_month - int(cohort)) + 1
        ages = pd.MultiIndex.from_product([[cohort], range(width)])
        active = (buyers.reindex(ages, fill_value=0) / size).round(6).tolist()
        money = (revenue.reindex(ages, fill_value=0.0).cumsum() / size).round(2).tolist()
        label = f"{int(cohort) // 12}-{int(cohort) % 12 + 1:02d}"
        result.append((label, int(size), active, money))
    return result


def rfm(log: DemoLog) -> dict[str, tuple[int, float]]:
    """Customers and revenue per RFM segment at the end of the log."""
    _, until = log.period()
    mine = log.mine
    bought = mine[(mine.name == PURCHASE) & (mine.ts < until)]
    per = bought.groupby("customer_id").agg(
        last=("ts", "max"), frequency=("ts", "size"), monetary=("revenue", "sum")
    )
    n = len(per)
    score = {k: 1 + ((per[k].rank(method="min") - 1) * 5 // n).astype(int)
             for k in ("last", "frequency", "monetary")}  # fmt: skip
    r, fm = score["last"], (score["frequency"] + score["monetary"] + 1) // 2
    segment = pd.Series("Lost", index=per.index)
    undecided = pd.Series(True, index=per.index)
    for r_test, fm_test, name in SEGMENT_RULES:
        hit = undecided & r_test(r) & fm_test(fm)
        segment[hit], undecided = name, undecided & ~hit
    grouped = per.monetary.groupby(segment)
    return {str(k): (int(v), round(float(grouped.sum()[k]), 2)) for k, v in grouped.size().items()}
