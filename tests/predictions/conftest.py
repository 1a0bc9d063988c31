"""Workspaces with purchase and subscription histories, imported through clm.ingest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from clm.ingest import ingest
from clm.ingest.importer import import_transactions
from clm.store.engine import Database
from clm.store.models import Workspace
from tests.conftest import Tenant, make_tenant, shared_data_file


def cdnow_sample() -> pd.DataFrame:
    path = shared_data_file("CDNOW_sample.txt")
    frame = pd.read_csv(
        path,
        sep=r"\s+",
        header=None,
        names=["original_id", "customer_id", "date", "cds", "dollars"],
        dtype={"date": str, "customer_id": str},
    )
    return frame.assign(date=pd.to_datetime(frame["date"], format="%Y%m%d"))


def import_cdnow_sample(db: Database, slug: str = "cdnow") -> tuple[Tenant, pd.DataFrame]:
    tenant = make_tenant(db, slug)
    frame = cdnow_sample()
    report = import_transactions(
        db, tenant.id, frame, customer="customer_id", date="date", amount="dollars"
    )
    assert report.stored == len(frame) and not report.rejected
    return tenant, frame


def purchase(user: str, when: datetime, revenue: float, n: int = 0) -> dict[str, object]:
    return {
        "type": "track",
        "userId": user,
        "event": "Order Completed",
        "messageId": f"o-{user}-{when:%Y%m%d}-{n}",
        "timestamp": when.isoformat(),
        "properties": {"revenue": revenue},
    }


def subscription_workspace(db: Database, column: str = "regular_pct_alive") -> Tenant:
    """FH 2007's cohort of 1,000 subscribers as events: all start on 2000-01-01, the ones lost
    in year t cancel half-way through year t, years 0..7 observed (yearly renewals)."""
    path = shared_data_file("sbg_retention.csv")
    alive = (pd.read_csv(path)[column].to_numpy()[:8] * 10).round().astype(int)
    tenant = make_tenant(db, "subs")
    with db.transaction() as session:
        workspace = session.get(Workspace, tenant.id)
        assert workspace is not None
        workspace.settings = {"business_model": "subscription", "subscription_period": "Y"}
    start = datetime(2000, 1, 1, tzinfo=UTC)
    year = timedelta(days=365.25)
    messages: list[dict[str, object]] = []
    user = 0
    for t in range(1, 8):
        for _ in range(alive[t - 1] - alive[t]):
            user += 1
            messages.append(_sub(f"s{user}", "Subscription Started", start))
            messages.append(_sub(f"s{user}", "Subscription Cancelled", start + (t - 0.5) * year))
    for _ in range(alive[7]):
        user += 1
        messages.append(_sub(f"s{user}", "Subscription Started", start))
    assert user == 1000
    for first in range(0, len(messages), 2000):
        result = ingest(db, tenant.id, messages[first : first + 2000])
        assert not result.rejected
    return tenant


def _sub(user: str, name: str, when: datetime) -> dict[str, object]:
    return {
        "type": "track",
        "userId": user,
        "event": name,
        "messageId": f"{name}-{user}",
        "timestamp": when.isoformat(),
    }
