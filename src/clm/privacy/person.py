"""Who "one person" is in the store: a customer, every customer merged into it, their
identifiers and the addresses we may hold for them; and which tables can name them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, Table, select
from sqlalchemy.orm import Session

from clm.errors import NotFound
from clm.store.models import Base, Customer, Identity

# Tables whose customer rows erasure handles by hand (keys, order); every *other* table with a
# ``customer_id`` column is swept generically, so a table added later is covered by default.
HANDLED = frozenset({"customers", "identities", "identity_links", "events"})
# The audit trail outlives erasures (it records them); it holds ids, never personal data.
RETAINED = frozenset({"audit_log"})


@dataclass
class Person:
    """One person as stored: ``root`` is the live customer, ``customer_ids`` includes every id
    merged into it; ``keys`` are their identifiers as (kind, value)."""

    workspace_id: int
    root: int
    customer_ids: list[int]
    identity_ids: list[int] = field(default_factory=list)
    keys: list[tuple[str, str]] = field(default_factory=list)
    addresses: set[str] = field(default_factory=set)


def find_person(session: Session, workspace_id: int, customer_id: int) -> Person:
    """The person a customer id names, following merges both ways."""
    customer = session.get(Customer, customer_id)
    for _ in range(100):  # a merged-away id: walk to the live customer
        if customer is None or customer.merged_into_id is None:
            break
        customer = session.get(Customer, customer.merged_into_id)
    if customer is None or customer.workspace_id != workspace_id:
        raise NotFound(f"No customer {customer_id}")
    ids, frontier = [customer.id], [customer.id]
    while frontier:
        frontier = list(
            session.scalars(select(Customer.id).where(Customer.merged_into_id.in_(frontier)))
        )
        ids.extend(frontier)
    person = Person(workspace_id, customer.id, sorted(ids))
    for identity_id, kind, value in session.execute(
        select(Identity.id, Identity.kind, Identity.value)
        .where(Identity.workspace_id == workspace_id, Identity.customer_id.in_(ids))
        .order_by(Identity.id)
    ):
        person.identity_ids.append(identity_id)
        person.keys.append((kind, value))
    for user_id, email, traits in session.execute(
        select(Customer.user_id, Customer.email, Customer.traits).where(Customer.id.in_(ids))
    ):
        if user_id and ("user_id", user_id) not in person.keys:
            person.keys.append(("user_id", user_id))
        if email and ("email", email) not in person.keys:
            person.keys.append(("email", email))
        person.addresses.update(_addresses(email, traits or {}))
    person.addresses.update(v for k, v in person.keys if k == "email")
    return person


def _addresses(email: str | None, traits: dict[str, Any]) -> set[str]:
    """Where messages to this person went: emails (lower-cased, as suppressions keep them)
    and phone numbers."""
    found = {str(v).strip() for v in (email, traits.get("email"), traits.get("phone")) if v}
    return found | {a.lower() for a in found if "@" in a}


def customer_tables() -> list[tuple[Table, Column[Any]]]:
    """Every table with a ``customer_id`` column that erasure and export sweep generically."""
    found = []
    for table in Base.metadata.sorted_tables:
        column = table.columns.get("customer_id")
        if column is not None and table.name not in HANDLED | RETAINED:
            found.append((table, column))
    return found
