"""Draw customer summaries from the generative stories of the models, for tests and benchmarks.

Each simulator samples the latent per-customer quantities (rates, dropout probabilities) and
then the observed summary directly, without generating individual transactions, so that ten
million customers take seconds. All functions take a ``seed`` and are reproducible.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from clm.predict._validation import FloatArray

__all__ = [
    "simulate_beta_geo",
    "simulate_beta_geo_beta_binom",
    "simulate_gamma_gamma",
    "simulate_modified_beta_geo",
    "simulate_pareto_nbd",
    "simulate_shifted_beta_geometric",
]


def _ages(n: int, age: Any) -> FloatArray:
    ages = np.broadcast_to(np.asarray(age, dtype=np.float64), (n,)).copy()
    if np.any(ages <= 0):
        raise ValueError("T must be positive")
    return ages


def _round_down(values: FloatArray, resolution: float | None) -> FloatArray:
    # Observing time on a grid (days) is what makes real summaries compress.
    return values if resolution is None else np.floor(values / resolution) * resolution


def _frame(x: Any, tx: FloatArray, ages: FloatArray) -> pd.DataFrame:
    return pd.DataFrame(
        {"frequency": np.asarray(x, dtype=np.float64), "recency": tx, "T": ages},
        copy=False,
    )


def _last_of_poisson(
    rng: np.random.Generator, purchases: Any, total: Any, window: FloatArray
) -> FloatArray:
    """Time of the ``purchases``-th of ``total`` Poisson events uniformly spread on the window.

    Given N(w) = n events, their times are uniform order statistics on [0, w]; the k-th is
    w · Beta(k, n-k+1).
    """
    k = np.asarray(purchases, dtype=np.float64)
    n = np.asarray(total, dtype=np.float64)
    has = k > 0
    out = np.zeros_like(window)
    out[has] = window[has] * rng.beta(k[has], n[has] - k[has] + 1)
    return out


def _geo_rfm(
    n: int,
    age: Any,
    r: float,
    alpha: float,
    a: float,
    b: float,
    seed: int | None,
    resolution: float | None,
    dropout_at_zero: bool,
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ages = _ages(n, age)
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    # Purchases made before the dropout coin comes up: Geometric on {1, 2, ...} for BG/NBD
    # (a coin after each repeat purchase), on {0, 1, ...} for MBG/NBD (also one at time 0).
    survived = rng.geometric(p) - (1 if dropout_at_zero else 0)
    total = rng.poisson(lam * ages)
    x = np.minimum(total, survived)
    tx = _round_down(_last_of_poisson(rng, x, total, ages), resolution)
    return _frame(x, tx, _round_down(ages, resolution))


def simulate_beta_geo(
    n: int,
    T: Any,
    r: float,
    alpha: float,
    a: float,
    b: float,
    seed: int | None = None,
    resolution: float | None = None,
) -> pd.DataFrame:
    """Summaries (frequency, recency, T) of ``n`` customers from the BG/NBD model.

    ``T`` is a scalar or one value per customer; ``resolution`` floors recency and T to a
    grid (e.g. ``1/7`` for days when time is in weeks), as a real log observed daily would.
    """
    return _geo_rfm(n, T, r, alpha, a, b, seed, resolution, dropout_at_zero=False)


def simulate_modified_beta_geo(
    n: int,
    T: Any,
    r: float,
    alpha: float,
    a: float,
    b: float,
    seed: int | None = None,
    resolution: float | None = None,
) -> pd.DataFrame:
    """Summaries of ``n`` customers from the MBG/NBD model (dropout possible at time 0)."""
    return _geo_rfm(n, T, r, alpha, a, b, seed, resolution, dropout_at_zero=True)


def simulate_pareto_nbd(
    n: int,
    T: Any,
    r: float,
    alpha: float,
    s: float,
    beta: float,
    seed: int | None = None,
    resolution: float | None = None,
) -> pd.DataFrame:
    """Summaries of ``n`` customers from the Pareto/NBD model."""
    rng = np.random.default_rng(seed)
    ages = _ages(n, T)
    lam = rng.gamma(r, 1.0 / alpha, n)
    mu = rng.gamma(s, 1.0 / beta, n)
    active = np.minimum(rng.exponential(1.0 / mu), ages)
    x = rng.poisson(lam * active)
    tx = _round_down(_last_of_poisson(rng, x, x, active), resolution)
    return _frame(x, tx, _round_down(ages, resolution))


def simulate_beta_geo_beta_binom(
    n: int,
    n_periods: int,
    alpha: float,
    beta: float,
    gamma: float,
    delta: float,
    seed: int | None = None,
) -> pd.DataFrame:
    """Summaries (frequency, recency, n_periods) of ``n`` customers from the BG/BB model.

    A customer alive at a transaction opportunity transacts with probability p ~ Beta(α, β);
    before each opportunity they may die with probability θ ~ Beta(γ, δ) (FHS 2010, Sec. 2).
    Recency is the index (1..n_periods) of the last transaction, 0 without any.
    """
    rng = np.random.default_rng(seed)
    p = rng.beta(alpha, beta, n)
    theta = rng.beta(gamma, delta, n)
    alive_for = np.minimum(rng.geometric(theta) - 1, n_periods)  # opportunities survived
    x = np.zeros(n)
    tx = np.zeros(n)
    for opportunity in range(1, n_periods + 1):
        buys = (alive_for >= opportunity) & (rng.random(n) < p)
        x += buys
        tx[buys] = opportunity
    return pd.DataFrame({"frequency": x, "recency": tx, "n_periods": np.full(n, float(n_periods))})


def simulate_gamma_gamma(
    frequency: Any, p: float, q: float, v: float, seed: int | None = None
) -> FloatArray:
    """Mean spend of each customer's ``frequency`` transactions under Gamma-Gamma (0 if none).

    ν ~ Gamma(q, rate v) per customer; the sum of x spends Gamma(p, rate ν) is
    Gamma(px, rate ν).
    """
    rng = np.random.default_rng(seed)
    x = np.asarray(frequency, dtype=np.float64)
    nu = np.asarray(rng.gamma(q, 1.0 / v, x.shape[0]), dtype=np.float64)
    has = x > 0
    out = np.zeros_like(x)
    out[has] = np.asarray(rng.gamma(p * x[has], 1.0 / nu[has])) / x[has]
    return out


def simulate_shifted_beta_geometric(
    n: int, n_periods: int, alpha: float, beta: float, seed: int | None = None
) -> FloatArray:
    """Survivor counts n_0..n_{n_periods} of a cohort of ``n`` under the sBG model."""
    rng = np.random.default_rng(seed)
    theta = rng.beta(alpha, beta, n)
    lifetime = rng.geometric(theta)  # churns at the end of period 1, 2, ...
    periods = np.arange(n_periods + 1)
    return np.asarray((lifetime[None, :] > periods[:, None]).sum(axis=1), dtype=np.float64)
