"""The fitting ladder of ``clm.predictions._models`` on data that leaves BG/NBD unidentified."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd

from clm.predictions._models import fit_purchase_model


def _ridge_purchases() -> pd.DataFrame:
    """25 buyers, each buying on 1-3 of three fixed dates: the dropout rate is not pinned down,
    and the maximum-likelihood BG/NBD walks out along a and b (to ~1e5-1e6 on this order of
    rows, without a convergence warning), where the expected purchases' 2F1 overflows."""
    start = datetime(2024, 1, 1, 12, tzinfo=UTC)
    rows = [(i + 1, start.replace(month=1 + i % 3, day=1 + i), 10.0) for i in range(25)]
    rows += [(i + 1, start.replace(month=5, day=1 + i), 12.0 + i) for i in range(0, 25, 2)]
    rows += [(i + 1, start.replace(month=9, day=1 + i), 8.0) for i in range(0, 25, 3)]
    return pd.DataFrame(
        {
            "customer_id": [c for c, _, _ in rows],
            "ts": [int(t.timestamp()) for _, t, _ in rows],
            "revenue": [r for _, _, r in rows],
        }
    )


def test_a_fit_far_out_on_the_ridge_is_refitted_with_the_penalizer() -> None:
    scores = fit_purchase_model("bgnbd", _ridge_purchases(), date(2024, 12, 31), 13)
    assert np.isfinite(scores.p_alive).all() and np.isfinite(scores.expected_purchases_90d).all()
    assert ((scores.p_alive > 0) & (scores.p_alive <= 1)).all()
    assert scores.diagnostics["penalizer"] > 0  # said so, not hidden
