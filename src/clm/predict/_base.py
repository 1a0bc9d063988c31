"""Maximum-likelihood machinery shared by every model: optimiser, weights, standard errors."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from scipy import optimize

from clm.predict._errors import ConvergenceWarning, InvalidSummaryError, NotFittedError
from clm.predict._newton import Derivatives, newton_trust_region, one_blas_thread
from clm.predict._validation import FloatArray, check_weights

__all__ = ["MLEModel", "RowLogLik"]

#: Per-row log-likelihood and its gradient with respect to the natural parameters.
RowLogLik = tuple[FloatArray, FloatArray]

_LOG_BOUND = 25.0  # parameters are searched in [e^-25, e^25]: far beyond any sane scale
_LOG_EXTREME = 10.0  # beyond e^+-10 a fit is checked for a flat ridge (real fits sit well inside)
_FLAT = 1e-8  # log-space curvature ratio below which the data do not pin the parameters down
_Z95 = 1.959963984540054
_WARM_UP_ROWS = 20_000  # beyond this many distinct rows, Newton starts on a sample of them


class MLEModel:
    """Base of the fitted models: weighted maximum likelihood on log-parameters.

    Subclasses name their parameters and provide a vectorised per-row log-likelihood with its
    gradient; this class owns what is common: optimisation on ``log(params)`` (positivity for
    free, and a better-conditioned surface than the raw scale), case weights so compressed
    data fits exactly like the full data, an L2 penalty on the parameters as in lifetimes, and
    Wald standard errors from the inverse Hessian of the (unpenalised) log-likelihood.

    Models that also give the weighted Hessian (``_analytic_hessian``) are fitted by Newton
    steps in a trust region (:mod:`clm.predict._newton`), the others by L-BFGS-B, which is
    also the fallback when Newton stops short or the model rejects its answer.

    Parameters
    ----------
    penalizer
        Coefficient of ``penalizer * sum(params**2)`` added to the *mean* negative
        log-likelihood. Zero reproduces the published maximum-likelihood estimates; a small
        value (0.001 to 0.1) tames runaway parameters on small or degenerate data.
    initial_params
        Optional starting values by parameter name; the defaults are data-driven.
    max_iter
        Iteration cap for L-BFGS-B.
    """

    param_names: ClassVar[tuple[str, ...]] = ()
    #: Whether ``_loglik_derivatives`` is implemented (then the fit uses Newton steps).
    _analytic_hessian: ClassVar[bool] = False

    def __init__(
        self,
        penalizer: float = 0.0,
        initial_params: Mapping[str, float] | None = None,
        max_iter: int = 1000,
    ) -> None:
        if penalizer < 0 or not np.isfinite(penalizer):
            raise ValueError(f"penalizer must be a non-negative number, got {penalizer}")
        self.penalizer = penalizer
        self.initial_params = initial_params
        self.max_iter = max_iter

    # -- to be provided by subclasses -------------------------------------------------------
    def _row_loglik(self, params: FloatArray, data: Sequence[FloatArray]) -> RowLogLik:
        raise NotImplementedError

    def _loglik_derivatives(
        self, params: FloatArray, data: Sequence[FloatArray], weights: FloatArray
    ) -> Derivatives:
        """Weighted totals of the log-likelihood, its gradient and its Hessian."""
        raise NotImplementedError

    def _newton_is_accurate(
        self, params: FloatArray, data: Sequence[FloatArray], weights: FloatArray
    ) -> bool:
        """Whether the optimum Newton found may be trusted (a model may re-check it)."""
        return True

    def _newton_start(
        self, data: Sequence[FloatArray], weights: FloatArray, theta: FloatArray
    ) -> FloatArray:
        """Where Newton starts (log-parameters); a model may improve on the generic start."""
        return theta

    def _total_loglik(
        self, params: FloatArray, data: Sequence[FloatArray], weights: FloatArray
    ) -> float:
        return float(weights @ self._row_loglik(params, data)[0])

    def _default_start(self, data: Sequence[FloatArray], weights: FloatArray) -> FloatArray:
        return np.ones(len(self.param_names))

    # -- fitted state ------------------------------------------------------------------------
    @property
    def _params(self) -> FloatArray:
        params: Mapping[str, float] | None = getattr(self, "params_", None)
        if params is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit() first")
        return np.array([params[name] for name in self.param_names], dtype=np.float64)

    def _start(self, data: Sequence[FloatArray], weights: FloatArray) -> FloatArray:
        start = self._default_start(data, weights)
        if self.initial_params is not None:
            unknown = set(self.initial_params) - set(self.param_names)
            if unknown:
                raise ValueError(f"unknown parameter(s) in initial_params: {sorted(unknown)}")
            for i, name in enumerate(self.param_names):
                if name in self.initial_params:
                    start[i] = float(self.initial_params[name])
        if np.any(~np.isfinite(start)) or np.any(start <= 0):
            raise ValueError(f"starting values must be positive and finite, got {start}")
        return start

    def _fit_arrays(self, data: Sequence[FloatArray], weights: Any) -> Self:
        """Maximise the weighted log-likelihood of ``data`` and store the fitted attributes."""
        w = check_weights(weights, data[0].shape[0])
        keep = w > 0  # zero-weight rows carry no information; skip their work
        if not np.all(keep):
            data, w = [column[keep] for column in data], w[keep]
        with one_blas_thread():
            return self._fit_weighted(data, w)

    def _objective(
        self, data: Sequence[FloatArray], w: FloatArray
    ) -> Callable[[FloatArray], tuple[float, FloatArray]]:
        """Mean penalised negative log-likelihood and its gradient, in log-parameters."""
        total, penalizer = float(w.sum()), self.penalizer

        def objective(theta: FloatArray) -> tuple[float, FloatArray]:
            params = np.exp(theta)
            with np.errstate(all="ignore"):
                ll, grad = self._row_loglik(params, data)
                value = -float(w @ ll) / total + penalizer * float(params @ params)
                gradient = -(w @ grad) / total * params + 2 * penalizer * params**2
            if not np.isfinite(value) or not np.all(np.isfinite(gradient)):
                # Steer the line search back instead of crashing on a bad trial point.
                return np.inf, np.zeros_like(theta)
            return value, gradient

        return objective

    def _objective_derivatives(
        self, data: Sequence[FloatArray], w: FloatArray
    ) -> Callable[[FloatArray], Derivatives]:
        """The objective with its Hessian, in log-parameters (chain rule on p = e^θ)."""
        total, penalizer = float(w.sum()), self.penalizer

        def derivatives(theta: FloatArray) -> Derivatives:
            params = np.exp(theta)
            with np.errstate(all="ignore"):
                ll, grad, hess = self._loglik_derivatives(params, data, w)
                value = -ll / total + penalizer * float(params @ params)
                gradient = -grad * params / total + 2 * penalizer * params**2
                hessian = -(hess * np.outer(params, params) + np.diag(grad * params)) / total
                hessian += np.diag(4 * penalizer * params**2)
            finite = np.isfinite(value) and np.all(np.isfinite(gradient))
            if not finite or not np.all(np.isfinite(hessian)):
                return np.inf, np.zeros_like(theta), np.eye(len(theta))
            return value, gradient, hessian

        return derivatives

    @staticmethod
    def _warm_up_sample(
        data: Sequence[FloatArray], w: FloatArray
    ) -> tuple[Sequence[FloatArray], FloatArray]:
        """A fixed pseudo-random sample of ``_WARM_UP_ROWS`` rows (all rows if fewer)."""
        if len(w) <= _WARM_UP_ROWS:
            return data, w
        pick = np.sort(np.random.default_rng(0).choice(len(w), _WARM_UP_ROWS, replace=False))
        return [column[pick] for column in data], w[pick]

    def _fit_weighted(self, data: Sequence[FloatArray], w: FloatArray) -> Self:
        total = float(w.sum())
        objective = self._objective(data, w)
        sample = self._warm_up_sample(data, w)
        theta0 = initial_theta = np.log(self._start(data, w))
        result: optimize.OptimizeResult | None = None
        newton: optimize.OptimizeResult | None = None
        if self._analytic_hessian:
            theta0 = self._newton_start(*sample, theta0)
        if self._analytic_hessian and len(w) > _WARM_UP_ROWS:
            # Most Newton steps are spent far from the optimum: take them on a sample of the
            # rows, then finish on all of them in two or three steps.
            warm = newton_trust_region(
                self._objective_derivatives(*sample), theta0, _LOG_BOUND, min(self.max_iter, 200)
            )
            if warm.success:
                theta0 = warm.x
        contender: optimize.OptimizeResult | None = None
        if self._analytic_hessian:
            newton = newton_trust_region(
                self._objective_derivatives(data, w), theta0, _LOG_BOUND, min(self.max_iter, 200)
            )
            start_is_finite = bool(np.isfinite(newton.fun))  # Newton only accepts finite steps
            ordinary = bool(np.all(np.abs(newton.x) <= _LOG_EXTREME))
            accurate = newton.success and self._newton_is_accurate(np.exp(newton.x), data, w)
            if accurate and ordinary:
                result = newton
            elif newton.success and ordinary:  # the model distrusts its fast pass: polish
                theta0 = newton.x
            else:
                # Stopped short, or off on a ridge or at a boundary, where degenerate data can
                # have a better optimum elsewhere: L-BFGS-B from the start, as before Newton,
                # and Newton's answer competes if the model trusts it.
                theta0 = initial_theta
                contender = newton if accurate else None
        else:
            start_is_finite = bool(np.isfinite(objective(theta0)[0]))
        if not start_is_finite:
            raise InvalidSummaryError(
                "the log-likelihood is not finite at the starting values; check the data "
                "or pass initial_params"
            )
        if result is None:
            result = optimize.minimize(
                objective,
                theta0,
                jac=True,
                method="L-BFGS-B",
                bounds=[(-_LOG_BOUND, _LOG_BOUND)] * len(theta0),
                options={"maxiter": self.max_iter, "ftol": 1e-14, "gtol": 1e-9, "maxcor": 20},
            )
            if contender is not None and not float(result.fun) < float(contender.fun):
                result = contender
        params = np.exp(result.x)
        used_newton = newton is not None and result is newton
        self._warn_if_not_converged(result, params, objective)
        self.params_ = dict(zip(self.param_names, (float(p) for p in params), strict=True))
        #: Which optimiser produced the estimates ("newton", or "l-bfgs-b" as the fallback and
        #: for models without a Hessian) and its iteration count: fit diagnostics.
        self.optimizer_ = "newton" if used_newton else "l-bfgs-b"
        self.n_iter_ = int(result.nit)
        if used_newton:  # its last pass computed the value at the optimum
            self.log_likelihood_ = -total * (float(result.fun) - self.penalizer * params @ params)
        else:
            self.log_likelihood_ = self._total_loglik(params, data, w)
        self.n_customers_ = total
        # Standard errors are computed on first use (summary()): without an analytic Hessian
        # they cost 2k extra likelihood passes.
        self._fit_state: tuple[FloatArray, Sequence[FloatArray], FloatArray] | None = (
            params,
            data,
            w,
        )
        self._covariance_cache: FloatArray | None = None
        return self

    @property
    def covariance_(self) -> FloatArray:
        """Inverse observed information of the fitted parameters (natural scale)."""
        cached: FloatArray | None = getattr(self, "_covariance_cache", None)
        if cached is None:
            state = getattr(self, "_fit_state", None)
            if state is None:
                raise NotFittedError(f"{type(self).__name__} has no fit to compute errors from")
            cached = self._covariance(*state)
            self._covariance_cache = cached
            self._fit_state = None  # release the data once the covariance is known
        return cached

    def _warn_if_not_converged(
        self,
        result: optimize.OptimizeResult,
        params: FloatArray,
        objective: Callable[[FloatArray], tuple[float, FloatArray]],
    ) -> None:
        at_bound = np.abs(np.log(params)) > _LOG_BOUND - 1e-6
        # With ftol this tight, L-BFGS-B may stop "ABNORMAL" at the optimum when float noise
        # defeats the line search; a vanishing gradient (per customer) is convergence.
        stationary = bool(np.all(np.isfinite(result.jac)) and np.max(np.abs(result.jac)) < 1e-6)
        extreme = not np.any(at_bound) and bool(np.any(np.abs(result.x) > _LOG_EXTREME))
        flat = extreme and _flat_ridge(objective, result.x)  # only then worth 2k more passes
        if (result.success or stationary) and not np.any(at_bound) and not flat:
            return
        names = [n for n, b in zip(self.param_names, at_bound, strict=True) if b]
        if names:
            reason = f"parameter(s) {names} ran to the search bound"
        elif flat:
            reason = "the likelihood is flat along a ridge: the data do not pin the parameters down"
        else:
            reason = str(result.message)
        warnings.warn(
            ConvergenceWarning(
                f"{type(self).__name__}.fit did not converge ({reason}). Try a small "
                "penalizer (e.g. penalizer=0.01), rescaling time (e.g. weeks instead of days) "
                "so that T is of order 10-100, or initial_params closer to plausible values."
            ),
            stacklevel=3,
        )

    def _covariance(
        self, params: FloatArray, data: Sequence[FloatArray], w: FloatArray
    ) -> FloatArray:
        """Inverse observed information: the analytic Hessian, or central differences of
        the analytic gradient for models without one."""
        if self._analytic_hessian:
            with one_blas_thread():
                symmetric = self._loglik_derivatives(params, data, w)[2]
        else:

            def total_gradient(p: FloatArray) -> FloatArray:
                grad: FloatArray = w @ self._row_loglik(p, data)[1]
                return grad

            symmetric = _central_hessian(total_gradient, params, 1e-5 * params)
        try:
            covariance = np.asarray(np.linalg.inv(-symmetric), dtype=np.float64)
        except np.linalg.LinAlgError:
            return np.full((len(params), len(params)), np.nan)
        return covariance

    def summary(self) -> pd.DataFrame:
        """Estimates with standard errors and 95% confidence intervals.

        Standard errors are the square roots of the diagonal of the inverse observed
        information (the negative Hessian of the log-likelihood at the maximum). The intervals
        are built on the log scale, ``exp(log(estimate) ± 1.96 · se / estimate)`` (delta
        method), because every parameter is positive and its sampling distribution is skewed
        on the raw scale; they are therefore not symmetric around the estimate.
        """
        params = self._params
        with np.errstate(invalid="ignore"):
            se = np.sqrt(np.diag(self.covariance_))
        spread = np.exp(_Z95 * se / params)
        return pd.DataFrame(
            {
                "estimate": params,
                "se": se,
                "lower_95": params / spread,
                "upper_95": params * spread,
            },
            index=pd.Index(self.param_names, name="parameter"),
        )

    def __repr__(self) -> str:
        params: Mapping[str, float] | None = getattr(self, "params_", None)
        if params is None:
            return f"{type(self).__name__}(penalizer={self.penalizer})"
        shown = ", ".join(f"{k}={v:.4g}" for k, v in params.items())
        return f"<{type(self).__name__} fitted on {self.n_customers_:g} customers: {shown}>"


def numerical_row_gradient(
    row_loglik: Callable[[FloatArray], FloatArray], params: FloatArray
) -> FloatArray:
    """Per-row gradient by central differences in log-parameters, one vectorised pass each.

    Used where an analytic gradient would need derivatives of a hypergeometric function with
    respect to its parameters (Pareto/NBD); the relative step 1e-6 balances truncation
    (~1e-12) against rounding (~1e-10) error.
    """
    columns = []
    for j in range(len(params)):
        step = 1e-6
        up, down = params.copy(), params.copy()
        up[j] *= np.exp(step)
        down[j] *= np.exp(-step)
        columns.append((row_loglik(up) - row_loglik(down)) / (2 * step * params[j]))
    return np.stack(columns, axis=1)


def _flat_ridge(
    objective: Callable[[FloatArray], tuple[float, FloatArray]], theta: FloatArray
) -> bool:
    """Whether the log-space Hessian at ``theta`` is (nearly) singular.

    A degenerate sample (nobody drops out, say) has no interior optimum: the optimiser walks
    along a ridge toward infinity and stops where the slope fades, reporting success. The
    curvature then vanishes in one direction: CDNOW's BG/NBD and Pareto/NBD fits have smallest
    to largest eigenvalue ratios near 1e-3, such ridges below 1e-12.
    """
    hessian = _central_hessian(lambda t: objective(t)[1], theta, np.full(len(theta), 1e-5))
    eigenvalues = np.linalg.eigvalsh(hessian)
    if not np.all(np.isfinite(eigenvalues)) or eigenvalues[-1] <= 0:
        return True
    return bool(eigenvalues[0] < _FLAT * eigenvalues[-1])


def _central_hessian(
    gradient: Callable[[FloatArray], FloatArray], x: FloatArray, steps: FloatArray
) -> FloatArray:
    """The symmetrised Hessian at ``x``, from central differences of an analytic gradient."""
    k = len(x)
    hessian = np.empty((k, k))
    with np.errstate(all="ignore"):
        for j in range(k):
            up, down = x.copy(), x.copy()
            up[j] += steps[j]
            down[j] -= steps[j]
            hessian[:, j] = (gradient(up) - gradient(down)) / (2 * steps[j])
    symmetric: FloatArray = (hessian + hessian.T) / 2
    return symmetric
