from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate

from clm.predict import BetaGeoBetaBinom, InvalidSummaryError, compress
from clm.predict.simulate import simulate_beta_geo_beta_binom

PARAMS = {"alpha": 1.2, "beta": 0.75, "gamma": 0.66, "delta": 2.78}  # donation-like scale


def _model() -> BetaGeoBetaBinom:
    model = BetaGeoBetaBinom()
    model.params_ = dict(PARAMS)
    return model


def _loglik(x: float, tx: float, n: float) -> float:
    model = _model()
    ll, _ = model._row_loglik(model._params, [np.array([x]), np.array([tx]), np.array([n])])
    return float(ll[0])


def _brute_force_likelihood(pattern: tuple[int, ...]) -> float:
    """P(one specific purchase pattern), summing over the death time K by enumeration and
    integrating p ~ Beta(α, β) and θ ~ Beta(γ, δ) numerically (no Beta-function algebra)."""
    alpha, beta, gamma, delta = PARAMS.values()
    n = len(pattern)
    last = max((i + 1 for i, bought in enumerate(pattern) if bought), default=0)

    def given(p: float, theta: float) -> float:
        total = 0.0
        for alive_for in range(last, n + 1):  # must be alive at every purchase
            stay = (1 - theta) ** alive_for * (theta if alive_for < n else 1.0)
            seen = pattern[:alive_for]
            total += stay * math.prod(p if b else 1 - p for b in seen)
        return total

    norm = math.gamma(alpha) * math.gamma(beta) / math.gamma(alpha + beta)
    norm *= math.gamma(gamma) * math.gamma(delta) / math.gamma(gamma + delta)

    def integrand(theta: float, p: float) -> float:
        prior = p ** (alpha - 1) * (1 - p) ** (beta - 1)
        prior *= theta ** (gamma - 1) * (1 - theta) ** (delta - 1)
        return given(p, theta) * prior / norm

    return integrate.dblquad(integrand, 0, 1, 0, 1, epsabs=0, epsrel=1e-9)[0]


@pytest.mark.parametrize("pattern", [(0, 0, 0), (1, 0, 1, 0), (1, 1, 0, 0, 0), (0, 0, 0, 1)])
def test_likelihood_matches_brute_force(pattern: tuple[int, ...]) -> None:
    x = sum(pattern)
    tx = max((i + 1 for i, b in enumerate(pattern) if b), default=0)
    expected = _brute_force_likelihood(pattern)
    assert _loglik(x, tx, len(pattern)) == pytest.approx(math.log(expected), abs=1e-7)


def test_likelihood_is_a_distribution_over_summaries() -> None:
    """Σ over (x, t_x) of (number of patterns) · L = 1: the index ranges are right."""
    n = 6
    total = math.exp(_loglik(0, 0, n))
    for tx in range(1, n + 1):
        for x in range(1, tx + 1):
            total += math.comb(tx - 1, x - 1) * math.exp(_loglik(x, tx, n))
    assert total == pytest.approx(1.0, abs=1e-12)


def test_predictions_are_consistent() -> None:
    model = _model()
    x = np.arange(11)
    probabilities = model.probability_of_n_purchases(10, x)
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-12)
    assert float(x @ probabilities) == pytest.approx(
        model.expected_purchases_new_customer(10), rel=1e-12
    )
    # Conditional on no history (n = 0), the forecast is the new-customer expectation.
    empty = pd.DataFrame({"frequency": [0.0], "recency": [0.0], "n_periods": [0.0]})
    assert model.predict_purchases(10, empty).iloc[0] == pytest.approx(
        model.expected_purchases_new_customer(10), rel=1e-12
    )


def test_p_alive_by_enumeration() -> None:
    """P(alive at n+1 | pattern) = P(pattern and alive at n+1) / P(pattern), each summed over
    the 2^n patterns of the same (x, t_x) by the likelihood."""
    model = _model()
    row = pd.DataFrame({"frequency": [2.0], "recency": [3.0], "n_periods": [6.0]})
    alpha, beta, gamma, delta = PARAMS.values()

    def beta_fn(a: float, b: float) -> float:
        return math.exp(math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))

    joint = beta_fn(alpha + 2, beta + 4) / beta_fn(alpha, beta)
    joint *= beta_fn(gamma, delta + 7) / beta_fn(gamma, delta)
    assert model.p_alive(row).iloc[0] == pytest.approx(joint / math.exp(_loglik(2, 3, 6)))


def test_parameter_recovery() -> None:
    data = simulate_beta_geo_beta_binom(50_000, 8, **PARAMS, seed=51)
    rows = compress(data, columns=("frequency", "recency", "n_periods"))
    table = BetaGeoBetaBinom().fit(rows, weights=rows["weight"]).summary()
    for name, value in PARAMS.items():
        assert abs(table.loc[name, "estimate"] - value) < 4 * table.loc[name, "se"], name


def test_bad_rows_are_rejected() -> None:
    frame = pd.DataFrame({"frequency": [3.0], "recency": [2.0], "n_periods": [5.0]})
    with pytest.raises(InvalidSummaryError, match="frequency > recency"):
        BetaGeoBetaBinom().fit(frame)
    with pytest.raises(InvalidSummaryError, match="'n_periods': 1 row"):
        BetaGeoBetaBinom().fit(frame.assign(frequency=1.0, n_periods=5.5))
