"""Coupon codes a shop's checkout validates and redeems through the API.

A coupon is a percentage or an amount off, with a minimum order, an expiry and a number of
uses (one by default). Redeeming is idempotent per order: the same order redeeming twice uses
the coupon once. Codes belong to a workspace; another workspace's key never sees them.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from clm.errors import Conflict
from clm.store.engine import Database
from clm.store.models import EngageCoupon, EngageCouponRedemption
from clm.store.storable import RowId

_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


class CouponCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kind: Literal["percent", "amount"] = "amount"
    value: Annotated[float, Field(gt=0)]
    min_order: Annotated[float, Field(ge=0)] = 0.0
    max_redemptions: Annotated[int, Field(ge=1, le=1_000_000_000)] = 1
    expires_at: datetime | None = None
    customer_id: RowId | None = None
    code: Annotated[str | None, Field(pattern=r"^[A-Z0-9-]{4,32}$")] = None
    source: str = ""


class CouponPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    kind: str
    value: float
    min_order: float
    max_redemptions: int
    redemptions: int
    expires_at: datetime | None
    customer_id: int | None


class CouponCheck(BaseModel):
    """The checkout's answer: whether the code applies to this order, the discount, why not."""

    code: str
    valid: bool
    discount: float = 0.0
    reason: str
    reason_code: Literal["ok", "unknown", "expired", "used_up", "below_minimum"] = "ok"


def create_coupon(
    db: Database, workspace_id: int, spec: CouponCreate, now: datetime
) -> CouponPublic:
    with db.transaction() as session:
        code = spec.code or "".join(secrets.choice(_ALPHABET) for _ in range(10))
        if _find(session, workspace_id, code) is not None:
            raise Conflict(f"Coupon {code} already exists", code="coupon_exists")
        row = EngageCoupon(
            workspace_id=workspace_id,
            code=code,
            customer_id=spec.customer_id,
            kind=spec.kind,
            value=spec.value,
            min_order=spec.min_order,
            max_redemptions=spec.max_redemptions,
            redemptions=0,
            expires_at=spec.expires_at,
            source=spec.source,
            created_at=now,
        )
        session.add(row)
        session.flush()
        return CouponPublic.model_validate(row)


def _find(session: Session, workspace_id: int, code: str) -> EngageCoupon | None:
    return session.scalar(
        select(EngageCoupon).where(
            EngageCoupon.workspace_id == workspace_id, EngageCoupon.code == code.strip().upper()
        )
    )


def _check(row: EngageCoupon | None, code: str, order_total: float, now: datetime) -> CouponCheck:
    if row is None:
        return CouponCheck(code=code, valid=False, reason="unknown code", reason_code="unknown")
    if row.expires_at is not None and row.expires_at <= now:
        expired = f"expired on {row.expires_at:%Y-%m-%d}"
        return CouponCheck(code=code, valid=False, reason=expired, reason_code="expired")
    if row.redemptions >= row.max_redemptions:
        return CouponCheck(code=code, valid=False, reason="already used", reason_code="used_up")
    if order_total < row.min_order:
        return CouponCheck(
            code=code,
            valid=False,
            reason=f"order below the minimum of {row.min_order:.2f}",
            reason_code="below_minimum",
        )
    off = order_total * row.value / 100 if row.kind == "percent" else min(row.value, order_total)
    return CouponCheck(code=code, valid=True, discount=round(off, 2), reason="ok")


def validate_coupon(
    db: Database, workspace_id: int, code: str, order_total: float, now: datetime
) -> CouponCheck:
    with db.session() as session:
        return _check(_find(session, workspace_id, code), code, order_total, now)


def redeem_coupon(
    db: Database, workspace_id: int, code: str, order_id: str, order_total: float, now: datetime
) -> CouponCheck:
    """Use the coupon on an order; the same order again returns the first answer."""
    with db.transaction() as session:
        row = _find(session, workspace_id, code)
        if row is not None:
            earlier = session.scalar(
                select(EngageCouponRedemption.discount).where(
                    EngageCouponRedemption.coupon_id == row.id,
                    EngageCouponRedemption.order_id == order_id,
                )
            )
            if earlier is not None:
                return CouponCheck(code=code, valid=True, discount=earlier, reason="ok")
        verdict = _check(row, code, order_total, now)
        if not verdict.valid or row is None:
            return verdict
        # Conditional increment: two checkouts racing for the last use cannot both win.
        won = session.execute(
            update(EngageCoupon)
            .where(EngageCoupon.id == row.id, EngageCoupon.redemptions < row.max_redemptions)
            .values(redemptions=EngageCoupon.redemptions + 1)
        )
        if won.rowcount == 0:  # type: ignore[attr-defined]
            return CouponCheck(code=code, valid=False, reason="already used", reason_code="used_up")
        session.add(
            EngageCouponRedemption(
                workspace_id=workspace_id,
                coupon_id=row.id,
                order_id=order_id,
                discount=verdict.discount,
                created_at=now,
            )
        )
        return verdict


def list_coupons(db: Database, workspace_id: int) -> list[CouponPublic]:
    with db.session() as session:
        rows = session.scalars(
            select(EngageCoupon)
            .where(EngageCoupon.workspace_id == workspace_id)
            .order_by(EngageCoupon.id)
        )
        return [CouponPublic.model_validate(r) for r in rows]
