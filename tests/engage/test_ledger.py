"""Points ledger and coupons: balanced, append-only, never negative; single-use coupons."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from clm.engage.referrals import coupons, ledger
from clm.engage.referrals.coupons import CouponCreate
from clm.errors import Conflict
from clm.store.engine import Database
from clm.store.models import EngageLedgerEntry
from tests.conftest import make_tenant

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def test_earn_redeem_expire_by_hand(db: Database) -> None:
    ws = make_tenant(db).id
    # 100 points expiring on day 10, 50 that never expire; redeem 120 on day 5:
    # the soonest-expiring lot is spent first: 100 from lot 1, 20 from lot 2 → 30 left.
    ledger.earn(db, ws, 7, 100, "e1", T0, expires_at=T0 + timedelta(days=10))
    ledger.earn(db, ws, 7, 50, "e2", T0)
    assert ledger.redeem(db, ws, 7, 120, "r1", T0 + timedelta(days=5)) == 30
    assert ledger.expire(db, ws, T0 + timedelta(days=11)) == 0  # lot 1 is spent: nothing left
    with pytest.raises(Conflict):
        ledger.redeem(db, ws, 7, 31, "r2", T0 + timedelta(days=12))
    # 40 more expiring on day 20, nothing spent: all 40 expire on day 21.
    ledger.earn(db, ws, 7, 40, "e3", T0 + timedelta(days=12), expires_at=T0 + timedelta(days=20))
    assert ledger.expire(db, ws, T0 + timedelta(days=21)) == 40
    assert ledger.expire(db, ws, T0 + timedelta(days=22)) == 0  # once
    assert ledger.balance(db, ws, 7) == 30
    assert [(e.kind, e.amount) for e in ledger.statement(db, ws, 7)] == [
        ("earn", 100),
        ("earn", 50),
        ("redeem", -120),
        ("earn", 40),
        ("expire", -40),
    ]
    assert ledger.redeem(db, ws, 7, 30, "r1", T0) == 30  # a retried txn id is not applied twice


Op = tuple[str, int, int]  # (earn|redeem|tick, points, days)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["earn", "earn_expiring", "redeem", "tick"]),
            st.integers(1, 200),
            st.integers(1, 30),
        ),
        max_size=25,
    )
)
def test_balances_never_negative_and_equal_the_sum(ops: list[Op]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database.open(f"sqlite:///{Path(tmp) / 'ledger.sqlite'}")
        try:
            ws = make_tenant(db).id
            now = T0
            for i, (op, points, days) in enumerate(ops):
                if op == "earn":
                    ledger.earn(db, ws, 1, points, f"t{i}", now)
                elif op == "earn_expiring":
                    ledger.earn(
                        db, ws, 1, points, f"t{i}", now, expires_at=now + timedelta(days=days)
                    )
                elif op == "redeem":
                    ledger.expire(db, ws, now)
                    before = ledger.balance(db, ws, 1)
                    try:
                        after = ledger.redeem(db, ws, 1, points, f"t{i}", now)
                    except Conflict:
                        assert points > before  # refused only when short
                    else:
                        assert after == before - points
                else:
                    now += timedelta(days=days)
                    ledger.expire(db, ws, now)
                assert ledger.balance(db, ws, 1) >= 0
            with db.session() as session:
                total = session.scalar(select(func.sum(EngageLedgerEntry.amount)))
                own = session.scalar(
                    select(func.sum(EngageLedgerEntry.amount)).where(
                        EngageLedgerEntry.account == "customer:1"
                    )
                )
                unbalanced = session.execute(
                    select(EngageLedgerEntry.txn_id)
                    .group_by(EngageLedgerEntry.txn_id)
                    .having(func.sum(EngageLedgerEntry.amount) != 0)
                ).all()
            assert (total or 0) == 0 and unbalanced == []  # every transaction balances
            assert ledger.balance(db, ws, 1) == (own or 0)
        finally:
            db.dispose()


def test_coupon_validate_redeem_single_use_expiry_isolation(db: Database) -> None:
    shop, other = make_tenant(db, "shop").id, make_tenant(db, "other").id
    spec = CouponCreate(
        code="WELCOME-10",
        kind="percent",
        value=10,
        min_order=20,
        expires_at=T0 + timedelta(days=30),
    )
    coupons.create_coupon(db, shop, spec, T0)
    check = coupons.validate_coupon(db, shop, "welcome-10", 80.0, T0)
    assert (check.valid, check.discount) == (True, 8.0)
    assert coupons.validate_coupon(db, shop, "WELCOME-10", 10.0, T0).reason == (
        "order below the minimum of 20.00"
    )
    assert coupons.validate_coupon(db, other, "WELCOME-10", 80.0, T0).reason == "unknown code"
    assert coupons.redeem_coupon(db, shop, "WELCOME-10", "o1", 80.0, T0).discount == 8.0
    assert coupons.redeem_coupon(db, shop, "WELCOME-10", "o1", 80.0, T0).valid  # same order
    assert coupons.redeem_coupon(db, shop, "WELCOME-10", "o2", 80.0, T0).reason == "already used"
    coupons.create_coupon(
        db, shop, CouponCreate(code="OLD-5", value=5, expires_at=T0 + timedelta(days=1)), T0
    )
    assert coupons.validate_coupon(db, shop, "OLD-5", 50.0, T0 + timedelta(days=2)).reason == (
        "expired on 2024-01-02"
    )
    with pytest.raises(Conflict):
        coupons.create_coupon(db, shop, CouponCreate(code="OLD-5", value=1), T0)
