"""Buy-till-you-die and customer-lifetime-value models: pure NumPy/SciPy, DataFrames in and out.

Typical use::

    from clm.predict import rfm_summary, BetaGeo, GammaGamma, customer_lifetime_value

    summary = rfm_summary(transactions, customer="customer_id", date="date",
                          value="amount", end="2024-12-31", unit="W")
    purchases = BetaGeo().fit(summary)
    spend = GammaGamma().fit(summary)
    clv = customer_lifetime_value(purchases, spend, summary, horizon=12, discount_rate=0.01)

Models follow scikit-learn conventions: hyper-parameters in ``__init__``, ``fit()`` returns
the model, fitted attributes end in ``_`` (``params_``, ``log_likelihood_``, ``covariance_``).
Every ``fit`` accepts ``weights`` so that :func:`compress`-ed data fits exactly like the full
data. Errors are :class:`InvalidSummaryError` (a ``ValueError``) naming the bad column;
warnings derive from :class:`PredictWarning`.
"""

from clm.predict._errors import (
    ConvergenceWarning,
    IndependenceWarning,
    InvalidSummaryError,
    NotFittedError,
    PredictWarning,
)
from clm.predict._summary import compress, rfm_summary
from clm.predict.beta_geo import BetaGeo, ModifiedBetaGeo
from clm.predict.beta_geo_beta_binom import BetaGeoBetaBinom
from clm.predict.clv import customer_lifetime_value
from clm.predict.gamma_gamma import GammaGamma, IndependenceCheck, check_independence
from clm.predict.pareto_nbd import ParetoNBD
from clm.predict.shifted_beta_geo import ShiftedBetaGeometric

__all__ = [
    "BetaGeo",
    "BetaGeoBetaBinom",
    "ConvergenceWarning",
    "GammaGamma",
    "IndependenceCheck",
    "IndependenceWarning",
    "InvalidSummaryError",
    "ModifiedBetaGeo",
    "NotFittedError",
    "ParetoNBD",
    "PredictWarning",
    "ShiftedBetaGeometric",
    "check_independence",
    "compress",
    "customer_lifetime_value",
    "rfm_summary",
]
