"""Public shapes of the predictions service: the API and the CLI return these."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

ModelChoice = Literal["auto", "bgnbd", "pareto", "sbg"]
FittedModel = Literal["bgnbd", "pareto", "sbg"]


class ParameterEstimate(BaseModel):
    """A fitted parameter with its Wald standard error and 95% interval (log scale)."""

    name: str
    estimate: float
    se: float | None
    lower_95: float | None
    upper_95: float | None


class HoldoutCheck(BaseModel):
    """Predicted against actual repeat purchases in the weeks after the calibration period."""

    weeks: float
    duration_weeks: float
    holdout_end: datetime
    customers: int
    actual: float
    predicted: float
    by_frequency: list[dict[str, float]]


class FitReport(BaseModel):
    """What a fit did: the model, its parameters and diagnostics, and what it wrote."""

    model_config = ConfigDict(from_attributes=True)

    fit_id: str
    workspace_id: int
    model: FittedModel
    model_version: str
    as_of: datetime
    calibration_end: datetime
    n_customers: int
    log_likelihood: float
    parameters: list[ParameterEstimate]
    holdout: HoldoutCheck | None
    diagnostics: dict[str, Any]
    scores_written: int
    created_at: datetime
    reused: bool = False


class CustomerPrediction(BaseModel):
    """One customer's scores from one fit, as stored in their ``Prediction Scored`` event."""

    timestamp: datetime
    message_id: str
    p_alive: float
    expected_purchases_90d: float
    clv_12m: float | None
    model: str
    model_version: str
    fitted_at: datetime


class CustomerPredictions(BaseModel):
    """The latest scores of a customer and their history (newest first), with what the latest
    P(alive) can be trusted for.

    BG/NBD lets a customer drop out only right after a repeat purchase, so it gives every
    one-time buyer P(alive) = 1 however long ago they bought (Fader, Hardie & Lee 2005: the
    dropout term vanishes at x = 0): ``p_alive_informative`` is then false and
    ``p_alive_note`` says why; recency (``last_purchase_at``) is the evidence to read instead.
    ``uncertainty`` says what the numbers are: point estimates at the fitted parameters (no
    per-customer interval)."""

    customer_id: int
    latest: CustomerPrediction | None
    history: list[CustomerPrediction]
    purchase_days: int | None = None  # distinct days with a purchase, up to the latest fit
    last_purchase_at: datetime | None = None
    p_alive_informative: bool | None = None
    p_alive_note: str | None = None
    uncertainty: str | None = None
