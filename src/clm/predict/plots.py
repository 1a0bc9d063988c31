"""Diagnostic figures of the BTYD papers (matplotlib; figures returned, never saved).

Each function returns a :class:`matplotlib.figure.Figure` whose plotted data is the model's
numbers, so callers (and tests) can read them back from the axes. Figures are built as
``matplotlib.figure.Figure`` objects, without pyplot: no global backend or state is touched,
and they render with any backend (Agg on servers).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from clm.predict._rfm_model import RFMModel
from clm.predict._validation import as_pandas

__all__ = [
    "calibration_vs_holdout",
    "frequency_recency_grid",
    "p_alive_history",
    "plot_calibration_vs_holdout",
    "plot_frequency_recency",
    "plot_p_alive_history",
]


def calibration_vs_holdout(model: RFMModel, summary: Any, max_frequency: int = 7) -> pd.DataFrame:
    """Mean actual vs predicted holdout purchases by calibration frequency (0..max+).

    The table behind FHL 2005 Figure 4; ``summary`` needs the holdout columns of
    :func:`clm.predict.rfm_summary` (``frequency_holdout``, ``duration_holdout``).
    """
    frame = as_pandas(summary)
    duration = float(frame["duration_holdout"].iloc[0])
    predicted = model.predict_purchases(duration, frame).to_numpy()
    bucket = np.minimum(frame["frequency"].to_numpy(), max_frequency)
    table = pd.DataFrame(
        {"bucket": bucket, "actual": frame["frequency_holdout"].to_numpy(), "predicted": predicted}
    )
    return table.groupby("bucket").mean()


def plot_calibration_vs_holdout(model: RFMModel, summary: Any, max_frequency: int = 7) -> Figure:
    """Actual and predicted mean holdout purchases by calibration frequency bucket."""
    table = calibration_vs_holdout(model, summary, max_frequency)
    figure = Figure(figsize=(7, 4.5))
    axes = figure.subplots()
    axes.plot(table.index, table["actual"], marker="o", label="actual")
    axes.plot(table.index, table["predicted"], marker="s", linestyle="--", label="model")
    labels = [str(int(b)) for b in table.index]
    labels[-1] += "+" if table.index[-1] == max_frequency else ""
    axes.set_xticks(table.index, labels)
    axes.set_xlabel("purchases in calibration period")
    axes.set_ylabel("mean purchases in holdout period")
    axes.set_title("Conditional expectations: actual vs model")
    axes.legend()
    return figure


def _grid(max_frequency: int, max_t: float, points: int) -> tuple[Any, Any, pd.DataFrame]:
    frequency = np.arange(max_frequency + 1, dtype=np.float64)
    recency = np.linspace(0.0, max_t, points)
    x, tx = np.meshgrid(frequency, recency, indexing="ij")
    valid = ~((x == 0) & (tx > 0))  # no repeat purchases: recency is 0 by definition
    tx = np.where(x == 0, 0.0, tx)
    grid = pd.DataFrame({"frequency": x.ravel(), "recency": tx.ravel(), "T": max_t})
    return valid, x.shape, grid


def frequency_recency_grid(
    model: RFMModel,
    T: float,
    quantity: str = "p_alive",
    t: float = 1.0,
    max_frequency: int = 20,
    points: int = 50,
) -> Any:
    """The heat-map's values: rows are frequency 0..max_frequency, columns recency in
    ``linspace(0, T, points)``; impossible cells (frequency 0, recency > 0) are NaN."""
    if quantity not in ("p_alive", "purchases"):
        raise ValueError("quantity must be 'p_alive' or 'purchases'")
    valid, shape, grid = _grid(max_frequency, T, points)
    values = model.p_alive(grid) if quantity == "p_alive" else model.predict_purchases(t, grid)
    return np.where(valid, values.to_numpy().reshape(shape), np.nan)


def plot_frequency_recency(
    model: RFMModel,
    T: float,
    quantity: str = "p_alive",
    t: float = 1.0,
    max_frequency: int = 20,
    points: int = 50,
) -> Figure:
    """Heat-map over frequency × recency of P(alive) or of purchases expected in the next t,
    for customers observed for ``T`` (the iso-value view of FHL 2005, "RFM and CLV").

    Cells with frequency 0 and recency > 0 are impossible and left blank.
    """
    image = frequency_recency_grid(model, T, quantity, t, max_frequency, points)
    figure = Figure(figsize=(7, 5.5))
    axes = figure.subplots()
    mesh = axes.imshow(
        image,
        origin="lower",
        aspect="auto",
        extent=(0.0, T, -0.5, max_frequency + 0.5),
        interpolation="nearest",
    )
    figure.colorbar(
        mesh, ax=axes, label=quantity if quantity == "p_alive" else f"E[purchases in {t:g}]"
    )
    axes.set_xlabel("recency (time of last purchase)")
    axes.set_ylabel("frequency (repeat purchases)")
    axes.set_title(f"{'P(alive)' if quantity == 'p_alive' else 'Expected purchases'}, T = {T:g}")
    return figure


def p_alive_history(
    model: RFMModel, purchase_times: Any, end: float, points: int = 200
) -> pd.DataFrame:
    """P(alive) of one customer at each time of ``[0, end]`` given their purchase times.

    ``purchase_times`` are measured from the first purchase (which is at 0 and is not a
    repeat purchase), in the model's time unit.
    """
    times = np.sort(np.asarray(purchase_times, dtype=np.float64))
    if times.size == 0 or times[0] != 0 or np.any(times > end):
        raise ValueError("purchase_times must start at 0 (the first purchase) and end by `end`")
    grid = np.union1d(np.linspace(0.0, end, points), times)
    counts = np.searchsorted(times, grid, side="right") - 1  # repeat purchases up to each time
    last = times[counts]
    frame = pd.DataFrame({"frequency": counts.astype(np.float64), "recency": last, "T": grid})
    return pd.DataFrame({"t": grid, "p_alive": model.p_alive(frame).to_numpy()})


def plot_p_alive_history(model: RFMModel, purchase_times: Any, end: float) -> Figure:
    """A customer's P(alive) over time: jumps to 1 at each purchase, decays in between."""
    history = p_alive_history(model, purchase_times, end)
    figure = Figure(figsize=(8, 3.5))
    axes = figure.subplots()
    axes.plot(history["t"], history["p_alive"], label="P(alive)")
    for time in np.asarray(purchase_times, dtype=np.float64):
        axes.axvline(time, color="grey", linestyle=":", linewidth=1)
    axes.set_ylim(0, 1.05)
    axes.set_xlabel("time since first purchase")
    axes.set_ylabel("P(alive)")
    axes.set_title("P(alive) history")
    return figure
