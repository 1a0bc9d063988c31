"""A customer's engagement under ``/api/v1`` for the customer 360: surveys and comments with
sentiment, referrals, points, coupons, messages sent and blocked, journeys, tasks (``read``)."""

from __future__ import annotations

from fastapi import APIRouter

from clm.api.deps import DatabaseDep, Reader, workspace_id
from clm.api.routing import ClmRoute
from clm.engage.customer_view import CustomerEngagement, customer_engagement
from clm.store.storable import RowId

router = APIRouter(prefix="/api/v1", tags=["engage"], route_class=ClmRoute)


@router.get("/customers/{customer_id}/engagement")
def get_customer_engagement(customer_id: RowId, db: DatabaseDep, key: Reader) -> CustomerEngagement:
    """Everything engagement knows of one customer, newest first (at most 100 of each list;
    ``messages_sent`` and ``messages_blocked`` count them all)."""
    return customer_engagement(db, workspace_id(key), customer_id)
