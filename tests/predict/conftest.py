"""CDNOW and sBG data of the BTYD papers, located via ``CLM_SHARED_DATA``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from clm.predict import rfm_summary
from tests.conftest import shared_data_file

CALIBRATION_END = "1997-09-30"
HOLDOUT_END = "1998-06-30"


def shared_file(name: str) -> Path:
    return shared_data_file(name)


def read_cdnow_sample() -> pd.DataFrame:
    return pd.read_csv(
        shared_file("CDNOW_sample.txt"),
        sep=r"\s+",
        header=None,
        names=["original_id", "customer_id", "date", "cds", "dollars"],
        dtype={"date": str},
    ).assign(date=lambda d: pd.to_datetime(d["date"], format="%Y%m%d"))


@pytest.fixture(scope="session")
def cdnow_transactions() -> pd.DataFrame:
    return read_cdnow_sample()


@pytest.fixture(scope="session")
def cdnow_summary(cdnow_transactions: pd.DataFrame) -> pd.DataFrame:
    """Calibration 1997-01-01..1997-09-30 and holdout to 1998-06-30, in weeks."""
    return rfm_summary(
        cdnow_transactions,
        customer="customer_id",
        date="date",
        value="dollars",
        end=CALIBRATION_END,
        unit="W",
        holdout_end=HOLDOUT_END,
    )


@pytest.fixture(scope="session")
def sbg_retention() -> pd.DataFrame:
    return pd.read_csv(shared_file("sbg_retention.csv"))
