"""Learning a scorecard's weights from the workspace's own history.

At a training cutoff ``t`` (``horizon_days`` before the end of the known history), every
customer active at ``t`` is scored with the current scorecard, and each factor's share of its
weight (0..1, from the events before ``t``) becomes a feature; the label is whether they bought
again (or stayed subscribed) within the horizon. A logistic regression with non-negative
weights and an L2 penalty (SciPy's L-BFGS-B) gives each factor's weight: the fitted scorecard is
still a weighted mean of the same factors, so its contributions add up to its score, and its
ranking equals the model's for customers with every factor present. A factor without variation
in the training data (no surveys yet, say) cannot be fitted and keeps its shipped weight,
rescaled to the fitted ones.

``calibrated_backtest`` is walk-forward: the weights used at each cutoff are fitted at the
cutoff minus the horizon, from labels already known at the cutoff.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import yaml
from pydantic import BaseModel
from scipy.optimize import minimize

from clm.lifecycle.backtest import (
    PURCHASE,
    BacktestReport,
    _one_cutoff,
    _report,
    cohort_at,
    default_cutoffs,
    p_alive_at,
    scores_at,
)
from clm.lifecycle.definitions import Scorecard
from clm.lifecycle.engines import export_events
from clm.lifecycle.features import DAY
from clm.lifecycle.health import CompiledScorecard, compile_scorecard
from clm.lifecycle.health_inputs import get_scorecard
from clm.store.engine import Database

PENALTY = 1.0  # L2 on the weights, against a log-likelihood summed over customers


class FittedScorecard(BaseModel):
    trained_at: datetime
    customers: int
    weights: dict[str, float]  # the fitted factors' weights (0..100 scale)
    kept: list[str]  # factors without variation: shipped weight kept
    yaml: str


def _design(
    db: Database,
    workspace_id: int,
    card: CompiledScorecard,
    log: pa.Table,
    cutoff: int,
    horizon_days: int,
    active_days: int,
    subscription: bool,
) -> tuple[list[str], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    ids, lapsed, _, _ = cohort_at(
        db, workspace_id, log, cutoff, horizon_days, active_days, subscription
    )
    batch = scores_at(db, workspace_id, card, log, cutoff, p_alive_at(log, cutoff))
    position = {int(c): i for i, c in enumerate(batch.customers.tolist())}
    rows = np.array([position[int(c)] for c in ids], dtype=np.int64)
    names, columns = [], []
    for key in card.factors:
        weight = batch.scores.weights[key][rows]
        present = weight > 0
        if present.mean() < 0.01:
            continue
        fraction = np.divide(
            batch.scores.points[key][rows], weight, out=np.zeros(len(rows)), where=present
        )
        filled = np.where(present, fraction, fraction[present].mean())
        if filled.std() < 1e-9:
            continue
        names.append(key)
        columns.append(filled)
    matrix = np.column_stack(columns) if columns else np.empty((len(rows), 0))
    return names, matrix, ~lapsed


def fit_weights(
    x: npt.NDArray[np.float64], stays: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float64]:
    """Non-negative logistic-regression weights (intercept dropped) of ``stays`` on ``x``."""
    y = stays.astype(np.float64)
    k = x.shape[1]

    def objective(theta: npt.NDArray[np.float64]) -> tuple[float, npt.NDArray[np.float64]]:
        z = theta[0] + x @ theta[1:]
        loss = float(np.sum(np.logaddexp(0.0, z) - y * z) + PENALTY * theta[1:] @ theta[1:])
        p = 1.0 / (1.0 + np.exp(-z))
        gradient = np.concatenate([[np.sum(p - y)], x.T @ (p - y) + 2 * PENALTY * theta[1:]])
        return loss, gradient

    start = np.zeros(k + 1)
    bounds = [(None, None)] + [(0.0, None)] * k
    result = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds)
    return np.asarray(result.x[1:], dtype=np.float64)


def fitted_card(
    card: CompiledScorecard, names: list[str], coefficients: npt.NDArray[np.float64], when: datetime
) -> tuple[Scorecard, dict[str, float], list[str]]:
    """The scorecard with fitted weights (0..100 over the fitted factors); factors not fitted
    keep their shipped weight, scaled so the fitted factors keep their shipped total."""
    fitted_total = float(coefficients.sum())
    shipped_total = sum(card.weights[n] for n in names)
    weights = {}
    for name, value in zip(names, coefficients, strict=True):
        if value > 1e-6 and fitted_total > 0:
            weights[name] = round(shipped_total * float(value) / fitted_total, 2)
    kept = [k for k in card.factors if k not in names]
    factors = {}
    for key, factor in card.factors.items():
        if key in weights:
            factors[key] = factor.model_copy(update={"weight": weights[key]})
        elif key in kept:
            factors[key] = factor.model_copy(update={"weight": round(card.weights[key], 2)})
    definition = card.definition.model_copy(
        update={
            "factors": factors,
            "version": card.version + 1,
            "description": f"{card.name} with weights fitted on this workspace's history "
            f"(training cutoff {when:%Y-%m-%d}; `clm health fit`)",
        }
    )
    return definition, weights, kept


def _subscription(log: pa.Table) -> bool:
    from clm.lifecycle.backtest import SUBSCRIPTION_EVENTS

    names = set(pc.unique(log.column("name")).to_pylist()) if log.num_rows else set()
    return bool(names & set(SUBSCRIPTION_EVENTS))


def fit_at(
    db: Database,
    workspace_id: int,
    card: CompiledScorecard,
    log: pa.Table,
    cutoff: int,
    horizon_days: int,
    active_days: int,
) -> tuple[Scorecard, dict[str, float], list[str], int]:
    names, x, stays = _design(
        db, workspace_id, card, log, cutoff, horizon_days, active_days, _subscription(log)
    )
    coefficients = fit_weights(x, stays) if names else np.empty(0)
    when = datetime.fromtimestamp(cutoff, UTC)
    definition, weights, kept = fitted_card(card, names, coefficients, when)
    return definition, weights, kept, len(stays)


def fit_scorecard(
    db: Database, workspace_id: int, *, horizon_days: int = 90, active_days: int = 365
) -> FittedScorecard:
    """Fit the weights at the latest cutoff whose horizon the log covers."""
    _, card = get_scorecard(db, workspace_id)
    log = export_events(db, workspace_id)
    if log.num_rows == 0:
        from clm.errors import ValidationError

        raise ValidationError("No events to learn from")
    bought = log if _subscription(log) else log.filter(pc.equal(log.column("name"), PURCHASE))
    last = int(pc.max((bought if bought.num_rows else log).column("ts")).as_py())
    cutoff = last - horizon_days * DAY
    definition, weights, kept, customers = fit_at(
        db, workspace_id, card, log, cutoff, horizon_days, active_days
    )
    text = yaml.safe_dump(
        definition.model_dump(mode="json", exclude_defaults=True), sort_keys=False, width=100
    )
    return FittedScorecard(
        trained_at=datetime.fromtimestamp(cutoff, UTC),
        customers=customers,
        weights=weights,
        kept=kept,
        yaml=text,
    )


def calibrated_backtest(
    db: Database,
    workspace_id: int,
    *,
    horizon_days: int = 90,
    step_months: int = 3,
    active_days: int = 365,
    events: pa.Table | None = None,
    on_cutoff: Callable[[int, int], None] | None = None,
) -> BacktestReport:
    """The backtest of weights fitted walk-forward: at each cutoff, on the cutoff minus the
    horizon."""
    _, card = get_scorecard(db, workspace_id)
    log = events if events is not None else export_events(db, workspace_id)
    if log.num_rows == 0:
        return _report(card, "", horizon_days, [])
    subscription = _subscription(log)
    stamps = default_cutoffs(log, subscription, horizon_days, step_months)
    results = []
    label = ""
    fitted = card
    for done, cutoff in enumerate(stamps, start=1):
        definition, _, _, _ = fit_at(
            db, workspace_id, card, log, cutoff - horizon_days * DAY, horizon_days, active_days
        )
        fitted = compile_scorecard(definition)
        results.append(
            _one_cutoff(
                db, workspace_id, fitted, log, cutoff, horizon_days, active_days, subscription
            )
        )
        if on_cutoff:
            on_cutoff(done, len(stamps))
    report = _report(fitted, label, horizon_days, results)
    report.scorecard = f"{card.name} v{card.version}, weights fitted walk-forward"
    report.label = (
        f"as the shipped backtest; weights at each cutoff fitted {horizon_days} days before it"
    )
    return report
