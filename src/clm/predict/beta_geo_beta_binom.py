"""BG/BB model of discrete-time repeat transactions (Fader, Hardie & Shang 2010).

For settings where a customer has a fixed number of transaction opportunities (annual
fund-raising events, weekly sessions): at each opportunity an active customer transacts with
probability p ~ Beta(α, β), and before each opportunity becomes inactive with probability
θ ~ Beta(γ, δ).

References
----------
Fader, P. S., Hardie, B. G. S. & Shang, J. (2010). Customer-Base Analysis in a Discrete-Time
Noncontractual Setting. Marketing Science 29(6), 1086-1108.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from scipy import special

from clm.predict._base import MLEModel, RowLogLik
from clm.predict._errors import InvalidSummaryError
from clm.predict._validation import FloatArray, as_pandas, columns_as_arrays, validate_rfm

__all__ = ["BetaGeoBetaBinom"]

_COLUMNS = ("frequency", "recency", "n_periods")


def _bg_bb_arrays(summary: Any) -> tuple[pd.Index, FloatArray, FloatArray, FloatArray]:
    frame = as_pandas(summary)
    x, tx, n = columns_as_arrays(frame, _COLUMNS)
    validate_rfm(x, tx, n, age_name="n_periods", integer_age=True)
    bad = int(np.count_nonzero(x > tx))
    if bad:
        raise InvalidSummaryError(f"column 'frequency': {bad} row(s) have frequency > recency")
    return frame.index, x, tx, n


def _betaln_grad(a: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    psi = special.digamma(a + b)
    return special.betaln(a, b), special.digamma(a) - psi, special.digamma(b) - psi


class BetaGeoBetaBinom(MLEModel):
    """BG/BB with parameters ``alpha, beta`` (transaction probability) and ``gamma, delta``
    (dropout probability), fitted on ``frequency`` (transactions), ``recency`` (opportunity
    index of the last one) and ``n_periods`` (opportunities observed)."""

    param_names: ClassVar[tuple[str, ...]] = ("alpha", "beta", "gamma", "delta")

    def fit(self, summary: Any, weights: Any = None) -> Self:
        """Maximise the weighted likelihood (FHS 2010 eq. 5) over the summary's rows."""
        _, x, tx, n = _bg_bb_arrays(summary)
        return self._fit_arrays([x, tx, n], weights)

    def _row_loglik(self, params: FloatArray, data: Sequence[FloatArray]) -> RowLogLik:
        """FHS 2010 eq. 5, in log space:

        L = B(α+x, β+n-x)/B(α,β) · B(γ, δ+n)/B(γ,δ)
            + Σ_{i=0}^{n-t_x-1} B(α+x, β+t_x-x+i)/B(α,β) · B(γ+1, δ+t_x+i)/B(γ,δ)

        The first term is "alive through all n opportunities", the i-th "died right before
        opportunity t_x+i+1". All terms go through one logsumexp, so the gradient is the
        softmax-weighted sum of the terms' digamma gradients.
        """
        alpha, beta, gamma, delta = params
        x, tx, n = data
        width = int(np.max(n - tx)) if x.size else 0
        i = np.arange(width, dtype=np.float64)[None, :]
        valid = i < (n - tx)[:, None]
        # Column 0: the alive term; columns 1..width: the death terms (masked past n - t_x).
        ya = np.concatenate([(n - x)[:, None], (tx - x)[:, None] + i], axis=1)
        yd = np.concatenate([n[:, None], tx[:, None] + i], axis=1)
        ga = np.concatenate([np.zeros((x.size, 1)), np.ones((x.size, width))], axis=1)
        lp, lp_a, lp_b = _betaln_grad(alpha + x[:, None] + 0 * ya, beta + ya)
        ld, ld_g, ld_d = _betaln_grad(gamma + ga, delta + yd)
        terms = np.where(np.c_[np.ones((x.size, 1), bool), valid], lp + ld, -np.inf)
        log_sum = special.logsumexp(terms, axis=1)
        soft = np.exp(terms - log_sum[:, None])
        base_ab, dab_a, dab_b = _betaln_grad(np.asarray(alpha), np.asarray(beta))
        base_gd, dgd_g, dgd_d = _betaln_grad(np.asarray(gamma), np.asarray(delta))
        ll = log_sum - base_ab - base_gd
        grad = np.stack(
            [
                (soft * lp_a).sum(axis=1) - dab_a,
                (soft * lp_b).sum(axis=1) - dab_b,
                (soft * ld_g).sum(axis=1) - dgd_g,
                (soft * ld_d).sum(axis=1) - dgd_d,
            ],
            axis=1,
        )
        return ll, grad

    def _log_evidence(self, x: FloatArray, tx: FloatArray, n: FloatArray) -> FloatArray:
        ll, _ = self._row_loglik(self._params, [x, tx, n])
        return ll

    def p_alive(self, summary: Any) -> pd.Series:
        """P(alive at opportunity n+1 | x, t_x, n) (FHS 2010 eq. 11)."""
        index, x, tx, n = _bg_bb_arrays(summary)
        alpha, beta, gamma, delta = self._params
        log_alive = (
            special.betaln(alpha + x, beta + n - x)
            - special.betaln(alpha, beta)
            + special.betaln(gamma, delta + n + 1)
            - special.betaln(gamma, delta)
        )
        return pd.Series(
            np.exp(log_alive - self._log_evidence(x, tx, n)), index=index, name="p_alive"
        )

    def predict_purchases(self, n_star: int, summary: Any) -> pd.Series:
        """E[X(n, n+n*) | x, t_x, n]: expected transactions in the next ``n_star`` opportunities.

        FHS 2010 eq. 13, written as the sum it comes from: the customer must be alive at
        opportunity n+k (``B(γ, δ+n+k)/B(γ, δ)``) and transact (one more success for the
        posterior of p), divided by the likelihood. The sum form has no 1/(γ-1) singularity.
        """
        index, x, tx, n = _bg_bb_arrays(summary)
        alpha, beta, gamma, delta = self._params
        k = np.arange(1, int(n_star) + 1, dtype=np.float64)[None, :]
        log_alive = special.logsumexp(special.betaln(gamma, delta + n[:, None] + k), axis=1)
        log_num = (
            special.betaln(alpha + x + 1, beta + n - x)
            - special.betaln(alpha, beta)
            + log_alive
            - special.betaln(gamma, delta)
        )
        values = np.exp(log_num - self._log_evidence(x, tx, n)) if n_star > 0 else 0.0 * x
        return pd.Series(values, index=index, name="predicted_purchases")

    def expected_purchases_new_customer(self, n: int) -> float:
        """E[X(n)] = α/(α+β) · Σ_{k=1}^{n} B(γ, δ+k)/B(γ, δ) (FHS 2010 eq. 7, as a sum)."""
        alpha, beta, gamma, delta = self._params
        k = np.arange(1, int(n) + 1, dtype=np.float64)
        alive = np.exp(special.betaln(gamma, delta + k) - special.betaln(gamma, delta))
        return float(alpha / (alpha + beta) * alive.sum())

    def probability_of_n_purchases(self, n: int, x: Any) -> Any:
        """P(X(n) = x) for a new customer over ``n`` opportunities (FHS 2010 eq. 8).

        Alive throughout: ``C(n,x) B(α+x, β+n-x)/B(α,β) · B(γ, δ+n)/B(γ,δ)``; alive for exactly
        i < n opportunities: ``C(i,x) B(α+x, β+i-x)/B(α,β) · B(γ+1, δ+i)/B(γ,δ)``, for i >= x.
        """
        alpha, beta, gamma, delta = self._params
        x_arr = np.atleast_1d(np.asarray(x, dtype=np.float64))[:, None]
        base = special.betaln(alpha, beta) + special.betaln(gamma, delta)

        def log_choose(total: Any, k: Any) -> Any:
            return (
                special.gammaln(total + 1) - special.gammaln(k + 1) - special.gammaln(total - k + 1)
            )

        alive = (
            log_choose(n, x_arr[:, 0])
            + special.betaln(alpha + x_arr[:, 0], beta + n - x_arr[:, 0])
            + special.betaln(gamma, delta + n)
            - base
        )
        i = np.arange(n, dtype=np.float64)[None, :]
        with np.errstate(invalid="ignore"):
            died = np.where(
                i >= x_arr,
                log_choose(i, np.minimum(x_arr, i))
                + special.betaln(alpha + x_arr, beta + np.maximum(i - x_arr, 0))
                + special.betaln(gamma + 1, delta + i)
                - base,
                -np.inf,
            )
        total = np.exp(np.logaddexp(alive, special.logsumexp(died, axis=1)))
        total = np.where(x_arr[:, 0] > n, 0.0, total)
        return float(total[0]) if np.ndim(x) == 0 else total
