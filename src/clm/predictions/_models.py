"""Fitting the BTYD and sBG models on a workspace's histories (pure, no database)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from clm.errors import ValidationError
from clm.predict import (
    BetaGeo,
    ConvergenceWarning,
    GammaGamma,
    InvalidSummaryError,
    ParetoNBD,
    ShiftedBetaGeometric,
    compress,
    customer_lifetime_value,
    rfm_summary,
)
from clm.predict.plots import calibration_vs_holdout

SCORE_HORIZON_WEEKS = 90 / 7
CLV_MONTHS = 12
MONTHLY_DISCOUNT = 0.01  # about 12.7% a year
FALLBACK_PENALIZER = 0.001
PURCHASE_MODELS: dict[str, type[BetaGeo | ParetoNBD]] = {"bgnbd": BetaGeo, "pareto": ParetoNBD}
DAYS_PER_UNIT = {"D": 1.0, "W": 7.0, "M": 365.25 / 12, "Y": 365.25}
PurchaseModel = BetaGeo | ParetoNBD


@dataclass
class Scores:
    """Per-customer outputs (indexed by customer id) and what explains them."""

    model: str
    parameters: pd.DataFrame
    log_likelihood: float
    n_customers: int
    p_alive: pd.Series
    expected_purchases_90d: pd.Series
    clv_12m: pd.Series | None
    extra: dict[str, pd.Series] = field(default_factory=dict)
    holdout: dict[str, Any] | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)


@contextmanager
def recorded_warnings(into: list[str]) -> Iterator[None]:
    """Keep the models' warnings as diagnostics of the fit instead of letting them escape."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    into.extend(f"{type(w.message).__name__}: {w.message}" for w in caught)


def _transactions(purchases: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": purchases["customer_id"].to_numpy(),
            "date": pd.to_datetime(purchases["ts"].to_numpy(), unit="s"),
            "revenue": purchases["revenue"].to_numpy(),
        }
    )


def fit_purchase_model(
    model_name: str, purchases: pd.DataFrame, as_of: date, holdout_weeks: float | None
) -> Scores:
    """BG/NBD or Pareto/NBD on the purchase log (weeks), Gamma-Gamma for spend, and scores."""
    log: list[str] = []
    transactions = _transactions(purchases)
    calibration_end = as_of - timedelta(days=round(7 * holdout_weeks)) if holdout_weeks else as_of
    first_day_after = pd.Timestamp(calibration_end) + pd.Timedelta(days=1)
    calibration = transactions[transactions["date"] < first_day_after]
    if calibration.empty:
        raise ValidationError(
            f"No purchases on or before the calibration end {calibration_end}: nothing to fit"
        )
    try:
        fit_summary = rfm_summary(
            calibration, "customer_id", "date", "revenue", end=calibration_end, unit="W"
        )
        summary = rfm_summary(transactions, "customer_id", "date", "revenue", end=as_of, unit="W")
    except InvalidSummaryError as exc:
        raise ValidationError(f"Cannot summarise the purchase history: {exc}") from exc
    if not fit_summary["frequency"].any():
        raise ValidationError(
            f"No repeat purchases on or before {calibration_end}: a purchase model needs "
            "customers who bought on more than one day"
        )
    rows = compress(fit_summary)
    model, penalizer = _fit_purchases(model_name, rows, log)
    with recorded_warnings(log):
        parameters = model.summary()
    holdout = None
    if holdout_weeks:
        holdout = _holdout_check(model, transactions, calibration_end, as_of, holdout_weeks)
    spend, spend_info = _fit_spend(fit_summary, log)
    with recorded_warnings(log):
        p_alive = model.p_alive(summary)
        expected = model.predict_purchases(SCORE_HORIZON_WEEKS, summary)
        clv = None
        if spend is not None:
            try:
                clv = customer_lifetime_value(
                    model, spend, summary, horizon=CLV_MONTHS, discount_rate=MONTHLY_DISCOUNT
                )
            except ValueError as exc:
                log.append(f"CLV not computed: {exc}")
    if not (np.isfinite(p_alive).all() and np.isfinite(expected).all()):
        raise ValidationError(
            f"The fitted {model_name} model gives non-finite scores ({'; '.join(log)}); "
            "try another model or more history"
        )
    diagnostics = {
        "unit": "week",
        "penalizer": penalizer,
        "distinct_rows": len(rows),
        "repeat_purchases": float(fit_summary["frequency"].sum()),
        "max_T_weeks": float(fit_summary["T"].max()),
        "spend_model": spend_info,
        "clv": {"months": CLV_MONTHS, "monthly_discount_rate": MONTHLY_DISCOUNT},
        "warnings": log,
    }
    return Scores(
        model=model_name,
        parameters=parameters,
        log_likelihood=float(model.log_likelihood_),
        n_customers=len(fit_summary),
        p_alive=p_alive,
        expected_purchases_90d=expected,
        clv_12m=clv,
        holdout=holdout,
        diagnostics=diagnostics,
    )


def _fit_purchases(
    model_name: str, rows: pd.DataFrame, log: list[str]
) -> tuple[PurchaseModel, float]:
    """The maximum-likelihood fit; if it does not converge (few customers often let a and b
    run off to infinity), a lightly penalised one, said so in the diagnostics."""
    attempt: list[str] = []
    model = PURCHASE_MODELS[model_name]()
    with recorded_warnings(attempt):
        model.fit(rows, weights=rows["weight"])
    converged = not any(w.startswith(ConvergenceWarning.__name__) for w in attempt)
    if converged and _scores_finite(model, rows):
        log.extend(attempt)
        return model, 0.0
    log.extend(attempt)
    # A fit can also stop far out on the ridge without a warning (a, b ~ 1e5-1e6, the same
    # likelihood to float precision), where the 2F1 of the expected purchases overflows.
    why = "did not converge" if not converged else "gives non-finite scores"
    log.append(f"refitted with penalizer={FALLBACK_PENALIZER} after the ML fit {why}")
    model = PURCHASE_MODELS[model_name](penalizer=FALLBACK_PENALIZER)
    with recorded_warnings(log):
        model.fit(rows, weights=rows["weight"])
    return model, FALLBACK_PENALIZER


def _scores_finite(model: PurchaseModel, rows: pd.DataFrame) -> bool:
    """Whether P(alive) and the expected purchases are finite on the fitted rows."""
    with recorded_warnings([]):
        p_alive = model.p_alive(rows)
        expected = model.predict_purchases(SCORE_HORIZON_WEEKS, rows)
    return bool(np.isfinite(p_alive).all() and np.isfinite(expected).all())


def _holdout_check(
    model: PurchaseModel,
    transactions: pd.DataFrame,
    calibration_end: date,
    holdout_end: date,
    weeks: float,
) -> dict[str, Any]:
    """FHL 2005 Figure 4: actual vs predicted repeat purchases after the calibration end, for
    the customers of the calibration period (same-day purchases count once)."""
    summary = rfm_summary(
        transactions, "customer_id", "date", end=calibration_end, unit="W", holdout_end=holdout_end
    )
    duration = float(summary["duration_holdout"].iloc[0])
    predicted = model.predict_purchases(duration, summary)
    table = calibration_vs_holdout(model, summary)
    counts = summary["frequency"].clip(upper=7).value_counts()
    by_frequency = [
        {
            "frequency": float(str(bucket)),
            "customers": float(counts.get(bucket, 0)),
            "actual": float(row["actual"]),
            "predicted": float(row["predicted"]),
        }
        for bucket, row in table.iterrows()
    ]
    return {
        "weeks": weeks,
        "duration_weeks": duration,
        "customers": len(summary),
        "actual": float(summary["frequency_holdout"].sum()),
        "predicted": float(predicted.sum()),
        "by_frequency": by_frequency,
    }


def _fit_spend(summary: pd.DataFrame, log: list[str]) -> tuple[GammaGamma | None, dict[str, Any]]:
    buyers = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    if len(buyers) < 3:
        log.append("Gamma-Gamma not fitted: fewer than 3 repeat buyers with spend; no CLV")
        return None, {"model": "gamma_gamma", "fitted": False}
    spend = GammaGamma()
    try:
        with recorded_warnings(log):
            spend.fit(buyers)
    except (InvalidSummaryError, ValueError) as exc:
        log.append(f"Gamma-Gamma not fitted: {exc}")
        return None, {"model": "gamma_gamma", "fitted": False}
    check = spend.independence_
    info = {
        "model": "gamma_gamma",
        "fitted": True,
        "params": dict(spend.params_),
        "log_likelihood": float(spend.log_likelihood_),
        "repeat_buyers": len(buyers),
        "independence_correlation": None if math.isnan(check.correlation) else check.correlation,
    }
    return spend, info


def fit_subscriptions(
    events: pd.DataFrame,
    purchases: pd.DataFrame,
    end_ts: int,
    period_unit: str,
) -> Scores:
    """sBG on subscribers' survived renewal periods; retention probability and value."""
    if period_unit not in DAYS_PER_UNIT:
        raise ValidationError(f"subscription_period must be one of {sorted(DAYS_PER_UNIT)}")
    period_s = DAYS_PER_UNIT[period_unit] * 86_400
    starts = events[events["name"] == "Subscription Started"].groupby("customer_id")["ts"].min()
    if starts.empty:
        raise ValidationError(
            "No 'Subscription Started' events before the as-of date: nothing to fit the "
            "subscription (sBG) model on"
        )
    cancel_rows = events[events["name"] == "Subscription Cancelled"].join(
        starts.rename("start"), on="customer_id", how="inner"
    )
    after_start = cancel_rows[cancel_rows["ts"] >= cancel_rows["start"]]
    cancels = after_start.groupby("customer_id")["ts"].min()
    frame = pd.DataFrame({"start": starts})
    frame["cancel"] = cancels.reindex(frame.index)
    churned = frame["cancel"].notna().to_numpy()
    lived = np.where(churned, frame["cancel"], end_ts) - frame["start"].to_numpy()
    # A churner left during period ceil(lived) (at least the first); an active subscriber has
    # survived floor(lived) renewal decisions.
    periods = np.where(
        churned, np.maximum(np.ceil(lived / period_s), 1), np.floor(lived / period_s)
    )
    distinct, inverse = np.unique(np.stack([periods, churned]), axis=1, return_inverse=True)
    weights = np.bincount(inverse.reshape(-1), minlength=distinct.shape[1]).astype(np.float64)
    log: list[str] = []
    model = ShiftedBetaGeometric()
    try:
        with recorded_warnings(log):
            model.fit_durations(distinct[0], distinct[1] > 0, weights=weights)
            parameters = model.summary()
    except InvalidSummaryError as exc:
        raise ValidationError(f"Cannot fit the subscription model: {exc}") from exc
    alpha, beta = model.params_["alpha"], model.params_["beta"]
    survived = pd.Series(periods, index=frame.index)
    active = pd.Series(~churned, index=frame.index)
    retention = ((beta + survived) / (alpha + beta + survived)).where(active, 0.0)
    months_per_period = DAYS_PER_UNIT[period_unit] / DAYS_PER_UNIT["M"]
    period_discount = (1 + MONTHLY_DISCOUNT) ** months_per_period - 1
    expected_90d = _expected_payments(model, frame, survived, end_ts, period_s, 90 * 86_400, None)
    payments_12m = _expected_payments(
        model, frame, survived, end_ts, period_s, 365.25 * 86_400, period_discount
    )
    payment = purchases.groupby("customer_id")["revenue"].mean().reindex(frame.index)
    typical = float(purchases["revenue"].mean()) if len(purchases) else float("nan")
    payment = payment.fillna(typical)
    clv = None if payment.isna().all() else (payments_12m * payment).where(active, 0.0)
    derl = pd.Series(
        model.discounted_expected_residual_lifetime(period_discount, survived.to_numpy()),
        index=frame.index,
    ).where(active, 0.0)
    diagnostics = {
        "unit": {"M": "month", "W": "week", "D": "day", "Y": "year"}[period_unit],
        "subscribers": len(frame),
        "churned": int(churned.sum()),
        "payment_value": "mean revenue of the subscriber's 'Order Completed' events",
        "warnings": log,
    }
    return Scores(
        model="sbg",
        parameters=parameters,
        log_likelihood=float(model.log_likelihood_),
        n_customers=len(frame),
        p_alive=active.astype(np.float64),
        expected_purchases_90d=expected_90d,
        clv_12m=clv,
        extra={"retention_probability": retention, "derl": derl},
        diagnostics=diagnostics,
    )


def _expected_payments(
    model: ShiftedBetaGeometric,
    frame: pd.DataFrame,
    survived: pd.Series,
    end_ts: int,
    period_s: float,
    horizon_s: float,
    discount: float | None,
) -> pd.Series:
    """Σ over renewal dates within the horizon of S(n+k)/S(n), optionally discounted by k."""
    active = frame["cancel"].isna().to_numpy()
    n = survived.to_numpy()
    total = np.zeros(len(frame))
    max_k = int(horizon_s // period_s) + 2
    base = model.survival(n)
    for k in range(1, max_k + 1):
        renewal_at = frame["start"].to_numpy() + (n + k) * period_s
        inside = (renewal_at > end_ts) & (renewal_at <= end_ts + horizon_s) & active
        share = model.survival(n + k) / base
        factor = 1.0 if discount is None else (1 + discount) ** -k
        total += np.where(inside, share * factor, 0.0)
    return pd.Series(total, index=frame.index)
