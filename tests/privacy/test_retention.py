"""Retention: events older than the workspace's policy are purged, by the worker's periodic
task too; workspaces without a policy keep everything."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from clm.config import Settings
from clm.engage.delivery.worker import make_queue
from clm.ingest import ingest
from clm.privacy import apply_retention
from clm.privacy.retention import months_before
from clm.privacy.settings import PrivacySettings, set_privacy_settings
from clm.store.engine import Database
from clm.store.models import Event
from tests.conftest import make_tenant

NOW = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "months", "expected"),
    [
        (NOW, 3, datetime(2024, 3, 15, 12, 0, tzinfo=UTC)),
        (datetime(2024, 5, 31, tzinfo=UTC), 3, datetime(2024, 2, 29, tzinfo=UTC)),  # leap Feb
        (datetime(2023, 5, 31, tzinfo=UTC), 3, datetime(2023, 2, 28, tzinfo=UTC)),
        (datetime(2024, 1, 10, tzinfo=UTC), 13, datetime(2022, 12, 10, tzinfo=UTC)),
    ],
)
def test_months_before_is_calendar_months(
    moment: datetime, months: int, expected: datetime
) -> None:
    assert months_before(moment, months) == expected


def _log(db: Database, ws: int) -> None:
    times = {
        "old": "2024-03-15T11:59:59Z",
        "edge": "2024-03-15T12:00:00Z",
        "new": "2024-06-01T00:00:00Z",
        "ancient": "2021-01-01T00:00:00Z",
    }
    ingest(
        db,
        ws,
        [
            {
                "type": "track",
                "userId": "u",
                "event": name,
                "messageId": f"{ws}-{name}",
                "timestamp": at,
            }
            for name, at in times.items()
        ],
    )


def _names(db: Database, ws: int) -> set[str]:
    with db.session() as session:
        return set(session.scalars(select(Event.name).where(Event.workspace_id == ws)))


def test_events_past_the_policy_are_purged_and_others_kept(db: Database) -> None:
    kept, purged = make_tenant(db, "forever"), make_tenant(db, "strict")
    _log(db, kept.id)
    _log(db, purged.id)
    with db.transaction() as session:
        set_privacy_settings(session, purged.id, PrivacySettings(retention_months=3))
    report = apply_retention(db, purged.id, now=NOW)
    # The cutoff is 2024-03-15 12:00 UTC: strictly older events go, the one at it stays.
    assert (report.purged, report.cutoff) == (2, datetime(2024, 3, 15, 12, 0, tzinfo=UTC))
    assert _names(db, purged.id) == {"edge", "new"}
    assert apply_retention(db, kept.id, now=NOW).purged == 0
    assert _names(db, kept.id) == {"old", "edge", "new", "ancient"}


def test_the_worker_registers_the_retention_task(sqlite_db: Database, tmp_path: Path) -> None:
    tenant = make_tenant(sqlite_db)
    _log(sqlite_db, tenant.id)
    with sqlite_db.transaction() as session:
        set_privacy_settings(session, tenant.id, PrivacySettings(retention_months=1))
    settings = Settings(queue_url=str(tmp_path / "queue.sqlite"))
    queue = make_queue(settings, database_url=str(sqlite_db.engine.url))

    def due(minute: int) -> set[str]:
        return {task.name for task in queue.huey.read_periodic(datetime(2024, 1, 1, 10, minute))}

    assert "clm.privacy.retention" in due(17)  # hourly, at a quiet minute
    assert "clm.privacy.retention" not in due(18)
    purged = queue.retention.call_local()  # what the consumer runs every hour
    assert purged == 4  # a month before now (the real clock): every event of 2024 and 2021
    assert _names(sqlite_db, tenant.id) == set()
