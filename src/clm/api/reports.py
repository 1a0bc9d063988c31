"""The reports API under ``/api/v1/reports``: every lifecycle report of the caller's workspace,
and the marketing spend the acquisition report reads.

``GET /api/v1/reports/{name}?since=...&until=...`` takes the report's parameters as query
parameters (validated by ``clm.analytics.parse_query``: an unknown or bad one is a 422 naming
the field); ``POST /api/v1/reports/spend`` takes a CSV (upload or ``text/csv`` body) or JSON
rows with the CSV's fields.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag
from starlette.concurrency import run_in_threadpool

from clm.analytics import (
    REPORTS,
    SpendRow,
    parse_spend_csv,
    parse_spend_records,
    report_name,
    run_report,
    store_spend,
)
from clm.analytics.report_readings import KeptReport, kept_report
from clm.analytics.schemas import (
    AcquisitionReport,
    AttributionReport,
    CohortReport,
    FeedbackReport,
    FunnelReport,
    ReportTable,
    RetentionReport,
    RfmReport,
)
from clm.api.deps import DatabaseDep, Marketer, Reader, workspace_id
from clm.api.routing import ClmRoute, utf8_text
from clm.errors import FieldError, NotFound, ValidationError

router = APIRouter(prefix="/api/v1/reports", tags=["reports"], route_class=ClmRoute)
RESERVED = ("engine", "fresh")  # query parameters of the endpoint, not of the report


class ReportInfo(BaseModel):
    name: str
    description: str


class SpendImported(BaseModel):
    stored: int


class Reading(BaseModel):
    """A report's figures as the API answers them: the report's own fields, its ``tables``
    (those the CLI prints and writes as CSV, so the web page shows them as they are) and the
    state of its stored reading: ``current`` False while the data has moved since
    ``computed_at`` and a refresh runs."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)
    ready: Literal[True] = True
    current: bool
    computed_at: datetime | None
    # Named apart from the figures' ``tables()`` (which lays them out); "tables" on the wire.
    laid_out: list[ReportTable] = Field(alias="tables")


class PendingReading(BaseModel):
    """A report whose first reading of these parameters is running: no figures yet
    (``ready`` False, ``tables`` empty); ask again."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)
    report: str
    ready: Literal[False] = False
    current: bool
    computed_at: datetime | None = None
    tables: list[ReportTable] = []


# One answer model per report (the report's fields, then the reading's), so /docs and /redoc
# name each report's fields; ``report`` says which one it is.
class FunnelReading(Reading, FunnelReport):
    """The stage funnel and velocity (``/reports/funnel``)."""


class RetentionReading(Reading, RetentionReport):
    """Churn and retention (``/reports/churn_retention``)."""


class CohortReading(Reading, CohortReport):
    """The cohort retention matrix (``/reports/cohorts``)."""


class RfmReading(Reading, RfmReport):
    """RFM segments and movement (``/reports/rfm``)."""


class AttributionReading(Reading, AttributionReport):
    """Touchpoint attribution (``/reports/attribution``)."""


class AcquisitionReading(Reading, AcquisitionReport):
    """CAC, CLV:CAC and payback (``/reports/acquisition``)."""


class FeedbackReading(Reading, FeedbackReport):
    """NPS, CSAT and CES (``/reports/feedback``)."""


def _kind(answer: Any) -> str:
    """Which model an answer is: its report's when it has figures, else ``pending``."""
    if isinstance(answer, dict):
        return str(answer.get("report")) if answer.get("ready") else "pending"
    return str(answer.report) if answer.ready else "pending"


ReportAnswer = Annotated[
    Annotated[FunnelReading, Tag("funnel")]
    | Annotated[RetentionReading, Tag("churn_retention")]
    | Annotated[CohortReading, Tag("cohorts")]
    | Annotated[RfmReading, Tag("rfm")]
    | Annotated[AttributionReading, Tag("attribution")]
    | Annotated[AcquisitionReading, Tag("acquisition")]
    | Annotated[FeedbackReading, Tag("feedback")]
    | Annotated[PendingReading, Tag("pending")],
    Discriminator(_kind),
]


@router.get("")
def list_reports(_: Reader) -> list[ReportInfo]:
    """The reports this API serves."""
    return [ReportInfo(name=name, description=spec.description) for name, spec in REPORTS.items()]


@router.get("/{name}", response_model=ReportAnswer)
def get_report(
    name: str,
    request: Request,
    db: DatabaseDep,
    key: Reader,
    engine: Annotated[Literal["sql", "duckdb"], Query(description="where to compute")] = "sql",
    fresh: Annotated[
        bool, Query(description="compute now instead of answering with the stored reading")
    ] = False,
) -> dict[str, Any]:
    """One report of the caller's workspace, e.g. ``/funnel?since=2024-01-01&stage=paying``.

    Answered from its stored reading (``clm.analytics.report_readings``): ``current`` False
    while the data has moved since ``computed_at`` and a refresh runs; ``ready`` False (no
    figures) while the first reading of these parameters runs: ask again. ``fresh=true`` (or
    ``engine=duckdb``) computes it now."""
    known = report_name(name)
    if known is None:
        raise NotFound(f"No report {name!r}; reports: {', '.join(REPORTS)}")
    params = {k: v for k, v in request.query_params.items() if k not in RESERVED}
    if engine != "sql":
        began = datetime.now(UTC)
        kept = KeptReport(run_report(db, workspace_id(key), known, params, engine=engine),
                          True, began)  # fmt: skip
    else:
        kept = kept_report(db, workspace_id(key), known, params, fresh=fresh)
    state = {"current": kept.current, "computed_at": kept.computed_at}
    if kept.report is None:
        return {"report": known, "ready": False, **state}
    return {**dict(kept.report), "tables": kept.report.tables(), "ready": True, **state}


async def _spend_rows(request: Request) -> list[SpendRow]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        async with request.form() as form:  # closes the uploaded files' temporary copies
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                missing = [FieldError(("file",), "upload a CSV file")]
                raise ValidationError("Missing file", missing)
            return parse_spend_csv(utf8_text(await upload.read(), "spend file"))
    if kind in ("text/csv", "text/plain"):
        return parse_spend_csv(utf8_text(await request.body(), "spend file"))
    if kind == "application/json":
        try:
            body = await request.json()
        except ValueError as exc:
            raise ValidationError("Invalid JSON", [FieldError(("body",), str(exc))]) from exc
        rows = body.get("rows") if isinstance(body, dict) else body
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValidationError(
                "Invalid spend rows", [FieldError(("rows",), "a list of objects")]
            )
        return parse_spend_records(rows)
    raise ValidationError(
        "Unsupported content type",
        [FieldError(("content-type",), "multipart/form-data, text/csv or application/json")],
    )


@router.post("/spend", status_code=201)
async def import_spend(request: Request, db: DatabaseDep, key: Marketer) -> SpendImported:
    """Import marketing spend: all rows or none; each bad row is named with its field."""
    rows = await _spend_rows(request)
    stored = await run_in_threadpool(store_spend, db, workspace_id(key), rows)
    return SpendImported(stored=stored)
