"""Identity resolution: which customer does each message belong to?

Rules, in order (documented in the README's "Identity resolution" section):
1. Every identifier of a message (user id, anonymous id, email from traits, ``context.externalIds``,
   an alias' ``previousId``) is looked up. None known: a new customer is made.
2. The message's customer is the one its user id names; without a user id, the one named by its
   first known identifier (anonymous id, then email, then external ids).
3. Any other customer named by the message is merged into it, *unless both carry different user
   ids*: then the merge is refused and recorded as a ``conflict``. The identifier stays with the
   customer that claimed it first, and the message is stored under its own user id: no event is
   ever lost or moved to a stranger. ``alias`` is an explicit instruction and always merges.
4. Merging repoints identities, never events, and records which identifier joined whom, when.

A batch is resolved in memory and written in a handful of bulk statements (``flush``): most
messages come from known customers and cost two dictionary lookups and no write at all.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.orm import Session

from clm.ingest.normalize import EventRecord
from clm.store.bulk import insert_plain, json_text, select_in
from clm.store.ids import allocate_ids
from clm.store.models import Customer, Identity, table_of

Key = tuple[str, str]
_NOTHING: dict[str, tuple[int, int]] = {}


def _json_object(value: Any) -> dict[str, Any]:
    """Traits as read below the ORM: JSON text on SQLite, already decoded on PostgreSQL."""
    if isinstance(value, str | bytes):
        value = orjson.loads(value)
    return dict(value or {})


@dataclass(eq=False)
class CustomerState:
    """What resolution knows of a customer: id and user id always; email and traits only once
    ``loaded`` (for identify calls and merges, which change them)."""

    id: int | None  # None until a new customer is written
    user_id: str | None
    email: str | None = None
    traits: dict[str, Any] = field(default_factory=dict)
    loaded: bool = True
    dirty: bool = False
    merged_into: CustomerState | None = None


@dataclass(eq=False)
class IdentityState:
    id: int | None  # None until a new identity is written
    kind: str
    value: str
    customer: CustomerState
    first_seen_at: datetime | None = None  # set for new identities only


@dataclass
class _Link:
    customer: CustomerState
    other: CustomerState | None
    key: Key
    outcome: str
    reason: str
    record: EventRecord


class KnownIdentities:
    """Committed identifiers of one database: key → (identity id, customer id).

    The fast path of ingestion. A message whose identifiers are all known *and name one
    customer* needs no lookup: the event is stored under its first identifier's identity,
    whose id never changes. A stale entry cannot mislead: merges only ever join customers, so
    "one customer" stays true, and "several customers" sends the message down the slow path,
    which reads the database. Bounded; emptied when full.
    """

    def __init__(self, limit: int = 500_000) -> None:
        self.limit = limit
        self._size = 0
        # workspace → kind → value: an event's lookups build no key tuples.
        self._entries: dict[int, dict[str, dict[str, tuple[int, int]]]] = {}

    def identity_for(self, workspace_id: int, keys: list[Key]) -> int | None:
        """The identity to store an event with these keys under, if known and unambiguous."""
        kinds = self._entries.get(workspace_id)
        if kinds is None:
            return None
        first: tuple[int, int] | None = None
        for kind, value in keys:
            entry = kinds.get(kind, _NOTHING).get(value)
            if entry is None or (first is not None and entry[1] != first[1]):
                return None
            first = first or entry
        return first[0] if first else None

    def identity_of(self, workspace_id: int, record: EventRecord) -> int | None:
        """``identity_for(workspace_id, keys_of(record))``, spelled out: it runs per event."""
        if record.external_ids:
            return self.identity_for(workspace_id, IdentityResolver.keys_of(record))
        kinds = self._entries.get(workspace_id)
        if kinds is None:
            return None
        first: tuple[int, int] | None = None
        if record.user_id is not None:
            first = kinds.get("user_id", _NOTHING).get(record.user_id)
            if first is None:
                return None
        if record.anonymous_id is not None:
            entry = kinds.get("anonymous_id", _NOTHING).get(record.anonymous_id)
            if entry is None or (first is not None and entry[1] != first[1]):
                return None
            first = first or entry
        if record.email is not None:
            entry = kinds.get("email", _NOTHING).get(record.email)
            if entry is None or (first is not None and entry[1] != first[1]):
                return None
            first = first or entry
        return first[0] if first else None

    def _room_for(self, workspace_id: int, count: int) -> dict[str, dict[str, tuple[int, int]]]:
        if self._size + count > self.limit:
            self._entries.clear()
            self._size = 0
        return self._entries.setdefault(workspace_id, {})

    def learn_rows(
        self, workspace_id: int, kind: str, rows: Iterable[tuple[str, int, int]]
    ) -> None:
        """Remember committed (value, identity id, customer id) rows of one kind."""
        rows = list(rows)[: self.limit]
        entries = self._room_for(workspace_id, len(rows)).setdefault(kind, {})
        before = len(entries)
        for value, identity_id, customer_id in rows:
            entries[value] = (identity_id, customer_id)
        self._size += len(entries) - before

    def learn(self, workspace_id: int, resolver: IdentityResolver) -> None:
        """Remember what a committed transaction resolved."""
        kinds = self._room_for(workspace_id, len(resolver._identities))
        for (kind, value), identity in resolver._identities.items():
            if identity.id is not None and identity.customer.id is not None:
                entries = kinds.setdefault(kind, {})
                before = len(entries)
                entries[value] = (identity.id, identity.customer.id)
                self._size += len(entries) - before


@dataclass
class IdentityResolver:
    """Resolves the messages of one transaction; lookups once per batch, writes in bulk."""

    session: Session
    workspace_id: int
    recorded_at: datetime
    _identities: dict[Key, IdentityState] = field(default_factory=dict)
    _customers: dict[int, CustomerState] = field(default_factory=dict)
    _new_customers: list[CustomerState] = field(default_factory=list)
    _new_identities: list[IdentityState] = field(default_factory=list)
    _merges: list[tuple[CustomerState, CustomerState]] = field(default_factory=list)
    _links: list[_Link] = field(default_factory=list)
    # Reverse indexes, so that a merge costs what the merged customer owns, not the batch.
    _owned: dict[CustomerState, list[IdentityState]] = field(default_factory=dict)
    _absorbed: dict[CustomerState, list[CustomerState]] = field(default_factory=dict)

    @property
    def _connection(self) -> Connection:
        # Core, not the ORM: these lookups run on every batch and return plain tuples.
        return self.session.connection()

    @staticmethod
    def keys_of(record: EventRecord) -> list[Key]:
        keys: list[Key] = []
        if record.user_id is not None:
            keys.append(("user_id", record.user_id))
        if record.anonymous_id is not None:
            keys.append(("anonymous_id", record.anonymous_id))
        if record.email is not None:
            keys.append(("email", record.email))
        keys.extend(record.external_ids)
        return keys

    def prefetch(self, records: Iterable[EventRecord]) -> None:
        """Load every identity (and its customer) the records name, a few queries in all."""
        records = list(records)
        wanted: dict[str, set[str]] = defaultdict(set)
        for record in records:
            for kind, value in self.keys_of(record):
                wanted[kind].add(value)
            if record.previous_id is not None:
                wanted["user_id"].add(record.previous_id)
                wanted["anonymous_id"].add(record.previous_id)
        found: list[tuple[int, str, str, int]] = []
        for kind, values in wanted.items():
            rows = select_in(
                self._connection, "id, value, customer_id", "identities",
                [("workspace_id", self.workspace_id), ("kind", kind)], "value", sorted(values),
            )  # fmt: skip
            found.extend((row[0], kind, row[1], row[2]) for row in rows)
        self._load_customers({row[3] for row in found})
        for identity_id, kind, value, customer_id in found:
            self._remember(IdentityState(identity_id, kind, value, self._customers[customer_id]))
        self._load_full(records)

    def _remember(self, identity: IdentityState) -> None:
        self._identities[(identity.kind, identity.value)] = identity
        self._owned.setdefault(identity.customer, []).append(identity)

    def _load_full(self, records: Iterable[EventRecord]) -> None:
        """Read email and traits, in one go, of the customers a record may change: by identify
        or alias, or by attaching a new user id or email (which the customer row carries)."""
        ids: set[int] = set()
        for record in records:
            keys = self.keys_of(record)
            if record.previous_id is not None:
                keys.append(self._previous_key(record.previous_id))
            changes = record.type in ("identify", "alias") or any(
                key[0] in ("user_id", "email") and key not in self._identities for key in keys
            )
            if not changes:
                continue
            for key in keys:
                identity = self._identities.get(key)
                if identity is not None and not identity.customer.loaded:
                    ids.add(identity.customer.id)  # type: ignore[arg-type]
        rows = select_in(self._connection, "id, email, traits", "customers", [], "id", sorted(ids))
        for customer_id, email, traits in rows:
            customer = self._customers[customer_id]
            customer.email, customer.traits = email, _json_object(traits)
            customer.loaded = True

    def _load_customers(self, ids: set[int]) -> None:
        rows = select_in(
            self._connection, "id, user_id", "customers", [], "id",
            sorted(ids - self._customers.keys()),
        )  # fmt: skip
        for customer_id, user_id in rows:
            self._customers[customer_id] = CustomerState(customer_id, user_id, loaded=False)

    def _full(self, customer: CustomerState) -> CustomerState:
        """Read a stored customer's email and traits before changing them."""
        if not customer.loaded:
            row = self.session.execute(
                select(Customer.email, Customer.traits).where(Customer.id == customer.id)
            ).one()
            customer.email, customer.traits = row.email, _json_object(row.traits)
            customer.loaded = True
        return customer

    def resolve(self, record: EventRecord) -> IdentityState:
        """The identity the event is stored under; merges and attaches as the rules say."""
        keys = self.keys_of(record)
        reason = record.type if record.type in ("identify", "alias") else "event"
        if record.previous_id is not None:
            keys.append(self._previous_key(record.previous_id))
        known = [key for key in keys if key in self._identities]
        target = self._identities[known[0]].customer if known else None
        if (
            target is not None
            and record.user_id is not None
            and record.type != "alias"
            and target.user_id not in (None, record.user_id)
        ):
            # Our user id is new, but the anonymous id or email already names someone else who
            # is known: a new customer, and the conflict is recorded below.
            target = None
        created = target is None
        if target is None:
            target = CustomerState(None, record.user_id, record.email)
            self._new_customers.append(target)
        for key in known:
            other = self._identities[key].customer
            if other is target:
                continue
            if (
                record.type != "alias"
                and target.user_id
                and other.user_id
                and target.user_id != other.user_id
            ):
                self._links.append(_Link(target, other, key, "conflict", reason, record))
                continue
            self._merge(other, target, key, reason, record)
        for key in keys:
            if key not in self._identities:
                self._attach(target, key, "new" if created else "attached", reason, record)
        if record.type == "identify" and record.traits:
            self._full(target).traits.update(record.traits)
            target.dirty = True
        return self._identities[keys[0]]

    def _previous_key(self, previous_id: str) -> Key:
        for kind in ("user_id", "anonymous_id"):
            if (kind, previous_id) in self._identities:
                return (kind, previous_id)
        return ("anonymous_id", previous_id)

    def _attach(
        self, target: CustomerState, key: Key, outcome: str, reason: str, record: EventRecord
    ) -> None:
        identity = IdentityState(None, key[0], key[1], target, record.timestamp)
        self._remember(identity)
        self._new_identities.append(identity)
        if key[0] in ("user_id", "email"):
            self._full(target)
            if key[0] == "user_id" and target.user_id is None:
                target.user_id, target.dirty = key[1], True
            if key[0] == "email" and target.email is None:
                target.email, target.dirty = key[1], True
        self._links.append(_Link(target, None, key, outcome, reason, record))

    def _merge(
        self,
        loser: CustomerState,
        winner: CustomerState,
        key: Key,
        reason: str,
        record: EventRecord,
    ) -> None:
        self._full(loser)
        self._full(winner)
        for identity in self._owned.pop(loser, []):
            identity.customer = winner
            self._owned.setdefault(winner, []).append(identity)
        absorbed = self._absorbed.pop(loser, [])
        for customer in absorbed:
            customer.merged_into = winner
        self._absorbed.setdefault(winner, []).extend([*absorbed, loser])
        winner.traits = {**loser.traits, **winner.traits}
        winner.user_id = winner.user_id or loser.user_id
        winner.email = winner.email or loser.email
        winner.dirty = True
        loser.merged_into, loser.dirty = winner, True
        self._merges.append((loser, winner))
        self._links.append(_Link(winner, loser, key, "merged", reason, record))

    def flush(self) -> None:
        """Write new customers and identities, repoint merged ones, record the resolution."""
        self._insert_customers()
        self._insert_identities()
        if self._merges:
            # In merge order, so that a chain (a into b, then b into c) ends at c.
            pairs = [{"loser": loser.id, "winner": winner.id} for loser, winner in self._merges]
            identities, customers = table_of(Identity), table_of(Customer)
            self._connection.execute(
                update(identities)
                .where(
                    identities.c.workspace_id == self.workspace_id,
                    identities.c.customer_id == bindparam("loser"),
                )
                .values(customer_id=bindparam("winner")),
                pairs,
            )
            self._connection.execute(
                update(customers)
                .where(customers.c.merged_into_id == bindparam("loser"))
                .values(merged_into_id=bindparam("winner")),
                pairs,
            )
        self._merges.clear()
        self._update_customers()
        self._insert_links()

    def _insert_customers(self) -> None:
        if not self._new_customers:
            return
        ids = allocate_ids(self.session, table_of(Customer), len(self._new_customers))
        for customer, customer_id in zip(self._new_customers, ids, strict=True):
            customer.id = customer_id
        insert_plain(
            self._connection,
            "customers",
            ("id", "workspace_id", "user_id", "email", "traits", "created_at", "merged_into_id"),
            # merged_into_id is set by the update below, once every id exists.
            [
                (c.id, self.workspace_id, c.user_id, c.email, c.traits, self.recorded_at, None)
                for c in self._new_customers
            ],
            datetimes=frozenset({"created_at"}),
            jsons=frozenset({"traits"}),
        )
        for customer in self._new_customers:
            customer.dirty = customer.merged_into is not None
            self._customers[customer.id] = customer  # type: ignore[index]
        self._new_customers.clear()

    def _insert_identities(self) -> None:
        if not self._new_identities:
            return
        ids = allocate_ids(self.session, table_of(Identity), len(self._new_identities))
        for identity, identity_id in zip(self._new_identities, ids, strict=True):
            identity.id = identity_id
        insert_plain(
            self._connection,
            "identities",
            ("id", "workspace_id", "kind", "value", "customer_id", "first_seen_at"),
            [
                (i.id, self.workspace_id, i.kind, i.value, i.customer.id, i.first_seen_at)
                for i in self._new_identities
            ],
            datetimes=frozenset({"first_seen_at"}),
        )
        self._new_identities.clear()

    def _update_customers(self) -> None:
        rows = [
            (c.user_id, c.email, json_text(c.traits), c.merged_into.id if c.merged_into else None,
             c.id)
            for c in self._customers.values()
            if c.dirty
        ]  # fmt: skip
        if rows:
            postgres = self._connection.dialect.name == "postgresql"
            mark, traits = ("%s", "%s::jsonb") if postgres else ("?", "?")
            self._connection.exec_driver_sql(
                f"UPDATE customers SET user_id = {mark}, email = {mark}, traits = {traits}, "  # noqa: S608
                f"merged_into_id = {mark} WHERE id = {mark}",
                rows,
            )
        for customer in self._customers.values():
            customer.dirty = False

    def _insert_links(self) -> None:
        if not self._links:
            return
        insert_plain(
            self._connection,
            "identity_links",
            ("workspace_id", "customer_id", "other_customer_id", "kind", "value", "outcome",
             "reason", "message_id", "occurred_at", "recorded_at"),
            [
                (self.workspace_id, link.customer.id, link.other.id if link.other else None,
                 link.key[0], link.key[1], link.outcome, link.reason, link.record.message_id,
                 link.record.timestamp, self.recorded_at)
                for link in self._links
            ],
            datetimes=frozenset({"occurred_at", "recorded_at"}),
        )  # fmt: skip
        self._links.clear()
