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

from clm.predict._base import _LOG_BOUND, _LOG_EXTREME, RowLogLik, numerical_row_gradient
from clm.predict._newton import Derivatives, newton_trust_region
from clm.predict._rfm_model import RFMModel
from clm.predict._summary import _factorize_with_first, _row_key
from clm.predict._validation import FloatArray

__all__ = ["ParetoNBD"]

_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(200)


def _gauss_legendre(n: int) -> tuple[FloatArray, FloatArray]:
    """Nodes on [0, 1] and the logarithms of their weights."""
    nodes, weights = np.polynomial.legendre.leggauss(n)
    return (nodes + 1.0) / 2.0, np.log(weights / 2.0)


# Quadrature rules for the dropout integral. 16 nodes reach 1e-9 per row on CDNOW and on
# simulated shapes (weeks, days, ages spread over years); 8 (~1e-6) bring the fit next to the
# optimum first, where the fine rule then needs one or two Newton steps.
_FINE, _COARSE = _gauss_legendre(16), _gauss_legendre(8)
_CHUNK = 4096  # rows per block of the (rows x nodes) arrays: bounded memory at any size
_ACCURACY = 1e-8  # per-row log-likelihood agreement demanded of the quadrature at the optimum


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


class _DropoutIntegral:
    """ln J and its derivatives for J = ∫_{t_x}^T (α+τ)^-(r+x) (β+τ)^-(s+1) dτ, per row.

    J is the dropped-out-in-(t_x, T] part of the likelihood (FH 2005 note eq. 18 writes it as
    a difference of 2F1 terms). Its derivatives in the parameters would need derivatives of
    2F1 in its parameters, so here J is integrated by Gauss-Legendre in
    y = ln((m+τ)/(m+t_x)), m = min(α, β), where the integrand is log-concave: its log-slope
    rises from σ0 at y = 0 to r+s+x, so beyond y = (40 + ln(1 + (r+s+x)/σ0))/σ0 lies less
    than e^-40 of J and the interval is cut there. With g the integrand, the derivatives are
    moments under the normalised g: ∇ ln J = E[∇ ln g] and ∇² ln J = E[∇² ln g] + Cov(∇ ln g),
    where ∇ ln g = -(ln(α+τ), (r+x)/(α+τ), ln(β+τ), (s+1)/(β+τ)). Rows with t_x = T have
    J = 0 (ln J = -∞). The fit checks the result against the 2F1 closed form at the optimum.
    """

    def __init__(
        self,
        params: FloatArray,
        x: FloatArray,
        tx: FloatArray,
        age: FloatArray,
        rule: tuple[FloatArray, FloatArray] = _FINE,
    ):
        r, alpha, s, beta = params
        nodes, log_weights = rule
        self.p, self.q = r + x, s + 1.0
        lo = min(alpha, beta)
        start = lo + tx
        spread = (max(alpha, beta) - lo) / start
        steep = self.p if alpha >= beta else np.full_like(x, self.q)
        slope0 = r + s + x - steep * spread / (1.0 + spread)
        span = np.log1p((age - tx) / start)
        with np.errstate(divide="ignore", invalid="ignore"):
            cut = (40.0 + np.log1p((r + s + x) / slope0)) / slope0
        span = np.where((slope0 > 0) & (cut < span), cut, span)
        empty = span <= 0
        span = np.where(empty, 1.0, span)  # any finite stand-in: the row's J is 0

        y = span[:, None] * nodes[None, :]
        # φ = (ln(α+τ), (r+x)/(α+τ), ln(β+τ), (s+1)/(β+τ)) = -∇ ln g at the nodes, stored
        # component-first so that every array operation runs on contiguous memory. For the
        # smaller of α, β, ln(m+τ) = ln(m+t_x) + y and 1/(m+τ) = e^-y/(m+t_x) need no log.
        phi = np.empty((4, *y.shape))
        small, large = (0, 2) if alpha <= beta else (2, 0)
        coefficient = (self.p[:, None], self.q)
        np.add(y, np.log(start)[:, None], out=phi[small])
        growth = np.exp(y)
        np.divide(coefficient[small // 2], growth * start[:, None], out=phi[small + 1])
        growth -= 1.0  # (τ - t_x) / (m + t_x); float error near y = 0 is below 1e-16·(m+t_x)
        growth *= start[:, None]
        growth += (max(alpha, beta) + tx)[:, None]  # the larger parameter + τ
        np.log(growth, out=phi[large])
        np.divide(coefficient[large // 2], growth, out=phi[large + 1])
        log_f = y
        log_f += np.log(span)[:, None] + log_weights[None, :]
        log_f -= self.p[:, None] * phi[0]
        log_f -= self.q * phi[2]
        peak = log_f.max(axis=1)
        log_f -= peak[:, None]
        v = np.exp(log_f, out=log_f)
        mass = v.sum(axis=1)
        v /= mass[:, None]  # the normalised integrand at the nodes
        self.log_j = np.where(empty, -np.inf, peak + np.log(start) + np.log(mass))
        self.v, self.phi = v, phi
        self.mean_phi = np.einsum("kij,ij->ik", phi, v)
        self.gradient = -self.mean_phi  # ∇ ln J = E[∇ ln g]

    def weighted_hessian(self, row_weights: FloatArray) -> FloatArray:
        """Σ_rows weight · ∇² ln J, without forming the per-row 4×4 matrices.

        ∇² ln J = Cov(φ) + E[∇² ln g], where ∇² ln g has (r,α) = -1/(α+τ),
        (α,α) = (r+x)/(α+τ)², (s,β) = -1/(β+τ), (β,β) = (s+1)/(β+τ)².
        """
        weighted = row_weights[:, None] * self.v
        centred = self.phi - self.mean_phi.T[:, :, None]  # Cov without cancellation
        flat = centred.reshape(4, -1)
        hessian: FloatArray = (flat * weighted.reshape(1, -1)) @ flat.T
        inv_p = 1.0 / self.p
        cross_a = float(row_weights @ (self.mean_phi[:, 1] * inv_p))
        cross_b = float(row_weights @ self.mean_phi[:, 3]) / self.q
        hessian[0, 1] -= cross_a
        hessian[1, 0] -= cross_a
        hessian[2, 3] -= cross_b
        hessian[3, 2] -= cross_b
        weighted *= self.phi[3] ** 2
        hessian[3, 3] += float(weighted.sum()) / self.q
        weighted = (row_weights * inv_p)[:, None] * self.v
        weighted *= self.phi[1] ** 2
        hessian[1, 1] += float(weighted.sum())
        return hessian


class ParetoNBD(RFMModel):
    """Pareto/NBD with parameters ``r, alpha`` (purchase rate) and ``s, beta`` (dropout rate).

    On the CDNOW sample in weeks FHL 2005 report r = 0.553, α = 10.578, s = 0.606,
    β = 11.669. The fit takes Newton steps with the analytic gradient and Hessian, the
    dropout integral and its derivatives by quadrature (:class:`_DropoutIntegral`), and
    accepts the result only if the quadrature matches the 2F1 closed form on every row;
    otherwise it falls back to L-BFGS-B on the closed form with a gradient by central
    differences (``_row_loglik``). Standard errors come from the analytic Hessian.
    """

    param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "s", "beta")
    _analytic_hessian: ClassVar[bool] = True

    #: The quadrature rule of the dropout integral in use (coarse only while starting).
    _rule: tuple[FloatArray, FloatArray] = _FINE

    def _default_start(self, data: Sequence[FloatArray], weights: FloatArray) -> FloatArray:
        start = super()._default_start(data, weights)
        start[3] = start[1]  # dropout rate starts on the time scale of the purchase rate
        return start

    def _newton_start(
        self, data: Sequence[FloatArray], weights: FloatArray, theta: FloatArray
    ) -> FloatArray:
        """The optimum of the coarse (8-node) likelihood, when it is an ordinary one.

        Newton steps on the coarse rule cost half of those on the fine one; from their
        optimum (~1e-6 away) the fine rule needs one or two steps.
        """
        self._rule = _COARSE
        try:
            coarse = newton_trust_region(
                self._objective_derivatives(data, weights), theta, _LOG_BOUND, 100
            )
        finally:
            del self._rule
        if coarse.success and np.all(np.abs(coarse.x) < _LOG_EXTREME):
            return np.asarray(coarse.x, dtype=np.float64)
        return theta

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
            inverse, first = _factorize_with_first(_row_key([x, t]))
            ux, ut = x[first], t[first]
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

    def _total_loglik(
        self, params: FloatArray, data: Sequence[FloatArray], weights: FloatArray
    ) -> float:
        return float(weights @ self._loglik_only(params, data))

    def _quadrature_loglik(
        self, params: FloatArray, x: FloatArray, tx: FloatArray, age: FloatArray
    ) -> tuple[FloatArray, FloatArray, _DropoutIntegral]:
        """Per-row ln L and the alive term's share w1 = e^alive / L, with J by quadrature."""
        r, alpha, s, beta = params
        integral = _DropoutIntegral(params, x, tx, age, self._rule)
        base = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha) + s * np.log(beta)
        alive = -(r + x) * np.log(alpha + age) - s * np.log(beta + age)
        log_sum = np.logaddexp(alive, np.log(s) + integral.log_j)
        return base + log_sum, np.exp(alive - log_sum), integral

    def _loglik_derivatives(
        self, params: FloatArray, data: Sequence[FloatArray], weights: FloatArray
    ) -> Derivatives:
        """Weighted totals of ln L, its gradient and Hessian, in blocks of rows.

        ``ln L = base + ln(e^alive + e^dropped)`` (FH 2005 note eq. 18) with
        ``dropped = ln s + ln J``, so as for BG/NBD, with mixture weights w1, w2 and
        Δ = ∇alive - ∇dropped, ``∇² ln L = ∇²base + w1 ∇²alive + w2 ∇²dropped + w1 w2 ΔΔᵀ``.
        """
        r, alpha, s, beta = params
        # ln Γ(r+x) - ln Γ(r)'s derivatives, per distinct frequency.
        ux, inverse = self._distinct_frequencies(data[0])
        digamma_rx = (special.digamma(r + ux) - special.digamma(r))[inverse]
        trigamma_rx = (special.zeta(2, r + ux) - special.zeta(2, r))[inverse]
        ll, gradient, hessian = 0.0, np.zeros(4), np.zeros((4, 4))
        for begin in range(0, data[0].shape[0], _CHUNK):
            block = slice(begin, begin + _CHUNK)
            x, tx, age = (column[block] for column in data)
            w = weights[block]
            row_ll, w1, integral = self._quadrature_loglik(params, x, tx, age)
            ww1, ww2 = w * w1, w * (1.0 - w1)
            inv_at, inv_bt = 1.0 / (alpha + age), 1.0 / (beta + age)
            grad_alive = np.stack(
                [-np.log(alpha + age), -(r + x) * inv_at, -np.log(beta + age), -s * inv_bt], 1
            )
            grad_dropped = integral.gradient
            grad_dropped[:, 2] += 1.0 / s  # dropped = ln s + ln J
            total = float(w.sum())
            ll += float(w @ row_ll)
            # base = ln Γ(r+x) - ln Γ(r) + r ln α + s ln β
            gradient += ww1 @ grad_alive + ww2 @ grad_dropped
            gradient[0] += float(w @ digamma_rx[block])
            gradient += total * np.array([np.log(alpha), r / alpha, np.log(beta), s / beta])
            hessian[0, 0] += float(w @ trigamma_rx[block])
            upper = np.zeros((4, 4))
            upper[0, 1] = total / alpha - float(ww1 @ inv_at)
            upper[2, 3] = total / beta - float(ww1 @ inv_bt)
            hessian += upper + upper.T
            hessian[1, 1] += float(ww1 @ ((r + x) * inv_at**2)) - total * r / alpha**2
            hessian[3, 3] += float(ww1 @ (s * inv_bt**2)) - total * s / beta**2
            hessian += integral.weighted_hessian(ww2)
            hessian[2, 2] -= float(ww2.sum()) / s**2
            delta = grad_alive - grad_dropped
            hessian += (delta * (ww1 * (1.0 - w1))[:, None]).T @ delta
        return ll, gradient, hessian

    def _newton_is_accurate(
        self, params: FloatArray, data: Sequence[FloatArray], weights: FloatArray
    ) -> bool:
        """Whether the quadrature's ln L equals the 2F1 closed form's on every row."""
        with np.errstate(all="ignore"):  # far out on a ridge either form may give up: NaN
            closed = self._loglik_only(params, data)
            for begin in range(0, data[0].shape[0], _CHUNK):
                x, tx, age = (column[begin : begin + _CHUNK] for column in data)
                fast = self._quadrature_loglik(params, x, tx, age)[0]
                if not np.all(np.abs(fast - closed[begin : begin + _CHUNK]) <= _ACCURACY):
                    return False
        return True

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
