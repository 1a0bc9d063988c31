"""Predictions as a product: fit a workspace's history, score every customer, explain it.

Typical use::

    from clm.predictions import fit_workspace, latest_predictions

    report = fit_workspace(db, workspace_id, model="auto", holdout_weeks=26)
    latest_predictions(db, workspace_id, customer_id).latest.p_alive

The models are :mod:`clm.predict`'s; this package reads the event log, chooses the model by
the workspace's business model, stores the fit, and writes one ``Prediction Scored`` event
per customer (``properties.p_alive``, ``expected_purchases_90d``, ``clv_12m``, ``model``,
``model_version``, ``fitted_at``), which the lifecycle's features read like any other event.
"""

from clm.predictions.plots import PLOTS, plot_data, plot_figure
from clm.predictions.schemas import (
    CustomerPrediction,
    CustomerPredictions,
    FitReport,
    HoldoutCheck,
    ParameterEstimate,
)
from clm.predictions.service import MODEL_VERSION, fit_workspace, latest_fit, latest_predictions

__all__ = [
    "MODEL_VERSION",
    "PLOTS",
    "CustomerPrediction",
    "CustomerPredictions",
    "FitReport",
    "HoldoutCheck",
    "ParameterEstimate",
    "fit_workspace",
    "latest_fit",
    "latest_predictions",
    "plot_data",
    "plot_figure",
]
