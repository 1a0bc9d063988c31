from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from clm.predict import InvalidSummaryError, compress, rfm_summary


def _log() -> pd.DataFrame:
    # Customer a: first buy Jan 1, two lines on Jan 8 (one transaction, $30), one on Jan 22.
    # Customer b: a single purchase on Jan 15. Customer c: first buys in the holdout.
    return pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "a", "b", "a", "c"],
            "date": pd.to_datetime(
                format="ISO8601",
                arg=[
                    "2024-01-01",
                    "2024-01-08",
                    "2024-01-08 17:00",
                    "2024-01-22",
                    "2024-01-15",
                    "2024-02-05",
                    "2024-02-10",
                ],
            ),
            "amount": [10.0, 20.0, 10.0, 50.0, 99.0, 7.0, 5.0],
        }
    )


def test_summary_worked_by_hand() -> None:
    summary = rfm_summary(
        _log(), date="date", value="amount", end="2024-01-29", unit="W", holdout_end="2024-02-12"
    )
    assert list(summary.index) == ["a", "b"]  # c first bought after the calibration end
    a, b = summary.loc["a"], summary.loc["b"]
    assert a["frequency"] == 2  # Jan 8 (two lines, one day) and Jan 22
    assert a["recency"] == pytest.approx(3.0)  # Jan 1 -> Jan 22
    assert a["T"] == pytest.approx(4.0)  # Jan 1 -> Jan 29
    assert a["monetary_value"] == pytest.approx((30.0 + 50.0) / 2)  # repeats only
    assert (b["frequency"], b["recency"], b["monetary_value"]) == (0, 0, 0)
    assert b["T"] == pytest.approx(2.0)
    assert a["frequency_holdout"] == 1 and b["frequency_holdout"] == 0
    assert a["monetary_value_holdout"] == 7.0
    assert a["duration_holdout"] == pytest.approx(2.0)
    assert summary.attrs["unit"] == "W"


def test_summary_in_days_without_value_and_from_polars() -> None:
    log = pl.from_pandas(_log())
    summary = rfm_summary(log, end="2024-01-29", unit="D")
    assert "monetary_value" not in summary.columns
    assert summary.loc["a", "recency"] == 21 and summary.loc["a", "T"] == 28
    assert summary.loc["a", "frequency"] == 2  # Jan 8 and Jan 22; Feb 5 is after end


def test_cdnow_summary_matches_the_papers_counts(cdnow_summary: pd.DataFrame) -> None:
    # FHL 2005: 2,357 customers, 946 of whom made a repeat purchase in the 39 weeks.
    assert len(cdnow_summary) == 2357
    assert int((cdnow_summary["frequency"] > 0).sum()) == 946
    # First purchase on 1997-01-01, end 1997-09-30 inclusive: T = 272 days = 38.86 weeks.
    assert cdnow_summary["T"].max() == pytest.approx(272 / 7)
    assert (cdnow_summary["duration_holdout"] == 39).all()


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("amount", np.nan, "'amount': 1 row"),
        ("date", pd.NaT, "'date': 1 row"),
        ("customer_id", None, "'customer_id': 1 row"),
    ],
)
def test_summary_rejects_missing_values(column: str, value: object, message: str) -> None:
    log = _log().astype({"customer_id": object})
    log.loc[2, column] = value
    with pytest.raises(InvalidSummaryError, match=message):
        rfm_summary(log, value="amount")


def test_summary_rejects_empty_and_bad_arguments() -> None:
    with pytest.raises(InvalidSummaryError, match="empty"):
        rfm_summary(_log().iloc[:0])
    with pytest.raises(InvalidSummaryError, match="missing column"):
        rfm_summary(_log(), customer="user")
    with pytest.raises(ValueError, match="unit"):
        rfm_summary(_log(), unit="fortnight")
    with pytest.raises(ValueError, match="after end"):
        rfm_summary(_log(), end="2024-01-29", holdout_end="2024-01-01")


def test_compress_counts_identical_rows_and_maps_back() -> None:
    summary = pd.DataFrame(
        {
            "frequency": [0, 2, 0, 2, 1, 0.0],
            "recency": [0, 3, 0, 3, 1, 0.0],
            "T": [5, 5, 5, 5, 5, 4.0],
        }
    )
    rows, inverse = compress(summary, return_inverse=True)
    assert len(rows) == 4
    assert rows["weight"].sum() == 6
    assert rows["weight"].tolist() == [2, 2, 1, 1]  # in order of first appearance
    restored = rows[["frequency", "recency", "T"]].to_numpy()[inverse]
    np.testing.assert_array_equal(restored, summary.to_numpy())
    weighted = compress(summary, weights=np.arange(6.0))
    assert weighted["weight"].tolist() == [0 + 2, 1 + 3, 4, 5]
