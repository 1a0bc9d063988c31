"""What the reports return: plain pydantic models, each able to lay itself out as tables
(``tables()``) for the terminal and CSV; JSON is ``model_dump(mode="json")``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

# How a column reads for people (the terminal formats it; CSV, Parquet and JSON keep the raw
# number): text, count (thousands separators), share (0..1 shown as a percentage), percent
# (already 0..100), money (two decimals, thousands separators), days, number (two decimals).
Kind = str


class ReportTable(BaseModel):
    """One table of a report: a short ``name`` (a file name, ``--table``), a title, column
    names, the ``kinds`` of the columns (see ``Kind``; text when missing) and rows."""

    name: str = "table"
    title: str
    columns: list[str]
    rows: list[list[Any]]
    kinds: list[Kind] = []


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
    report: Literal["funnel"] = "funnel"
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
            ReportTable(name="stages", title=f"Customers per stage at {self.at:%Y-%m-%d}",
                        columns=["stage", "customers"], kinds=["text", "count"],
                        rows=[[c.stage, c.customers] for c in self.counts]),
            ReportTable(
                name="funnel", title="Funnel (cohorts entering each stage in the period)",
                columns=["from", "to", "entered", "converted", "dropped", "conversion",
                         "timed", "median days", "p90 days"],
                kinds=["text", "text", "count", "count", "count", "share", "count", "days",
                       "days"],
                rows=[[s.from_stage, s.to_stage, s.entered, s.converted, s.dropped,
                       s.conversion_rate, s.timed, s.median_days, s.p90_days]
                      for s in self.steps],
            ),
            ReportTable(name="backward", title="Backward moves",
                        columns=["from", "to", "transitions"], kinds=["text", "text", "count"],
                        rows=[[b.source, b.target, b.value] for b in self.backward]),
            ReportTable(name="reentries", title="Re-entries",
                        columns=["stage", "re-entries", "customers"],
                        kinds=["text", "count", "count"],
                        rows=[[r.stage, r.reentries, r.customers] for r in self.reentries]),
            ReportTable(name="flow", title="Flow (all transitions in the period)",
                        columns=["from", "to", "transitions"], kinds=["text", "text", "count"],
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
    report: Literal["churn_retention"] = "churn_retention"
    granularity: str
    churn_stages: list[str]
    periods: list[RetentionPeriod]
    at_risk: AtRisk

    def tables(self) -> list[ReportTable]:
        r = self.at_risk
        return [
            ReportTable(
                name="retention",
                title=f"Churn and retention per {self.granularity} "
                      f"(churned: entered {' or '.join(self.churn_stages) or 'no churn stage'})",
                columns=["period", "active at start", "new", "churned", "churn rate",
                         "reactivated", "revenue", "NRR", "GRR"],
                kinds=["text", "count", "count", "count", "share", "count", "money", "share",
                       "share"],
                rows=[[p.period + (" (partial)" if p.partial else ""), p.active_at_start,
                       p.new, p.churned, p.churn_rate, p.reactivated, p.revenue,
                       p.net_revenue_retention, p.gross_revenue_retention]
                      for p in self.periods],
            ),
            ReportTable(
                name="at_risk",
                title=f"At risk at {self.until:%Y-%m-%d} (P(alive) < {r.threshold})",
                columns=["alive", "scored", "at risk", "revenue 12m", "CLV 12m"],
                kinds=["count", "count", "count", "money", "money"],
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
    report: Literal["cohorts"] = "cohorts"
    cohort_by: str
    returning_event: str = "Order Completed"
    cohorts: list[CohortRow]

    def tables(self) -> list[ReportTable]:
        width = max((len(c.active_share) for c in self.cohorts), default=0)
        columns = ["cohort", "customers", *[f"m{k}" for k in range(width)]]

        def grid(values: str) -> list[list[Any]]:
            return [[c.cohort, c.customers, *getattr(c, values)] for c in self.cohorts]

        def kinds(kind: str) -> list[str]:
            return ["text", "count", *[kind] * width]

        return [
            ReportTable(name="active",
                        title=f"Share active: {self.returning_event} ({self.cohort_by} cohorts)",
                        columns=columns, kinds=kinds("share"), rows=grid("active_share")),
            ReportTable(name="repeat_purchase", title="Repeat-purchase rate (cumulative)",
                        columns=columns, kinds=kinds("share"),
                        rows=grid("repeat_purchase_rate")),
            ReportTable(name="revenue", title="Revenue per customer (cumulative)",
                        columns=columns, kinds=kinds("money"),
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
    report: Literal["rfm"] = "rfm"
    segments: list[SegmentSummary]
    grid: list[ScoreCell]
    movement: list[SegmentMove]

    def tables(self) -> list[ReportTable]:
        return [
            ReportTable(
                name="segments", title=f"RFM segments at {self.until:%Y-%m-%d}",
                columns=["segment", "customers", "share", "revenue", "avg recency days",
                         "avg frequency", "avg monetary"],
                kinds=["text", "count", "share", "money", "days", "number", "money"],
                rows=[[s.segment, s.customers, s.share, s.revenue, s.avg_recency_days,
                       s.avg_frequency, s.avg_monetary] for s in self.segments],
            ),
            ReportTable(name="movement", title=f"Movement since {self.since:%Y-%m-%d}",
                        columns=["from", "to", "customers"], kinds=["text", "text", "count"],
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
    report: Literal["attribution"] = "attribution"
    dimension: str
    lookback_days: float
    half_life_days: float
    pairs: list[PairAttribution]

    def tables(self) -> list[ReportTable]:
        columns = ["value", "first", "last", "linear", "decay", "position", "markov", "shapley",
                   "journeys", "converted", "conv. rate"]  # fmt: skip
        return [
            ReportTable(
                name=f"{p.from_stage}-{p.to_stage}",
                title=f"{p.from_stage} → {p.to_stage}: {p.transitions:,} transitions of "
                      f"{p.journeys:,} journeys ({self.dimension})",
                columns=columns,
                kinds=["text", *["number"] * 7, "count", "count", "share"],
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
    report: Literal["acquisition"] = "acquisition"
    dimension: str
    value_until: datetime | None = None  # the value horizon (None: the whole log)
    channels: list[ChannelEconomics]

    def tables(self) -> list[ReportTable]:
        return [
            ReportTable(
                name="acquisition", title=f"Acquisition economics per {self.dimension}",
                columns=[self.dimension, "spend", "new customers", "CAC", "CLV 12m", "CLV:CAC",
                         "payback months"],
                kinds=["text", "money", "count", "money", "money", "number", "count"],
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
    report: Literal["feedback"] = "feedback"
    granularity: str
    over_time: list[FeedbackRow]
    by_stage: list[FeedbackRow]
    by_segment: list[FeedbackRow]

    def tables(self) -> list[ReportTable]:
        """One row per period (stage, segment), the three surveys side by side, each headed
        by what its figure is: NPS (-100..100), CSAT (% satisfied), CES (mean score)."""
        columns = ["NPS", "NPS answers", "CSAT % satisfied", "CSAT answers", "CES mean",
                   "CES answers"]  # fmt: skip
        kinds = ["text", "number", "count", "percent", "count", "number", "count"]

        def pivot(name: str, title: str, key: str, items: list[FeedbackRow]) -> ReportTable:
            by_key: dict[str, dict[str, FeedbackRow]] = {}
            for r in items:
                by_key.setdefault(r.key, {})[r.survey] = r
            rows = []
            for k, found in by_key.items():
                row: list[Any] = [k]
                for survey in ("nps", "csat", "ces"):
                    hit = found.get(survey)
                    row += [hit.value, hit.responses] if hit else [None, 0]
                rows.append(row)
            return ReportTable(
                name=name, title=title, columns=[key, *columns], kinds=kinds, rows=rows
            )

        return [
            pivot("over_time", f"Feedback per {self.granularity}", self.granularity,
                  self.over_time),
            pivot("by_stage", "Feedback by stage at answer time", "stage", self.by_stage),
            pivot("by_segment", "Feedback by RFM segment", "segment", self.by_segment),
        ]  # fmt: skip
