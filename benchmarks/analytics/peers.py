"""The obvious pandas implementation of the funnel, churn and retention, cohort and RFM reports,
and the log every pandas peer reads (``PeerLog``): from the store with one query per table
(``load``, the demo run of ``run.py``) or from the benchmark's Parquet files (``read_files``).
Each peer computes its report's figures with the default parameters and is checked equal to
CLM's own report before either is timed; attribution, acquisition and feedback are in
``peers_attribution.py`` and ``peers_economics.py``.

Written from the reports' definitions, not from their code: states instead of +1/-1 moves
(churn), ``merge_asof`` for the stage at an instant, ``rank(method="min")`` for RFM scores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from math import ceil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import text

from clm.store.engine import Database

OWN_CHANNEL, MODEL_EVENTS = "system", ("Prediction Scored",)
PURCHASE, PREDICTION, DAY, YEAR = "Order Completed", "Prediction Scored", 86_400, 365 * 86_400
SURVEY_NAMES = ("NPS Survey Answered", "CSAT Survey Answered", "CES Survey Answered",
                "survey_answered")  # fmt: skip
NUMBERS, TEXTS = ("score", "clv_12m", "p_alive", "revision"), ("survey_type", "response_id")
UNHEALTHY = ("at_risk", "unhappy")
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
EVENT_COLUMNS = ["customer_id", "ts", "message_id", "name", "type", "channel", "campaign",
                 "revenue", "properties"]  # fmt: skip


@dataclass
class PeerLog:
    """The log as a pandas user holds it (CLM's lifecycle outputs out, as in every report)."""

    events: pd.DataFrame  # EVENT_COLUMNS, the JSON properties parsed where a report reads them
    transitions: pd.DataFrame  # customer_id, ts, from_stage, to_stage of the active model
    stages: list[str]  # funnel stages in order (not exit)
    exits: list[str]
    spend: pd.DataFrame  # channel, campaign, period_start, period_end, amount
    health: pd.DataFrame  # customer_id, ts, state of the active scorecard (maybe empty)

    @cached_property
    def mine(self) -> pd.DataFrame:
        """The customers' own events: not on the system channel, not a model's score."""
        e = self.events
        return e[e.channel.ne(OWN_CHANNEL).fillna(True) & ~e.name.isin(MODEL_EVENTS)]

    def period(self) -> tuple[int, int]:
        """The reports' default period: the customers' own events, until just after the last."""
        mine = self.mine
        return int(mine.ts.min()), int(mine.ts.max()) + 1


def with_properties(events: pd.DataFrame) -> pd.DataFrame:
    """The properties the reports read, parsed from the JSON text of the events that carry
    them (survey answers, scores): ``json.loads`` per row, as a pandas user would."""
    carrying = events.name.isin([*SURVEY_NAMES, PREDICTION])
    parsed = pd.DataFrame(
        [json.loads(p) if isinstance(p, str) else {} for p in events.properties[carrying]],
        index=events.index[carrying],
    )
    events = events.drop(columns="properties")
    for key in NUMBERS:
        found = parsed[key] if key in parsed else pd.Series(dtype=float)
        events[key] = pd.to_numeric(found, errors="coerce").reindex(events.index)
    for key in TEXTS:
        found = parsed[key] if key in parsed else pd.Series(dtype=object)
        events[key] = found.astype(object).where(found.notna(), None).reindex(events.index)
    return events


def load(db: Database, workspace_id: int, definition_id: int, stages: list[str],
         exits: list[str]) -> PeerLog:  # fmt: skip
    """One query per table, as a pandas user would write it."""
    columns = ", ".join(EVENT_COLUMNS)
    events = pd.read_sql(
        text(
            f"SELECT {columns} FROM customer_events "  # constant columns
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
    spend = pd.read_sql(
        text("SELECT channel, campaign, period_start, period_end, amount FROM marketing_spend "
             "WHERE workspace_id = :ws"),
        db.engine, params={"ws": workspace_id},
    )  # fmt: skip
    health = pd.read_sql(
        text("SELECT h.customer_id, h.ts, h.state FROM health_history h "
             "JOIN lifecycle_definitions d ON d.id = h.definition_id "
             "WHERE d.workspace_id = :ws AND d.kind = 'health' AND d.active"),
        db.engine, params={"ws": workspace_id},
    )  # fmt: skip
    return _read(PeerLog(with_properties(events), transitions, stages, exits, spend, health))


def read_files(events: Path, transitions: pa.Table, stages: list[str], exits: list[str],
               spend: pd.DataFrame) -> PeerLog:  # fmt: skip
    """The benchmark's Parquet log (short texts as categories, ids as Arrow strings: 20M
    events in ~1.5 GiB) and its stage history."""
    table = pq.read_table(events, columns=EVENT_COLUMNS)
    for name in ("name", "type", "channel", "campaign"):  # categories
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, table.column(name).dictionary_encode())
    frame = table.to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow")}.get)
    health = pd.DataFrame({"customer_id": [], "ts": [], "state": []})
    log = PeerLog(with_properties(frame), transitions.to_pandas(), stages, exits, spend, health)
    return _read(log)


def _read(log: PeerLog) -> PeerLog:
    """The log with the customers' own events set apart, as part of reading it."""
    assert len(log.mine) <= len(log.events)
    return log


def nearest_rank(values: np.ndarray, q: float) -> float | None:
    if len(values) == 0:
        return None
    return float(np.sort(values)[max(1, ceil(q * len(values))) - 1])


def funnel(log: PeerLog) -> dict[str, Any]:
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
        median = nearest_rank(seconds, 0.5)
        steps.append((int(entered.sum()), int(converted.sum()),
                      None if median is None else round(median / DAY, 4)))  # fmt: skip
    latest = t.sort_values("ts").groupby("customer_id").to_stage.last()
    return {"counts": latest.value_counts().to_dict(), "steps": steps}


def month(ts: pd.Series) -> pd.Series:
    moment = pd.to_datetime(ts, unit="s", utc=True)
    return moment.dt.year * 12 + moment.dt.month - 1


def month_start(index: int) -> int:
    return int(pd.Timestamp(year=index // 12, month=index % 12 + 1, day=1, tz="UTC").timestamp())


def stage_at(customers: pd.Series, at: int, transitions: pd.DataFrame) -> pd.Series:
    """Each customer's stage just before ``at`` (NaN without one), by ``merge_asof``."""
    wanted = pd.DataFrame({"customer_id": customers.to_numpy(), "at": at})
    history = transitions[["customer_id", "ts", "to_stage"]].rename(columns={"ts": "at"})
    found = pd.merge_asof(wanted, history.sort_values("at"), on="at", by="customer_id",
                          allow_exact_matches=False)  # fmt: skip
    return found.set_index("customer_id").to_stage


def churn_retention(log: PeerLog) -> dict[str, Any]:
    """Per month: active at start, new, churned, reactivated, revenue, NRR, GRR; and the
    customers at risk at the end."""
    since, until = log.period()
    mine = log.mine
    first = mine[(mine.name == PURCHASE) & (mine.ts < until)].groupby("customer_id").ts.min()
    moves = log.transitions[log.transitions.ts < until].sort_values("ts")
    moves = moves.join(first.rename("fp"), on="customer_id")
    after = moves[moves.fp.notna() & (moves.ts > moves.fp)]
    churn = (~after.from_stage.isin(log.exits)) & after.to_stage.isin(log.exits)
    back = after.from_stage.isin(log.exits) & ~after.to_stage.isin(log.exits)
    paid = mine[mine.revenue.notna() & (mine.ts >= since) & (mine.ts < until)]
    per = paid.groupby(["customer_id", month(paid.ts).rename("month")]).revenue.sum()
    by_month = {m: s.droplevel("month") for m, s in per.groupby(level="month")}
    rows = []
    first_month, last_month = (int(m) for m in month(pd.Series([since, until - 1])))
    for index in range(first_month, last_month + 1):
        start, end = max(month_start(index), since), min(month_start(index + 1), until)
        partial = month_start(index) < since or month_start(index + 1) > until
        stage = stage_at(first[first < start].index.to_series(), start, moves)
        active = int((~stage.isin(log.exits)).sum())
        inside = (after.ts >= start) & (after.ts < end)
        new = int(((first >= start) & (first < end)).sum())
        now = by_month.get(index, pd.Series(dtype=float))
        last = by_month.get(index - 1, pd.Series(dtype=float))
        payers = last[last > 0]
        kept = now.reindex(payers.index, fill_value=0.0)
        base = float(payers.sum())
        shown = base and not partial
        nrr = round(float(kept.sum()) / base, 6) if shown else None
        capped = float(np.minimum(kept.clip(lower=0), payers).sum())
        grr = round(capped / base, 6) if shown else None
        rows.append((active, new, int((churn & inside).sum()), int((back & inside).sum()),
                     round(float(now.sum()), 6), nrr, grr))  # fmt: skip
    return {"periods": rows, "at_risk": at_risk(log, first, moves, until)}


def at_risk(log: PeerLog, first: pd.Series, moves: pd.DataFrame, until: int) -> tuple[Any, ...]:
    """Alive buyers at ``until`` (not in an exit stage); at risk by health state, else by their
    latest P(alive) below 0.5: (alive, scored, with health, at risk, revenue 12m, CLV 12m).
    The peers run the default period, so "latest" is every score and state CLM has, also those
    stamped after the last event (a fit as of the last day is stamped at its end)."""
    stage = stage_at(first.index.to_series(), until, moves)
    alive = stage[~stage.isin(log.exits)].index
    e = log.events
    scores = e[(e.name == PREDICTION) & e.p_alive.notna()]
    latest = scores.sort_values(["ts", "message_id"]).drop_duplicates("customer_id", keep="last")
    latest = latest.set_index("customer_id")
    h = log.health.sort_values("ts")
    state = h.groupby("customer_id").state.last().reindex(alive)
    p_alive, clv = latest.p_alive.reindex(alive), latest.clv_12m.reindex(alive)
    mine = log.mine
    recent = mine[mine.revenue.notna() & (mine.ts >= until - YEAR) & (mine.ts < until)]
    revenue = recent.groupby("customer_id").revenue.sum().reindex(alive)
    risky = np.where(state.notna(), state.isin(UNHEALTHY), p_alive < 0.5)
    return (len(alive), int(p_alive.notna().sum()), int(state.notna().sum()), int(risky.sum()),
            round(float(revenue[risky].sum()), 6), round(float(clv[risky].sum()), 6))  # fmt: skip


def cohorts(log: PeerLog, max_age: int = 24) -> list[tuple[Any, ...]]:
    """Per acquisition month: size, share with a purchase at each age, revenue per customer."""
    since, until = log.period()
    mine = log.mine[log.mine.ts < until]
    mine = mine.assign(month=month(mine.ts))
    acquired = mine.groupby("customer_id").agg(start=("ts", "min"), cohort=("month", "min"))
    acquired = acquired[(acquired.start >= since) & (acquired.start < until)]
    joined = mine.join(acquired, on="customer_id", how="inner")
    joined["age"] = joined.month - joined.cohort
    last_month = int(month(pd.Series([until - 1])).iloc[0])
    joined = joined[(joined.age <= max_age) & (joined.month <= last_month)]
    sizes = acquired.groupby("cohort").size()
    buyers = joined[joined.name == PURCHASE].groupby(["cohort", "age"]).customer_id.nunique()
    revenue = joined.groupby(["cohort", "age"]).revenue.sum()
    result = []
    for cohort, size in sizes.items():
        width = min(max_age, last_month - int(cohort)) + 1
        ages = pd.MultiIndex.from_product([[cohort], range(width)])
        active = (buyers.reindex(ages, fill_value=0) / size).round(6).tolist()
        money = (revenue.reindex(ages, fill_value=0.0).cumsum() / size).round(6).tolist()
        label = f"{int(cohort) // 12}-{int(cohort) % 12 + 1:02d}"
        result.append((label, int(size), active, money))
    return result


def rfm_segments(log: PeerLog, until: int) -> pd.DataFrame:
    """Per buyer before ``until``: last purchase, frequency, monetary, R, FM and segment.
    Monetary is ranked in cents (the report's definition: equal spends rank equal)."""
    mine = log.mine
    bought = mine[(mine.name == PURCHASE) & (mine.ts < until)]
    per = bought.groupby("customer_id").agg(
        last=("ts", "max"), frequency=("ts", "size"), monetary=("revenue", "sum")
    )
    per["cents"] = per.monetary.round(2)
    n = len(per)
    score = {k: 1 + ((per[k].rank(method="min") - 1) * 5 // n).astype(int)
             for k in ("last", "frequency", "cents")}  # fmt: skip
    per["r"], per["fm"] = score["last"], (score["frequency"] + score["cents"] + 1) // 2
    per["segment"] = "Lost"
    undecided = pd.Series(True, index=per.index)
    for r_test, fm_test, name in SEGMENT_RULES:
        hit = undecided & r_test(per.r) & fm_test(per.fm)
        per.loc[hit, "segment"], undecided = name, undecided & ~hit
    return per


def rfm(log: PeerLog) -> dict[str, Any]:
    """Customers and revenue per RFM segment at the end of the log, and the R x FM grid."""
    _, until = log.period()
    per = rfm_segments(log, until)
    grouped = per.monetary.groupby(per.segment)
    segments = {str(k): (int(v), round(float(grouped.sum()[k]), 6))
                for k, v in grouped.size().items()}  # fmt: skip
    grid = per.groupby(["r", "fm"]).size()
    return {"segments": segments,
            "grid": {f"{r}/{fm}": int(c) for (r, fm), c in grid.items()}}  # fmt: skip
