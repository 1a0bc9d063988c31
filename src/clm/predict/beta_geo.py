"""BG/NBD (Fader, Hardie & Lee 2005) and MBG/NBD (Batislam, Denizel & Filiztekin 2007).

Both models: while active a customer buys at a Poisson rate λ ~ Gamma(r, α); after a purchase
they drop out for good with probability p ~ Beta(a, b). They differ only in when dropout can
happen: BG/NBD after each *repeat* purchase, MBG/NBD also right after the first purchase
(time 0), so a customer without repeat purchases is not certainly alive.

References
----------
Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). "Counting Your Customers" the Easy Way:
An Alternative to the Pareto/NBD Model. Marketing Science 24(2), 275-284.
Batislam, E. P., Denizel, M. & Filiztekin, A. (2007). Empirical validation and comparison of
models for customer base analysis. Int. J. of Research in Marketing 24(3), 201-209.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from scipy import special, stats

from clm.predict._base import RowLogLik
from clm.predict._newton import Derivatives
from clm.predict._rfm_model import RFMModel
from clm.predict._validation import FloatArray

__all__ = ["BetaGeo", "ModifiedBetaGeo"]


def _betaln_with_grad(a: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """ln B(a, b) and its partial derivatives ψ(a) − ψ(a+b), ψ(b) − ψ(a+b)."""
    psi_ab = special.digamma(a + b)
    return special.betaln(a, b), special.digamma(a) - psi_ab, special.digamma(b) - psi_ab


class _BetaGeoFamily(RFMModel):
    """Shared likelihood and predictions; ``_shift`` is 0 for BG/NBD and 1 for MBG/NBD.

    With ``k = x + shift``, the number of dropout opportunities survived, both likelihoods are

        L = A · [ B(a, b+k)/B(a, b) (α+T)^-(r+x) + [k>0] B(a+1, b+k-1)/B(a, b) (α+t_x)^-(r+x) ]

    with A = Γ(r+x) α^r / Γ(r) (FHL 2005 eq. 6; Batislam et al. 2007 eq. 4).
    """

    param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "a", "b")
    _shift: ClassVar[int] = 0
    _analytic_hessian: ClassVar[bool] = True

    def _default_start(self, data: Sequence[FloatArray], weights: FloatArray) -> FloatArray:
        start = super()._default_start(data, weights)
        start[2:] = (1.0, 2.0)
        return start

    def _row_loglik(self, params: FloatArray, data: Sequence[FloatArray]) -> RowLogLik:
        r, alpha, a, b = params
        x, tx, age = data
        # Everything but the (α+T), (α+t_x) powers depends on x alone: evaluate the special
        # functions once per distinct frequency (hundreds) instead of once per row.
        ux, inverse = self._distinct_frequencies(x)
        uk = ux + self._shift
        has_k = (uk > 0)[inverse]
        ln_bab, dab_a, dab_b = _betaln_with_grad(np.asarray(a), np.asarray(b))
        b1, d1_a, d1_b = (v[inverse] for v in _betaln_with_grad(np.full_like(uk, a), b + uk))
        k_safe = np.where(uk > 0, uk, 1.0)  # B(a+1, b-1) is undefined for b < 1 when k = 0
        b2, d2_a, d2_b = (
            v[inverse] for v in _betaln_with_grad(np.full_like(uk, a + 1), b + k_safe - 1)
        )
        digamma_rx = (special.digamma(r + ux) - special.digamma(r))[inverse]
        base = (special.gammaln(r + ux) - special.gammaln(r))[inverse] + r * np.log(alpha)
        log_at, log_atx = np.log(alpha + age), np.log(alpha + tx)
        term1 = b1 - (r + x) * log_at
        term2 = np.where(has_k, b2 - (r + x) * log_atx, -np.inf)

        log_sum = np.logaddexp(term1, term2)
        w1 = np.exp(term1 - log_sum)
        w2 = 1.0 - w1
        ll = base - ln_bab + log_sum

        grad = np.empty((x.shape[0], 4))
        grad[:, 0] = digamma_rx + np.log(alpha)
        grad[:, 0] -= w1 * log_at + w2 * log_atx
        grad[:, 1] = r / alpha - (r + x) * (w1 / (alpha + age) + w2 / (alpha + tx))
        grad[:, 2] = w1 * d1_a + w2 * d2_a - dab_a
        grad[:, 3] = w1 * d1_b + w2 * d2_b - dab_b
        return ll, grad

    def _loglik_derivatives(
        self, params: FloatArray, data: Sequence[FloatArray], weights: FloatArray
    ) -> Derivatives:
        """Weighted totals of the log-likelihood, its gradient and Hessian, all analytic.

        ``ln L = base + ln(e^t1 + e^t2)`` with t1, t2 the two bracketed terms of the class
        docstring. With mixture weights w1 = e^t1 / (e^t1 + e^t2) and w2 = 1 - w1,
        ``∇ ln L = ∇base + w1 ∇t1 + w2 ∇t2`` and
        ``∇² ln L = ∇²base + w1 ∇²t1 + w2 ∇²t2 + w1 w2 (∇t1 - ∇t2)(∇t1 - ∇t2)ᵀ``:
        every piece is a digamma or trigamma (ψ1(z) = ζ(2, z)) of the parameters, so nothing
        is differenced.
        The beta-function parts depend on the frequency alone and are summed per distinct
        frequency (``bincount``) after weighting by w1 and w2.
        """
        r, alpha, a, b = params
        x, tx, age = data
        ux, inverse = self._distinct_frequencies(x)
        uk = ux + self._shift
        k_safe = np.where(uk > 0, uk, 1.0)  # B(a+1, b-1) is undefined for b < 1 when k = 0
        psi_abk, tri_abk = special.digamma(a + b + uk), special.zeta(2, a + b + uk)
        log_b1 = special.betaln(a, b + uk)
        log_b2 = special.betaln(a + 1, b + k_safe - 1)
        # Row level: the (α+T), (α+t_x) powers and the mixture weights.
        log_at, log_atx = np.log(alpha + age), np.log(alpha + tx)
        inv_at, inv_atx = 1.0 / (alpha + age), 1.0 / (alpha + tx)
        rx = r + x
        term1 = log_b1[inverse] - rx * log_at
        term2 = np.where((uk > 0)[inverse], log_b2[inverse] - rx * log_atx, -np.inf)
        log_sum = np.logaddexp(term1, term2)
        w1 = np.exp(term1 - log_sum)
        w2 = 1.0 - w1
        # Frequency level: weights of each distinct frequency, split by mixture term.
        count = np.bincount(inverse, weights, minlength=ux.shape[0])
        count1 = np.bincount(inverse, weights * w1, minlength=ux.shape[0])
        count2 = count - count1
        total = float(count.sum())
        psi_a, psi_b, psi_ab = special.digamma([a, b, a + b])
        tri_a, tri_b, tri_ab = special.zeta(2, [a, b, a + b])

        base_r = special.gammaln(r + ux) - special.gammaln(r)
        ll = float(count @ base_r) + total * (r * np.log(alpha) - special.betaln(a, b))
        ll += float(weights @ log_sum)

        gradient = np.empty(4)
        gradient[0] = float(count @ (special.digamma(r + ux) - special.digamma(r)))
        gradient[0] += total * np.log(alpha) - float(weights @ (w1 * log_at + w2 * log_atx))
        mixed_inv = w1 * inv_at + w2 * inv_atx
        gradient[1] = total * r / alpha - float(weights @ (rx * mixed_inv))
        # ∂t1/∂a = ψ(a) - ψ(a+b+k), ∂t2/∂a = ψ(a+1) - ψ(a+b+k); likewise for b.
        gradient[2] = float(count1.sum()) * psi_a + float(count2.sum()) * (psi_a + 1.0 / a)
        gradient[2] -= float(count @ psi_abk) + total * (psi_a - psi_ab)
        dt1_b = special.digamma(b + uk) - psi_abk
        dt2_b = special.digamma(b + k_safe - 1) - psi_abk
        gradient[3] = float(count1 @ dt1_b + count2 @ dt2_b) - total * (psi_b - psi_ab)

        hessian = np.zeros((4, 4))
        hessian[0, 0] = float(count @ (special.zeta(2, r + ux) - special.zeta(2, r)))
        hessian[0, 1] = total / alpha - float(weights @ mixed_inv)
        hessian[1, 1] = -total * r / alpha**2
        hessian[1, 1] += float(weights @ (rx * (w1 * inv_at**2 + w2 * inv_atx**2)))
        tri_a1 = tri_a - 1.0 / a**2  # ψ1(a+1)
        hessian[2, 2] = float(count1.sum()) * tri_a + float(count2.sum()) * tri_a1
        hessian[2, 2] -= float(count @ tri_abk) + total * (tri_a - tri_ab)
        hessian[2, 3] = -float(count @ tri_abk) + total * tri_ab
        d2t1_b = special.zeta(2, b + uk) - tri_abk
        d2t2_b = special.zeta(2, b + k_safe - 1) - tri_abk
        hessian[3, 3] = float(count1 @ d2t1_b + count2 @ d2t2_b) - total * (tri_b - tri_ab)
        # The mixture's own curvature: w1 w2 (∇t1 - ∇t2)(∇t1 - ∇t2)ᵀ, with
        # ∇t1 - ∇t2 = (ln((α+t_x)/(α+T)), -(r+x)(1/(α+T) - 1/(α+t_x)), -1/a, 1/(b+k-1)).
        spread = np.empty((x.shape[0], 4))
        spread[:, 0] = log_atx - log_at
        spread[:, 1] = rx * (inv_atx - inv_at)
        spread[:, 2] = -1.0 / a
        spread[:, 3] = (1.0 / (b + k_safe - 1))[inverse]
        hessian += (spread * (weights * w1 * w2)[:, None]).T @ spread
        upper = np.triu(hessian, 1)
        return ll, gradient, np.diag(np.diag(hessian)) + upper + upper.T

    def _log_dropout_odds(self, x: FloatArray, tx: FloatArray, age: FloatArray) -> FloatArray:
        """log of (a / (b+k-1)) ((α+T)/(α+t_x))^(r+x): posterior odds of having dropped out."""
        r, alpha, a, b = self._params
        k = x + self._shift
        with np.errstate(divide="ignore"):
            odds = np.log(a) - np.log(np.where(k > 0, b + k - 1, 1.0))
        odds = odds + (r + x) * (np.log(alpha + age) - np.log(alpha + tx))
        return np.where(k > 0, odds, -np.inf)

    def _p_alive(self, x: FloatArray, tx: FloatArray, age: FloatArray) -> FloatArray:
        """P(alive | x, t_x, T): FHL 2005 eq. 13; Batislam et al. 2007 eq. 7."""
        return np.exp(-np.logaddexp(0.0, self._log_dropout_odds(x, tx, age)))

    def _conditional_purchases(
        self, t: float | FloatArray, x: FloatArray, tx: FloatArray, age: FloatArray
    ) -> FloatArray:
        """E[Y(t) | x, t_x, T], FHL 2005 eq. 10, with the 2F1 Euler-transformed.

        ``((α+T)/(α+T+t))^(r+x) · 2F1(r+x, b+k; a+b+k-1; z)`` equals
        ``(1-z)^(a-1) · 2F1(a+b-1-r, a-1; a+b+k-1; z)`` with ``z = t/(α+T+t)`` (Euler's
        transformation; for MBG/NBD k = x+1 and the first parameter is a+b-r). The left form
        multiplies a tiny power by a huge 2F1 when x is large; the right form has bounded
        upper parameters and a growing lower one, so it stays accurate for any frequency.
        Requires a ≠ 1.
        """
        r, alpha, a, b = self._params
        k = x + self._shift
        z = t / (alpha + age + t)
        hyp = special.hyp2f1(a + b - 1 - r + self._shift, a - 1, a + b + k - 1, z)
        numerator = (a + b + k - 1) / (a - 1) * (1 - (1 - z) ** (a - 1) * hyp)
        return np.asarray(numerator * self._p_alive(x, tx, age), dtype=np.float64)

    def _unconditional_purchases(self, t: FloatArray) -> FloatArray:
        """E[X(t)] for a new customer: FHL 2005 eq. 9 (BG/NBD).

        For MBG/NBD the expectation is ``b/(a+b)`` times the BG/NBD one with ``b+1`` (survive
        the time-0 coin first), i.e. ``b/(a-1) [1 - (α/(α+t))^r 2F1(r, b+1; a+b; t/(α+t))]``.
        """
        zeros = np.zeros_like(t)
        return self._conditional_purchases(t, zeros, zeros, zeros)

    def _probability_of_n(self, t: float, n: FloatArray) -> FloatArray:
        """P(X(t) = n), FHL 2005 eq. 8 (and its MBG analogue), written with NBD pmf and tail.

        Alive after n purchases: E[(1-p)^k] · NBD(n); dropped out right after the n-th purchase:
        E[p (1-p)^(k-1)] · P(NBD ≥ n). The finite sum of eq. 8 is the NBD tail, which scipy
        evaluates without cancellation.
        """
        r, alpha, a, b = self._params
        k = n + self._shift
        prob = alpha / (alpha + t)
        ln_bab = special.betaln(a, b)
        alive = np.exp(special.betaln(a, b + k) - ln_bab + stats.nbinom.logpmf(n, r, prob))
        k_safe = np.where(k > 0, k, 1.0)
        dropped = np.exp(special.betaln(a + 1, b + k_safe - 1) - ln_bab) * stats.nbinom.sf(
            n - 1, r, prob
        )
        return np.asarray(alive + np.where(k > 0, dropped, 0.0), dtype=np.float64)


class BetaGeo(_BetaGeoFamily):
    """BG/NBD model of repeat purchasing (Fader, Hardie & Lee 2005).

    Parameters are ``r, alpha`` (gamma heterogeneity of the purchase rate; ``alpha`` is in the
    time unit of the data) and ``a, b`` (beta heterogeneity of the dropout probability). On the
    CDNOW sample in weeks the paper reports r = 0.243, α = 4.414, a = 0.793, b = 2.426,
    LL = -9582.4 (Table 1).
    """

    _shift: ClassVar[int] = 0


class ModifiedBetaGeo(_BetaGeoFamily):
    """MBG/NBD: BG/NBD where a customer may also drop out right after the first purchase.

    Customers without repeat purchases then have P(alive) < 1, which fixes BG/NBD's
    well-known artefact of scoring every one-time buyer as certainly alive.
    """

    _shift: ClassVar[int] = 1
