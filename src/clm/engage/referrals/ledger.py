"""The points ledger for bonus and referral programs: double-entry, append-only, balanced.

Every transaction writes two entries that add up to zero: the customer's account
(``customer:<id>``) and the program's (``program:<name>``). A balance is always the sum of an
account's entries; nothing is ever updated or deleted. Points expire as entries too: an earn
may carry ``expires_at``; when it passes, ``expire`` writes the part of that lot still unspent
(redemptions spend the lots that expire soonest first). A redemption larger than the balance is
refused, so a customer's balance never goes negative.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clm.errors import Conflict, ValidationError
from clm.store.engine import Database
from clm.store.locks import until_commit
from clm.store.models import EngageLedgerEntry

EntryKind = Literal["earn", "redeem", "expire", "reward"]
_FAR = datetime.max.replace(tzinfo=None)


class LedgerEntryPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    txn_id: str
    account: str
    customer_id: int | None
    amount: int
    kind: str
    memo: str
    expires_at: datetime | None
    created_at: datetime


def account(customer_id: int) -> str:
    return f"customer:{customer_id}"


def _lock(session: Session, customer_id: int) -> None:
    """Serialise balance-changing work per customer (ids are unique across workspaces)."""
    until_commit(session, "ledger", customer_id)


def _exists(session: Session, workspace_id: int, txn_id: str) -> bool:
    found = session.scalar(
        select(EngageLedgerEntry.id).where(
            EngageLedgerEntry.workspace_id == workspace_id, EngageLedgerEntry.txn_id == txn_id
        )
    )
    return found is not None


def post(
    session: Session,
    workspace_id: int,
    customer_id: int,
    amount: int,
    kind: EntryKind,
    txn_id: str,
    now: datetime,
    *,
    memo: str = "",
    program: str = "points",
    expires_at: datetime | None = None,
) -> bool:
    """Write one balanced transaction (customer ``amount``, program ``-amount``); False if
    ``txn_id`` was already written (retries are harmless)."""
    if _exists(session, workspace_id, txn_id):
        return False
    common = {"workspace_id": workspace_id, "txn_id": txn_id, "kind": kind, "created_at": now}
    session.add_all(
        [
            EngageLedgerEntry(
                **common,
                account=account(customer_id),
                customer_id=customer_id,
                amount=amount,
                memo=memo[:255],
                expires_at=expires_at,
            ),
            EngageLedgerEntry(
                **common, account=f"program:{program}", customer_id=None, amount=-amount, memo=""
            ),
        ]
    )
    session.flush()
    return True


def balance_in(session: Session, workspace_id: int, customer_id: int) -> int:
    total = session.scalar(
        select(func.coalesce(func.sum(EngageLedgerEntry.amount), 0)).where(
            EngageLedgerEntry.workspace_id == workspace_id,
            EngageLedgerEntry.account == account(customer_id),
        )
    )
    return int(total or 0)


@dataclass
class _Lot:
    entry_id: int
    remaining: int
    expires_at: datetime | None


def _open_lots(session: Session, workspace_id: int, customer_id: int) -> list[_Lot]:
    """Replay the account: what is left of each earned lot after redemptions and expiries."""
    rows = session.scalars(
        select(EngageLedgerEntry)
        .where(
            EngageLedgerEntry.workspace_id == workspace_id,
            EngageLedgerEntry.account == account(customer_id),
        )
        .order_by(EngageLedgerEntry.id)
    ).all()
    lots: dict[int, _Lot] = {}
    for row in rows:
        if row.amount > 0:
            lots[row.id] = _Lot(row.id, row.amount, row.expires_at)
        elif row.kind == "expire" and row.txn_id.startswith("expire:"):
            lots[int(row.txn_id.split(":")[1])].remaining += row.amount
        else:
            _spend(list(lots.values()), -row.amount)
    return [lot for lot in lots.values() if lot.remaining > 0]


def _spend(lots: list[_Lot], amount: int) -> None:
    for lot in sorted(lots, key=lambda x: (x.expires_at is None, x.expires_at or _FAR, x.entry_id)):
        taken = min(lot.remaining, amount)
        lot.remaining -= taken
        amount -= taken
        if amount == 0:
            return


def expire_in(session: Session, workspace_id: int, customer_id: int, now: datetime) -> int:
    """Write an expiry for every lot past its date with points left; the points expired."""
    expired = 0
    for lot in _open_lots(session, workspace_id, customer_id):
        if lot.expires_at is not None and lot.expires_at <= now:
            post(
                session,
                workspace_id,
                customer_id,
                -lot.remaining,
                "expire",
                f"expire:{lot.entry_id}",
                now,
                memo=f"points earned in entry {lot.entry_id} expired {lot.expires_at:%Y-%m-%d}",
            )
            expired += lot.remaining
    return expired


def earn(
    db: Database,
    workspace_id: int,
    customer_id: int,
    points: int,
    txn_id: str,
    now: datetime,
    *,
    memo: str = "",
    expires_at: datetime | None = None,
    kind: EntryKind = "earn",
) -> int:
    """Credit points; returns the new balance."""
    if points <= 0:
        raise ValidationError("Points to earn must be positive")
    with db.transaction() as session:
        _lock(session, customer_id)
        post(
            session,
            workspace_id,
            customer_id,
            points,
            kind,
            txn_id,
            now,
            memo=memo,
            expires_at=expires_at,
        )
        return balance_in(session, workspace_id, customer_id)


def redeem_in(
    session: Session,
    workspace_id: int,
    customer_id: int,
    points: int,
    txn_id: str,
    now: datetime,
    *,
    memo: str = "",
) -> int:
    """Debit points in the caller's transaction, after expiring what is due; ``Conflict`` when
    the balance is short. Returns the new balance."""
    if points <= 0:
        raise ValidationError("Points to redeem must be positive")
    _lock(session, customer_id)
    if _exists(session, workspace_id, txn_id):
        return balance_in(session, workspace_id, customer_id)
    expire_in(session, workspace_id, customer_id, now)
    available = balance_in(session, workspace_id, customer_id)
    if points > available:
        raise Conflict(
            f"Customer {customer_id} has {available} points, {points} asked",
            code="insufficient_points",
        )
    post(session, workspace_id, customer_id, -points, "redeem", txn_id, now, memo=memo)
    return available - points


def redeem(
    db: Database,
    workspace_id: int,
    customer_id: int,
    points: int,
    txn_id: str,
    now: datetime,
    *,
    memo: str = "",
) -> int:
    with db.transaction() as session:
        return redeem_in(session, workspace_id, customer_id, points, txn_id, now, memo=memo)


def expire(db: Database, workspace_id: int, now: datetime) -> int:
    """Expire every customer's lots that are due; returns the points expired."""
    with db.transaction() as session:
        holders = session.scalars(
            select(EngageLedgerEntry.customer_id)
            .where(
                EngageLedgerEntry.workspace_id == workspace_id,
                EngageLedgerEntry.expires_at.is_not(None),
                EngageLedgerEntry.expires_at <= now,
            )
            .distinct()
        ).all()
        return sum(expire_in(session, workspace_id, int(c), now) for c in holders if c)


def balance(db: Database, workspace_id: int, customer_id: int) -> int:
    with db.session() as session:
        return balance_in(session, workspace_id, customer_id)


def statement(db: Database, workspace_id: int, customer_id: int) -> list[LedgerEntryPublic]:
    """The customer's entries, oldest first."""
    with db.session() as session:
        rows = session.scalars(
            select(EngageLedgerEntry)
            .where(
                EngageLedgerEntry.workspace_id == workspace_id,
                EngageLedgerEntry.account == account(customer_id),
            )
            .order_by(EngageLedgerEntry.id)
        )
        return [LedgerEntryPublic.model_validate(r) for r in rows]
