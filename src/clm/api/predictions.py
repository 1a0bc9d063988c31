"""Predictions under ``/api/v1``: fit a workspace, read fits, a customer's scores, plot data.

Mount with ``app.include_router(predictions_router)``; every route needs the workspace's
secret key and sees only that workspace.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from clm.api.deps import Configurer, DatabaseDep, Reader, workspace_id
from clm.api.routing import ClmRoute
from clm.predictions import (
    CustomerPredictions,
    FitReport,
    fit_workspace,
    latest_fit,
    latest_predictions,
    plot_data,
)
from clm.store.storable import RowId

router = APIRouter(prefix="/api/v1", tags=["predictions"], route_class=ClmRoute)


class FitRequest(BaseModel):
    """What to fit: by default the workspace's business model, up to yesterday."""

    model_config = ConfigDict(allow_inf_nan=False)

    model: Literal["auto", "bgnbd", "pareto", "sbg"] = "auto"
    as_of: date | None = None
    holdout_weeks: Annotated[float | None, Field(gt=0, le=520)] = None


@router.post("/predictions/fit")
def fit(body: FitRequest, db: DatabaseDep, key: Configurer) -> FitReport:
    """Fit the purchase (or subscription) history and store one score per customer."""
    return fit_workspace(db, workspace_id(key), body.model, body.as_of, body.holdout_weeks)


@router.get("/predictions/fits/latest")
def get_latest_fit(db: DatabaseDep, key: Reader) -> FitReport:
    """The latest fit: parameters with 95% intervals, log-likelihood, diagnostics."""
    return latest_fit(db, workspace_id(key))


@router.get("/customers/{customer_id}/predictions")
def customer_predictions(
    customer_id: RowId,
    db: DatabaseDep,
    key: Reader,
    history: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> CustomerPredictions:
    """A customer's latest P(alive), expected purchases and CLV, and earlier scores."""
    return latest_predictions(db, workspace_id(key), customer_id, history)


@router.get("/predictions/plots/{name}")
def plot(
    name: Literal["holdout", "heatmap", "p-alive"],
    db: DatabaseDep,
    key: Reader,
    customer_id: RowId | None = None,
    quantity: Literal["p_alive", "purchases"] = "p_alive",
    points: Annotated[int, Query(ge=2, le=200)] = 40,
) -> dict[str, Any]:
    """The data of a plot for the dashboard, as JSON arrays (of the latest fit)."""
    return plot_data(
        db, workspace_id(key), name, customer_id=customer_id, quantity=quantity, points=points
    )
