from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from clm.predict import BetaGeo, GammaGamma, customer_lifetime_value


class _LinearPurchases:
    """Expected purchases grow linearly: rate purchases per model time unit."""

    def __init__(self, rate: float) -> None:
        self.rate = rate

    def predict_purchases(self, t: float, summary: Any) -> pd.Series:
        return pd.Series(self.rate * t * (1 + summary["frequency"]), index=summary.index)


class _FlatSpend:
    def conditional_expected_value(self, frequency: Any, monetary_value: Any) -> Any:
        return np.full(len(frequency), 20.0)


def test_clv_worked_by_hand() -> None:
    summary = pd.DataFrame(
        {"frequency": [0.0, 1.0], "recency": [0.0, 2.0], "T": [4.0, 4.0], "monetary_value": 0.0}
    )
    summary.attrs["unit"] = "D"
    # Periods of a week on a daily model: 7 days × 0.1/day × (1 + x) purchases per period,
    # worth $20 each, discounted 5% per week, over 3 weeks.
    clv = customer_lifetime_value(
        _LinearPurchases(0.1), _FlatSpend(), summary, horizon=3, discount_rate=0.05, unit="W"
    )
    per_period = 7 * 0.1 * 20
    factor = sum(1 / 1.05**k for k in (1, 2, 3))
    np.testing.assert_allclose(clv.to_numpy(), [per_period * factor, 2 * per_period * factor])


def test_undiscounted_clv_telescopes_to_the_horizon_forecast(cdnow_summary: pd.DataFrame) -> None:
    purchases = BetaGeo().fit(cdnow_summary)
    spend = GammaGamma().fit(cdnow_summary)
    clv = customer_lifetime_value(purchases, spend, cdnow_summary, 12, 0.0, unit="M")
    weeks = 12 * (365.25 / 12) / 7
    expected = purchases.predict_purchases(weeks, cdnow_summary) * spend.expected_spend(
        cdnow_summary
    )
    np.testing.assert_allclose(clv.to_numpy(), expected.to_numpy(), rtol=1e-9)
    discounted = customer_lifetime_value(purchases, spend, cdnow_summary, 12, 0.01, unit="M")
    assert np.all(discounted < clv) and np.all(discounted > clv / 1.01**12)


def test_bad_arguments() -> None:
    summary = pd.DataFrame({"frequency": [0.0], "recency": [0.0], "T": [1.0], "monetary_value": 0})
    with pytest.raises(ValueError, match="horizon"):
        customer_lifetime_value(_LinearPurchases(1), _FlatSpend(), summary, horizon=-1)
    with pytest.raises(ValueError, match="unit"):
        customer_lifetime_value(_LinearPurchases(1), _FlatSpend(), summary, unit="Q")
