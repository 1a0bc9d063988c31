"""Lifecycle endpoints under ``/api/v1``: the stage model, a customer's lifecycle and health,
counts per stage and state at a date, transitions in a period. Workspace secret key only."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from clm.accounts.audit import record_after
from clm.api.deps import Configurer, DatabaseDep, Reader, workspace_id
from clm.api.routing import ClmRoute
from clm.errors import ValidationError
from clm.lifecycle import (
    CustomerLifecycle,
    DefinitionInfo,
    TransitionPage,
    apply_stage_model,
    customer_lifecycle,
    load_stage_model,
    stage_counts,
    transitions_between,
)
from clm.lifecycle.catalog import get_definition
from clm.lifecycle.current_state import current_counts
from clm.lifecycle.health_counts import health_counts
from clm.lifecycle.preview import preview_stage_model
from clm.lifecycle.schemas import Preview
from clm.store.engine import Database
from clm.store.storable import Offset, RowId
from clm.worker.jobs import JobPublic, Progress, get_job, submit

router = APIRouter(prefix="/api/v1", tags=["lifecycle"], route_class=ClmRoute)


class StageModelPublic(BaseModel):
    definition: DefinitionInfo
    yaml: str


class StageModelIn(BaseModel):
    yaml: str


class Counts(BaseModel):
    at: datetime
    stages: dict[str, int]
    health: dict[str, int]  # by state: "happy and stable", "happy but at risk", "unhappy"


@router.get("/lifecycle/model")
def get_model(db: DatabaseDep, key: Reader) -> StageModelPublic:
    """The active stage model, as YAML."""
    info, _, source = get_definition(db, workspace_id(key), "stages")
    return StageModelPublic(definition=info, yaml=source)


@router.put("/lifecycle/model")
def put_model(body: StageModelIn, db: DatabaseDep, key: Configurer) -> StageModelPublic:
    """Store a new version of a stage model; errors are 422 with the line of each problem.
    History is recomputed by ``clm lifecycle run`` (or the next scheduled run)."""
    before, _, source = get_definition(db, workspace_id(key), "stages")
    info = apply_stage_model(db, workspace_id(key), body.yaml)
    record_after(
        db, key, "stage_model.update", f"stage_model:{info.name}",
        before={"version": before.version, "name": before.name, "yaml": source},
        after={"version": info.version, "name": info.name, "yaml": body.yaml},
    )  # fmt: skip
    return StageModelPublic(definition=info, yaml=body.yaml)


class ModelProblem(BaseModel):
    loc: list[str | int]
    message: str  # starts with "line N:" where the YAML has a line for it


class ModelCheck(BaseModel):
    """A stage model checked without storing it: its problems, or what it would give."""

    valid: bool
    errors: list[ModelProblem] = []
    preview: Preview | None = None
    job: JobPublic | None = None  # a valid model whose preview is being computed: poll it


@router.post("/lifecycle/model/preview")
def preview_model(body: StageModelIn, db: DatabaseDep, key: Configurer) -> ModelCheck:
    """What a stage model (YAML) would give on this workspace's log, without storing it.
    An editor calls this as people type, so a model with mistakes is an ordinary answer
    (``valid: false`` and the line-numbered problems ``PUT /lifecycle/model`` would give as a
    422), not an error status. A valid model's preview recomputes the whole stage history
    (seconds to minutes on a large log), so it is a background job: the answer carries the
    ``job`` (poll ``GET /lifecycle/jobs/{id}``; its result is the preview), or the preview
    itself when the same text was previewed within the last five minutes."""
    ws = workspace_id(key)
    try:
        load_stage_model(body.yaml)
    except ValidationError as problem:
        errors = [ModelProblem(loc=list(e.loc), message=e.message) for e in problem.errors]
        whole = [ModelProblem(loc=[], message=problem.message)]
        return ModelCheck(valid=False, errors=errors or whole)
    with _PREVIEW_STATE:
        db.extensions.setdefault(_NEWEST, {})[ws] = body.yaml
    job = submit(db, ws, "stage_preview", {"yaml": body.yaml}, _preview_work(db, ws, body.yaml))
    if job.status == "done" and job.result is not None:
        return ModelCheck(valid=True, preview=Preview.model_validate(job.result))
    return ModelCheck(valid=True, job=job)


# One stage preview computes at a time in a process, and one whose text is no longer the
# newest asked for in its workspace gives way (people type faster than a history is read).
_NEWEST = "clm.api.lifecycle.newest_preview"
_PREVIEW_STATE = threading.Lock()
_PREVIEW_RUN = threading.Lock()


def _preview_work(db: Database, ws: int, source: str) -> Any:
    def work(progress: Progress) -> dict[str, Any]:
        progress(0.0, "waiting for the previous preview")
        with _PREVIEW_RUN:
            with _PREVIEW_STATE:
                newest = db.extensions.get(_NEWEST, {}).get(ws)
            if newest != source:
                raise ValidationError("superseded by a newer edit of the model")
            preview = preview_stage_model(
                db, ws, source,
                progress=lambda what, done, total: progress(done / max(total, 1), what),
            )  # fmt: skip
        return preview.model_dump(mode="json")

    return work


@router.get("/lifecycle/jobs/{job_id}")
def lifecycle_job(job_id: RowId, db: DatabaseDep, key: Configurer) -> JobPublic:
    """A stage model preview's job: status, progress and, when done, the preview (shaped as
    ``Preview``); a failed job says why."""
    return get_job(db, workspace_id(key), job_id)


@router.get("/customers/{customer_id}/lifecycle")
def get_customer_lifecycle(
    customer_id: RowId, db: DatabaseDep, key: Reader, at: datetime | None = None
) -> CustomerLifecycle:
    """A customer's stage, health with reasons, and both histories."""
    return customer_lifecycle(db, workspace_id(key), customer_id, at)


@router.get("/lifecycle/counts")
def get_counts(
    db: DatabaseDep, key: Reader, at: datetime | None = None, model: str | None = None
) -> Counts:
    """How many customers stand in each stage and health state at ``at`` (default now), under
    the active stage model or the stored one named ``model``."""
    when = at or datetime.now(UTC)
    ws = workspace_id(key)
    if at is None and model is None:  # now, active model: the stored current state
        stages, health = current_counts(db, ws)
        return Counts(at=when, stages=stages, health=health)
    stages = stage_counts(db, ws, when, model=model)
    return Counts(at=when, stages=stages, health=health_counts(db, ws, when))


@router.get("/lifecycle/transitions")
def get_transitions(
    db: DatabaseDep,
    key: Reader,
    start: datetime,
    end: datetime,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[Offset, Query()] = 0,
    to_stage: str | None = None,
) -> TransitionPage:
    """Transitions with start <= time < end, oldest first, paged."""
    return transitions_between(
        db, workspace_id(key), start, end, limit=limit, offset=offset, to_stage=to_stage
    )
