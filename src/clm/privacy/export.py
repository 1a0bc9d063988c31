"""Export everything CLM holds about one person, as one JSON-ready document (GDPR art. 15
and 20, CCPA's right to know).

The document has one key per table, each a list of rows with every column: nothing is
summarised away. Rows are found the same way erasure finds them (``clm.privacy.person``),
so what an export shows is exactly what an erasure removes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, or_, select
from sqlalchemy.orm import Session

from clm.accounts import Actor, Principal, record
from clm.privacy.person import Person, customer_tables, find_person
from clm.store.engine import Database
from clm.store.models import (
    Customer,
    EngageCouponRedemption,
    EngageJourneyLog,
    EngageReferral,
    EngageSuppression,
    Event,
    Identity,
    IdentityLink,
    table_of,
)

FORMAT = "clm.customer-export/1"


def _rows(session: Session, table: Table, *where: Any) -> list[dict[str, Any]]:
    query = select(table).where(*where).order_by(*table.primary_key.columns)
    return [dict(row._mapping) for row in session.execute(query)]


def export_person(session: Session, person: Person) -> dict[str, Any]:
    """The document for an already-found person (shared with erasure's dry run)."""
    ws, ids = person.workspace_id, person.customer_ids
    doc: dict[str, Any] = {
        "customers": _rows(session, table_of(Customer), Customer.id.in_(ids)),
        "identities": _rows(session, table_of(Identity), Identity.customer_id.in_(ids)),
        "identity_links": _rows(
            session,
            table_of(IdentityLink),
            IdentityLink.workspace_id == ws,
            or_(IdentityLink.customer_id.in_(ids), IdentityLink.other_customer_id.in_(ids)),
        ),
        "events": _rows(session, table_of(Event), Event.identity_id.in_(person.identity_ids))
        if person.identity_ids
        else [],
    }
    for table, column in customer_tables():
        doc[table.name] = _rows(session, table, table.c.workspace_id == ws, column.in_(ids))
    journeys = [row["id"] for row in doc.get("engage_journeys", [])]
    coupons = [row["id"] for row in doc.get("engage_coupons", [])]
    doc["engage_journey_log"] = _rows(
        session, table_of(EngageJourneyLog), EngageJourneyLog.journey_id.in_(journeys)
    )
    doc["engage_coupon_redemptions"] = _rows(
        session, table_of(EngageCouponRedemption), EngageCouponRedemption.coupon_id.in_(coupons)
    )
    doc["engage_referrals"] = _rows(
        session,
        table_of(EngageReferral),
        EngageReferral.workspace_id == ws,
        or_(EngageReferral.referrer_id.in_(ids), EngageReferral.referee_id.in_(ids)),
    )
    doc["engage_suppressions"] = _rows(
        session,
        table_of(EngageSuppression),
        EngageSuppression.workspace_id == ws,
        EngageSuppression.address.in_(sorted(person.addresses)),
    )
    return doc


def export_customer(
    db: Database, workspace_id: int, customer_id: int, *, who: Principal | Actor
) -> dict[str, Any]:
    """Everything about the person ``customer_id`` names (merged ids included), audited."""
    with db.transaction() as session:
        person = find_person(session, workspace_id, customer_id)
        tables = export_person(session, person)
        rows = {table: len(found) for table, found in tables.items() if found}
        record(session, who, "customer.export", f"customer:{person.root}",
               after={"rows": rows}, workspace_id=workspace_id)  # fmt: skip
    return {
        "format": FORMAT,
        "exported_at": datetime.now(UTC),
        "workspace_id": workspace_id,
        "customer_id": person.root,
        "merged_customer_ids": [i for i in person.customer_ids if i != person.root],
        "tables": tables,
    }
