"""Analytics: reports over the event log and the stage history, on every lifecycle engine.

Open a source (``report_source(db, workspace_id, engine)``), then run any report on it with
its query: ``funnel``, ``churn_retention``, ``cohorts``, ``rfm``, ``attribution``,
``acquisition``, ``feedback``. ``run_report`` does both from a report name and raw parameters
(what the CLI and the API call). ``import_spend`` loads marketing spend from CSV.
``prepare_source`` computes up front what a long-lived DuckDB or Spark source keeps for later
reports (the cohorts' monthly activity).
"""

from clm.analytics.attribution import attribution, markov_attribution
from clm.analytics.attribution_models import markov_credits, shapley_values
from clm.analytics.cohorts import cohorts
from clm.analytics.economics import acquisition
from clm.analytics.feedback import feedback
from clm.analytics.funnel import funnel
from clm.analytics.query import (
    SEGMENTS,
    AcquisitionQuery,
    AttributionQuery,
    CohortQuery,
    FeedbackQuery,
    FunnelQuery,
    PeriodQuery,
    ReportQuery,
    RetentionQuery,
    parse_query,
)
from clm.analytics.reports import REPORTS, prepare_source, report_name, run_on, run_report
from clm.analytics.retention import churn_retention
from clm.analytics.rfm import rfm
from clm.analytics.schemas import (
    AcquisitionReport,
    AttributionReport,
    CohortReport,
    FeedbackReport,
    FunnelReport,
    Report,
    ReportTable,
    RetentionReport,
    RfmReport,
)
from clm.analytics.segments import rfm_scores
from clm.analytics.source import (
    ReportSource,
    duckdb_report_source,
    open_report_source,
    report_source,
)
from clm.analytics.spend import (
    SpendRow,
    import_spend,
    parse_spend_csv,
    parse_spend_records,
    store_spend,
)

__all__ = [
    "REPORTS",
    "SEGMENTS",
    "AcquisitionQuery",
    "AcquisitionReport",
    "AttributionQuery",
    "AttributionReport",
    "CohortQuery",
    "CohortReport",
    "FeedbackQuery",
    "FeedbackReport",
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
    "SpendRow",
    "acquisition",
    "attribution",
    "churn_retention",
    "cohorts",
    "duckdb_report_source",
    "feedback",
    "funnel",
    "import_spend",
    "markov_attribution",
    "markov_credits",
    "open_report_source",
    "parse_query",
    "parse_spend_csv",
    "parse_spend_records",
    "prepare_source",
    "report_name",
    "report_source",
    "rfm",
    "rfm_scores",
    "run_on",
    "run_report",
    "shapley_values",
    "store_spend",
]
