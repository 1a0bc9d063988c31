from __future__ import annotations

import numpy as np
import pytest

from clm.predict import BetaGeo, ParetoNBD, ShiftedBetaGeometric
from clm.predict.simulate import (
    simulate_beta_geo,
    simulate_gamma_gamma,
    simulate_pareto_nbd,
    simulate_shifted_beta_geometric,
)

N = 100_000


def _within_4_se(sample: np.ndarray, expected: float) -> bool:
    return bool(abs(sample.mean() - expected) < 4 * sample.std() / np.sqrt(sample.size))


def test_beta_geo_simulation_matches_the_model_mean() -> None:
    params = {"r": 0.8, "alpha": 5.0, "a": 0.9, "b": 2.5}
    data = simulate_beta_geo(N, 30.0, **params, seed=61)
    model = BetaGeo()
    model.params_ = params
    assert _within_4_se(data["frequency"].to_numpy(), model.expected_purchases_new_customer(30.0))
    assert (data["recency"] <= data["T"]).all()
    assert (data.loc[data["frequency"] == 0, "recency"] == 0).all()


def test_pareto_simulation_matches_the_model_mean() -> None:
    params = {"r": 0.6, "alpha": 8.0, "s": 0.8, "beta": 10.0}
    data = simulate_pareto_nbd(N, 40.0, **params, seed=62)
    model = ParetoNBD()
    model.params_ = params
    assert _within_4_se(data["frequency"].to_numpy(), model.expected_purchases_new_customer(40.0))


def test_daily_resolution_floors_times() -> None:
    data = simulate_beta_geo(1000, 30.5, 1.0, 1.0, 1.0, 2.0, seed=63, resolution=1 / 7)
    days = data[["recency", "T"]].to_numpy() * 7
    np.testing.assert_allclose(days, np.round(days), atol=1e-9)


def test_gamma_gamma_simulation_mean_spend() -> None:
    frequency = np.full(N, 3.0)
    spend = simulate_gamma_gamma(frequency, 6.0, 4.0, 15.0, seed=64)
    # E[m̄] = E[p/ν] = pγ/(q-1) = 30
    assert _within_4_se(spend, 30.0)


def test_sbg_cohort_follows_the_survival_curve() -> None:
    counts = simulate_shifted_beta_geometric(N, 6, 0.7, 1.2, seed=65)
    model = ShiftedBetaGeometric()
    model.params_ = {"alpha": 0.7, "beta": 1.2}
    share = model.survival(np.arange(7))
    # Binomial noise of a share out of 100,000: sd <= 0.0016; 4 sd.
    np.testing.assert_allclose(counts / N, share, atol=4 * 0.0016)
    assert counts[0] == N


def test_bad_ages_are_rejected() -> None:
    with pytest.raises(ValueError, match="T must be positive"):
        simulate_beta_geo(3, 0.0, 1.0, 1.0, 1.0, 1.0)
