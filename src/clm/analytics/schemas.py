"""What the reports return: plain pydantic models, each able to lay itself out as tables
(``tables()``) for the terminal and CSV; JSON is ``model_dump(mode="json")``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class ReportTable(BaseModel):
    """One table of a report: a title, column names and rows."""

    title: str
    columns: list[str]
    rows: list[list[Any]]


class Report(BaseModel):
    report: str
    since: datetime
    until: datetime
    # What each figure counts, in words: shown under the tables and in the JSON.
    definitions: dict[str, str] = {}

    def tables(self) -> list[ReportTable]:
        raise NotImplementedError


# --- funnel ---------------------------------------------------------------------------------


class StageCount(BaseModel):
    stage: str
    customers: int


class FunnelStep(BaseModel):
    """Customers who first reached ``from_stage`` (or beyond) in the period, and how many of them
    went on to ``to_stage`` (or beyond) before ``until``; times in days."""

    from_stage: str
    to_stage: str
    entered: int
    converted: int
    dropped: int
    conversion_rate: float | None
    drop_off_rate: float | None
    timed: int = 0  # converted customers who went through from_stage itself (the durations)
    median_days: float | None
    p90_days: float | None


class FlowLink(BaseModel):
    source: str
    target: str
    value: int


class Reentry(BaseModel):
    stage: str
    reentries: int
    customers: int


class FunnelReport(Report):
    report: str = "funnel"
    model: str
    at: datetime
    counts: list[StageCount]
    steps: list[FunnelStep]
    backward: list[FlowLink]
    reentries: list[Reentry]
    flow_nodes: list[str]
    flow: list[FlowLink]

    def tables(self) -> list[ReportTable]:
        return [
            ReportTable(title=f"Customers per stage at {self.at:%Y-%m-%d}",
                        columns=["stage", "customers"],
                        rows=[[c.stage, c.customers] for c in self.counts]),
            ReportTable(
                title="Funnel (cohorts entering each stage in the period)",
                columns=["from", "to", "entered", "converted", "dropped", "conversion",
                         "median days", "p90 days"],
                rows=[[s.from_stage, s.to_stage, s.entered, s.converted, s.dropped,
                       s.conversion_rate, s.median_days, s.p90_days] for s in self.steps],
            ),
            ReportTable(title="Backward moves", columns=["from", "to", "transitions"],
                        rows=[[b.source, b.target, b.value] for b in self.backward]),
            ReportTable(title="Re-entries", columns=["stage", "re-entries", "customers"],
                        rows=[[r.stage, r.reentries, r.customers] for r in self.reentries]),
            ReportTable(title="Flow (all transitions in the period)",
                        columns=["from", "to", "transitions"],
                        rows=[[f.source, f.target, f.value] for f in self.flow]),
        ]  # fmt: skip


# --- churn and retention --------------------------------------------------------------------


class RetentionPeriod(BaseModel):
    period: str
    start: datetime
    active_at_start: int
    new: int
    churned: int | None
    churn_rate: float | None
    reactivated: int | None
    revenue: float
    revenue_base: float
    net_revenue_retention: float | None
    gross_revenue_retention: float | None
    partial: bool = False  # cut short by since/until: NRR and GRR are not shown


class AtRisk(BaseModel):
    """Customers not churned at ``until`` who are at risk: by their health state (at risk or
    unhappy) when they have one, otherwise by their latest P(alive) below ``threshold``."""

    threshold: float
    alive_customers: int
    scored_customers: int  # with a P(alive)
    health_customers: int = 0  # with a health state (which then decides)
    customers: int
    revenue_12m: float
    clv_12m: float


class RetentionReport(Report):
    report: str = "churn_retention"
    granularity: str
    churn_stages: list[str]
    periods: list[RetentionPeriod]
    at_risk: AtRisk

    def tables(self) -> list[ReportTable]:
        r = self.at_risk
        return [
            ReportTable(
                title=f"Churn and retention per {self.granularity} "
                      f"(churned = {', '.join(self.churn_stages) or 'no churn stage'})",
                columns=["period", "active at start", "new", "churned", "churn rate",
                         "reactivated", "revenue", "NRR", "GRR"],
                rows=[[p.period, p.active_at_start, p.new, p.churned, p.churn_rate,
                       p.reactivated, p.revenue, p.net_revenue_retention,
                       p.gross_revenue_retention] for p in self.periods],
            ),
            ReportTable(
                title=f"At risk at {self.until:%Y-%m-%d} (P(alive) < {r.threshold})",
                columns=["alive", "scored", "at risk", "revenue 12m", "CLV 12m"],
                rows=[[r.alive_customers, r.scored_customers, r.customers, r.revenue_12m,
                       r.clv_12m]],
            ),
        ]  # fmt: skip


# --- cohorts --------------------------------------------------------------------------------


class CohortRow(BaseModel):
    """One cohort; list index = months since the cohort's month (0 = that month)."""

    cohort: str
    customers: int
    active_share: list[float]
    repeat_purchase_rate: list[float]
    revenue_per_customer: list[float]


class CohortReport(Report):
    report: str = "cohorts"
    cohort_by: str
    returning_event: str = "Order Completed"
    cohorts: list[CohortRow]

    def tables(self) -> list[ReportTable]:
        width = max((len(c.active_share) for c in self.cohorts), default=0)
        columns = ["cohort", "customers", *[f"m{k}" for k in range(width)]]

        def grid(values: str) -> list[list[Any]]:
            return [[c.cohort, c.customers, *getattr(c, values)] for c in self.cohorts]

        return [
            ReportTable(title=f"Share active: {self.returning_event} ({self.cohort_by} cohorts)",
                        columns=columns,
                        rows=grid("active_share")),
            ReportTable(title="Repeat-purchase rate (cumulative)", columns=columns,
                        rows=grid("repeat_purchase_rate")),
            ReportTable(title="Revenue per customer (cumulative)", columns=columns,
                        rows=grid("revenue_per_customer")),
        ]  # fmt: skip


# --- RFM ------------------------------------------------------------------------------------


class SegmentSummary(BaseModel):
    segment: str
    customers: int
    share: float | None
    revenue: float
    avg_recency_days: float | None
    avg_frequency: float | None
    avg_monetary: float | None


class SegmentMove(BaseModel):
    from_segment: str
    to_segment: str
    customers: int


class ScoreCell(BaseModel):
    recency: int
    frequency_monetary: int
    customers: int


class RfmReport(Report):
    report: str = "rfm"
    segments: list[SegmentSummary]
    grid: list[ScoreCell]
    movement: list[SegmentMove]

    def tables(self) -> list[ReportTable]:
        return [
            ReportTable(
                title=f"RFM segments at {self.until:%Y-%m-%d}",
                columns=["segment", "customers", "share", "revenue", "avg recency days",
                         "avg frequency", "avg monetary"],
                rows=[[s.segment, s.customers, s.share, s.revenue, s.avg_recency_days,
                       s.avg_frequency, s.avg_monetary] for s in self.segments],
            ),
            ReportTable(title=f"Movement since {self.since:%Y-%m-%d}",
                        columns=["from", "to", "customers"],
                        rows=[[m.from_segment, m.to_segment, m.customers]
                              for m in self.movement]),
        ]  # fmt: skip


# --- attribution ----------------------------------------------------------------------------


class ChannelCredit(BaseModel):
    """One channel's credit for a pair's transitions under each model, and its reach: journeys
    it touched (converting or not) and how many of them converted."""

    value: str
    first_touch: float
    last_touch: float
    linear: float
    time_decay: float
    position_based: float
    markov: float
    removal_effect: float
    shapley: float | None
    journeys: int
    converted_journeys: int
    conversion_rate: float | None


class PairAttribution(BaseModel):
    from_stage: str
    to_stage: str
    transitions: int
    journeys: int
    conversion_rate: float | None
    shapley_available: bool
    channels: list[ChannelCredit]


class AttributionReport(Report):
    report: str = "attribution"
    dimension: str
    lookback_days: float
    half_life_days: float
    pairs: list[PairAttribution]

    def tables(self) -> list[ReportTable]:
        columns = ["value", "first", "last", "linear", "decay", "position", "markov", "shapley",
                   "journeys", "converted", "conv. rate"]  # fmt: skip
        return [
            ReportTable(
                title=f"{p.from_stage} -> {p.to_stage}: {p.transitions} transitions of "
                      f"{p.journeys} journeys ({self.dimension})",
                columns=columns,
                rows=[[c.value, c.first_touch, c.last_touch, c.linear, c.time_decay,
                       c.position_based, c.markov, c.shapley, c.journeys, c.converted_journeys,
                       c.conversion_rate] for c in p.channels],
            )
            for p in self.pairs
        ]  # fmt: skip


# --- acquisition economics ------------------------------------------------------------------


class ChannelEconomics(BaseModel):
    value: str
    spend: float | None
    new_customers: int
    cac: float | None
    clv_12m: float | None
    clv_to_cac: float | None
    payback_months: int | None


class AcquisitionReport(Report):
    report: str = "acquisition"
    dimension: str
    value_until: datetime | None = None  # the value horizon (None: the whole log)
    channels: list[ChannelEconomics]

    def tables(self) -> list[ReportTable]:
        return [
            ReportTable(
                title=f"Acquisition economics per {self.dimension}",
                columns=[self.dimension, "spend", "new customers", "CAC", "CLV 12m", "CLV:CAC",
                         "payback months"],
                rows=[[c.value, c.spend, c.new_customers, c.cac, c.clv_12m, c.clv_to_cac,
                       c.payback_months] for c in self.channels],
            )
        ]  # fmt: skip


# --- feedback -------------------------------------------------------------------------------


class FeedbackRow(BaseModel):
    """``value``: NPS (-100..100), CSAT (% satisfied) or CES (mean score)."""

    survey: str
    key: str
    responses: int
    mean_score: float
    value: float


class FeedbackReport(Report):
    report: str = "feedback"
    granularity: str
    over_time: list[FeedbackRow]
    by_stage: list[FeedbackRow]
    by_segment: list[FeedbackRow]

    def tables(self) -> list[ReportTable]:
        columns = ["survey", "key", "responses", "mean score", "value"]

        def rows(items: list[FeedbackRow]) -> list[list[Any]]:
            return [[r.survey, r.key, r.responses, r.mean_score, r.value] for r in items]

        return [
            ReportTable(title=f"Feedback per {self.granularity}", columns=columns,
                        rows=rows(self.over_time)),
            ReportTable(title="Feedback by stage", columns=columns, rows=rows(self.by_stage)),
            ReportTable(title="Feedback by RFM segment", columns=columns,
                        rows=rows(self.by_segment)),
        ]  # fmt: skip
