"""Pareto/NBD model of repeat purchasing (Schmittlein, Morrison & Colombo 1987).

While active a customer buys at Poisson rate λ ~ Gamma(r, α) and stays active for an
exponential lifetime with rate μ ~ Gamma(s, β), independent of λ.

References
----------
Schmittlein, D. C., Morrison, D. G. & Colombo, R. (1987). Counting Your Customers: Who Are
They and What Will They Do Next? Management Science 33(1), 1-24.
Fader, P. S. & Hardie, B. G. S. (2005). A Note on Deriving the Pareto/NBD Model and Related
Expressions. http://brucehardie.com/notes/009/
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from scipy import special, stats

from clm.predict._base import RowLogLik, numerical_row_gradient
from clm.predict._rfm_model import RFMModel
from clm.predict._validation import FloatArray

__all__ = ["ParetoNBD"]

_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(200)


def _log_tail_integral(
    r: float, alpha: float, s: float, beta: float, x: FloatArray, t: FloatArray
) -> FloatArray:
    """log of ``(r+s+x) ∫_t^∞ (α+τ)^-(r+x) (β+τ)^-(s+1) dτ`` (FH 2005 note, eq. 19-22).

    In closed form this is ``2F1(a, b; a+1; z) / (c+t)^a`` with ``a = r+s+x``, ``c = max(α, β)``,
    ``z = |α-β|/(c+t)`` and ``b = s+1`` if α >= β else ``r+x``. The 2F1 is evaluated after
    Euler's transformation, ``2F1(a, b; a+1; z) = (1-z)^(1-b) 2F1(1, a+1-b; a+1; z)``, whose
    series has positive terms with ratio below z: no cancellation, bounded by 1/(1-z), and a
    logarithm that stays finite however large x is or however close z gets to 1.
    """
    a = r + s + x
    c = max(alpha, beta)
    b = s + 1.0 if alpha >= beta else r + x
    z = abs(alpha - beta) / (c + t)
    log_hyp = (1.0 - b) * np.log1p(-z) + np.log(special.hyp2f1(1.0, a + 1.0 - b, a + 1.0, z))
    return np.asarray(log_hyp - a * np.log(c + t), dtype=np.float64)


class ParetoNBD(RFMModel):
    """Pareto/NBD with parameters ``r, alpha`` (purchase rate) and ``s, beta`` (dropout rate).

    On the CDNOW sample in weeks FHL 2005 report r = 0.553, α = 10.578, s = 0.606,
    β = 11.669. The likelihood's gradient is taken by vectorised central differences (the
    analytic one needs derivatives of 2F1 in its parameters); standard errors are computed
    from it as for the other models.
    """

    param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "s", "beta")

    def _default_start(self, data: Sequence[FloatArray], weights: FloatArray) -> FloatArray:
        start = super()._default_start(data, weights)
        start[3] = start[1]  # dropout rate starts on the time scale of the purchase rate
        return start

    def _parts(
        self,
        params: FloatArray,
        x: FloatArray,
        tx: FloatArray,
        age: FloatArray,
        dedupe: bool = False,
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(log prefactor, log alive-at-T term, log of the dropped-out-in-(t_x, T] term).

        L = Γ(r+x) α^r β^s / Γ(r) · [ (α+T)^-(r+x) (β+T)^-s + s/(r+s+x) · A_0 ]  (FH 2005
        note eq. 18), with A_0 the difference of the tail integral at t_x and at T.
        """
        r, alpha, s, beta = params
        prefactor = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
        prefactor = prefactor + s * np.log(beta)
        alive = -(r + x) * np.log(alpha + age) - s * np.log(beta + age)
        if dedupe:
            at_tx, at_t = self._tail_by_pair(params, x, tx), self._tail_by_pair(params, x, age)
        else:
            at_tx = _log_tail_integral(r, alpha, s, beta, x, tx)
            at_t = _log_tail_integral(r, alpha, s, beta, x, age)
        gap = np.minimum(at_t - at_tx, 0.0)  # the integral shrinks with t; clip float noise
        with np.errstate(divide="ignore"):
            dropped = np.log(s) - np.log(r + s + x) + at_tx + np.log(-np.expm1(gap))
        return prefactor, alive, dropped

    def _tail_by_pair(self, params: FloatArray, x: FloatArray, t: FloatArray) -> FloatArray:
        """The 2F1 term on distinct (x, t) pairs only: the costly part of every likelihood
        pass during a fit, where daily data repeat pairs (e.g. 106k rows, ~20k pairs) and the
        same arrays come back at every iteration, so the pairing is computed once."""
        cache: list[tuple[FloatArray, FloatArray, FloatArray, FloatArray, Any]]
        cache = self.__dict__.setdefault("_pair_cache", [])
        found = [entry for entry in cache if entry[0] is x and entry[1] is t]
        if found:
            ux, ut, inverse = found[0][2:]
        else:
            pairs, inverse = np.unique(np.stack([x, t], axis=1), axis=0, return_inverse=True)
            ux, ut, inverse = pairs[:, 0].copy(), pairs[:, 1].copy(), inverse.reshape(-1)
            cache[:] = [*cache[-1:], (x, t, ux, ut, inverse)]
        r, alpha, s, beta = params
        return np.asarray(_log_tail_integral(r, alpha, s, beta, ux, ut)[inverse], dtype=np.float64)

    def _loglik_only(self, params: FloatArray, data: Sequence[FloatArray]) -> FloatArray:
        x, tx, age = data
        prefactor, alive, dropped = self._parts(params, x, tx, age, dedupe=True)
        return np.asarray(prefactor + np.logaddexp(alive, dropped), dtype=np.float64)

    def _row_loglik(self, params: FloatArray, data: Sequence[FloatArray]) -> RowLogLik:
        ll = self._loglik_only(params, data)
        grad = numerical_row_gradient(lambda p: self._loglik_only(p, data), params)
        return ll, grad

    def _p_alive(self, x: FloatArray, tx: FloatArray, age: FloatArray) -> FloatArray:
        """P(alive | x, t_x, T) = alive term / both terms (FH 2005 note eq. 21)."""
        _, alive, dropped = self._parts(self._params, x, tx, age)
        return np.asarray(np.exp(alive - np.logaddexp(alive, dropped)), dtype=np.float64)

    def _survival_purchases(
        self, shape: FloatArray, scale: FloatArray, t: FloatArray
    ) -> FloatArray:
        """``scale · [1 - ((β')/(β'+t))^(s-1)] / (s-1)`` with its s → 1 limit, written with
        expm1 so that neither s near 1 nor small t loses precision."""
        alpha, s = self._params[1:3]
        horizon = np.log1p(t / scale)
        factor = horizon if abs(s - 1.0) < 1e-10 else -np.expm1(-(s - 1.0) * horizon) / (s - 1.0)
        return np.asarray(shape / alpha * scale * factor, dtype=np.float64)

    def _conditional_purchases(
        self, t: float | FloatArray, x: FloatArray, tx: FloatArray, age: FloatArray
    ) -> FloatArray:
        """E[Y(t) | x, t_x, T] = (r+x)(β+T)/((α+T)(s-1)) [1 - ((β+T)/(β+T+t))^(s-1)] P(alive)
        (FH 2005 note eq. 22; the posterior of λ among the alive is Gamma(r+x, α+T))."""
        r, alpha, _, beta = self._params
        expected = self._survival_purchases(r + x, beta + age, np.asarray(t, dtype=np.float64))
        return np.asarray(expected * alpha / (alpha + age) * self._p_alive(x, tx, age))

    def _unconditional_purchases(self, t: FloatArray) -> FloatArray:
        """E[X(t)] = rβ/(α(s-1)) [1 - (β/(β+t))^(s-1)] (FH 2005 note eq. 17)."""
        r, beta = self._params[[0, 3]]
        return self._survival_purchases(np.asarray(r), np.asarray(beta), t)

    def _probability_of_n(self, t: float, n: FloatArray) -> FloatArray:
        """P(X(t) = n): alive through t with n purchases, or died at τ < t after n purchases.

        ``NBD(n | r, α/(α+t)) (β/(β+t))^s + ∫_0^t sβ^s (β+τ)^-(s+1) NBD(n | r, α/(α+τ)) dτ``
        (the mixture behind FH 2005 note eq. 16); the smooth integral is evaluated by
        200-point Gauss-Legendre quadrature rather than through four 2F1 terms.
        """
        r, alpha, s, beta = self._params
        alive = stats.nbinom.pmf(n, r, alpha / (alpha + t)) * (beta / (beta + t)) ** s
        tau = (t / 2.0) * (_NODES + 1.0)
        death_density = s * beta**s * (beta + tau) ** -(s + 1.0)
        pmf = stats.nbinom.pmf(n[:, None], r, alpha / (alpha + tau[None, :]))
        dropped = (t / 2.0) * (pmf * (death_density * _WEIGHTS)[None, :]).sum(axis=1)
        return np.asarray(alive + dropped, dtype=np.float64)
