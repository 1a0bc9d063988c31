"""The Newton fits: exact derivatives, the same optimum as a plain optimiser, any data shape.

The reference fits here use their own log-likelihoods, written from the papers' formulas
without compression, weights or log-space tricks, and scipy's derivative-free Nelder-Mead,
so they share nothing with the code under test but the data.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize, special
from threadpoolctl import threadpool_info

from clm.predict import (
    BetaGeo,
    ConvergenceWarning,
    ModifiedBetaGeo,
    ParetoNBD,
    _base,
    compress,
    pareto_nbd,
)
from clm.predict._newton import _trust_region_step
from clm.predict.pareto_nbd import _DropoutIntegral
from clm.predict.simulate import simulate_beta_geo, simulate_pareto_nbd

ARRAYS = ("frequency", "recency", "T")


def _columns(summary: pd.DataFrame) -> list[np.ndarray]:
    return [summary[c].to_numpy(dtype=np.float64) for c in ARRAYS]


def bg_nbd_loglik(params: np.ndarray, x: np.ndarray, tx: np.ndarray, age: np.ndarray) -> float:
    """FHL 2005 eq. 6, term by term: L = A1·A2·(A3 + δ(x>0)·A4)."""
    r, alpha, a, b = params
    a1 = special.gammaln(r + x) + r * np.log(alpha) - special.gammaln(r)
    a2 = special.gammaln(a + b) + special.gammaln(b + x) - special.gammaln(b)
    a2 -= special.gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + age)
    with np.errstate(divide="ignore"):
        a4 = np.log(a) - np.log(b + x - 1) - (r + x) * np.log(alpha + tx)
    a4 = np.where(x > 0, a4, -np.inf)
    return float(np.sum(a1 + a2 + np.logaddexp(a3, a4)))


def reference_fit(
    loglik: Callable[..., float], start: dict[str, float], x: np.ndarray, *rest: np.ndarray
) -> tuple[np.ndarray, float]:
    """Nelder-Mead on log-parameters, restarted until it stops moving."""
    theta = np.log(np.array(list(start.values())))
    for _ in range(4):
        result = optimize.minimize(
            lambda t: -loglik(np.exp(t), x, *rest),
            theta,
            method="Nelder-Mead",
            options={"xatol": 1e-9, "fatol": 1e-10, "maxiter": 20_000, "maxfev": 40_000},
        )
        theta = result.x
    return np.exp(theta), -float(result.fun)


def cdnow_shapes(cdnow_summary: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The paper's summary (T = days/7, each customer's own) and two other shapes of it."""
    weeks = cdnow_summary[list(ARRAYS)].copy()
    whole = weeks.assign(recency=np.floor(weeks["recency"]), T=np.floor(weeks["T"]))
    days = weeks.assign(recency=weeks["recency"] * 7, T=weeks["T"] * 7)
    return {"continuous weeks": weeks, "whole weeks": whole, "days": days}


@pytest.mark.parametrize("shape", ["continuous weeks", "whole weeks", "days"])
def test_bg_nbd_newton_fit_equals_a_plain_optimiser(
    cdnow_summary: pd.DataFrame, shape: str
) -> None:
    summary = cdnow_shapes(cdnow_summary)[shape]
    model = BetaGeo().fit(summary)
    assert model.optimizer_ == "newton"
    start = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.4}
    if shape == "days":
        start["alpha"] = 30.0
    expected, ll = reference_fit(bg_nbd_loglik, start, *_columns(summary))
    assert model.log_likelihood_ == pytest.approx(ll, abs=1e-6)
    for name, value in zip(BetaGeo.param_names, expected, strict=True):
        assert model.params_[name] == pytest.approx(value, rel=1e-5), name


def test_bg_nbd_newton_fit_on_simulated_continuous_ages() -> None:
    """Every customer has a T of their own (no two alike): nothing compresses."""
    ages = np.random.default_rng(5).uniform(20.0, 52.0, 5_000)
    summary = simulate_beta_geo(5_000, ages, r=0.4, alpha=6.0, a=0.9, b=3.0, seed=6)
    assert len(compress(summary)) > 0.5 * len(summary)
    model = BetaGeo().fit(summary)
    assert model.optimizer_ == "newton"
    expected, ll = reference_fit(
        bg_nbd_loglik, {"r": 1.0, "alpha": 1.0, "a": 1.0, "b": 1.0}, *_columns(summary)
    )
    assert model.log_likelihood_ == pytest.approx(ll, abs=1e-6)
    for name, value in zip(BetaGeo.param_names, expected, strict=True):
        assert model.params_[name] == pytest.approx(value, rel=1e-5), name


def test_fit_on_duplicated_rows_equals_fit_with_weights() -> None:
    summary = simulate_beta_geo(2_000, 30.0, r=0.5, alpha=5.0, a=1.0, b=2.0, seed=9)
    summary[["recency", "T"]] = np.round(summary[["recency", "T"]])
    doubled = pd.concat([summary, summary.iloc[:500]])
    weights = np.r_[np.full(500, 2.0), np.ones(1_500)]
    by_rows = BetaGeo().fit(doubled)
    by_weights = BetaGeo().fit(summary, weights=weights)
    assert by_rows.log_likelihood_ == pytest.approx(by_weights.log_likelihood_, abs=1e-8)
    assert by_rows.n_customers_ == 2_500
    for name in BetaGeo.param_names:
        assert by_rows.params_[name] == pytest.approx(by_weights.params_[name], rel=1e-9)


@pytest.mark.parametrize("model_class", [BetaGeo, ModifiedBetaGeo])
def test_bg_hessian_matches_differences_of_the_gradient(model_class: type[BetaGeo]) -> None:
    ages = np.random.default_rng(3).uniform(10.0, 40.0, 400)
    data = simulate_beta_geo(400, ages, r=0.8, alpha=3.0, a=1.2, b=2.5, seed=3)
    arrays = _columns(data)
    weights = np.random.default_rng(4).uniform(0.5, 3.0, 400)
    params = np.array([0.7, 3.5, 0.9, 2.2])
    model = model_class()
    ll, gradient, hessian = model._loglik_derivatives(params, arrays, weights)
    # The value and gradient agree with the per-row ones (checked against differences of
    # the log-likelihood in test_beta_geo); the Hessian with differences of that gradient.
    row_ll, row_gradient = model._row_loglik(params, arrays)
    assert ll == pytest.approx(float(weights @ row_ll), rel=1e-12)
    np.testing.assert_allclose(gradient, weights @ row_gradient, rtol=1e-10)
    numeric = np.empty((4, 4))
    for j in range(4):
        step = np.zeros(4)
        step[j] = 1e-5 * params[j]
        up = weights @ model._row_loglik(params + step, arrays)[1]
        down = weights @ model._row_loglik(params - step, arrays)[1]
        numeric[:, j] = (up - down) / (2 * step[j])
    np.testing.assert_allclose(hessian, numeric, rtol=1e-6, atol=1e-6 * np.abs(numeric).max())
    np.testing.assert_array_equal(hessian, hessian.T)


def test_standard_errors_from_the_analytic_hessian_match_differences(
    cdnow_summary: pd.DataFrame,
) -> None:
    model = BetaGeo().fit(cdnow_summary)
    se = model.summary()["se"].to_numpy()
    # Independent: the Hessian of the reference log-likelihood by central differences.
    params = model._params
    columns = _columns(cdnow_summary)

    def loglik(p: np.ndarray) -> float:
        return bg_nbd_loglik(p, *columns)

    steps = 1e-4 * params
    hessian = np.empty((4, 4))
    for i in range(4):
        for j in range(4):
            ei, ej = np.eye(4)[i] * steps[i], np.eye(4)[j] * steps[j]
            hessian[i, j] = (
                loglik(params + ei + ej)
                - loglik(params + ei - ej)
                - loglik(params - ei + ej)
                + loglik(params - ei - ej)
            ) / (4 * steps[i] * steps[j])
    expected = np.sqrt(np.diag(np.linalg.inv(-hessian)))
    np.testing.assert_allclose(se, expected, rtol=1e-3)


def test_fit_runs_with_one_blas_thread_and_restores_the_pool() -> None:
    seen: list[int] = []

    class Probe(BetaGeo):
        def _loglik_derivatives(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            seen.append(max(pool["num_threads"] for pool in _blas_pools()))
            return super()._loglik_derivatives(*args, **kwargs)

    before = [pool["num_threads"] for pool in _blas_pools()]
    Probe().fit(simulate_beta_geo(500, 30.0, r=0.5, alpha=5.0, a=1.0, b=2.0, seed=1))
    assert seen and set(seen) == {1}
    assert [pool["num_threads"] for pool in _blas_pools()] == before


def _blas_pools() -> list[dict[str, int]]:
    pools = [p for p in threadpool_info() if p["user_api"] == "blas"]
    if not pools:
        pytest.skip("no BLAS library with a thread pool is loaded")
    return pools


@pytest.mark.parametrize("radius", [0.1, 1.0, 100.0])
def test_trust_region_step_solves_the_subproblem(radius: float) -> None:
    """Against scipy's constrained solver on the same quadratic model, indefinite H included."""
    rng = np.random.default_rng(int(radius * 10))
    for _ in range(5):
        root = rng.normal(size=(4, 4))
        hessian = root @ root.T - 1.5 * np.eye(4)  # usually indefinite
        gradient = rng.normal(size=4)
        step = _trust_region_step(gradient, hessian, radius)

        def model(d: np.ndarray, g: np.ndarray = gradient, h: np.ndarray = hessian) -> float:
            return float(g @ d + 0.5 * d @ h @ d)

        ball = {"type": "ineq", "fun": lambda d: radius**2 - d @ d, "jac": lambda d: -2 * d}
        starts = [np.zeros(4), *(rng.normal(size=(8, 4)) * radius / 4)]
        best = min(
            (
                optimize.minimize(
                    model,
                    start,
                    jac=lambda d, g=gradient, h=hessian: g + h @ d,
                    constraints=[ball],
                    method="SLSQP",
                    options={"ftol": 1e-12, "maxiter": 500},
                )
                for start in starts
            ),
            key=lambda result: result.fun,
        )
        assert np.linalg.norm(step) <= radius * (1 + 1e-8)
        assert model(step) <= best.fun + 1e-6 * (1 + abs(best.fun))


# -- Pareto/NBD ----------------------------------------------------------------------------------
def pareto_nbd_loglik(params: np.ndarray, x: np.ndarray, tx: np.ndarray, age: np.ndarray) -> float:
    """FH 2005 note eq. 22 as printed: the A0 difference of two 2F1 terms, by branch."""
    r, alpha, s, beta = params
    a = r + s + x
    if alpha >= beta:
        b, c = s + 1, alpha
    else:
        b, c = r + x, beta

    def tail(t: np.ndarray) -> np.ndarray:
        return special.hyp2f1(a, b, a + 1, abs(alpha - beta) / (c + t)) / (c + t) ** a

    a0 = tail(tx) - tail(age)
    log_l = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    alive = 1 / ((alpha + age) ** (r + x) * (beta + age) ** s)
    return float(np.sum(log_l + np.log(alive + s / a * a0)))


@pytest.mark.slow
@pytest.mark.parametrize("shape", ["continuous weeks", "whole weeks", "days"])
def test_pareto_nbd_newton_fit_equals_a_plain_optimiser(
    cdnow_summary: pd.DataFrame, shape: str
) -> None:
    summary = cdnow_shapes(cdnow_summary)[shape]
    model = ParetoNBD().fit(summary)
    assert model.optimizer_ == "newton"
    start = {"r": 0.55, "alpha": 10.0, "s": 0.6, "beta": 11.0}
    if shape == "days":
        start["alpha"], start["beta"] = 70.0, 80.0
    expected, ll = reference_fit(pareto_nbd_loglik, start, *_columns(summary))
    assert model.log_likelihood_ == pytest.approx(ll, abs=1e-6)
    for name, value in zip(ParetoNBD.param_names, expected, strict=True):
        assert model.params_[name] == pytest.approx(value, rel=1e-5), name


@pytest.mark.slow
def test_pareto_nbd_newton_fit_on_simulated_continuous_ages() -> None:
    ages = np.random.default_rng(8).uniform(20.0, 52.0, 3_000)
    summary = simulate_pareto_nbd(3_000, ages, r=0.7, alpha=6.0, s=0.5, beta=9.0, seed=9)
    model = ParetoNBD().fit(summary)
    assert model.optimizer_ == "newton"
    expected, ll = reference_fit(
        pareto_nbd_loglik, {"r": 1.0, "alpha": 5.0, "s": 1.0, "beta": 5.0}, *_columns(summary)
    )
    assert model.log_likelihood_ == pytest.approx(ll, abs=1e-6)
    for name, value in zip(ParetoNBD.param_names, expected, strict=True):
        assert model.params_[name] == pytest.approx(value, rel=1e-5), name


@pytest.mark.parametrize(
    "params", [(0.6, 8.0, 0.8, 10.0), (0.3, 3.0, 2.0, 30.0), (2.0, 30.0, 0.4, 1.0)]
)
def test_pareto_derivatives_match_differences_of_the_closed_form(
    params: tuple[float, ...],
) -> None:
    """Gradient: differences of the 2F1 log-likelihood; Hessian: differences of the gradient."""
    ages = np.random.default_rng(1).uniform(5.0, 40.0, 500)
    data = simulate_pareto_nbd(500, ages, r=0.6, alpha=8.0, s=0.8, beta=10.0, seed=3)
    arrays = _columns(data)
    weights = np.random.default_rng(2).uniform(0.5, 2.0, 500)
    point = np.array(params)
    model = ParetoNBD()
    ll, gradient, hessian = model._loglik_derivatives(point, arrays, weights)
    closed = float(weights @ model._loglik_only(point, arrays))
    assert ll == pytest.approx(closed, rel=1e-12)
    numeric_gradient, numeric_hessian = np.empty(4), np.empty((4, 4))
    for j in range(4):
        step = np.zeros(4)
        step[j] = 1e-5 * point[j]
        up = float(weights @ model._loglik_only(point + step, arrays))
        down = float(weights @ model._loglik_only(point - step, arrays))
        numeric_gradient[j] = (up - down) / (2 * step[j])
        grad_up = model._loglik_derivatives(point + step, arrays, weights)[1]
        grad_down = model._loglik_derivatives(point - step, arrays, weights)[1]
        numeric_hessian[:, j] = (grad_up - grad_down) / (2 * step[j])
    np.testing.assert_allclose(gradient, numeric_gradient, rtol=1e-6, atol=1e-6)
    scale = np.abs(numeric_hessian).max()
    np.testing.assert_allclose(hessian, numeric_hessian, rtol=1e-6, atol=1e-7 * scale)
    np.testing.assert_allclose(hessian, hessian.T, rtol=1e-12, atol=1e-12 * scale)


@pytest.mark.parametrize(
    ("params", "x", "tx", "age"),
    [
        ((0.55, 10.6, 0.61, 11.7), 3, 5.0, 38.0),  # CDNOW-like
        ((0.5, 1.0, 0.8, 1e3), 0, 0.0, 50.0),  # β ≫ α
        ((2.0, 1e3, 0.3, 0.5), 0, 0.0, 50.0),  # α ≫ β
        ((0.8, 3.0, 1.5, 2.0), 400, 30.0, 50.0),  # large frequency
        ((0.8, 5.0, 0.5, 5.0), 4, 37.9, 38.0),  # a last purchase just before T
        ((0.6, 70.0, 0.5, 80.0), 12, 100.0, 270.0),  # days
    ],
)
def test_dropout_integral_matches_adaptive_quadrature(
    params: tuple[float, float, float, float], x: int, tx: float, age: float
) -> None:
    r, alpha, s, beta = params

    def log_integrand(tau: float) -> float:
        return float(-(r + x) * np.log(alpha + tau) - (s + 1) * np.log(beta + tau))

    scale = log_integrand(tx)  # factored out so that nothing underflows
    value, _ = integrate.quad(
        lambda tau: np.exp(log_integrand(tau) - scale), tx, age, epsabs=0, epsrel=1e-12, limit=500
    )
    expected = np.log(value) + scale
    arrays = [np.array([float(v)]) for v in (x, tx, age)]
    integral = _DropoutIntegral(np.array(params), *arrays)
    assert integral.log_j[0] == pytest.approx(expected, abs=pareto_nbd._ACCURACY)


def test_pareto_falls_back_to_lbfgsb_when_the_quadrature_is_not_trusted(
    cdnow_summary: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    newton = ParetoNBD().fit(cdnow_summary)
    monkeypatch.setattr(pareto_nbd, "_ACCURACY", -1.0)  # no row can pass the check
    fallback = ParetoNBD().fit(cdnow_summary)
    assert (newton.optimizer_, fallback.optimizer_) == ("newton", "l-bfgs-b")
    assert fallback.log_likelihood_ == pytest.approx(newton.log_likelihood_, abs=1e-6)
    for name in ParetoNBD.param_names:
        assert fallback.params_[name] == pytest.approx(newton.params_[name], rel=1e-5)


@pytest.mark.parametrize("model_class", [BetaGeo, ParetoNBD])
def test_warm_up_on_a_sample_reaches_the_same_optimum(
    model_class: type[BetaGeo] | type[ParetoNBD], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond 20,000 distinct rows Newton starts on a sample: the end point must not move."""
    ages = np.random.default_rng(12).uniform(20.0, 52.0, 25_000)
    summary = simulate_pareto_nbd(25_000, ages, r=0.6, alpha=8.0, s=0.7, beta=10.0, seed=13)
    assert len(compress(summary)) > _base._WARM_UP_ROWS
    warmed = model_class().fit(summary)
    monkeypatch.setattr(_base, "_WARM_UP_ROWS", 10**9)
    direct = model_class().fit(summary)
    assert warmed.optimizer_ == direct.optimizer_ == "newton"
    assert warmed.log_likelihood_ == pytest.approx(direct.log_likelihood_, abs=1e-7)
    for name in model_class.param_names:
        assert warmed.params_[name] == pytest.approx(direct.params_[name], rel=1e-6), name


@pytest.mark.parametrize("model_class", [BetaGeo, ModifiedBetaGeo, ParetoNBD])
@pytest.mark.parametrize("penalizer", [0.0, 0.05])
def test_newton_equals_lbfgsb_with_and_without_a_penalty(
    cdnow_summary: pd.DataFrame,
    model_class: type[BetaGeo] | type[ParetoNBD],
    penalizer: float,
) -> None:
    """The optimiser used before the Newton path (L-BFGS-B on the same objective)."""

    class WithoutHessian(model_class):  # type: ignore[valid-type,misc]
        _analytic_hessian = False

    newton = model_class(penalizer=penalizer).fit(cdnow_summary)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        reference = WithoutHessian(penalizer=penalizer).fit(cdnow_summary)
    assert (newton.optimizer_, reference.optimizer_) == ("newton", "l-bfgs-b")

    def objective(model: BetaGeo | ParetoNBD) -> float:
        params = model._params
        return -model.log_likelihood_ / len(cdnow_summary) + penalizer * float(params @ params)

    # Newton lands at least as low as L-BFGS-B; on the penalised surface, flat along one
    # direction, L-BFGS-B stops up to ~1e-4 short in log-likelihood.
    assert objective(newton) <= objective(reference) + 1e-12
    if caught:  # L-BFGS-B from the generic start gave up (penalised Pareto/NBD does)
        assert model_class is ParetoNBD and penalizer > 0
        assert objective(newton) < objective(reference) - 1e-6
        return
    assert newton.log_likelihood_ == pytest.approx(reference.log_likelihood_, abs=1e-4)
    for name in model_class.param_names:
        assert newton.params_[name] == pytest.approx(reference.params_[name], rel=1e-5), name


def _degenerate_shapes() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(0)
    ages = rng.uniform(20, 60, 3_000)
    return {
        "three customers": pd.DataFrame(
            {"frequency": [0.0, 1, 3], "recency": [0.0, 2, 9], "T": [10.0, 10, 10]}
        ),
        # almost nobody drops out: BG/NBD's dropout parameters have no interior optimum
        "everyone alive": simulate_pareto_nbd(3_000, ages, 1.0, 2.0, 0.05, 500.0, seed=3),
    }


@pytest.mark.parametrize("shape", ["three customers", "everyone alive"])
@pytest.mark.parametrize("model_class", [BetaGeo, ModifiedBetaGeo, ParetoNBD])
def test_degenerate_data_end_no_worse_than_before_newton(
    shape: str, model_class: type[BetaGeo] | type[ParetoNBD]
) -> None:
    """Where Newton runs off along a ridge, L-BFGS-B from the start competes: the fit is never
    worse than the optimiser used before, and the log-likelihood stays finite."""

    class WithoutHessian(model_class):  # type: ignore[valid-type,misc]
        _analytic_hessian = False

    summary = _degenerate_shapes()[shape]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        newton = model_class().fit(summary)
        reference = WithoutHessian().fit(summary)
    assert np.isfinite(newton.log_likelihood_)
    assert newton.log_likelihood_ >= reference.log_likelihood_ - 1e-6
