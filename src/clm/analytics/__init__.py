"""Analytics: reports over the event log and the stage history, on every lifecycle engine.

Open a source (``report_source(db, workspace_id, engine)``), then run any report on it with
its query: ``funnel``, ``churn_retention``, ``cohorts``, ``rfm``, ``attribution``,
``acquisition``, ``feedback``. ``run_report`` does both from a report name and raw parameters
(what the CLI and the API call). ``import_spend`` loads marketing spend from CSV.
"""

from clm.analytics.cohorts import cohorts
from clm.analytics.funnel import funnel
from clm.analytics.query import (
    SEGMENTS,
    CohortQuery,
    FunnelQuery,
    PeriodQuery,
    ReportQuery,
    RetentionQuery,
    parse_query,
)
from clm.analytics.retention import churn_retention
from clm.analytics.rfm import rfm, rfm_scores
from clm.analytics.schemas import (
    CohortReport,
    FunnelReport,
    Report,
    ReportTable,
    RetentionReport,
    RfmReport,
)
from clm.analytics.source import (
    ReportSource,
    duckdb_report_source,
    open_report_source,
    report_source,
)

__all__ = [
    "SEGMENTS",
    "CohortQuery",
    "CohortReport",
    "FunnelQuery",
    "FunnelReport",
    "PeriodQuery",
    "Report",
    "ReportQuery",
    "ReportSource",
    "ReportTable",
    "RetentionQuery",
    "RetentionReport",
    "RfmReport",
    "churn_retention",
    "cohorts",
    "duckdb_report_source",
    "funnel",
    "open_report_source",
    "parse_query",
    "report_source",
    "rfm",
    "rfm_scores",
]
