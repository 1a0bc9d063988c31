"""Discounted customer lifetime value from a transaction model and a spend model."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd

from clm.predict._summary import DAYS_PER_UNIT, compress
from clm.predict._validation import as_pandas

__all__ = ["customer_lifetime_value"]


class TransactionModel(Protocol):
    def predict_purchases(self, t: float, summary: Any) -> pd.Series: ...


class SpendModel(Protocol):
    def conditional_expected_value(self, frequency: Any, monetary_value: Any) -> Any: ...


def customer_lifetime_value(
    transaction_model: TransactionModel,
    spend_model: SpendModel,
    summary: Any,
    horizon: int = 12,
    discount_rate: float = 0.01,
    unit: str = "M",
    model_unit: str | None = None,
) -> pd.Series:
    """Discounted expected revenue of each customer over the next ``horizon`` periods.

    The convention is that of lifetimes' ``_customer_lifetime_value`` (and FHL 2005 "RFM and
    CLV", eq. 2 truncated at the horizon): time is cut into periods of one ``unit``; the
    purchases expected in period k are the increments of the conditional expectation,
    ``E[Y(k·u) | x, t_x, T] - E[Y((k-1)·u) | x, t_x, T]``, each purchase is worth the
    customer's expected spend ``E(M | x, m̄)``, and period k is discounted by
    ``(1 + discount_rate)^k`` (cash at the *end* of the period)::

        CLV = Σ_{k=1}^{horizon} E(M) · ΔE[Y]_k / (1 + d)^k

    Parameters
    ----------
    transaction_model
        A fitted continuous-time model (BetaGeo, ModifiedBetaGeo, ParetoNBD).
    spend_model
        A fitted GammaGamma (anything with ``conditional_expected_value``).
    summary
        RFM summary with ``frequency``, ``recency``, ``T`` and ``monetary_value``.
    horizon
        Number of discounting periods.
    discount_rate
        Discount rate per period (e.g. 0.01 per month is about 12.7% a year).
    unit
        Length of a discounting period: ``"D"``, ``"W"``, ``"M"`` or ``"Y"``.
    model_unit
        Time unit of ``summary`` (and hence of the model's parameters); defaults to
        ``summary.attrs["unit"]`` as set by :func:`clm.predict.rfm_summary`, else ``"W"``.
    """
    if horizon < 0 or int(horizon) != horizon:
        raise ValueError(f"horizon must be a non-negative whole number of periods, got {horizon}")
    if discount_rate <= -1:
        raise ValueError(f"discount_rate must be above -1, got {discount_rate}")
    frame = as_pandas(summary)
    model_unit = model_unit or str(frame.attrs.get("unit", "W"))
    for name, given in (("unit", unit), ("model_unit", model_unit)):
        if given not in DAYS_PER_UNIT:
            raise ValueError(f"{name} must be one of {sorted(DAYS_PER_UNIT)}, got {given!r}")
    period = DAYS_PER_UNIT[unit] / DAYS_PER_UNIT[model_unit]
    spend = np.asarray(
        spend_model.conditional_expected_value(
            frame["frequency"].to_numpy(), frame["monetary_value"].to_numpy()
        ),
        dtype=np.float64,
    )
    # Expected purchases depend on (frequency, recency, T) only: forecast each distinct row
    # once (a few thousand rows even for millions of customers) and map back.
    rows, inverse = compress(frame, columns=("frequency", "recency", "T"), return_inverse=True)
    discounted = np.zeros(len(rows))
    previous = np.zeros(len(rows))
    for k in range(1, int(horizon) + 1):
        cumulative = transaction_model.predict_purchases(k * period, rows).to_numpy()
        discounted += (cumulative - previous) / (1.0 + discount_rate) ** k
        previous = cumulative
    return pd.Series(spend * discounted[inverse], index=frame.index, name="clv")
