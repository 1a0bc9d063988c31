"""The engagement tick: everything that happens with the passing of time, in one call.

Journeys enrol and advance and their goal outcomes are observed, referrals are attributed,
qualified and rewarded once their refund window has passed, events earn points and lapsed
points expire, and new survey answers are folded into each response's stored latest answer
(the survey results' table). The worker runs it every minute for every workspace; ``clm
playbook tick`` and ``POST /api/v1/engage/tick`` run it on demand. Each part is idempotent, so
running it twice, or from two places, is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from pydantic import Field
from sqlalchemy import select

from clm.engage import repository as repo
from clm.engage.playbooks.journey_steps import TickReport, tick
from clm.engage.playbooks.outcomes import observe_all
from clm.engage.referrals import ledger
from clm.engage.referrals import service as referrals
from clm.engage.referrals.earning import earn_from_events
from clm.engage.referrals.schemas import ReferralReport
from clm.engage.surveys.stored_answers import ensure_answers
from clm.store.engine import Database
from clm.store.locks import one_at_a_time
from clm.store.models import Workspace

log = logging.getLogger("clm.engage.schedule")
T = TypeVar("T")


class EngageTickReport(TickReport):
    """A journey tick plus what the referral and points programs did."""

    referrals: ReferralReport | None = None  # None: the workspace has no referral program
    points_earned: int = 0
    points_expired: int = 0
    goals_observed: int = 0  # journeys whose goal outcome was (re)computed
    errors: list[str] = Field(default_factory=list)  # parts that failed (logged), the rest ran


def run_due(db: Database, workspace_id: int, now: datetime | None = None) -> EngageTickReport:
    """Run every time-driven engagement task for one workspace.

    Each part runs on its own: a failure in one (logged, and listed in ``errors``) does not
    stop the others, so a broken journey never holds up referral rewards or points. Inside
    the journeys, a failure is kept to the one customer and step it happened at.

    One tick per workspace at a time, across processes: the parts read then write in several
    transactions, and two interleaved ticks (the worker's minute tick beside a live pass) each
    enrolled the same customer on PostgreSQL, who got two welcome emails.
    """
    with one_at_a_time(db, "engage", workspace_id):
        return _run_due(db, workspace_id, now)


def _run_due(db: Database, workspace_id: int, now: datetime | None) -> EngageTickReport:
    at = now or datetime.now(UTC)
    errors: list[str] = []

    def part(name: str, run: Callable[[], T], fallback: T) -> T:
        try:
            return run()
        except Exception as exc:
            log.exception(
                "engagement tick part failed", extra={"workspace_id": workspace_id, "part": name}
            )
            errors.append(f"{name}: {type(exc).__name__}: {exc}"[:500])
            return fallback

    empty = TickReport(enrolled=0, steps=0, sends=0, blocked=0, seconds=0.0)
    journeys = part("journeys", lambda: tick(db, workspace_id, at), empty)
    observed = part("goal outcomes", lambda: observe_all(db, workspace_id), 0)
    with db.session() as session:
        has_program = repo.get_config(session, workspace_id, "program", "referral") is not None
    referred = (
        part("referrals", lambda: referrals.process(db, workspace_id, at), None)
        if has_program
        else None
    )
    earned = part("points earned", lambda: earn_from_events(db, workspace_id, at), 0)
    expired = part("points expired", lambda: ledger.expire(db, workspace_id, at), 0)
    part("survey answers", lambda: ensure_answers(db, workspace_id), 0)
    return EngageTickReport(
        **journeys.model_dump(),
        referrals=referred,
        points_earned=earned,
        points_expired=expired,
        goals_observed=observed,
        errors=errors,
    )


def run_all(db: Database, now: datetime | None = None) -> dict[int, EngageTickReport]:
    """``run_due`` for every workspace; one failing workspace does not stop the others."""
    with db.session() as session:
        ids = [int(i) for i in session.scalars(select(Workspace.id).order_by(Workspace.id))]
    done: dict[int, EngageTickReport] = {}
    for workspace_id in ids:
        try:
            done[workspace_id] = run_due(db, workspace_id, now)
        except Exception:
            log.exception("engagement tick failed", extra={"workspace_id": workspace_id})
    return done
