"""Exceptions and warnings raised by :mod:`clm.predict`.

The tree, so a caller sees at a glance what to catch::

    ValueError
    └── InvalidSummaryError        bad input rows (names the column and the count)
    UserWarning
    └── PredictWarning             base of every warning emitted by clm.predict
        ├── ConvergenceWarning     the optimiser stopped without converging
        └── IndependenceWarning    Gamma-Gamma: spend correlates with frequency
    RuntimeError
    └── NotFittedError             a prediction was asked of an unfitted model
"""

from __future__ import annotations

__all__ = [
    "ConvergenceWarning",
    "IndependenceWarning",
    "InvalidSummaryError",
    "NotFittedError",
    "PredictWarning",
]


class InvalidSummaryError(ValueError):
    """Input data a model cannot be fitted on or scored with.

    A ``ValueError`` so that generic validation handlers catch it; the message names the
    offending column and how many rows are bad, because "NaN in the likelihood" after a
    minute of optimisation is the failure mode this replaces.
    """


class NotFittedError(RuntimeError):
    """A prediction needs fitted parameters; call ``fit()`` first."""


class PredictWarning(UserWarning):
    """Base class of the warnings emitted by :mod:`clm.predict`."""


class ConvergenceWarning(PredictWarning):
    """The maximum-likelihood optimiser did not report convergence."""


class IndependenceWarning(PredictWarning):
    """Gamma-Gamma's assumption that spend is independent of frequency looks violated."""
