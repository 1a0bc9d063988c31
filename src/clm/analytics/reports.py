"""The report catalogue: one name per report, its query type and function; ``run_report`` is
what the CLI and the API call."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from clm.analytics.attribution import attribution, keep_attribution_inputs
from clm.analytics.cohorts import cohorts, keep_activity_months
from clm.analytics.economics import acquisition
from clm.analytics.feedback import feedback
from clm.analytics.funnel import funnel
from clm.analytics.query import (
    AcquisitionQuery,
    AttributionQuery,
    CohortQuery,
    FeedbackQuery,
    FunnelQuery,
    ReportQuery,
    RetentionQuery,
    parse_query,
)
from clm.analytics.retention import churn_retention, keep_first_purchases
from clm.analytics.rfm import rfm
from clm.analytics.schemas import (
    AcquisitionReport,
    AttributionReport,
    CohortReport,
    FeedbackReport,
    FunnelReport,
    Report,
    RetentionReport,
    RfmReport,
)
from clm.analytics.source import ReportSource, report_source
from clm.analytics.spend import load_spend
from clm.errors import FieldError, ValidationError
from clm.lifecycle.engines import EngineName
from clm.lifecycle.saved_segments import member_ids, segment_names
from clm.store.engine import Database

Q = TypeVar("Q", bound=ReportQuery)


@dataclass(frozen=True)
class ReportSpec:
    """One report: its query, its function, its answer's type, and what it reads besides the
    event log and the active definitions (``stages``: the stage history, ``health``: the
    health history, ``spend``: the marketing spend), which says when a stored reading of it is
    outdated (``clm.analytics.report_readings``)."""

    query: type[ReportQuery]
    run: Callable[..., Report]
    description: str
    result: type[Report]
    reads: frozenset[str] = frozenset()


STAGES, HEALTH, SPEND = "stages", "health", "spend"
REPORTS: dict[str, ReportSpec] = {
    "funnel": ReportSpec(FunnelQuery, funnel, "Stage funnel and velocity", FunnelReport,
                         frozenset({STAGES})),
    "churn_retention": ReportSpec(RetentionQuery, churn_retention, "Churn and retention",
                                  RetentionReport, frozenset({STAGES, HEALTH})),
    "cohorts": ReportSpec(CohortQuery, cohorts, "Cohort retention matrix", CohortReport),
    "rfm": ReportSpec(ReportQuery, rfm, "RFM segments and movement", RfmReport),
    "attribution": ReportSpec(AttributionQuery, attribution, "Touchpoint attribution",
                              AttributionReport, frozenset({STAGES})),
    "acquisition": ReportSpec(AcquisitionQuery, acquisition, "CAC, CLV:CAC and payback",
                              AcquisitionReport, frozenset({SPEND})),
    "feedback": ReportSpec(FeedbackQuery, feedback, "NPS, CSAT and CES", FeedbackReport,
                           frozenset({STAGES})),
}  # fmt: skip


ALIASES = {"retention": "churn_retention"}


def report_name(name: str) -> str | None:
    """The catalogue name of a report (or of an alias), or None if there is no such report."""
    name = ALIASES.get(name, name)
    return name if name in REPORTS else None


def known_report(name: str) -> str:
    """The catalogue name of a report (or of an alias); an unknown one is refused."""
    known = report_name(name)
    if known is None:
        raise ValidationError("Unknown report", [
            FieldError(("report",), f"unknown report; one of: {', '.join(REPORTS)}")])  # fmt: skip
    return known


def prepare_source(source: ReportSource) -> None:
    """Compute now the whole-log tables a DuckDB or Spark source keeps for its reports (the
    cohorts' monthly activity, churn's purchases and scores, attribution's touchpoints by
    channel and stays, sorted), instead of in the first report that reads them."""
    keep_activity_months(source)
    keep_first_purchases(source)  # and the retention events it is computed from
    if source.snapshot:
        keep_attribution_inputs(source)


def run_on(source: ReportSource, name: str, query: ReportQuery, db: Database | None = None,
           workspace_id: int | None = None) -> Report:  # fmt: skip
    """Run one report on an open source (acquisition reads the spend from ``db``)."""
    name = report_name(name) or name
    spec = REPORTS[name]
    if name == "acquisition" and db is not None and workspace_id is not None:
        return spec.run(source, query, load_spend(db, workspace_id))
    return spec.run(source, query)


def run_report(
    db: Database,
    workspace_id: int,
    name: str,
    params: Mapping[str, Any] | None = None,
    *,
    engine: EngineName = "sql",
    model: str | None = None,
    spark: Any = None,
) -> Report:
    """Validate ``params`` for report ``name`` and run it on ``engine``."""
    known = known_report(name)
    query = with_saved_members(db, workspace_id, parse_query(REPORTS[known].query, params or {}))
    with report_source(db, workspace_id, engine, model=model, spark=spark) as source:
        return run_on(source, known, query, db, workspace_id)


def with_saved_members(db: Database, workspace_id: int, query: Q) -> Q:
    """``query`` with its saved segment's current members resolved (unchanged without one)."""
    if query.saved_segment is None:
        return query
    return query.with_members(saved_members(db, workspace_id, query.saved_segment))


def saved_members(db: Database, workspace_id: int, name: str) -> list[int]:
    """The current members of the saved segment ``name``; an unknown one is refused, naming
    the saved ones."""
    members = member_ids(db, workspace_id, name)
    if members is None:
        saved = ", ".join(segment_names(db, workspace_id)) or "none yet"
        message = f"no saved segment named {name!r}; saved segments: {saved}"
        error = FieldError(("saved_segment",), message)
        raise ValidationError("Unknown saved segment", [error])
    return members
