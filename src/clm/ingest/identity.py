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
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from clm.ingest.normalize import EventRecord
from clm.store.models import Customer, Identity, IdentityLink

Key = tuple[str, str]
_CHUNK = 500


@dataclass
class _CustomerState:
    id: int
    user_id: str | None
    email: str | None
    traits: dict[str, Any]
    first_seen_at: datetime
    last_seen_at: datetime
    dirty: bool = False
    merged_into: int | None = None


@dataclass
class IdentityResolver:
    """Resolves the messages of one transaction, with every lookup made once per batch."""

    session: Session
    workspace_id: int
    recorded_at: datetime
    _identities: dict[Key, list[int]] = field(default_factory=dict)  # key -> [id, customer]
    _customers: dict[int, _CustomerState] = field(default_factory=dict)
    _links: list[dict[str, Any]] = field(default_factory=list)

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
        wanted: dict[str, set[str]] = defaultdict(set)
        for record in records:
            for kind, value in self.keys_of(record):
                wanted[kind].add(value)
            if record.previous_id is not None:
                wanted["user_id"].add(record.previous_id)
                wanted["anonymous_id"].add(record.previous_id)
        customer_ids: set[int] = set()
        for kind, values in wanted.items():
            ordered = sorted(values)
            for start in range(0, len(ordered), _CHUNK):
                rows = self.session.execute(
                    select(Identity.id, Identity.value, Identity.customer_id).where(
                        Identity.workspace_id == self.workspace_id,
                        Identity.kind == kind,
                        Identity.value.in_(ordered[start : start + _CHUNK]),
                    )
                )
                for identity_id, value, customer_id in rows:
                    self._identities[(kind, value)] = [identity_id, customer_id]
                    customer_ids.add(customer_id)
        self._load_customers(customer_ids)

    def _load_customers(self, ids: set[int]) -> None:
        ordered = sorted(ids - self._customers.keys())
        for start in range(0, len(ordered), _CHUNK):
            rows = self.session.execute(
                select(
                    Customer.id,
                    Customer.user_id,
                    Customer.email,
                    Customer.traits,
                    Customer.first_seen_at,
                    Customer.last_seen_at,
                ).where(Customer.id.in_(ordered[start : start + _CHUNK]))
            )
            for row in rows:
                self._customers[row.id] = _CustomerState(
                    row.id, row.user_id, row.email, dict(row.traits or {}), *row[4:6]
                )

    def resolve(self, record: EventRecord) -> int:
        """The identity id the event is stored under; merges and attaches as the rules say."""
        keys = self.keys_of(record)
        reason = record.type if record.type in ("identify", "alias") else "event"
        if record.previous_id is not None:
            previous = self._previous_key(record.previous_id)
            keys.append(previous)
        known = [key for key in keys if key in self._identities]
        target = self._customers[self._identities[known[0]][1]] if known else None
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
            target = self._new_customer(record)
        for key in known:
            other_id = self._identities[key][1]
            if other_id == target.id:
                continue
            other = self._customers[other_id]
            if (
                record.type != "alias"
                and target.user_id
                and other.user_id
                and target.user_id != other.user_id
            ):
                self._link(target.id, other.id, key, "conflict", reason, record)
                continue
            self._merge(other, target, key, reason, record)
        for key in keys:
            if key not in self._identities:
                self._attach(target, key, "new" if created else "attached", reason, record)
        self._touch(target, record)
        return self._identities[keys[0]][0]

    def _previous_key(self, previous_id: str) -> Key:
        for kind in ("user_id", "anonymous_id"):
            if (kind, previous_id) in self._identities:
                return (kind, previous_id)
        return ("anonymous_id", previous_id)

    def _new_customer(self, record: EventRecord) -> _CustomerState:
        customer_id = self.session.execute(
            insert(Customer)
            .values(
                workspace_id=self.workspace_id,
                user_id=record.user_id,
                email=record.email,
                traits={},
                first_seen_at=record.timestamp,
                last_seen_at=record.timestamp,
            )
            .returning(Customer.id)
        ).scalar_one()
        state = _CustomerState(
            customer_id, record.user_id, record.email, {}, record.timestamp, record.timestamp
        )
        self._customers[customer_id] = state
        return state

    def _attach(
        self, target: _CustomerState, key: Key, outcome: str, reason: str, record: EventRecord
    ) -> None:
        identity_id = self.session.execute(
            insert(Identity)
            .values(
                workspace_id=self.workspace_id,
                kind=key[0],
                value=key[1],
                customer_id=target.id,
                first_seen_at=record.timestamp,
            )
            .returning(Identity.id)
        ).scalar_one()
        self._identities[key] = [identity_id, target.id]
        if key[0] == "user_id" and target.user_id is None:
            target.user_id, target.dirty = key[1], True
        if key[0] == "email" and target.email is None:
            target.email, target.dirty = key[1], True
        self._link(target.id, None, key, outcome, reason, record)

    def _merge(
        self,
        loser: _CustomerState,
        winner: _CustomerState,
        key: Key,
        reason: str,
        record: EventRecord,
    ) -> None:
        self.session.execute(
            update(Identity)
            .where(Identity.workspace_id == self.workspace_id, Identity.customer_id == loser.id)
            .values(customer_id=winner.id)
        )
        self.session.execute(
            update(Customer)
            .where(Customer.merged_into_id == loser.id)
            .values(merged_into_id=winner.id)
        )
        for entry in self._identities.values():
            if entry[1] == loser.id:
                entry[1] = winner.id
        winner.traits = {**loser.traits, **winner.traits}
        winner.first_seen_at = min(winner.first_seen_at, loser.first_seen_at)
        winner.last_seen_at = max(winner.last_seen_at, loser.last_seen_at)
        winner.user_id = winner.user_id or loser.user_id
        winner.email = winner.email or loser.email
        winner.dirty = True
        loser.merged_into, loser.dirty = winner.id, True
        self._customers[loser.id] = loser
        self._link(winner.id, loser.id, key, "merged", reason, record)

    def _touch(self, target: _CustomerState, record: EventRecord) -> None:
        if record.type == "identify" and record.traits:
            target.traits = {**target.traits, **record.traits}
            target.dirty = True
        if record.timestamp > target.last_seen_at:
            target.last_seen_at, target.dirty = record.timestamp, True
        if record.timestamp < target.first_seen_at:
            target.first_seen_at, target.dirty = record.timestamp, True

    def _link(
        self,
        customer_id: int,
        other_id: int | None,
        key: Key,
        outcome: str,
        reason: str,
        record: EventRecord,
    ) -> None:
        self._links.append(
            {
                "workspace_id": self.workspace_id,
                "customer_id": customer_id,
                "other_customer_id": other_id,
                "kind": key[0],
                "value": key[1],
                "outcome": outcome,
                "reason": reason,
                "message_id": record.message_id,
                "occurred_at": record.timestamp,
                "recorded_at": self.recorded_at,
            }
        )

    def flush(self) -> None:
        """Write what changed about customers, and the resolution record."""
        if self._links:
            self.session.execute(insert(IdentityLink), self._links)
            self._links.clear()
        for state in self._customers.values():
            if not state.dirty:
                continue
            self.session.execute(
                update(Customer)
                .where(Customer.id == state.id)
                .values(
                    user_id=state.user_id,
                    email=state.email,
                    traits=state.traits,
                    first_seen_at=state.first_seen_at,
                    last_seen_at=state.last_seen_at,
                    merged_into_id=state.merged_into,
                )
            )
            state.dirty = False
