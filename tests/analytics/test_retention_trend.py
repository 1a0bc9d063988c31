"""The overview's stored funnel and retention readings (``clm.analytics.retention_trend``)
follow what their reports read, as the Reports page's readings do: an erasure in a quiet
workspace (no new event, transition or health snapshot) makes them not current, and the
refresh lands without the erased customer. On SQLite and PostgreSQL; figures by hand from the
scenario (tests/analytics/scenario.py)."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select

from clm.accounts.audit import Actor
from clm.analytics import retention_trend
from clm.analytics.kept import readings_of
from clm.analytics.retention_trend import funnel_summary
from clm.analytics.retention_trend import retention_trend as retention
from clm.privacy import erase_customer
from clm.store.engine import Database
from clm.store.models import Event, HealthSnapshot, StageTransition
from tests.analytics.conftest import Loaded

Q1 = (date(2024, 1, 1), date(2024, 3, 31))


def _newest_rows(db: Database) -> list[int]:
    """The newest event, transition and health snapshot: what stays put in a quiet workspace."""
    with db.session() as session:
        return [
            int(session.scalar(select(func.max(column))) or 0)
            for column in (Event.id, StageTransition.id, HealthSnapshot.id)
        ]


def _settled(read: Any) -> Any:
    """``read()`` once the refresh it started has landed (a loaded machine may need more than
    one look)."""
    found = read()
    for _ in range(40):
        if found.current:
            break
        time.sleep(0.25)
        found = read()
    return found


def test_an_erasure_in_a_quiet_workspace_outdates_the_overview(
    scenario: Loaded, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, workspace_id = scenario.db, scenario.workspace_id
    funnel = funnel_summary(db, workspace_id)
    trend = retention(db, workspace_id, *Q1)
    assert funnel.ready and funnel.current and trend.ready and trend.current
    # by hand: all five first reached lead; c, the one buyer who churned, churned in February
    assert (funnel.steps[0].from_stage, funnel.steps[0].entered) == ("lead", 5)
    assert [p.churned for p in trend.periods] == [0, 1, 0]

    quiet = _newest_rows(db)
    for user in ("b", "c"):  # neither has the newest event or transition
        erase_customer(db, workspace_id, scenario.customers[user], who=Actor("test"))
    assert _newest_rows(db) == quiet  # nothing new to see but the erasures themselves

    outdated_funnel = funnel_summary(db, workspace_id)
    outdated_trend = retention(db, workspace_id, *Q1)
    assert not outdated_funnel.current and outdated_funnel.steps == funnel.steps
    assert not outdated_trend.current and outdated_trend.periods == trend.periods

    for kind in ("FUNNEL", "RETENTION"):
        monkeypatch.setattr(
            retention_trend, kind, replace(getattr(retention_trend, kind), min_interval=0.0)
        )

    def renewed_funnel() -> Any:
        readings_of(db).settle()
        return funnel_summary(db, workspace_id)

    def renewed_trend() -> Any:
        readings_of(db).settle()
        return retention(db, workspace_id, *Q1)

    renewed = _settled(renewed_funnel)
    assert renewed.current and renewed.steps[0].entered == 3  # a, d and e
    assert renewed.steps == retention_trend.run_report(db, workspace_id, "funnel", {}).steps  # type: ignore[union-attr]
    again = _settled(renewed_trend)
    assert again.current and [p.churned for p in again.periods] == [0, 0, 0]  # c is gone
