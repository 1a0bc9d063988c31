"""Input checks shared by every model: fail early, name the column, count the bad rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from clm.predict._errors import InvalidSummaryError

FloatArray = npt.NDArray[np.float64]

__all__ = [
    "FloatArray",
    "as_pandas",
    "check_weights",
    "columns_as_arrays",
    "validate_rfm",
]


def as_pandas(data: Any) -> pd.DataFrame:
    """Return ``data`` as a pandas DataFrame, converting a polars frame without copying twice."""
    if isinstance(data, pd.DataFrame):
        return data
    if type(data).__module__.split(".")[0] == "polars":
        frame: pd.DataFrame = data.to_pandas()
        return frame
    raise TypeError(f"expected a pandas or polars DataFrame, got {type(data).__name__}")


def columns_as_arrays(data: Any, names: Sequence[str]) -> list[FloatArray]:
    """Extract ``names`` from a DataFrame as float arrays, with a clear error if one is missing."""
    frame = as_pandas(data)
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise InvalidSummaryError(
            f"missing column(s) {missing}; the summary needs {list(names)} "
            "(build it with clm.predict.rfm_summary)"
        )
    out: list[FloatArray] = []
    for name in names:
        try:
            out.append(np.asarray(frame[name], dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise InvalidSummaryError(f"column {name!r} is not numeric: {exc}") from exc
    return out


def _fail_if(mask: npt.NDArray[np.bool_], column: str, problem: str) -> None:
    count = int(np.count_nonzero(mask))
    if count:
        raise InvalidSummaryError(f"column {column!r}: {count} row(s) {problem}")


def check_finite_nonnegative(values: FloatArray, column: str) -> None:
    """Reject NaN, infinite and negative entries of one column."""
    _fail_if(np.isnan(values), column, "are NaN")
    _fail_if(np.isinf(values), column, "are infinite")
    _fail_if(values < 0, column, "are negative")


def validate_rfm(
    frequency: FloatArray,
    recency: FloatArray,
    age: FloatArray,
    *,
    age_name: str = "T",
    integer_age: bool = False,
) -> None:
    """Check the (frequency, recency, T) triple every BTYD likelihood is defined on.

    The checks are the model's support: a repeat-purchase count is a non-negative integer,
    the last purchase cannot come after the end of observation (``recency <= T``) and a
    customer without repeat purchases has recency 0 by definition.
    """
    if frequency.size == 0:
        raise InvalidSummaryError("the summary is empty: no customers to fit or score")
    if not frequency.shape == recency.shape == age.shape:
        raise InvalidSummaryError("frequency, recency and T must have the same length")
    for values, name in ((frequency, "frequency"), (recency, "recency"), (age, age_name)):
        check_finite_nonnegative(values, name)
    _fail_if(frequency != np.round(frequency), "frequency", "are not whole numbers")
    if integer_age:
        _fail_if(age != np.round(age), age_name, "are not whole numbers")
        _fail_if(recency != np.round(recency), "recency", "are not whole numbers")
    # A relative slack absorbs float noise from unit conversions (days / 7).
    _fail_if(recency > age * (1 + 1e-12) + 1e-12, "recency", f"have recency > {age_name}")
    _fail_if((frequency == 0) & (recency > 0), "recency", "have recency > 0 but frequency 0")


def check_weights(weights: Any, size: int) -> FloatArray:
    """Return validated per-row weights (ones when ``weights`` is None)."""
    if weights is None:
        return np.ones(size, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape[0] != size:
        raise InvalidSummaryError(f"weights has {w.shape[0]} entries for {size} rows")
    check_finite_nonnegative(w, "weights")
    if not np.any(w > 0):
        raise InvalidSummaryError("column 'weights': all rows have zero weight")
    return w
