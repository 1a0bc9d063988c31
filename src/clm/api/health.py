"""The health scorecard under ``/api/v1/health``: read it, preview an edit of its weights and
thresholds (how many customers would change state), save the edit as a new version, and
backtest it against the baselines and the scorecard it would replace.

The slow reads are background jobs (``clm.worker.jobs``): ``POST /backtest`` answers 202 with a
job at once, and a preview that must first build every customer's features answers with the
job that builds them; ``GET /jobs/{id}`` gives progress and, when done, the result."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from clm.accounts.audit import record_after
from clm.api.deps import Configurer, DatabaseDep, Reader, workspace_id
from clm.api.routing import ClmRoute
from clm.errors import ValidationError
from clm.lifecycle.backtest import BacktestReport, backtest
from clm.lifecycle.catalog import get_definition
from clm.lifecycle.scorecard_edit import (
    ScorecardEdit,
    ScorecardPreview,
    ScorecardPublic,
    Share,
    Weight,
    edited_scorecard,
    preview_scorecard,
    save_scorecard,
    scorecard_public,
    snapshot_size,
    warm_snapshot,
)
from clm.store.engine import Database
from clm.store.storable import RowId
from clm.worker.jobs import JobPublic, Progress, get_job, submit

router = APIRouter(prefix="/api/v1/health", tags=["health"], route_class=ClmRoute)


class EditProblem(BaseModel):
    loc: list[str | int]
    message: str


class ScorecardCheck(BaseModel):
    """An edit checked without storing it: its problems, or what it would change now."""

    valid: bool
    errors: list[EditProblem] = []
    preview: ScorecardPreview | None = None
    job: JobPublic | None = None  # a valid edit whose preview waits for this job to finish


class BacktestJob(JobPublic):
    """A backtest's job: when done, ``result`` is the report."""

    result: BacktestReport | None  # type: ignore[assignment]  # narrowed for the docs


class BacktestRequest(BaseModel):
    """Backtest the active scorecard, or an edit of it (``weights`` / thresholds) beside it.
    Only the latest ``cutoffs`` month-end cutoffs are scored: each reads the whole log."""

    model_config = ConfigDict(extra="forbid")

    weights: dict[Annotated[str, Field(max_length=64)], Weight] = Field(default_factory=dict)
    unhappy_below: Share | None = None
    at_risk_below: Share | None = None
    horizon_days: Annotated[int, Field(ge=7, le=730)] = 90
    active_days: Annotated[int, Field(ge=1, le=3650)] = 365
    cutoffs: Annotated[int, Field(ge=1, le=12)] = 1
    step_months: Annotated[int, Field(ge=1, le=12)] = 3

    def edit(self) -> ScorecardEdit:
        return ScorecardEdit(
            weights=self.weights, unhappy_below=self.unhappy_below, at_risk_below=self.at_risk_below
        )

    def edits(self) -> bool:
        return (
            bool(self.weights) or self.unhappy_below is not None or self.at_risk_below is not None
        )


@router.get("/scorecard")
def get_scorecard(db: DatabaseDep, key: Reader) -> ScorecardPublic:
    """The active scorecard: factors with their weights and share of the 100 points, the
    state thresholds, and every stored version."""
    return scorecard_public(db, workspace_id(key))


@router.post("/scorecard/preview")
def check_scorecard(body: ScorecardEdit, db: DatabaseDep, key: Configurer) -> ScorecardCheck:
    """What an edit would change now (customers per state under each, and the moves), without
    storing it. An editor calls this as people type, so an edit with mistakes is an ordinary
    answer (``valid: false`` with the problems ``PUT`` would give as a 422). A valid edit whose
    preview would first have to build every customer's features (seconds on a large workspace;
    kept afterwards while no event arrives) gets ``preview: null`` and the ``job`` building
    them, shared by every edit meanwhile: ask again when it is done. Past
    ``SYNC_PREVIEW_CUSTOMERS`` the preview itself is a job too (asked again, its answer)."""
    ws = workspace_id(key)
    try:
        info, card, _ = get_definition(db, ws, "health")
        edited_scorecard(card, body)
        size = snapshot_size(db, ws)
        if size is None:
            job = submit(db, ws, "health_snapshot", {}, lambda progress: _warm(db, ws, progress))
            # Done in another server process (each keeps its own snapshot): build it here.
            if job.status != "done":
                return ScorecardCheck(valid=True, job=job)
        elif size > SYNC_PREVIEW_CUSTOMERS:
            # Scoring this many customers twice takes over ~300 ms: a job of its own.
            params = {"scorecard": info.id, "edit": body.model_dump(mode="json")}
            job = submit(
                db, ws, "health_preview", params,
                lambda _progress: preview_scorecard(db, ws, body).model_dump(mode="json"),
                fresh_for=60,
            )  # fmt: skip
            if job.status == "done" and job.result is not None:
                return ScorecardCheck(valid=True, preview=ScorecardPreview(**job.result))
            return ScorecardCheck(valid=True, job=job)
        preview = preview_scorecard(db, ws, body)
    except ValidationError as problem:
        errors = [EditProblem(loc=list(e.loc), message=e.message) for e in problem.errors]
        return ScorecardCheck(
            valid=False, errors=errors or [EditProblem(loc=[], message=problem.message)]
        )
    return ScorecardCheck(valid=True, preview=preview)


# Above this many customers a preview (two scorings of the kept snapshot: 0.33-0.35 s CPU at
# 100,000, 0.13-0.19 s at the demo's 23,570) is answered by a job instead of in the request.
SYNC_PREVIEW_CUSTOMERS = 50_000


def _warm(db: Database, ws: int, progress: Progress) -> dict[str, int]:
    progress(0.0, "reading every customer's features")
    return {"customers": warm_snapshot(db, ws)}


@router.put("/scorecard")
def put_scorecard(body: ScorecardEdit, db: DatabaseDep, key: Configurer) -> ScorecardPublic:
    """Store the edit as the scorecard's next version, made active (earlier versions are
    kept). Stored scores follow at the next ``clm health run`` or live pass."""
    ws = workspace_id(key)
    info, before, after = save_scorecard(db, ws, body)
    record_after(
        db, key, "scorecard.update", f"scorecard:{info.name}",
        before={"yaml": before}, after={"version": info.version, "yaml": after},
    )  # fmt: skip
    return scorecard_public(db, ws)


@router.post("/backtest", status_code=status.HTTP_202_ACCEPTED)
def run_backtest(body: BacktestRequest, db: DatabaseDep, key: Configurer) -> BacktestJob:
    """Start a backtest and answer at once with its job (poll ``GET /jobs/{id}``; when done
    its ``result`` is the report). Did the score, computed at a past cutoff from the events
    before it, predict who lapsed in the next ``horizon_days``, and did it beat recency,
    P(alive), frequency and random? With an edit, the edited scorecard is ``health score`` and
    the active one is scored beside it as ``active scorecard``. Takes seconds per cutoff on a
    large log; the same request while one runs (or within five minutes of its answer) gets the
    same job."""
    ws = workspace_id(key)
    info, card, _ = get_definition(db, ws, "health")
    proposed = edited_scorecard(card, body.edit()) if body.edits() else card
    params = {"scorecard": info.id, **body.model_dump(mode="json")}

    def work(progress: Progress) -> dict[str, object]:
        progress(0.0, "reading the event log")
        report = backtest(
            db, ws, horizon_days=body.horizon_days, step_months=body.step_months,
            active_days=body.active_days, latest=body.cutoffs, card=proposed,
            compare=card if body.edits() else None,
            on_cutoff=lambda done, total: progress(done / total, f"{done} of {total} cutoffs"),
        )  # fmt: skip
        # Named by the stored version people see, not the YAML's own version field.
        report.scorecard = f"{info.name} v{info.version}" + (", edited" if body.edits() else "")
        return report.model_dump(mode="json")

    job = submit(db, ws, "health_backtest", params, work)
    return BacktestJob.model_validate(job.model_dump())


@router.get("/jobs/{job_id}")
def health_job(job_id: RowId, db: DatabaseDep, key: Configurer) -> JobPublic:
    """A backtest's or a preview's job: status, progress and, when done, the result (a
    backtest's is its report, shaped as ``BacktestReport``); a failed job says why."""
    return get_job(db, workspace_id(key), job_id)
