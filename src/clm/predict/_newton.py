"""Newton's method with a trust region, for the few-parameter likelihoods of the models.

The models have four parameters and analytic second derivatives, so an exact Newton step
costs next to nothing beyond the likelihood pass that produced the Hessian: a fit takes
about ten passes over the distinct rows where L-BFGS-B needs twenty to forty. The trust
region (a ball in log-parameter space) keeps the early steps sane where the surface is not
yet convex, and the eigen-decomposition of the 4×4 Hessian solves its subproblem exactly.

Fits also run with one BLAS thread: their vectors are small, and OpenBLAS waking its thread
pool for each product costs more than the product itself, five times more under CPU load.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache

import numpy as np
from scipy import optimize
from threadpoolctl import ThreadpoolController

from clm.predict._validation import FloatArray

__all__ = ["Derivatives", "newton_trust_region", "one_blas_thread"]

#: (value, gradient, Hessian) of the objective at a point.
Derivatives = tuple[float, FloatArray, FloatArray]

_GTOL = 1e-9  # max |gradient| of the mean negative log-likelihood (log-parameters) at the end
_MAX_RADIUS = 8.0  # a step never moves a parameter by more than a factor e^8


@cache
def _blas_controller() -> ThreadpoolController:
    # Inspecting the loaded libraries takes ~1 ms: do it once (numpy and scipy are loaded).
    return ThreadpoolController()


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the enclosed fit with a single BLAS thread (restored afterwards)."""
    with _blas_controller().limit(limits=1, user_api="blas"):
        yield


def newton_trust_region(
    derivatives: Callable[[FloatArray], Derivatives],
    theta0: FloatArray,
    bound: float,
    max_iter: int,
) -> optimize.OptimizeResult:
    """Minimise with exact Newton steps inside a trust region, ``|theta| <= bound``.

    Stops when the largest gradient component is below ``_GTOL`` or when the model's own
    prediction of the remaining decrease is below float resolution. Returns a scipy
    ``OptimizeResult`` (``x``, ``fun``, ``jac``, ``success``, ``message``, ``nit``, ``nfev``).
    """
    theta = np.clip(theta0, -bound, bound)
    value, gradient, hessian = derivatives(theta)
    radius, evaluations = 1.0, 1
    message, success = "iteration limit reached", False
    for iteration in range(max_iter):  # noqa: B007 - reported as nit
        if np.max(np.abs(gradient)) < _GTOL:
            message, success = "gradient below tolerance", True
            break
        step = _trust_region_step(gradient, hessian, radius)
        trial = np.clip(theta + step, -bound, bound)
        step = trial - theta
        predicted = -float(gradient @ step + 0.5 * step @ hessian @ step)
        if predicted <= 1e-15 * (1.0 + abs(value)):
            # Nothing left to gain at float resolution (or pinned at the bound).
            message, success = "no further decrease possible", True
            break
        new_value, new_gradient, new_hessian = derivatives(trial)
        evaluations += 1
        ratio = (value - new_value) / predicted if np.isfinite(new_value) else -1.0
        length = float(np.linalg.norm(step))
        if ratio < 0.25:
            radius = 0.25 * length
        elif ratio > 0.75 and length > 0.99 * radius:
            radius = min(2.0 * radius, _MAX_RADIUS)
        if ratio > 1e-4:
            theta, value, gradient, hessian = trial, new_value, new_gradient, new_hessian
        if radius < 1e-12:
            message = "trust region collapsed"
            break
    else:
        iteration = max_iter
    return optimize.OptimizeResult(
        x=theta,
        fun=value,
        jac=gradient,
        hess=hessian,
        success=success,
        message=message,
        nit=iteration,
        nfev=evaluations,
    )


def _trust_region_step(gradient: FloatArray, hessian: FloatArray, radius: float) -> FloatArray:
    """argmin of g·d + d·H·d/2 over |d| <= radius, from the eigen-decomposition of H.

    Inside the ball with a positive definite H this is the Newton step; otherwise the step is
    -(H + λI)⁻¹ g with the λ >= max(0, -λ_min) that puts it on the sphere (found by
    bisection: |d(λ)| decreases in λ, and four dimensions make each trial trivial).
    """
    eigenvalues, vectors = np.linalg.eigh(hessian)
    projected = vectors.T @ gradient
    if eigenvalues[0] > 1e-12 * max(1.0, abs(eigenvalues[-1])):
        step = -projected / eigenvalues
        if float(np.linalg.norm(step)) <= radius:
            return np.asarray(vectors @ step, dtype=np.float64)
    low = max(0.0, -float(eigenvalues[0]))
    high = low + float(np.linalg.norm(gradient)) / radius + 1e-12
    for _ in range(80):
        middle = 0.5 * (low + high)
        if float(np.linalg.norm(projected / (eigenvalues + middle))) > radius:
            low = middle
        else:
            high = middle
        if high - low <= 1e-10 * high:
            break
    return np.asarray(vectors @ (-projected / (eigenvalues + high)), dtype=np.float64)
