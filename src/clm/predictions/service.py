"""Fit a workspace's purchase (or subscription) history and store the scores in the log.

A fit reads ``Order Completed`` events with revenue (or ``Subscription Started`` /
``Subscription Cancelled`` for a subscription business), fits BG/NBD, Pareto/NBD or the
shifted-beta-geometric model, keeps a ``prediction_fits`` row with the parameters and
diagnostics, and appends one ``Prediction Scored`` event per customer, stamped at the fit's
as-of time, so that stage rules, health scores and segments read predictions as features of
the log like any other event. The fit id is derived from the workspace, the model, the dates
and the data itself: retrying a fit writes nothing twice, and new data makes a new fit.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

import pandas as pd
from sqlalchemy.exc import IntegrityError

from clm.errors import FieldError, ValidationError
from clm.predictions import repository as repo
from clm.predictions._models import Scores, fit_purchase_model, fit_subscriptions
from clm.predictions.schemas import (
    CustomerPrediction,
    CustomerPredictions,
    FitReport,
    FittedModel,
    HoldoutCheck,
    ParameterEstimate,
)
from clm.store.engine import Database
from clm.store.models import PredictionFit, Workspace
from clm.store.own_events import OWN_CHANNEL

#: Bumped whenever the way scores are computed changes; carried by every score and fit.
MODEL_VERSION = "1"
MODELS = ("auto", "bgnbd", "pareto", "sbg")
CONTEXT = {"library": {"name": "clm-predict"}}


def _as_of_day(as_of: date | datetime | None) -> date:
    """The last day (UTC) a fit includes; by default yesterday, the last complete day."""
    if as_of is None:
        return datetime.now(UTC).date() - timedelta(days=1)
    if isinstance(as_of, datetime):
        return (as_of if as_of.tzinfo is None else as_of.astimezone(UTC)).date()
    return as_of


def _invalid(message: str, field: str) -> ValidationError:
    return ValidationError(message, [FieldError((field,), message)])


def _choose_model(model: str, settings: dict[str, Any]) -> FittedModel:
    if model not in MODELS:
        raise _invalid(f"model must be one of {', '.join(MODELS)}", "model")
    if model != "auto":
        return cast(FittedModel, model)
    business = settings.get("business_model", "non_contractual")
    if business not in ("non_contractual", "subscription"):
        raise _invalid(
            f"workspace setting business_model is {business!r}; use non_contractual or "
            "subscription",
            "business_model",
        )
    return "sbg" if business == "subscription" else "bgnbd"


def _fit_id(parts: dict[str, Any], data: Sequence[pd.DataFrame]) -> str:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    for frame in data:
        ordered = frame.sort_values(list(frame.columns), kind="mergesort")
        digest.update(pd.util.hash_pandas_object(ordered, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:24]


def fit_workspace(
    db: Database,
    workspace_id: int,
    model: str = "auto",
    as_of: date | datetime | None = None,
    holdout_weeks: float | None = None,
) -> FitReport:
    """Fit the workspace's history up to ``as_of`` and score every customer.

    ``model="auto"`` chooses by the workspace's ``business_model`` setting: BG/NBD for a
    non-contractual business (the default), the shifted-beta-geometric model for
    ``"subscription"``. ``as_of`` is the last day included (UTC); scores are stamped at the
    end of that day. ``holdout_weeks`` fits on the history up to ``holdout_weeks`` before
    ``as_of`` and reports predicted against actual repeat purchases in the weeks after;
    customers are then scored on their whole history with those parameters.
    Raises :class:`~clm.errors.ValidationError` when there is nothing to fit.
    """
    day = _as_of_day(as_of)
    if holdout_weeks is not None and not (0 < holdout_weeks <= 520):
        raise _invalid("holdout_weeks must be between 0 and 520 weeks", "holdout_weeks")
    scored_at = datetime.combine(day + timedelta(days=1), time(), UTC)
    end_ts = int(scored_at.timestamp())
    with db.session() as session:
        workspace = session.get(Workspace, workspace_id)
        if workspace is None:
            raise _invalid(f"No workspace {workspace_id}", "workspace_id")
        chosen = _choose_model(model, dict(workspace.settings or {}))
        purchases = repo.purchases(session, workspace_id, end_ts)
        subscriptions = (
            repo.subscription_events(session, workspace_id, end_ts) if chosen == "sbg" else None
        )
    if chosen == "sbg":
        if holdout_weeks is not None:
            raise _invalid("holdout_weeks applies to purchase models (bgnbd, pareto)", "model")
        assert subscriptions is not None
        period = str((workspace.settings or {}).get("subscription_period", "M"))
        scores = fit_subscriptions(subscriptions, purchases, end_ts, period)
        data = [subscriptions, purchases]
        calibration_end = scored_at
    else:
        if purchases.empty:
            raise _invalid(
                "No purchases to fit: the workspace has no 'Order Completed' events with "
                f"revenue on or before {day}",
                "workspace_id",
            )
        scores = fit_purchase_model(chosen, purchases, day, holdout_weeks)
        data = [purchases]
        weeks_back = timedelta(days=round(7 * holdout_weeks)) if holdout_weeks else timedelta()
        calibration_end = scored_at - weeks_back
    fit_id = _fit_id(
        {"workspace": workspace_id, "model": chosen, "as_of": day, "holdout": holdout_weeks,
         "version": MODEL_VERSION},
        data,
    )  # fmt: skip
    report = _store(db, workspace_id, fit_id, scores, scored_at, calibration_end)
    # The new scores are events: carry them into the customers' stored rows now, so a list
    # sorted by CLV reflects the fit without waiting for the live loop. (Imported here: the
    # state module reads this package's event names, so a top-level import would be a cycle.)
    from clm.lifecycle.current_state import refresh_state

    refresh_state(db, workspace_id)
    return report


def _clean(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _store(
    db: Database,
    workspace_id: int,
    fit_id: str,
    scores: Scores,
    scored_at: datetime,
    calibration_end: datetime,
) -> FitReport:
    now = datetime.now(UTC)
    parameters = [
        ParameterEstimate(
            name=str(name),
            estimate=float(row["estimate"]),
            se=_clean(row["se"]),
            lower_95=_clean(row["lower_95"]),
            upper_95=_clean(row["upper_95"]),
        )
        for name, row in scores.parameters.iterrows()
    ]
    holdout = None
    if scores.holdout is not None:
        holdout = {**scores.holdout, "holdout_end": scored_at.isoformat()}
    fit = PredictionFit(
        workspace_id=workspace_id,
        fit_id=fit_id,
        model=scores.model,
        model_version=MODEL_VERSION,
        params={p.name: p.estimate for p in parameters},
        standard_errors={p.name: p.se for p in parameters},
        log_likelihood=scores.log_likelihood,
        n_customers=scores.n_customers,
        calibration_end=calibration_end,
        as_of=scored_at,
        holdout=holdout,
        diagnostics={**scores.diagnostics, "parameters": [p.model_dump() for p in parameters]},
        created_at=now,
    )
    try:
        with db.transaction() as session:
            stored = repo.find_fit(session, workspace_id, fit_id)
            reused = stored is not None
            if stored is None:
                session.add(fit)
                session.flush()
                stored = fit
            rows = _score_rows(session, workspace_id, stored, scores)
            written = repo.insert_scores(session, rows)
            report = _report(stored, written, reused)
    except IntegrityError:  # the same fit committed concurrently: it is the same result
        with db.session() as session:
            stored = repo.find_fit(session, workspace_id, fit_id)
            assert stored is not None
            report = _report(stored, 0, True)
    return report


def _score_rows(
    session: Any, workspace_id: int, fit: PredictionFit, scores: Scores
) -> list[tuple[Any, ...]]:
    customers = [int(c) for c in scores.p_alive.index]
    identities = repo.identity_of(session, workspace_id, customers)
    fitted_at = fit.created_at.isoformat()
    columns = {
        "p_alive": scores.p_alive,
        "expected_purchases_90d": scores.expected_purchases_90d,
        **({"clv_12m": scores.clv_12m} if scores.clv_12m is not None else {}),
        **scores.extra,
    }
    values = pd.DataFrame(columns).reindex(scores.p_alive.index)
    received = datetime.now(UTC)
    ts = int(fit.as_of.timestamp())
    rows = []
    for customer_id, record in zip(customers, values.to_dict("records"), strict=True):
        if customer_id not in identities:
            continue
        identity_id, user_id = identities[customer_id]
        properties: dict[str, Any] = {str(k): _clean(v) for k, v in record.items()}
        properties.setdefault("clv_12m", None)
        properties.update(
            model=fit.model, model_version=fit.model_version, fitted_at=fitted_at,
            fit_id=fit.fit_id,
        )  # fmt: skip
        rows.append(
            (
                workspace_id, identity_id, f"clm-pred-{fit.fit_id}-{customer_id}", "track",
                repo.SCORE_EVENT, user_id, None, fit.as_of, ts, received, None, fit.as_of,
                OWN_CHANNEL, None, None, None, None, properties, CONTEXT, None,
            )
        )  # fmt: skip
    return rows


def _report(fit: PredictionFit, written: int, reused: bool) -> FitReport:
    diagnostics = dict(fit.diagnostics)
    parameters = [ParameterEstimate(**p) for p in diagnostics.pop("parameters", [])]
    return FitReport(
        fit_id=fit.fit_id,
        workspace_id=fit.workspace_id,
        model=cast(FittedModel, fit.model),
        model_version=fit.model_version,
        as_of=fit.as_of,
        calibration_end=fit.calibration_end,
        n_customers=fit.n_customers,
        log_likelihood=fit.log_likelihood,
        parameters=parameters,
        holdout=HoldoutCheck(**fit.holdout) if fit.holdout else None,
        diagnostics=diagnostics,
        scores_written=written,
        created_at=fit.created_at,
        reused=reused,
    )


def latest_fit(db: Database, workspace_id: int) -> FitReport:
    """The workspace's most recent fit (NotFound when there is none)."""
    with db.session() as session:
        return _report(repo.latest_fit(session, workspace_id), 0, True)


def latest_predictions(
    db: Database, workspace_id: int, customer_id: int, history: int = 20
) -> CustomerPredictions:
    """A customer's latest scores and up to ``history`` earlier ones (merged ids work)."""
    with db.session() as session:
        live_id = repo.resolve_customer(session, workspace_id, customer_id)
        events = repo.score_events(session, workspace_id, live_id, max(1, history))
        stamps = repo.purchase_times(session, workspace_id, live_id) if events else []
    items = [
        CustomerPrediction(
            timestamp=when,
            message_id=message_id,
            p_alive=props["p_alive"],
            expected_purchases_90d=props["expected_purchases_90d"],
            clv_12m=props.get("clv_12m"),
            model=props["model"],
            model_version=props["model_version"],
            fitted_at=props["fitted_at"],
        )
        for when, message_id, props in events
    ]
    latest = items[0] if items else None
    if latest is None:
        return CustomerPredictions(customer_id=live_id, latest=None, history=items)
    return CustomerPredictions(
        customer_id=live_id, latest=latest, history=items, **_trust(latest, stamps)
    )


def _trust(latest: CustomerPrediction, stamps: list[int]) -> dict[str, Any]:
    """What the latest scores can be trusted for, from the customer's purchases up to the fit
    (same-day purchases count once, as the models count them)."""
    cutoff = latest.timestamp.timestamp()
    seen = [ts for ts in stamps if ts < cutoff]
    days = len({datetime.fromtimestamp(ts, UTC).date() for ts in seen})
    last = datetime.fromtimestamp(max(seen), UTC) if seen else None
    informative, note = True, None
    if latest.model == "bgnbd" and days <= 1:
        informative = False
        note = (
            "One purchase day: BG/NBD gives every customer without a repeat purchase P(alive) "
            "100% (it lets customers drop out only right after a repeat purchase), so it cannot "
            "tell. Read the time since their purchase instead."
            if days == 1
            else "No purchase before the fit: the model has nothing on them."
        )
    model = {"bgnbd": "BG/NBD", "pareto": "Pareto/NBD", "sbg": "shifted-beta-geometric"}
    uncertainty = (
        f"Point estimates of the {model.get(latest.model, latest.model)} model at its fitted "
        "parameters: it gives no interval per customer. P(alive) is itself a probability; "
        "the parameters' 95% intervals and the holdout check are in the latest fit."
    )
    return {
        "purchase_days": days,
        "last_purchase_at": last,
        "p_alive_informative": informative,
        "p_alive_note": note,
        "uncertainty": uncertainty,
    }


__all__ = ["MODEL_VERSION", "fit_workspace", "latest_fit", "latest_predictions"]
