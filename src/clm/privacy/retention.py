"""Retention: purge a workspace's events older than its policy (``retention_months``).

Purging, not anonymising: an anonymised event still describes one person's behaviour and,
kept under a surrogate id, would let a profile be rebuilt; a purged one is gone. Derived
history already computed (stage transitions, health) is kept; recomputing from the log later
reflects the purge. Called by the worker's periodic task (``clm.engage.delivery.worker``) and by
``clm privacy retention``; deletes in chunks so a large purge never holds one long lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select

from clm.accounts import Actor, Principal, record
from clm.engage.surveys.stored_answers import invalidate_answers
from clm.lifecycle.current_state import invalidate_state
from clm.privacy.settings import get_privacy_settings
from clm.store.engine import Database
from clm.store.models import Event, Workspace

_CHUNK = 5_000
RETENTION = Actor("worker:retention")  # who the audit log names for the scheduled purge


@dataclass
class RetentionReport:
    workspace_id: int
    retention_months: int | None
    cutoff: datetime | None
    purged: int = 0


def months_before(moment: datetime, months: int) -> datetime:
    """The same day and time ``months`` calendar months earlier (clamped to the month's end)."""
    total = moment.year * 12 + (moment.month - 1) - months
    year, month = divmod(total, 12)
    month += 1
    days = [31, 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28,
            31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]  # fmt: skip
    return moment.replace(year=year, month=month, day=min(moment.day, days))


def apply_retention(
    db: Database,
    workspace_id: int,
    *,
    now: datetime | None = None,
    who: Principal | Actor = RETENTION,
) -> RetentionReport:
    """Purge the events of ``workspace_id`` older than its policy; nothing without one."""
    at = now or datetime.now(UTC)
    with db.session() as session:
        months = get_privacy_settings(session, workspace_id).retention_months
    if months is None:
        return RetentionReport(workspace_id, None, None)
    cutoff = months_before(at, months)
    report = RetentionReport(workspace_id, months, cutoff)
    limit = int(cutoff.timestamp())
    while True:
        with db.transaction() as session:
            ids = list(
                session.scalars(
                    select(Event.id)
                    .where(Event.workspace_id == workspace_id, Event.ts < limit)
                    .limit(_CHUNK)
                )
            )
            if ids:
                session.execute(delete(Event).where(Event.id.in_(ids)))
                report.purged += len(ids)
        if len(ids) < _CHUNK:
            break
    if report.purged:
        with db.transaction() as session:
            invalidate_state(session, workspace_id)  # counts and RFM: the next refresh rebuilds
            invalidate_answers(session, workspace_id)  # purged answers leave the results now
            record(session, who, "events.retention_purge", f"workspace:{workspace_id}",
                   after={"purged": report.purged, "cutoff": cutoff.isoformat()},
                   workspace_id=workspace_id)  # fmt: skip
    return report


def apply_retention_all(db: Database, *, now: datetime | None = None) -> list[RetentionReport]:
    """``apply_retention`` for every workspace with a policy: the worker's periodic task."""
    with db.session() as session:
        workspaces = list(session.scalars(select(Workspace.id).order_by(Workspace.id)))
    return [apply_retention(db, ws, now=now) for ws in workspaces]
