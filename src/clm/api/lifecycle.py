"""Lifecycle endpoints under ``/api/v1``: the stage model, a customer's lifecycle and health,
counts per stage and state at a date, transitions in a period. Workspace secret key only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

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
    stage_counts,
    transitions_between,
)
from clm.lifecycle.catalog import get_definition
from clm.lifecycle.current_state import current_counts
from clm.lifecycle.health_counts import health_counts
from clm.lifecycle.preview import preview_stage_model
from clm.lifecycle.schemas import Preview
from clm.store.storable import Offset, RowId

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


@router.post("/lifecycle/model/preview")
def preview_model(body: StageModelIn, db: DatabaseDep, key: Configurer) -> ModelCheck:
    """What a stage model (YAML) would give on this workspace's log, without storing it.
    An editor calls this as people type, so a model with mistakes is an ordinary answer
    (``valid: false`` and the line-numbered problems ``PUT /lifecycle/model`` would give as a
    422), not an error status."""
    try:
        preview = preview_stage_model(db, workspace_id(key), body.yaml)
    except ValidationError as problem:
        errors = [ModelProblem(loc=list(e.loc), message=e.message) for e in problem.errors]
        whole = [ModelProblem(loc=[], message=problem.message)]
        return ModelCheck(valid=False, errors=errors or whole)
    return ModelCheck(valid=True, preview=preview)


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
