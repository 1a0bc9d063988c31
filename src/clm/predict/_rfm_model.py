"""Common surface of the continuous-time transaction models (BG/NBD, MBG/NBD, Pareto/NBD)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import pandas as pd

from clm.predict._base import MLEModel
from clm.predict._summary import distinct_rows
from clm.predict._validation import (
    FloatArray,
    as_pandas,
    check_weights,
    columns_as_arrays,
    validate_rfm,
)

__all__ = ["RFMModel", "rfm_arrays"]

RFM_COLUMNS = ("frequency", "recency", "T")


def rfm_arrays(summary: Any) -> tuple[pd.Index, FloatArray, FloatArray, FloatArray]:
    """Validated ``(index, frequency, recency, T)`` of a summary frame."""
    frame = as_pandas(summary)
    x, tx, age = columns_as_arrays(frame, RFM_COLUMNS)
    validate_rfm(x, tx, age)
    return frame.index, x, tx, age


class RFMModel(MLEModel):
    """A model of repeat purchases fitted on (frequency, recency, T) per customer.

    Subclasses provide the formulas on arrays; this class turns DataFrames into validated
    arrays and results back into Series indexed like the input summary.
    """

    def fit(self, summary: Any, weights: Any = None) -> Self:
        """Fit by maximum likelihood on a summary with ``frequency``, ``recency``, ``T``.

        ``weights`` (e.g. the ``weight`` column of :func:`clm.predict.compress`) multiplies
        each row's log-likelihood, so a compressed summary gives the same fit as the full one.
        The fit itself works on the distinct (frequency, recency, T) rows whatever it is given.
        """
        _, x, tx, age = rfm_arrays(summary)
        w = check_weights(weights, x.shape[0])
        data, w = distinct_rows([x, tx, age], w)
        return self._fit_arrays(data, w)

    def _default_start(self, data: Sequence[FloatArray], weights: FloatArray) -> FloatArray:
        x, _, age = data
        # r = 1 and alpha = 1 / (purchase rate) put the gamma mean at the observed rate, in
        # whatever time unit the data uses; the dropout parameters start at a mild prior.
        rate = max(float(weights @ x), 1.0) / max(float(weights @ age), 1e-12)
        start = np.ones(len(self.param_names))
        start[1] = 1.0 / rate
        return start

    def _distinct_frequencies(self, x: FloatArray) -> tuple[FloatArray, npt.NDArray[np.intp]]:
        """Distinct frequencies and the row -> distinct index, cached for the arrays of a fit:
        the special functions of r + x and b + x are evaluated once per distinct frequency
        (hundreds) instead of once per row."""
        cached = getattr(self, "_frequency_cache", None)
        if cached is not None and cached[0] is x:
            return cached[1], cached[2]
        ux, inverse = np.unique(x, return_inverse=True)
        self._frequency_cache = (x, ux, inverse)
        return ux, inverse

    # -- formulas on arrays, provided by subclasses --------------------------------------------
    def _p_alive(self, x: FloatArray, tx: FloatArray, age: FloatArray) -> FloatArray:
        raise NotImplementedError

    def _conditional_purchases(
        self, t: float | FloatArray, x: FloatArray, tx: FloatArray, age: FloatArray
    ) -> FloatArray:
        raise NotImplementedError

    def _unconditional_purchases(self, t: FloatArray) -> FloatArray:
        raise NotImplementedError

    def _probability_of_n(self, t: float, n: FloatArray) -> FloatArray:
        raise NotImplementedError

    # -- public verbs ---------------------------------------------------------------------------
    def p_alive(self, summary: Any) -> pd.Series:
        """Probability that each customer is still active at the end of observation ``T``."""
        index, x, tx, age = rfm_arrays(summary)
        return pd.Series(self._p_alive(x, tx, age), index=index, name="p_alive")

    def predict_purchases(self, t: float, summary: Any) -> pd.Series:
        """Expected repeat purchases of each customer in the next ``t`` time units, given history.

        This is the conditional expectation E[Y(t) | x, t_x, T] the papers use to score
        customers; ``t`` is in the unit of the summary (weeks for ``unit="W"``).
        """
        if t < 0:
            raise ValueError(f"t must be non-negative, got {t}")
        index, x, tx, age = rfm_arrays(summary)
        values = self._conditional_purchases(float(t), x, tx, age)
        return pd.Series(values, index=index, name="predicted_purchases")

    def expected_purchases_new_customer(self, t: Any) -> Any:
        """Expected repeat purchases in ``(0, t]`` of a customer just acquired at time 0."""
        t_arr = np.asarray(t, dtype=np.float64)
        if np.any(t_arr < 0):
            raise ValueError("t must be non-negative")
        out = self._unconditional_purchases(np.atleast_1d(t_arr))
        return float(out[0]) if t_arr.ndim == 0 else out.reshape(t_arr.shape)

    def probability_of_n_purchases(self, t: float, n: Any) -> Any:
        """P(X(t) = n): probability that a new customer makes ``n`` repeat purchases by ``t``."""
        n_arr = np.asarray(n, dtype=np.float64)
        if np.any(n_arr < 0) or np.any(n_arr != np.round(n_arr)):
            raise ValueError("n must be non-negative whole numbers")
        out = self._probability_of_n(float(t), np.atleast_1d(n_arr))
        return float(out[0]) if n_arr.ndim == 0 else out.reshape(n_arr.shape)
