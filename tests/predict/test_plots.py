from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clm.predict import BetaGeo
from clm.predict.plots import (
    plot_calibration_vs_holdout,
    plot_frequency_recency,
    plot_p_alive_history,
)


@pytest.fixture(scope="module")
def model() -> BetaGeo:
    fitted = BetaGeo()
    fitted.params_ = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    return fitted


def test_calibration_vs_holdout_plots_the_bucket_means(model: BetaGeo) -> None:
    summary = pd.DataFrame(
        {
            "frequency": [0.0, 0.0, 1.0, 9.0, 8.0],
            "recency": [0.0, 0.0, 5.0, 30.0, 20.0],
            "T": [30.0, 30.0, 30.0, 35.0, 35.0],
            "frequency_holdout": [0.0, 1.0, 2.0, 6.0, 4.0],
            "duration_holdout": 39.0,
        }
    )
    figure = plot_calibration_vs_holdout(model, summary)
    actual, predicted = figure.axes[0].get_lines()
    # Buckets 0, 1 and 7+ (9 and 8 purchases are pooled), worked out by hand.
    np.testing.assert_array_equal(actual.get_xdata(), [0, 1, 7])
    np.testing.assert_allclose(actual.get_ydata(), [0.5, 2.0, 5.0])
    expected = model.predict_purchases(39.0, summary).to_numpy()
    np.testing.assert_allclose(
        predicted.get_ydata(), [expected[:2].mean(), expected[2], expected[3:].mean()]
    )
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == ["0", "1", "7+"]


def test_frequency_recency_heat_map_values(model: BetaGeo) -> None:
    figure = plot_frequency_recency(model, T=39.0, max_frequency=5, points=4)
    image = figure.axes[0].get_images()[0].get_array()
    assert image.shape == (6, 4)
    # Row = frequency, column = recency in linspace(0, 39, 4): check one cell directly.
    row = pd.DataFrame({"frequency": [3.0], "recency": [26.0], "T": [39.0]})
    assert image[3, 2] == pytest.approx(model.p_alive(row).iloc[0])
    assert np.ma.is_masked(image[0, 1]) or np.isnan(image[0, 1])  # x = 0, recency > 0
    assert image[5, 3] == pytest.approx(1.0 / (1 + 0.793 / (2.426 + 4)), rel=1e-9)  # t_x = T
    purchases = plot_frequency_recency(model, 39.0, "purchases", t=10.0, max_frequency=5, points=4)
    cell = purchases.axes[0].get_images()[0].get_array()[3, 2]
    assert cell == pytest.approx(model.predict_purchases(10.0, row).iloc[0])


def test_p_alive_history_jumps_at_purchases(model: BetaGeo) -> None:
    figure = plot_p_alive_history(model, [0.0, 5.0, 12.0], end=40.0)
    line = figure.axes[0].get_lines()[0]
    t, p = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
    # Just after the 2nd repeat purchase only the dropout coin matters: 1/(1 + a/(b+x-1)).
    at_purchase = p[t == 12.0][0]
    assert at_purchase == pytest.approx(1.0 / (1 + 0.793 / (2.426 + 1)))
    assert p[t < 12.0][-1] < at_purchase  # the purchase revives the customer
    after = t > 12.0
    assert np.all(np.diff(p[after]) < 0)  # decays while silent
    row = pd.DataFrame({"frequency": [2.0], "recency": [12.0], "T": [40.0]})
    assert p[-1] == pytest.approx(model.p_alive(row).iloc[0])
    before_second = (t > 0) & (t < 5.0)
    assert np.all(p[before_second] == 1.0)  # BG/NBD: no repeat yet, cannot have dropped out
