"""The health scorecard under ``/api/v1/health``: read it, preview an edit of its weights and
thresholds (how many customers would change state), save the edit as a new version, and
backtest it against the baselines and the scorecard it would replace."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
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
)

router = APIRouter(prefix="/api/v1/health", tags=["health"], route_class=ClmRoute)


class EditProblem(BaseModel):
    loc: list[str | int]
    message: str


class ScorecardCheck(BaseModel):
    """An edit checked without storing it: its problems, or what it would change now."""

    valid: bool
    errors: list[EditProblem] = []
    preview: ScorecardPreview | None = None


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
    answer (``valid: false`` with the problems ``PUT`` would give as a 422)."""
    try:
        preview = preview_scorecard(db, workspace_id(key), body)
    except ValidationError as problem:
        errors = [EditProblem(loc=list(e.loc), message=e.message) for e in problem.errors]
        return ScorecardCheck(
            valid=False, errors=errors or [EditProblem(loc=[], message=problem.message)]
        )
    return ScorecardCheck(valid=True, preview=preview)


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


@router.post("/backtest")
def run_backtest(body: BacktestRequest, db: DatabaseDep, key: Configurer) -> BacktestReport:
    """Did the score, computed at a past cutoff from the events before it, predict who lapsed
    in the next ``horizon_days``, and did it beat recency, P(alive), frequency and random?
    With an edit, the edited scorecard is ``health score`` and the active one is scored beside
    it as ``active scorecard``. Takes seconds per cutoff on a large log."""
    ws = workspace_id(key)
    info, card, _ = get_definition(db, ws, "health")
    proposed = edited_scorecard(card, body.edit()) if body.edits() else card
    report = backtest(
        db, ws, horizon_days=body.horizon_days, step_months=body.step_months,
        active_days=body.active_days, latest=body.cutoffs, card=proposed,
        compare=card if body.edits() else None,
    )  # fmt: skip
    # Named by the stored version people see, not the YAML's own version field.
    report.scorecard = f"{info.name} v{info.version}" + (", edited" if body.edits() else "")
    return report
