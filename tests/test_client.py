"""The Python API end to end on the embedded database, and the package's public surface."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import clm
from clm.errors import Conflict, NotFound


def test_public_names() -> None:
    assert sorted(clm.__all__) == ["Clm", "Workspace", "__version__", "connect"]


def test_python_api_round_trip(tmp_path: Path) -> None:
    app = clm.connect(f"sqlite:///{tmp_path / 'clm.sqlite'}")
    created = app.create_workspace("shop")
    assert created.write_key.startswith("clm_wk_") and created.secret_key.startswith("clm_sk_")
    with pytest.raises(Conflict):
        app.create_workspace("shop")
    shop = app.workspace("shop")
    orders = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b"],
            "date": ["2024-01-01", "2024-02-01", "2024-01-15"],
            "amount": [10.0, 15.0, 7.5],
        }
    )
    assert shop.import_transactions(orders).stored == 3
    result = shop.send([{"type": "identify", "userId": "a", "traits": {"email": "a@x.test"}}])
    assert result.stored == 1
    customer = shop.find_customer("email", "A@X.test")
    assert customer.user_id == "a"
    assert customer.event_count == 3
    assert [e.revenue for e in shop.timeline(customer.id)] == [None, 15.0, 10.0]
    assert len(shop.customers().items) == 2
    with pytest.raises(NotFound):
        app.workspace("nope")
    app.close()
