"""Erasure (GDPR art. 17, CCPA's right to delete): the one deletion path of the event log.

In one transaction, for the person a customer id names (every merged id included):
1. a tombstone is written for each identifier: its keyed hash (``clm.store.tombstones``);
2. their events, identities, resolution records and customer rows are deleted;
3. every derived row is deleted: each table with a ``customer_id`` column (stage and health
   history, consents and their history, outbox messages, journeys, tasks, tokens, coupons,
   points, testimonials, referral codes, and any table added later), plus the rows reached
   through them (journey log, redemptions, the whole points transactions so the double-entry
   ledger stays balanced, referrals on either side, suppressions of their addresses), and
   their stored survey answers (by identity);
4. where another customer's rows name them, the naming is removed: an event of someone else
   that carried their user or anonymous id loses it; referral events of their referees lose
   the referrer id and code.
The erasure is audited with ids and counts only. Afterwards ingestion refuses their
identifiers (the tombstone rule, ``clm.ingest.service``) and reports computed from the log no
longer count them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from clm.accounts import Actor, Principal, record
from clm.engage.surveys.stored_answers import forget_identities, invalidate_answers
from clm.lifecycle.current_state import invalidate_state
from clm.privacy.person import Person, customer_tables, find_person
from clm.store.engine import Database
from clm.store.locks import until_commit
from clm.store.models import (
    Customer,
    EngageCoupon,
    EngageCouponRedemption,
    EngageJourney,
    EngageJourneyLog,
    EngageLedgerEntry,
    EngageMessage,
    EngageReferral,
    EngageReferralCode,
    EngageSuppression,
    Event,
    Identity,
    IdentityLink,
    Tombstone,
)
from clm.store.tombstones import identifier_digest, tombstone_key

_CHUNK = 500
# Events other customers carry that name a referrer by id and code.
_REFERRAL_EVENTS = ("Referral Link Clicked", "Referral Converted", "Reward Granted")


@dataclass
class ErasureReport:
    """What an erasure removed: rows per table, tombstones written."""

    customer_id: int
    merged_customer_ids: list[int]
    tombstones: int = 0
    deleted: dict[str, int] = field(default_factory=dict)
    anonymised: dict[str, int] = field(default_factory=dict)


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def erase_customer(
    db: Database, workspace_id: int, customer_id: int, *, who: Principal | Actor
) -> ErasureReport:
    """Erase the person ``customer_id`` names; see the module docstring for what happens."""
    key = tombstone_key()
    with db.transaction() as session:
        # The ingestion writer's lock: a batch resolving this person's identifiers either
        # commits before (and is erased) or waits and meets the tombstones.
        until_commit(session, "ingest", workspace_id)
        person = find_person(session, workspace_id, customer_id)
        report = ErasureReport(person.root, [i for i in person.customer_ids if i != person.root])
        report.tombstones = _write_tombstones(session, person, key)
        _erase(session, person, report)
        # Their events are gone: the workspace's counts and the others' RFM quintiles are
        # recomputed by the next state refresh (a rebuild).
        invalidate_state(session, workspace_id)
        record(session, who, "customer.erase", f"customer:{person.root}",
               after={"deleted": report.deleted, "anonymised": report.anonymised,
                      "tombstones": report.tombstones}, workspace_id=workspace_id)  # fmt: skip
    # This process's identity cache may still map the erased identifiers; others refuse them
    # by their tombstones before consulting theirs.
    db.extensions.pop("known_identities", None)
    return report


def _write_tombstones(session: Session, person: Person, key: bytes) -> int:
    ws = person.workspace_id
    digests = {identifier_digest(key, ws, kind, value) for kind, value in person.keys}
    existing = set(
        session.scalars(
            select(Tombstone.digest).where(
                Tombstone.workspace_id == ws, Tombstone.digest.in_(digests)
            )
        )
    )
    now = datetime.now(UTC)
    fresh = sorted(digests - existing)
    session.add_all(Tombstone(workspace_id=ws, digest=d, created_at=now) for d in fresh)
    session.flush()
    return len(fresh)


def _count(report: ErasureReport, table: str, rows: int, *, anonymised: bool = False) -> None:
    target = report.anonymised if anonymised else report.deleted
    if rows:
        target[table] = target.get(table, 0) + rows


def _erase(session: Session, person: Person, report: ErasureReport) -> None:
    ws, ids = person.workspace_id, person.customer_ids
    run = session.execute

    def rowcount(statement: Any) -> int:
        return int(getattr(run(statement), "rowcount", 0) or 0)

    _scrub_others(session, person, report)  # reads their referral codes: before those go
    # Rows reached through the person's rows, before those go.
    journeys = select(EngageJourney.id).where(
        EngageJourney.workspace_id == ws, EngageJourney.customer_id.in_(ids)
    )
    _count(report, "engage_journey_log", rowcount(
        delete(EngageJourneyLog).where(EngageJourneyLog.journey_id.in_(journeys))
    ))  # fmt: skip
    coupons = select(EngageCoupon.id).where(
        EngageCoupon.workspace_id == ws, EngageCoupon.customer_id.in_(ids)
    )
    _count(report, "engage_coupon_redemptions", rowcount(
        delete(EngageCouponRedemption).where(EngageCouponRedemption.coupon_id.in_(coupons))
    ))  # fmt: skip
    accounts = [f"customer:{i}" for i in ids]
    txns = select(EngageLedgerEntry.txn_id).where(
        EngageLedgerEntry.workspace_id == ws,
        or_(EngageLedgerEntry.customer_id.in_(ids), EngageLedgerEntry.account.in_(accounts)),
    )
    _count(report, "engage_ledger", rowcount(
        delete(EngageLedgerEntry).where(
            EngageLedgerEntry.workspace_id == ws, EngageLedgerEntry.txn_id.in_(txns)
        )
    ))  # fmt: skip
    _count(report, "engage_referrals", rowcount(
        delete(EngageReferral).where(
            EngageReferral.workspace_id == ws,
            or_(EngageReferral.referrer_id.in_(ids), EngageReferral.referee_id.in_(ids)),
        )
    ))  # fmt: skip
    addresses = sorted(person.addresses)
    _count(report, "engage_suppressions", rowcount(
        delete(EngageSuppression).where(
            EngageSuppression.workspace_id == ws, EngageSuppression.address.in_(addresses)
        )
    ))  # fmt: skip
    _count(report, "engage_messages", rowcount(
        delete(EngageMessage).where(
            EngageMessage.workspace_id == ws, EngageMessage.address.in_(addresses)
        )
    ))  # fmt: skip
    for table, column in customer_tables():
        _count(report, table.name, rowcount(
            delete(table).where(table.c.workspace_id == ws, column.in_(ids))
        ))  # fmt: skip
    # Their stored survey answers (comments); the others' are refolded from the log later.
    _count(report, "survey_answers", forget_identities(session, ws, person.identity_ids))
    invalidate_answers(session, ws)
    # The person's own log, identities and customer rows, last (foreign keys).
    for chunk in _chunks(person.identity_ids):
        _count(report, "events", rowcount(delete(Event).where(Event.identity_id.in_(chunk))))
    values = [value for _, value in person.keys]
    _count(report, "identity_links", rowcount(
        delete(IdentityLink).where(
            IdentityLink.workspace_id == ws,
            or_(
                IdentityLink.customer_id.in_(ids),
                IdentityLink.other_customer_id.in_(ids),
                IdentityLink.value.in_(values),
            ),
        )
    ))  # fmt: skip
    for chunk in _chunks(person.identity_ids):
        _count(report, "identities", rowcount(delete(Identity).where(Identity.id.in_(chunk))))
    run(update(Customer).where(Customer.id.in_(ids)).values(merged_into_id=None))
    _count(report, "customers", rowcount(delete(Customer).where(Customer.id.in_(ids))))


def _scrub_others(session: Session, person: Person, report: ErasureReport) -> None:
    """Other customers' events that name the person: the naming goes, the event stays."""
    ws, ids = person.workspace_id, set(person.customer_ids)
    mine = person.identity_ids
    for kind, column in (("user_id", Event.user_id), ("anonymous_id", Event.anonymous_id)):
        values = [value for k, value in person.keys if k == kind]
        if not values:
            continue
        statement = (
            update(Event)
            .where(Event.workspace_id == ws, column.in_(values), Event.identity_id.not_in(mine))
            .values({column.key: None})
        )
        changed = int(getattr(session.execute(statement), "rowcount", 0) or 0)
        _count(report, "events", changed, anonymised=True)
    codes = set(
        session.scalars(
            select(EngageReferralCode.code).where(
                EngageReferralCode.workspace_id == ws, EngageReferralCode.customer_id.in_(ids)
            )
        )
    )
    rows = session.execute(
        select(Event.id, Event.properties).where(
            Event.workspace_id == ws,
            Event.name.in_(_REFERRAL_EVENTS),
            Event.identity_id.not_in(mine),
        )
    ).all()
    for event_id, properties in rows:
        props = dict(properties or {})
        if props.get("referrer_id") in ids or (codes and props.get("code") in codes):
            props["referrer_id"] = None
            props["code"] = None
            session.execute(update(Event).where(Event.id == event_id).values(properties=props))
            _count(report, "events", 1, anonymised=True)
