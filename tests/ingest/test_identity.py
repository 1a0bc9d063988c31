"""Identity resolution through the ingestion service, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from clm.ingest import ingest
from clm.ingest.identity import IdentityResolver, KnownIdentities
from clm.ingest.normalize import EventRecord
from clm.store import customers as repo
from clm.store.engine import Database
from clm.store.models import Customer, Event, IdentityLink
from tests.conftest import Tenant, make_tenant

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def customer_of(db: Database, ws: int, kind: str, value: str) -> int:
    with db.session() as session:
        return repo.find_customer(session, ws, kind, value).id


def live_customers(db: Database, ws: int) -> int:
    with db.session() as session:
        return (
            session.scalar(
                select(func.count()).where(
                    Customer.workspace_id == ws, Customer.merged_into_id.is_(None)
                )
            )
            or 0
        )


def events_of(db: Database, ws: int, customer_id: int) -> list[str]:
    with db.session() as session:
        page = repo.list_events(session, ws, repo.EventFilter(customer_id=customer_id))
    return [e.message_id for e in page.items]


def test_anonymous_visitor_becomes_known_customer(db: Database, tenant: Tenant) -> None:
    ingest(
        db,
        tenant.id,
        [
            {"type": "page", "anonymousId": "anon-1", "messageId": "m1", "timestamp": at(0)},
            {
                "type": "track",
                "anonymousId": "anon-1",
                "event": "Signed Up",
                "messageId": "m2",
                "timestamp": at(1),
            },
        ],
    )
    ingest(
        db,
        tenant.id,
        [
            {
                "type": "identify",
                "anonymousId": "anon-1",
                "userId": "u-1",
                "messageId": "m3",
                "traits": {"email": "Ann@Example.com", "plan": "pro"},
                "timestamp": at(2),
            },
            {
                "type": "track",
                "userId": "u-1",
                "event": "Order Completed",
                "messageId": "m4",
                "properties": {"revenue": 30},
                "timestamp": at(3),
            },
        ],
    )
    customer = customer_of(db, tenant.id, "user_id", "u-1")
    assert customer_of(db, tenant.id, "anonymous_id", "anon-1") == customer
    assert customer_of(db, tenant.id, "email", "ann@example.com") == customer
    assert sorted(events_of(db, tenant.id, customer)) == ["m1", "m2", "m3", "m4"]
    with db.session() as session:
        detail = repo.get_customer(session, tenant.id, customer)
    assert detail.user_id == "u-1"
    assert detail.email == "ann@example.com"
    assert detail.traits == {"email": "Ann@Example.com", "plan": "pro"}
    assert detail.first_seen_at == T0
    assert detail.last_seen_at == T0 + timedelta(minutes=3)
    assert detail.event_count == 4
    assert live_customers(db, tenant.id) == 1


def test_two_devices_merge_and_earlier_events_follow(db: Database, tenant: Tenant) -> None:
    ingest(
        db,
        tenant.id,
        [
            {"type": "page", "anonymousId": "laptop", "messageId": "p1", "timestamp": at(0)},
            {"type": "page", "anonymousId": "phone", "messageId": "p2", "timestamp": at(1)},
        ],
    )
    phone = customer_of(db, tenant.id, "anonymous_id", "phone")
    assert live_customers(db, tenant.id) == 2
    ingest(
        db,
        tenant.id,
        [
            {
                "type": "identify",
                "anonymousId": "laptop",
                "userId": "u-9",
                "messageId": "i1",
                "timestamp": at(5),
            },
            {
                "type": "identify",
                "anonymousId": "phone",
                "userId": "u-9",
                "messageId": "i2",
                "timestamp": at(6),
            },
        ],
    )
    customer = customer_of(db, tenant.id, "user_id", "u-9")
    assert customer_of(db, tenant.id, "anonymous_id", "phone") == customer
    assert sorted(events_of(db, tenant.id, customer)) == ["i1", "i2", "p1", "p2"]
    assert live_customers(db, tenant.id) == 1
    with db.session() as session:
        # The phone's old customer id still answers, redirected to the merged customer.
        assert repo.get_customer(session, tenant.id, phone).id == customer
        merged = session.execute(
            select(IdentityLink.value, IdentityLink.other_customer_id).where(
                IdentityLink.outcome == "merged"
            )
        ).all()
    assert merged == [("phone", phone)]


def test_matching_email_merges_an_unknown_customer(db: Database, tenant: Tenant) -> None:
    ingest(
        db,
        tenant.id,
        [
            {
                "type": "identify",
                "userId": "u-1",
                "traits": {"email": "bo@example.com"},
                "messageId": "a",
                "timestamp": at(0),
            },
            {
                "type": "identify",
                "anonymousId": "newsletter-7",
                "messageId": "b",
                "traits": {"email": " BO@example.com "},
                "timestamp": at(1),
            },
        ],
    )
    assert customer_of(db, tenant.id, "anonymous_id", "newsletter-7") == customer_of(
        db, tenant.id, "user_id", "u-1"
    )
    assert live_customers(db, tenant.id) == 1


def test_conflicting_user_ids_do_not_merge_and_lose_nothing(db: Database, tenant: Tenant) -> None:
    ingest(
        db,
        tenant.id,
        [
            {
                "type": "identify",
                "anonymousId": "shared-tablet",
                "userId": "alice",
                "messageId": "a1",
                "timestamp": at(0),
            },
            {
                "type": "identify",
                "anonymousId": "shared-tablet",
                "userId": "bob",
                "messageId": "b1",
                "timestamp": at(1),
            },
            {
                "type": "track",
                "anonymousId": "shared-tablet",
                "event": "Viewed",
                "messageId": "t1",
                "timestamp": at(2),
            },
        ],
    )
    alice = customer_of(db, tenant.id, "user_id", "alice")
    bob = customer_of(db, tenant.id, "user_id", "bob")
    assert alice != bob
    # First claim wins: the anonymous id stays with alice.
    assert customer_of(db, tenant.id, "anonymous_id", "shared-tablet") == alice
    assert sorted(events_of(db, tenant.id, alice)) == ["a1", "t1"]
    assert events_of(db, tenant.id, bob) == ["b1"]
    with db.session() as session:
        conflicts = session.execute(
            select(
                IdentityLink.customer_id, IdentityLink.other_customer_id, IdentityLink.value
            ).where(IdentityLink.outcome == "conflict")
        ).all()
        stored = session.scalar(select(func.count()).select_from(Event))
    assert conflicts == [(bob, alice, "shared-tablet")]
    assert stored == 3


def test_alias_merges_previous_id_even_between_known_users(db: Database, tenant: Tenant) -> None:
    ingest(
        db,
        tenant.id,
        [
            {
                "type": "track",
                "userId": "old-login",
                "event": "A",
                "messageId": "x1",
                "timestamp": at(0),
            },
            {
                "type": "track",
                "userId": "new-login",
                "event": "B",
                "messageId": "x2",
                "timestamp": at(1),
            },
            {
                "type": "alias",
                "previousId": "old-login",
                "userId": "new-login",
                "messageId": "x3",
                "timestamp": at(2),
            },
        ],
    )
    customer = customer_of(db, tenant.id, "user_id", "new-login")
    assert customer_of(db, tenant.id, "user_id", "old-login") == customer
    assert sorted(events_of(db, tenant.id, customer)) == ["x1", "x2", "x3"]


def test_alias_of_an_unseen_anonymous_id_attaches_it(db: Database, tenant: Tenant) -> None:
    ingest(
        db,
        tenant.id,
        [
            {"type": "alias", "previousId": "cookie-1", "userId": "u-5", "messageId": "al"},
            {"type": "page", "anonymousId": "cookie-1", "messageId": "pg"},
        ],
    )
    customer = customer_of(db, tenant.id, "user_id", "u-5")
    assert customer_of(db, tenant.id, "anonymous_id", "cookie-1") == customer
    assert sorted(events_of(db, tenant.id, customer)) == ["al", "pg"]


def test_duplicate_message_ids_are_stored_once(db: Database, tenant: Tenant) -> None:
    message = {"type": "track", "userId": "u", "event": "E", "messageId": "same"}
    first = ingest(db, tenant.id, [message, dict(message)])
    again = ingest(db, tenant.id, [message])
    assert (first.stored, first.duplicates) == (1, 1)
    assert (again.stored, again.duplicates) == (0, 1)
    # A message sent without an id gets one from its content, so its retry is a duplicate too.
    anonymous = {"type": "track", "userId": "u", "event": "E", "timestamp": at(0)}
    assert ingest(db, tenant.id, [anonymous]).stored == 1
    assert ingest(db, tenant.id, [dict(anonymous)]).duplicates == 1


def test_workspaces_are_isolated(db: Database, tenant: Tenant) -> None:
    other = make_tenant(db, "other-brand")
    message = {"type": "identify", "userId": "u-1", "messageId": "m"}
    assert ingest(db, tenant.id, [message]).stored == 1
    assert ingest(db, other.id, [message]).stored == 1
    assert customer_of(db, tenant.id, "user_id", "u-1") != customer_of(
        db, other.id, "user_id", "u-1"
    )
    with db.session() as session:
        mine = repo.list_events(session, tenant.id)
    assert len(mine.items) == 1


def _record(user_id: str | None, anonymous_id: str | None, email: str | None) -> EventRecord:
    return EventRecord(
        message_id="m", type="track", name="E", user_id=user_id, anonymous_id=anonymous_id,
        timestamp=T0, received_at=T0, sent_at=None, original_timestamp=None, channel=None,
        campaign=None, source=None, revenue=None, currency=None, properties={}, context={},
        traits=None, email=email,
    )  # fmt: skip


_maybe = st.sampled_from([None, "a", "b", "c"])


@given(user_id=_maybe, anonymous_id=_maybe, email=_maybe, workspace_id=st.sampled_from([1, 2]))
def test_the_per_event_identity_lookup_answers_as_the_general_one(
    user_id: str | None, anonymous_id: str | None, email: str | None, workspace_id: int
) -> None:
    # Workspace 1 knows: user "a" and anonymous "a" (customer 10), anonymous "b" and email "b"
    # (customer 20), email "a" (customer 10). "c" is known nowhere; workspace 2 knows nothing.
    known = KnownIdentities()
    known.learn_rows(1, "user_id", [("a", 1, 10)])
    known.learn_rows(1, "anonymous_id", [("a", 2, 10), ("b", 3, 20)])
    known.learn_rows(1, "email", [("a", 4, 10), ("b", 5, 20)])
    record = _record(user_id, anonymous_id, email)
    keys = IdentityResolver.keys_of(record)
    assert known.identity_of(workspace_id, record) == known.identity_for(workspace_id, keys)


def test_the_identity_lookup_is_known_only_when_every_key_names_one_customer() -> None:
    known = KnownIdentities()
    known.learn_rows(1, "user_id", [("a", 1, 10)])
    known.learn_rows(1, "anonymous_id", [("a", 2, 10), ("b", 3, 20)])
    assert known.identity_of(1, _record("a", "a", None)) == 1  # the user id's identity
    assert known.identity_of(1, _record(None, "a", None)) == 2
    assert known.identity_of(1, _record("a", "b", None)) is None  # two customers: slow path
    assert known.identity_of(1, _record("a", "c", None)) is None  # "c" unknown: slow path
    assert known.identity_of(1, _record(None, None, None)) is None
    assert known.identity_of(2, _record("a", None, None)) is None  # another workspace
