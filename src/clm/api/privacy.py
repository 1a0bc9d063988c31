"""Privacy API: export and erase one customer, consent history, the workspace's retention and
CORS settings. Export and erase need the configure permission (admin, owner, manage keys):
they read or destroy everything about a person."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from clm.api.deps import Configurer, DatabaseDep, Reader, workspace_id
from clm.api.routing import ClmRoute
from clm.privacy import erase_customer, export_customer
from clm.privacy.person import find_person
from clm.privacy.settings import PrivacySettings, get_privacy_settings, set_privacy_settings
from clm.store.models import ConsentRecord
from clm.store.storable import RowId

router = APIRouter(prefix="/api/v1", tags=["privacy"], route_class=ClmRoute)


class ConsentRecordPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    customer_id: int
    channel: str
    purpose: str
    granted: bool
    source: str
    text: str
    recorded_at: Any


@router.get("/customers/{customer_id}/export")
def export(customer_id: RowId, db: DatabaseDep, key: Configurer) -> dict[str, Any]:
    """Everything CLM holds about the person (merged ids included), one JSON document."""
    return export_customer(db, workspace_id(key), customer_id, who=key)


@router.delete("/customers/{customer_id}")
@router.post("/customers/{customer_id}/erase")
def erase(customer_id: RowId, db: DatabaseDep, key: Configurer) -> dict[str, Any]:
    """Erase the person: events, identities, traits and every derived row; their identifiers
    are kept only as keyed hashes so later events carrying them are refused."""
    return asdict(erase_customer(db, workspace_id(key), customer_id, who=key))


@router.get("/customers/{customer_id}/consents")
def consent_history(customer_id: RowId, db: DatabaseDep, key: Reader) -> list[ConsentRecordPublic]:
    """Every consent decision, oldest first: channel, purpose, when, where, the text."""
    with db.session() as session:
        person = find_person(session, workspace_id(key), customer_id)
        rows = session.scalars(
            select(ConsentRecord)
            .where(
                ConsentRecord.workspace_id == person.workspace_id,
                ConsentRecord.customer_id.in_(person.customer_ids),
            )
            .order_by(ConsentRecord.recorded_at, ConsentRecord.id)
        )
        return [ConsentRecordPublic.model_validate(row) for row in rows]


@router.get("/privacy/settings")
def get_settings(db: DatabaseDep, key: Reader) -> PrivacySettings:
    with db.session() as session:
        return get_privacy_settings(session, workspace_id(key))


@router.put("/privacy/settings")
def put_settings(body: PrivacySettings, db: DatabaseDep, key: Configurer) -> PrivacySettings:
    """Retention in months (None: keep forever) and the browser origins allowed on ``/v1``."""
    with db.transaction() as session:
        set_privacy_settings(session, workspace_id(key), body)
    return body
