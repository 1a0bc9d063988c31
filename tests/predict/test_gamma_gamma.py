from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import integrate

from clm.predict import (
    GammaGamma,
    IndependenceWarning,
    InvalidSummaryError,
    check_independence,
)
from clm.predict.simulate import simulate_gamma_gamma


def test_reproduces_the_published_cdnow_estimates(cdnow_summary: pd.DataFrame) -> None:
    """FHL 2005 "RFM and CLV": p = 6.25, q = 3.74, γ = 15.44 on the 946 repeat buyers, with
    spend the mean of each customer's *repeat* transactions in the calibration period."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # CDNOW passes the independence check (r = 0.11)
        model = GammaGamma().fit(cdnow_summary)
    assert model.n_customers_ == 946
    assert model.params_["p"] == pytest.approx(6.25, rel=0.005)
    assert model.params_["q"] == pytest.approx(3.74, rel=0.005)
    assert model.params_["v"] == pytest.approx(15.44, rel=0.005)
    assert 0.05 < model.independence_.correlation < 0.3


def test_spend_including_first_purchase_does_not_reproduce_the_paper(
    cdnow_transactions: pd.DataFrame, cdnow_summary: pd.DataFrame
) -> None:
    """The convention matters: averaging all calibration transactions moves q off 3.74."""
    calibration = cdnow_transactions[cdnow_transactions["date"] <= "1997-09-30"]
    daily = calibration.groupby(["customer_id", "date"])["dollars"].sum()
    all_mean = daily.groupby(level="customer_id").mean()
    frame = cdnow_summary.assign(monetary_value=all_mean.reindex(cdnow_summary.index))
    model = GammaGamma().fit(frame)
    assert abs(model.params_["q"] / 3.74 - 1) > 0.005


def test_conditional_expected_value_matches_posterior_integral() -> None:
    """E(M | x, m̄) = ∫ (p/ν) posterior(ν) dν with posterior ∝ ν^(px+q-1) e^(-ν(γ+x m̄))."""
    params = {"p": 6.25, "q": 3.74, "v": 15.44}
    model = GammaGamma()
    model.params_ = params
    for x, mean_spend in [(1.0, 20.0), (4.0, 55.0), (25.0, 12.5)]:
        shape = params["p"] * x + params["q"]
        rate = params["v"] + x * mean_spend

        def posterior(nu: float, power: float, shape: float = shape, rate: float = rate) -> float:
            return math.exp((shape - 1 + power) * math.log(nu) - rate * nu)

        # The posterior is concentrated around its mode; 60 sds above it nothing is left.
        mode, upper = (shape - 1) / rate, (shape + 60 * math.sqrt(shape)) / rate
        opts = {"points": [mode], "epsabs": 0, "epsrel": 1e-11, "limit": 200}
        numerator = integrate.quad(posterior, 0, upper, args=(-1.0,), **opts)[0]
        evidence = integrate.quad(posterior, 0, upper, args=(0.0,), **opts)[0]
        expected = params["p"] * numerator / evidence
        assert model.conditional_expected_value(x, mean_spend) == pytest.approx(expected, rel=1e-8)
    # Without repeat purchases the expectation is the population mean pγ/(q-1).
    population = params["p"] * params["v"] / (params["q"] - 1)
    assert model.conditional_expected_value(0.0, 0.0) == pytest.approx(population)


def test_independence_violation_warns() -> None:
    rng = np.random.default_rng(5)
    frequency = rng.integers(1, 20, 2000).astype(float)
    # Gamma-Gamma spend scaled up with frequency: exactly the violation the check is for.
    spend = simulate_gamma_gamma(frequency, 6.0, 4.0, 15.0, seed=6) * (1 + 0.5 * frequency)
    with pytest.warns(IndependenceWarning, match="correlated"):
        GammaGamma().fit(pd.DataFrame({"frequency": frequency, "monetary_value": spend}))
    check = check_independence(frequency, spend, warn=False)
    assert check.correlation > 0.3 and not check.passed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GammaGamma(independence_threshold=None).fit(
            pd.DataFrame({"frequency": frequency, "monetary_value": spend})
        )


def test_parameter_recovery() -> None:
    truth = {"p": 4.0, "q": 3.0, "v": 20.0}
    frequency = np.random.default_rng(31).integers(1, 10, 20_000).astype(float)
    spend = simulate_gamma_gamma(frequency, **truth, seed=32)
    table = (
        GammaGamma().fit(pd.DataFrame({"frequency": frequency, "monetary_value": spend})).summary()
    )
    for name, value in truth.items():
        assert abs(table.loc[name, "estimate"] - value) < 4 * table.loc[name, "se"], name


def test_bad_spend_is_rejected() -> None:
    frame = pd.DataFrame({"frequency": [1.0, 2.0, 0.0], "monetary_value": [10.0, 0.0, 0.0]})
    with pytest.raises(InvalidSummaryError, match="'monetary_value': 1 repeat buyer"):
        GammaGamma().fit(frame)
    with pytest.raises(InvalidSummaryError, match="no repeat buyers"):
        GammaGamma().fit(frame.assign(frequency=0.0))
