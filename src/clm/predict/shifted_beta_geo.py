"""Shifted-beta-geometric (sBG) model of contractual retention.

Each subscriber renews every period with a constant probability 1-θ until they churn; θ varies
across subscribers as Beta(α, β). Heterogeneity alone makes the aggregate retention rate
rise over time, which is why a cohort's survival curve flattens.

References
----------
Fader, P. S. & Hardie, B. G. S. (2007). How to Project Customer Retention. Journal of
Interactive Marketing 21(1), 76-90.
Fader, P. S. & Hardie, B. G. S. (2010). Customer-Base Valuation in a Contractual Setting: The
Perils of Ignoring Heterogeneity. Marketing Science 29(1), 85-93.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from scipy import special

from clm.predict._base import MLEModel, RowLogLik
from clm.predict._errors import InvalidSummaryError
from clm.predict._validation import FloatArray, check_finite_nonnegative

__all__ = ["ShiftedBetaGeometric"]


class ShiftedBetaGeometric(MLEModel):
    """sBG model fitted on a cohort's survivor counts; parameters ``alpha, beta``.

    On the "regular" and "high end" cohorts of FH 2007 (years 0..7) the paper reports
    α = 0.704, β = 1.182 and α = 0.668, β = 3.806.
    """

    param_names: ClassVar[tuple[str, ...]] = ("alpha", "beta")

    def fit(self, survivors: Any, weights: Any = None) -> Self:
        """Fit on survivor counts ``n_0 >= n_1 >= ... >= n_T`` of one cohort (n_t at the start
        of period t; counts may be fractional, e.g. percentages of a cohort).

        The likelihood (FH 2007 eq. 7) treats the ``n_{t-1} - n_t`` customers lost in period t
        as churning at t, with P(T = t) = B(α+1, β+t-1)/B(α, β), and the ``n_T`` still active
        as censored, with S(T) = B(α, β+T)/B(α, β). ``weights`` is not used (the counts are
        the weights) and exists for a uniform ``fit`` signature.
        """
        if weights is not None:
            raise ValueError("ShiftedBetaGeometric.fit takes survivor counts, not weights")
        counts = np.asarray(survivors, dtype=np.float64).reshape(-1)
        if counts.size < 2:
            raise InvalidSummaryError("survivors: need at least two periods (n_0 and n_1)")
        check_finite_nonnegative(counts, "survivors")
        rising = int(np.count_nonzero(np.diff(counts) > 0))
        if rising:
            raise InvalidSummaryError(f"column 'survivors': {rising} period(s) gain customers")
        periods = np.arange(1, counts.size, dtype=np.float64)
        lost = counts[:-1] - counts[1:]
        # One row per churn period plus one censored row; the counts are the row weights.
        is_censored = np.r_[np.zeros(periods.size), 1.0]
        period = np.r_[periods, periods[-1]]
        self.n_periods_ = int(periods[-1])
        return self._fit_arrays([period, is_censored], np.r_[lost, counts[-1]])

    def fit_durations(self, periods: Any, churned: Any, weights: Any = None) -> Self:
        """Fit on one row per subscriber (or per distinct row, with ``weights``).

        ``periods`` is the number of whole periods a subscriber has been observed (a churner
        is counted up to and including the period they left in: ``t >= 1``); ``churned``
        says whether they left (contributing P(T = t)) or are still active (S(t), censored).
        Subscribers who started at different times pool into one likelihood, which is what
        FH 2007 eq. 7 becomes when each cohort has its own observation length.
        """
        t = np.asarray(periods, dtype=np.float64).reshape(-1)
        left = np.asarray(churned, dtype=bool).reshape(-1)
        if t.size == 0:
            raise InvalidSummaryError("periods: no subscribers to fit")
        if t.shape != left.shape:
            raise InvalidSummaryError("periods and churned must have the same length")
        check_finite_nonnegative(t, "periods")
        if np.any(t != np.round(t)):
            raise InvalidSummaryError("column 'periods': values must be whole periods")
        if np.any(left & (t < 1)):
            raise InvalidSummaryError("column 'periods': a churner is observed >= 1 period")
        self.n_periods_ = int(t.max())
        return self._fit_arrays([t, (~left).astype(np.float64)], weights)

    def _default_start(self, data: Sequence[FloatArray], weights: FloatArray) -> FloatArray:
        return np.array([1.0, 1.0])

    def _row_loglik(self, params: FloatArray, data: Sequence[FloatArray]) -> RowLogLik:
        alpha, beta = params
        period, censored = data
        is_c = censored > 0
        # churn at t: B(α+1, β+t-1) / B(α, β);  survive past T: B(α, β+T) / B(α, β)
        a1 = np.where(is_c, alpha, alpha + 1)
        b1 = np.where(is_c, beta + period, beta + period - 1)
        psi_ab1 = special.digamma(a1 + b1)
        psi_ab = special.digamma(alpha + beta)
        ll = special.betaln(a1, b1) - special.betaln(alpha, beta)
        grad = np.empty((period.shape[0], 2))
        grad[:, 0] = special.digamma(a1) - psi_ab1 - special.digamma(alpha) + psi_ab
        grad[:, 1] = special.digamma(b1) - psi_ab1 - special.digamma(beta) + psi_ab
        return ll, grad

    def survival(self, t: Any) -> Any:
        """S(t) = B(α, β+t)/B(α, β): share of the cohort still active after t periods."""
        alpha, beta = self._params
        t_arr = np.asarray(t, dtype=np.float64)
        return np.exp(special.betaln(alpha, beta + t_arr) - special.betaln(alpha, beta))

    def churn_probability(self, t: Any) -> Any:
        """P(T = t) = B(α+1, β+t-1)/B(α, β): share of the cohort lost in period t (t >= 1)."""
        alpha, beta = self._params
        t_arr = np.asarray(t, dtype=np.float64)
        return np.exp(special.betaln(alpha + 1, beta + t_arr - 1) - special.betaln(alpha, beta))

    def retention_rate(self, t: Any) -> Any:
        """r_t = S(t)/S(t-1) = (β+t-1)/(α+β+t-1) (FH 2007 eq. 8): rises with t."""
        alpha, beta = self._params
        t_arr = np.asarray(t, dtype=np.float64)
        return (beta + t_arr - 1) / (alpha + beta + t_arr - 1)

    def curves(self, n_periods: int) -> pd.DataFrame:
        """Survival, churn and retention for periods 0..n_periods (projection beyond the fit)."""
        t = np.arange(n_periods + 1, dtype=np.float64)
        frame = pd.DataFrame({"survival": self.survival(t)}, index=pd.Index(t, name="period"))
        frame["churn"] = np.r_[np.nan, self.churn_probability(t[1:])]
        frame["retention"] = np.r_[np.nan, self.retention_rate(t[1:])]
        return frame

    def discounted_expected_residual_lifetime(self, discount_rate: float, renewals: Any = 0) -> Any:
        """DERL: discounted expected number of future payments of an active customer.

        For a customer who has made ``renewals`` = n-1 renewals, valued just before their n-th
        renewal decision (so the payment at n, if they renew, is not discounted), FH 2010
        eq. 6: ``DERL = Σ_{t>=n} S(t)/S(n-1) / (1+d)^(t-n)
        = B(α, β+n)/B(α, β+n-1) · 2F1(1, β+n; α+β+n; 1/(1+d))``.
        Multiply by the margin per period to value the customer. A customer acquired today is
        worth ``DEL = 1 + DERL(d, 0)/(1+d)`` payments.
        """
        if discount_rate <= 0:
            raise ValueError("discount_rate must be positive: the undiscounted DERL may diverge")
        alpha, beta = self._params
        n = np.asarray(renewals, dtype=np.float64) + 1
        ratio = np.exp(special.betaln(alpha, beta + n) - special.betaln(alpha, beta + n - 1))
        return ratio * special.hyp2f1(1.0, beta + n, alpha + beta + n, 1.0 / (1.0 + discount_rate))
