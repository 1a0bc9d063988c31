from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clm.predict import InvalidSummaryError, ShiftedBetaGeometric
from clm.predict.simulate import simulate_shifted_beta_geometric


@pytest.mark.parametrize(
    ("column", "alpha", "beta"),
    [("regular_pct_alive", 0.704, 1.182), ("high_end_pct_alive", 0.668, 3.806)],
)
def test_reproduces_fader_hardie_2007(
    sbg_retention: pd.DataFrame, column: str, alpha: float, beta: float
) -> None:
    """FH 2007 fit years 0..7 of a 1,000-customer cohort (the table is percent alive)."""
    survivors = sbg_retention[column].to_numpy()[:8] * 10
    model = ShiftedBetaGeometric().fit(survivors)
    assert model.params_["alpha"] == pytest.approx(alpha, rel=0.005)
    assert model.params_["beta"] == pytest.approx(beta, rel=0.005)
    # The projection to year 12 (FH 2007 Figure 3) stays within 2 points of the actual curve.
    projected = model.curves(12)["survival"].to_numpy() * 100
    assert np.max(np.abs(projected - sbg_retention[column].to_numpy())) < 2.0


def test_curves_are_consistent() -> None:
    model = ShiftedBetaGeometric()
    model.params_ = {"alpha": 0.704, "beta": 1.182}
    curves = model.curves(20)
    survival = curves["survival"].to_numpy()
    np.testing.assert_allclose(curves["retention"].to_numpy()[1:], survival[1:] / survival[:-1])
    np.testing.assert_allclose(curves["churn"].to_numpy()[1:], survival[:-1] - survival[1:])
    assert np.all(np.diff(curves["retention"].to_numpy()[1:]) > 0)  # heterogeneity: rises


@pytest.mark.parametrize("renewals", [0, 4])
def test_derl_matches_the_brute_force_sum(renewals: int) -> None:
    model = ShiftedBetaGeometric()
    model.params_ = {"alpha": 0.668, "beta": 3.806}
    d, n = 0.1, renewals + 1
    t = np.arange(n, n + 4000)
    survival = model.survival(t) / model.survival(n - 1)
    expected = float(np.sum(survival / (1 + d) ** (t - n)))
    assert model.discounted_expected_residual_lifetime(d, renewals) == pytest.approx(
        expected, rel=1e-10
    )


def test_parameter_recovery() -> None:
    survivors = simulate_shifted_beta_geometric(20_000, 8, 0.7, 1.2, seed=41)
    table = ShiftedBetaGeometric().fit(survivors).summary()
    for name, value in {"alpha": 0.7, "beta": 1.2}.items():
        assert abs(table.loc[name, "estimate"] - value) < 4 * table.loc[name, "se"], name


def test_bad_counts_are_rejected() -> None:
    with pytest.raises(InvalidSummaryError, match="gain customers"):
        ShiftedBetaGeometric().fit([100, 80, 90])
    with pytest.raises(InvalidSummaryError, match="at least two"):
        ShiftedBetaGeometric().fit([100])
    with pytest.raises(InvalidSummaryError, match="negative"):
        ShiftedBetaGeometric().fit([100, -1])
