from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from scipy import integrate

from clm.predict import ParetoNBD, compress
from clm.predict.pareto_nbd import _log_tail_integral
from clm.predict.simulate import simulate_pareto_nbd

CDNOW_PARETO = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}  # FHL 2005


def test_reproduces_the_published_cdnow_estimates(cdnow_summary: pd.DataFrame) -> None:
    rows = compress(cdnow_summary)
    model = ParetoNBD().fit(rows, weights=rows["weight"])
    for name, published in CDNOW_PARETO.items():
        assert model.params_[name] == pytest.approx(published, rel=0.005), name
    # No log-likelihood check: the published value could not be verified from a source.


@pytest.mark.parametrize(
    ("r", "alpha", "s", "beta", "x", "t"),
    [
        (0.55, 10.6, 0.61, 11.7, 3, 20.0),  # CDNOW-like
        (0.5, 1.0, 0.8, 1e4, 0, 0.0),  # β ≫ α, t = 0: z = 0.9999 in the 2F1
        (2.0, 1e4, 0.3, 0.5, 0, 0.0),  # α ≫ β, the other branch, z → 1
        (0.8, 3.0, 1.5, 2.0, 800, 50.0),  # very large frequency
        (0.8, 0.01, 0.5, 5.0, 40, 1e4),  # huge T relative to α
    ],
)
def test_tail_integral_matches_quadrature(
    r: float, alpha: float, s: float, beta: float, x: int, t: float
) -> None:
    """The 2F1 closed form equals (r+s+x) ∫_t^∞ (α+τ)^-(r+x) (β+τ)^-(s+1) dτ, integrated
    numerically after factoring out its value at t (so nothing underflows)."""
    a = r + s + x

    def log_f(tau: float) -> float:
        return -(r + x) * math.log(alpha + tau) - (s + 1) * math.log(beta + tau)

    scale = log_f(t)
    value, _ = integrate.quad(
        lambda u: math.exp(log_f(t + u) - scale), 0, math.inf, epsabs=0, epsrel=1e-11, limit=500
    )
    expected = math.log(a) + scale + math.log(value)
    got = _log_tail_integral(r, alpha, s, beta, np.array([float(x)]), np.array([t]))[0]
    assert got == pytest.approx(expected, abs=1e-8)


def _pareto_posterior_integrals(
    params: dict[str, float], x: float, tx: float, age: float, t: float
) -> tuple[float, float]:
    """Brute-force P(alive) and E[Y(t)] by integrating over λ and μ (SMC 1987 Sec. 2)."""
    r, alpha, s, beta = (params[k] for k in ("r", "alpha", "s", "beta"))

    def prior(lam: float, mu: float) -> float:
        return math.exp((r - 1) * math.log(lam) - alpha * lam + (s - 1) * math.log(mu) - beta * mu)

    def alive(mu: float, lam: float) -> float:
        return lam**x * math.exp(-(lam + mu) * age) * prior(lam, mu)

    def dead(mu: float, lam: float) -> float:
        # died in (t_x, T]: μ e^{-μτ} λ^x e^{-λτ} integrated over τ
        both = lam + mu
        window = math.exp(-both * tx) - math.exp(-both * age)
        return lam**x * mu / both * window * prior(lam, mu)

    def future(mu: float, lam: float) -> float:
        return alive(mu, lam) * lam / mu * -math.expm1(-mu * t)

    def double(f: Callable[[float, float], float]) -> float:
        return integrate.dblquad(f, 0, 30, 0, 30, epsabs=0, epsrel=1e-8)[0]

    evidence = double(alive) + double(dead)
    return double(alive) / evidence, double(future) / evidence


@pytest.mark.parametrize(("x", "tx", "age"), [(0, 0.0, 30.0), (3, 12.0, 38.0), (7, 36.0, 38.0)])
def test_p_alive_and_expectation_match_numerical_integration(x: int, tx: float, age: float) -> None:
    params = {"r": 1.6, "alpha": 7.0, "s": 1.8, "beta": 9.0}  # r, s > 1: finite integrands
    model = ParetoNBD()
    model.params_ = params
    row = pd.DataFrame({"frequency": [x], "recency": [tx], "T": [age]})
    p_alive, expected = _pareto_posterior_integrals(params, x, tx, age, t=20.0)
    assert model.p_alive(row).iloc[0] == pytest.approx(p_alive, rel=1e-6)
    assert model.predict_purchases(20.0, row).iloc[0] == pytest.approx(expected, rel=1e-6)


def test_purchase_distribution_is_consistent() -> None:
    model = ParetoNBD()
    model.params_ = dict(CDNOW_PARETO)
    n = np.arange(300)
    probabilities = model.probability_of_n_purchases(39.0, n)
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-7)
    assert float(n @ probabilities) == pytest.approx(
        model.expected_purchases_new_customer(39.0), rel=1e-6
    )
    row = pd.DataFrame({"frequency": [0.0], "recency": [0.0], "T": [0.0]})
    assert model.predict_purchases(39.0, row).iloc[0] == pytest.approx(
        model.expected_purchases_new_customer(39.0), rel=1e-10
    )


def test_s_equal_one_is_the_limit() -> None:
    near, exact = ParetoNBD(), ParetoNBD()
    near.params_ = {"r": 0.5, "alpha": 10.0, "s": 1.0 + 1e-7, "beta": 12.0}
    exact.params_ = {"r": 0.5, "alpha": 10.0, "s": 1.0, "beta": 12.0}
    assert exact.expected_purchases_new_customer(30.0) == pytest.approx(
        near.expected_purchases_new_customer(30.0), rel=1e-6
    )


def test_extreme_rows_give_finite_likelihood_and_scores() -> None:
    model = ParetoNBD()
    model.params_ = dict(CDNOW_PARETO)
    rows = pd.DataFrame(
        {
            "frequency": [0.0, 2000.0, 50.0, 1.0],
            "recency": [0.0, 1999.0, 1.0, 1e5 - 1e-3],
            "T": [1e5, 2000.0, 1e4, 1e5],
        }
    )
    arrays = [rows[c].to_numpy() for c in ("frequency", "recency", "T")]
    ll, grad = model._row_loglik(model._params, arrays)
    assert np.all(np.isfinite(ll)) and np.all(np.isfinite(grad))
    p_alive = model.p_alive(rows)
    assert np.all((p_alive >= 0) & (p_alive <= 1))
    # Fifty purchases in the first week and silence for 10,000 weeks: surely gone.
    assert p_alive.iloc[2] < 1e-12
    assert np.all(np.isfinite(model.predict_purchases(52.0, rows)))


def test_parameter_recovery() -> None:
    truth = {"r": 0.6, "alpha": 8.0, "s": 0.8, "beta": 10.0}
    ages = np.random.default_rng(21).uniform(26, 39, 20_000)
    data = simulate_pareto_nbd(20_000, ages, **truth, seed=22, resolution=1 / 7)
    rows = compress(data)
    table = ParetoNBD().fit(rows, weights=rows["weight"]).summary()
    # 4 standard errors; the daily rounding of recency biases by < 1/14 week: negligible.
    for name, value in truth.items():
        assert abs(table.loc[name, "estimate"] - value) < 4 * table.loc[name, "se"], name
