"""Gamma-Gamma model of spend per transaction (Fader, Hardie & Lee 2005, "RFM and CLV").

A customer's transaction values are Gamma(p, ν); across customers ν ~ Gamma(q, γ). Only the
mean spend of a customer's x (repeat) transactions is needed: it is sufficient for ν.

References
----------
Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). RFM and CLV: Using Iso-Value Curves for
Customer Base Analysis. Journal of Marketing Research 42(4), 415-430.
Fader, P. S. & Hardie, B. G. S. (2013). The Gamma-Gamma Model of Monetary Value (note).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from scipy import special, stats

from clm.predict._base import MLEModel, RowLogLik
from clm.predict._errors import IndependenceWarning, InvalidSummaryError
from clm.predict._validation import (
    FloatArray,
    as_pandas,
    check_finite_nonnegative,
    columns_as_arrays,
)

__all__ = ["GammaGamma", "IndependenceCheck", "check_independence"]


@dataclass(frozen=True)
class IndependenceCheck:
    """Pearson correlation of frequency and mean spend among repeat buyers."""

    correlation: float
    p_value: float
    n_customers: int
    threshold: float

    @property
    def passed(self) -> bool:
        return abs(self.correlation) <= self.threshold


def check_independence(
    frequency: Any, monetary_value: Any, threshold: float = 0.3, warn: bool = True
) -> IndependenceCheck:
    """Check Gamma-Gamma's assumption that spend does not depend on purchase frequency.

    The model multiplies a transaction model's purchases by a spend that ignores frequency;
    FHL (2005, "RFM and CLV", Section 3) check this with the correlation between frequency and
    average spend among repeat buyers (0.11 on CDNOW, judged acceptable). The rule here is the
    *size* of the correlation, ``|corr| > threshold``, not its p-value: with thousands of
    customers a negligible correlation is "significant", and CDNOW itself would fail a 5% test.
    The p-value is reported for information.
    """
    x = np.asarray(frequency, dtype=np.float64)
    m = np.asarray(monetary_value, dtype=np.float64)
    repeat = x > 0
    n = int(np.count_nonzero(repeat))
    if n < 3 or np.ptp(x[repeat]) == 0 or np.ptp(m[repeat]) == 0:
        result = IndependenceCheck(float("nan"), float("nan"), n, threshold)
    else:
        test = stats.pearsonr(x[repeat], m[repeat])
        result = IndependenceCheck(float(test.statistic), float(test.pvalue), n, threshold)
    if warn and not np.isnan(result.correlation) and not result.passed:
        warnings.warn(
            IndependenceWarning(
                f"frequency and average spend are correlated (r = {result.correlation:.2f} "
                f"over {n} repeat buyers, |r| > {threshold}): Gamma-Gamma assumes they are "
                "independent, so its CLV will be biased; consider modelling spend by segment."
            ),
            stacklevel=2,
        )
    return result


class GammaGamma(MLEModel):
    """Gamma-Gamma spend model with parameters ``p, q, v`` (v is the papers' γ).

    On CDNOW's 946 repeat buyers (mean spend of repeat purchases) FHL 2005 report p = 6.25,
    q = 3.74, γ = 15.44.

    Parameters
    ----------
    penalizer, initial_params, max_iter
        See :class:`clm.predict.BetaGeo`.
    independence_threshold
        ``|corr(frequency, spend)|`` above which :meth:`fit` warns with
        :class:`~clm.predict.IndependenceWarning`; ``None`` skips the check.
    """

    param_names: ClassVar[tuple[str, ...]] = ("p", "q", "v")

    def __init__(
        self,
        penalizer: float = 0.0,
        initial_params: dict[str, float] | None = None,
        max_iter: int = 1000,
        independence_threshold: float | None = 0.3,
    ) -> None:
        super().__init__(penalizer, initial_params, max_iter)
        self.independence_threshold = independence_threshold

    def fit(
        self,
        summary: Any,
        weights: Any = None,
        frequency: str = "frequency",
        monetary_value: str = "monetary_value",
    ) -> Self:
        """Fit on the repeat buyers of ``summary`` (rows with frequency 0 are skipped).

        The likelihood is that of the observed mean spend m̄ of x transactions (FH 2013 eq. 3):
        ``Γ(px+q)/(Γ(px)Γ(q)) · γ^q m̄^(px-1) x^(px) / (γ + m̄x)^(px+q)``.
        """
        x, m = columns_as_arrays(summary, (frequency, monetary_value))
        w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
        check_finite_nonnegative(x, frequency)
        check_finite_nonnegative(m, monetary_value)
        repeat = x > 0
        if not np.any(repeat):
            raise InvalidSummaryError(f"column {frequency!r}: no repeat buyers to fit spend on")
        bad = int(np.count_nonzero(repeat & (m <= 0)))
        if bad:
            raise InvalidSummaryError(
                f"column {monetary_value!r}: {bad} repeat buyer(s) have spend <= 0"
            )
        if self.independence_threshold is not None:
            self.independence_ = check_independence(x, m, self.independence_threshold)
        return self._fit_arrays([x[repeat], m[repeat]], w[repeat])

    def _default_start(self, data: Sequence[FloatArray], weights: FloatArray) -> FloatArray:
        m = data[1]
        # Method of moments on customer means: E[m̄] = pγ/(q-1); start at q = 3, p = 2.
        mean = float(weights @ m) / float(weights.sum())
        p0, q0 = 2.0, 3.0
        return np.array([p0, q0, mean * (q0 - 1) / p0])

    def _row_loglik(self, params: FloatArray, data: Sequence[FloatArray]) -> RowLogLik:
        p, q, v = params
        x, m = data
        px = p * x
        log_vmx = np.log(v + m * x)
        ll = (
            special.gammaln(px + q)
            - special.gammaln(px)
            - special.gammaln(q)
            + q * np.log(v)
            + (px - 1) * np.log(m)
            + px * np.log(x)
            - (px + q) * log_vmx
        )
        psi_pxq = special.digamma(px + q)
        grad = np.empty((x.shape[0], 3))
        grad[:, 0] = x * (psi_pxq - special.digamma(px) + np.log(m) + np.log(x) - log_vmx)
        grad[:, 1] = psi_pxq - special.digamma(q) + np.log(v) - log_vmx
        grad[:, 2] = q / v - (px + q) / (v + m * x)
        return ll, grad

    def conditional_expected_value(self, frequency: Any, monetary_value: Any) -> Any:
        """E(M | p, q, γ, m̄, x): expected spend per transaction of each customer.

        A credibility-weighted average of the population mean pγ/(q-1) and the customer's own
        mean m̄, with weight on m̄ growing with x (FHL 2005 "RFM and CLV", eq. 5):
        ``(γ + m̄x) p / (px + q - 1)``. Customers without repeats get the population mean.
        Requires q > 1 (finite mean spend).
        """
        p, q, v = self._params
        if q <= 1:
            raise ValueError(f"q = {q:.3g} <= 1: the fitted spend distribution has no mean")
        index = frequency.index if isinstance(frequency, pd.Series) else None
        x = np.asarray(frequency, dtype=np.float64)
        m = np.asarray(monetary_value, dtype=np.float64)
        check_finite_nonnegative(x, "frequency")
        check_finite_nonnegative(m, "monetary_value")
        value = (v + m * x) * p / (p * x + q - 1)
        if index is not None:
            return pd.Series(value, index=index, name="expected_spend")
        return value

    def expected_spend(self, summary: Any) -> pd.Series:
        """:meth:`conditional_expected_value` for the rows of an RFM summary."""
        frame = as_pandas(summary)
        x, m = columns_as_arrays(frame, ("frequency", "monetary_value"))
        return pd.Series(
            self.conditional_expected_value(x, m), index=frame.index, name="expected_spend"
        )
