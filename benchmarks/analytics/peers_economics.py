"""The obvious pandas acquisition economics and feedback reports, written from the reports'
definitions (``clm.analytics.economics``, ``clm.analytics.feedback``), not their code.

Checked against the reports: per channel the spend, new customers, CAC, CLV, CLV:CAC and
payback month; per survey and month, stage or RFM segment the answers, mean score and NPS
(CSAT, CES).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from peers import PREDICTION, PURCHASE, PeerLog, month, rfm_segments

DIRECT, NO_PURCHASE, MONTH_30 = "(direct)", "(no purchase)", 30 * 86_400
SURVEYS = {"NPS Survey Answered": "nps", "CSAT Survey Answered": "csat",
           "CES Survey Answered": "ces"}  # fmt: skip
ANSWERED, KINDS = "survey_answered", ("nps", "csat", "ces")


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 6) if denominator else None


def acquisition_window(log: PeerLog) -> tuple[int, int]:
    """The customers' span widened to the whole spend periods it touches."""
    since, until = log.period()
    s = log.spend
    touching = s[(s.period_start < until) & (s.period_end > since)]
    if len(touching):
        since = min(since, int(touching.period_start.min()))
        until = max(until, int(touching.period_end.max()))
    return since, until


def spend_per_channel(log: PeerLog, since: int, until: int) -> pd.Series:
    """Spend in the window per channel, pro rata for partly covered spend periods."""
    s = log.spend
    overlap = np.minimum(s.period_end, until) - np.maximum(s.period_start, since)
    share = overlap / (s.period_end - s.period_start)
    inside = overlap > 0
    return (s.amount * share)[inside].groupby(s.channel[inside]).sum()


def payback(revenue: pd.Series, customers: int, cac: float | None) -> int | None:
    """The first 30-day month by which cumulative revenue per customer reaches CAC."""
    if cac is None or not customers or revenue.empty:
        return None
    months = revenue.reindex(range(int(revenue.index.max()) + 1), fill_value=0.0)
    reached = np.flatnonzero(months.cumsum().to_numpy() / customers >= cac - 1e-9)
    return int(reached[0]) + 1 if len(reached) else None


def acquisition(log: PeerLog) -> dict[str, tuple[Any, ...]]:
    """Per channel: spend, new customers, CAC, CLV 12m, CLV:CAC, payback months."""
    since, until = acquisition_window(log)
    mine = log.mine
    bought = mine[(mine.name == PURCHASE) & (mine.ts < until)]
    acquired = bought.groupby("customer_id").ts.min()
    acquired = acquired[acquired >= since].rename("acquired")
    touches = mine[(mine.ts < until) & mine.channel.notna()].join(acquired, on="customer_id",
                                                                  how="inner")  # fmt: skip
    touches = touches[touches.ts <= touches.acquired]
    first = touches.sort_values(["customer_id", "ts", "message_id"]).drop_duplicates("customer_id")
    channel = first.set_index("customer_id").channel.astype(object).reindex(acquired.index)
    e = log.events
    scores = e[(e.name == PREDICTION) & e.clv_12m.notna()].sort_values(["ts", "message_id"])
    clv = scores.drop_duplicates("customer_id", keep="last").set_index("customer_id").clv_12m
    new = pd.DataFrame({"acquired": acquired, "value": channel.fillna(DIRECT),
                        "clv": clv.reindex(acquired.index)})  # fmt: skip
    paid = mine[mine.revenue.notna()][["customer_id", "ts", "revenue"]]
    paid = paid.join(new, on="customer_id", how="inner")
    paid = paid[paid.ts >= paid.acquired]
    paid_month = (paid.ts - paid.acquired) // MONTH_30
    revenue = paid.revenue.groupby([paid.value, paid_month]).sum()
    costs = spend_per_channel(log, since, until)
    result = {}
    for value in sorted(set(new.value) | set(costs.index)):
        mine_new = new[new.value == value]
        customers, cost = len(mine_new), costs.get(value)
        cac = round(cost / customers, 6) if cost is not None and customers else None
        clv_mean = _ratio(float(mine_new.clv.sum()), int(mine_new.clv.notna().sum()))
        months = revenue.xs(value) if value in revenue.index.get_level_values(0) else pd.Series()
        result[value] = (
            round(float(cost), 6) if cost is not None else None, customers, cac, clv_mean,
            _ratio(clv_mean, cac) if clv_mean is not None and cac else None,
            payback(months, customers, cac),
        )  # fmt: skip
    return result


def survey_answers(log: PeerLog, since: int, until: int) -> pd.DataFrame:
    """Scored answers in the period, each response once: its latest revision (then time,
    then message id); answers without a response id count one by one."""
    e = log.events
    scored = e[e.score.notna() & (e.ts < until)]
    name = scored.name.astype(object)
    survey = name.map(SURVEYS).where(name != ANSWERED, scored.survey_type)
    scored = scored.assign(survey=survey, revision=scored.revision.fillna(1))
    scored = scored[scored.survey.isin(KINDS)]
    by_id = (scored.name == ANSWERED) & scored.response_id.notna()
    scored["response"] = np.where(by_id, "r:" + scored.response_id.astype(str),
                                  "m:" + scored.message_id.astype(str))  # fmt: skip
    order = ["customer_id", "response", "revision", "ts", "message_id"]
    latest = scored.sort_values(order).drop_duplicates(["customer_id", "response"], keep="last")
    return latest[latest.ts >= since]


def _metrics(answers: pd.DataFrame, key: pd.Series) -> dict[str, tuple[int, float, float]]:
    result = {}
    for (survey, value), scores in answers.score.groupby([answers.survey, key]):
        n = len(scores)
        figure = {
            "nps": 100 * (int((scores >= 9).sum()) - int((scores <= 6).sum())) / n,
            "csat": 100 * int((scores >= 4).sum()) / n,
            "ces": float(scores.mean()),
        }[survey]
        result[f"{survey} {value}"] = (n, round(float(scores.mean()), 6), round(figure, 6))
    return result


def feedback(log: PeerLog) -> dict[str, Any]:
    """NPS, CSAT and CES per month, per stage at the answer and per RFM segment at the end."""
    since, until = log.period()
    answers = survey_answers(log, since, until)
    index = month(answers.ts)
    label = (index // 12).astype(str) + "-" + (index % 12 + 1).astype(str).str.zfill(2)
    t = log.transitions[log.transitions.ts < until].sort_values(["customer_id", "ts"])
    stays = t.assign(end=t.groupby("customer_id").ts.shift(-1))
    staged = answers.merge(stays[["customer_id", "ts", "end", "to_stage"]], on="customer_id",
                           suffixes=("", "_start"))  # fmt: skip
    staged = staged[(staged.ts_start <= staged.ts) & (staged.end.isna() | (staged.ts < staged.end))]
    segment = rfm_segments(log, until).segment
    segments = answers.customer_id.map(segment).fillna(NO_PURCHASE)
    return {
        "over_time": _metrics(answers, label),
        "by_stage": _metrics(staged, staged.to_stage),
        "by_segment": _metrics(answers, segments),
    }
