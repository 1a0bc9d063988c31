"""The modeller's plots of a workspace's latest fit: data for the dashboard, figures for files.

- ``holdout``: mean actual vs predicted holdout purchases by calibration frequency (FHL 2005
  Figure 4); needs a fit made with ``holdout_weeks``.
- ``heatmap``: P(alive) or expected purchases in the next 90 days over frequency × recency,
  for customers observed as long as the longest-observed customer of the fit.
- ``p-alive``: one customer's P(alive) from their first purchase to the fit's as-of day.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from clm.errors import NotFound, ValidationError
from clm.predict import BetaGeo, ParetoNBD
from clm.predict.plots import frequency_recency_grid, p_alive_history, plot_p_alive_history
from clm.predictions import repository as repo
from clm.predictions._models import SCORE_HORIZON_WEEKS
from clm.store.engine import Database
from clm.store.models import PredictionFit

PLOTS = ("holdout", "heatmap", "p-alive")
QUANTITIES = ("p_alive", "purchases")


def _purchase_model(fit: PredictionFit) -> BetaGeo | ParetoNBD:
    if fit.model not in ("bgnbd", "pareto"):
        raise ValidationError(
            f"The latest fit is {fit.model}: these plots are for purchase models (bgnbd, pareto)"
        )
    model: BetaGeo | ParetoNBD = BetaGeo() if fit.model == "bgnbd" else ParetoNBD()
    model.params_ = dict(fit.params)
    return model


def _customer_times(
    db: Database, workspace_id: int, customer_id: int, fit: PredictionFit
) -> tuple[list[float], float]:
    """Purchase days in weeks since the first (same-day purchases once) and the as-of age."""
    with db.session() as session:
        live = repo.resolve_customer(session, workspace_id, customer_id)
        stamps = repo.purchase_times(session, workspace_id, live)
    last_day = (fit.as_of - timedelta(days=1)).date()
    days = sorted({datetime.fromtimestamp(ts, UTC).date() for ts in stamps} - {None})
    days = [d for d in days if d <= last_day]
    if not days:
        raise NotFound(f"Customer {customer_id} has no purchases on or before {last_day}")
    times = [(d - days[0]).days / 7 for d in days]
    return times, (last_day - days[0]).days / 7


def plot_data(
    db: Database,
    workspace_id: int,
    name: str,
    *,
    customer_id: int | None = None,
    quantity: str = "p_alive",
    points: int = 40,
    max_frequency: int = 20,
) -> dict[str, Any]:
    """The numbers behind a plot, as JSON-ready arrays (NaN cells become null)."""
    if name not in PLOTS:
        raise NotFound(f"No plot {name!r}; plots are {', '.join(PLOTS)}")
    with db.session() as session:
        fit = repo.latest_fit(session, workspace_id)
    base = {"plot": name, "fit_id": fit.fit_id, "model": fit.model}
    if name == "holdout":
        if not fit.holdout:
            raise ValidationError("The latest fit has no holdout period: fit with holdout_weeks")
        rows = fit.holdout["by_frequency"]
        return {
            **base,
            "weeks": fit.holdout["weeks"],
            "frequency": [r["frequency"] for r in rows],
            "customers": [r["customers"] for r in rows],
            "actual": [r["actual"] for r in rows],
            "predicted": [r["predicted"] for r in rows],
        }
    model = _purchase_model(fit)
    if name == "heatmap":
        if quantity not in QUANTITIES:
            raise ValidationError(f"quantity must be one of {', '.join(QUANTITIES)}")
        age = float(fit.diagnostics["max_T_weeks"])
        grid = frequency_recency_grid(
            model, age, quantity, SCORE_HORIZON_WEEKS, max_frequency, max(2, points)
        )
        return {
            **base,
            "quantity": quantity,
            "T_weeks": age,
            "horizon_weeks": SCORE_HORIZON_WEEKS if quantity == "purchases" else None,
            "frequency": list(range(max_frequency + 1)),
            "recency_weeks": np.linspace(0.0, age, max(2, points)).tolist(),
            "values": [[None if np.isnan(v) else float(v) for v in row] for row in grid],
        }
    if customer_id is None:
        raise ValidationError("The p-alive plot needs a customer id")
    times, end = _customer_times(db, workspace_id, customer_id, fit)
    history = p_alive_history(model, times, end, points=max(2, points))
    return {
        **base,
        "customer_id": customer_id,
        "purchase_weeks": times,
        "t_weeks": history["t"].tolist(),
        "p_alive": history["p_alive"].tolist(),
    }


def plot_figure(
    db: Database,
    workspace_id: int,
    name: str,
    *,
    customer_id: int | None = None,
    quantity: str = "p_alive",
) -> Figure:
    """A matplotlib figure of a plot (save it with ``figure.savefig("x.png")``)."""
    if name == "p-alive":
        with db.session() as session:
            fit = repo.latest_fit(session, workspace_id)
        if customer_id is None:
            raise ValidationError("The p-alive plot needs a customer id")
        times, end = _customer_times(db, workspace_id, customer_id, fit)
        figure = plot_p_alive_history(_purchase_model(fit), times, end)
        figure.axes[0].set_xlabel("weeks since first purchase")
        figure.axes[0].set_title(f"P(alive) history of customer {customer_id}")
        return figure
    data = plot_data(db, workspace_id, name, quantity=quantity, points=60)
    figure = Figure(figsize=(7, 5))
    axes = figure.subplots()
    if name == "holdout":
        axes.plot(data["frequency"], data["actual"], marker="o", label="actual")
        axes.plot(data["frequency"], data["predicted"], marker="s", linestyle="--", label="model")
        labels = [f"{int(f)}" for f in data["frequency"]]
        labels[-1] += "+" if data["frequency"][-1] == 7 else ""
        axes.set_xticks(data["frequency"], labels)
        axes.set_xlabel("repeat purchases in calibration period")
        axes.set_ylabel(f"mean purchases in the {data['weeks']:g}-week holdout")
        axes.set_title(f"Calibration vs holdout ({data['model']})")
        axes.legend()
        return figure
    values = np.array([[np.nan if v is None else v for v in row] for row in data["values"]])
    image = axes.imshow(
        values,
        origin="lower",
        aspect="auto",
        extent=(0.0, data["T_weeks"], -0.5, len(data["frequency"]) - 0.5),
        interpolation="nearest",
    )
    label = "P(alive)" if quantity == "p_alive" else "expected purchases, next 90 days"
    figure.colorbar(image, ax=axes, label=label)
    axes.set_xlabel("recency (weeks from first to last purchase)")
    axes.set_ylabel("frequency (repeat purchases)")
    axes.set_title(f"{label}, customers observed {data['T_weeks']:.0f} weeks ({data['model']})")
    return figure
