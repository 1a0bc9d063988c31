"""The demo's engagement: a welcome playbook, an NPS survey and a referral program running on
the CDNOW customers, delivering to a local SMTP sink the demo starts itself.

The CDNOW customers never opted in to anything: the demo grants each a synthetic email opt-in
(``source = "demo"``) so the guardrails let mail through; quiet hours are off so nothing waits
for a morning. Every message lands as an ``.eml`` file in the demo's mailbox folder.

The welcome playbook replays only the newest stage changes of the log (the last
``REPLAY_STAGE_CHANGES``), not 1997 in full: a demo should show mail in seconds, not flood.
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import func, insert, select

from clm.engage import repository as repo
from clm.engage.playbooks import apply_playbook, cursor, set_cursor, shipped_playbook
from clm.engage.referrals import ReferralProgram
from clm.engage.referrals import service as referrals
from clm.engage.schemas import EmailProvider, Policy
from clm.engage.surveys import SurveyDefinition, list_surveys, save_survey, send_survey
from clm.store.engine import Database
from clm.store.models import Customer, EngageConsent, Event, Identity

REPLAY_STAGE_CHANGES = 600
NPS_CUSTOMERS = 100
SENDER = "CDNOW (CLM demo) <hello@cdnow.demo>"


class Mailbox:
    """An SMTP sink on loopback that writes every message it receives to ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._count = len(list(folder.glob("*.eml")))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self._lock:
            self._count += 1
            name = f"{self._count:06d}.eml"
        (self.folder / name).write_bytes(envelope.content)
        return "250 Message accepted for delivery"

    @property
    def received(self) -> int:
        with self._lock:
            return self._count

    def subjects(self, limit: int = 5) -> list[str]:
        """The subjects of the latest messages, to show what arrived."""
        found = []
        for path in sorted(self.folder.glob("*.eml"))[-limit:]:
            parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            found.append(str(parsed["Subject"]))
        return found

    def start(self) -> Mailbox:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


@dataclass
class EngagementSummary:
    consents: int
    welcome_replayed: int
    nps_sent: int
    referral_codes: int


def _opt_in(db: Database, workspace_id: int) -> int:
    """A synthetic marketing email opt-in for every customer without a consent record."""
    with db.transaction() as session:
        known = set(
            session.scalars(
                select(EngageConsent.customer_id).where(EngageConsent.workspace_id == workspace_id)
            )
        )
        ids = [
            int(c)
            for c in session.scalars(
                select(Customer.id).where(
                    Customer.workspace_id == workspace_id, Customer.merged_into_id.is_(None)
                )
            )
            if c not in known
        ]
        rows = [
            {"workspace_id": workspace_id, "customer_id": c, "channel": "email",
             "purpose": "marketing", "granted": True, "source": "demo",
             "updated_at": datetime.now(UTC)}
            for c in ids
        ]  # fmt: skip
        for start in range(0, len(rows), 5_000):
            session.execute(insert(EngageConsent), rows[start : start + 5_000])
    return len(ids)


def _welcome(db: Database, workspace_id: int) -> int:
    """The shipped welcome playbook, replaying only the newest stage changes of the log."""
    apply_playbook(db, workspace_id, shipped_playbook("welcome"))
    with db.transaction() as session:
        if cursor(session, workspace_id, "playbooks"):
            return 0  # already set up on an earlier run
        newest = session.scalars(
            select(Event.id)
            .where(Event.workspace_id == workspace_id, Event.name == "lifecycle_stage_changed")
            .order_by(Event.id.desc())
            .limit(REPLAY_STAGE_CHANGES)
        ).all()
        if not newest:
            return 0
        set_cursor(session, workspace_id, "playbooks", min(newest) - 1)
    return len(newest)


def _latest_buyers(db: Database, workspace_id: int, limit: int) -> list[int]:
    with db.session() as session:
        last = func.max(Event.ts)
        rows = session.execute(
            select(Identity.customer_id, last)
            .join(Identity, Identity.id == Event.identity_id)
            .where(Event.workspace_id == workspace_id, Event.name == "Order Completed")
            .group_by(Identity.customer_id)
            .order_by(last.desc(), Identity.customer_id)
            .limit(limit)
        ).all()
    return [int(c) for c, _ in rows]


def setup_engagement(
    db: Database, workspace_id: int, mailbox: Mailbox, *, log_end: date
) -> EngagementSummary:
    """Configure the demo's engagement (safe to run again) and decide the first sends."""
    with db.transaction() as session:
        repo.set_provider(session, workspace_id, EmailProvider(port=mailbox.port, sender=SENDER))
        repo.set_policy(session, workspace_id, Policy(quiet_hours=None))
    consents = _opt_in(db, workspace_id)
    replayed = _welcome(db, workspace_id)
    nps_sent = 0
    if not any(s.key == "nps" for s in list_surveys(db, workspace_id)):
        save_survey(db, workspace_id, SurveyDefinition(key="nps", type="nps"))
        buyers = _latest_buyers(db, workspace_id, NPS_CUSTOMERS)
        decided = send_survey(db, workspace_id, "nps", buyers, source="demo")
        nps_sent = sum(d.status != "blocked" for d in decided)
    referrals.set_program(
        db, workspace_id, ReferralProgram(stages=["loyalty"], landing_url="https://cdnow.demo/")
    )
    # Stages as they stood when the log ends (yesterday, for a demo built with shifted dates).
    end_of_log = datetime.combine(log_end, time(23, 59), UTC)
    codes = referrals.issue_codes(db, workspace_id, end_of_log)
    return EngagementSummary(consents, replayed, nps_sent, len(codes))
