"""Ingestion: validate, normalise, deduplicate, resolve identities, store — in one transaction.

The transaction commits before the caller hears "stored", so an acknowledged event is durable.
Invalid messages are reported one by one and never block the valid ones of the same batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import pydantic
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from clm.config import get_settings
from clm.ingest.identity import IdentityResolver, KnownIdentities
from clm.ingest.normalize import EventRecord, FieldValueError, to_record
from clm.ingest.schemas import MESSAGE_TYPES, IngestResult, Rejected, message_adapter
from clm.store.bulk import insert_prepared, json_text, select_in, sqlite_datetimes
from clm.store.engine import Database
from clm.store.locks import until_commit
from clm.store.own_events import reserved_channel_error
from clm.store.storable import without_nul
from clm.store.tombstones import erased_keys, has_tombstones


def pydantic_errors(exc: pydantic.ValidationError) -> list[dict[str, Any]]:
    """Field-level messages in our error shape, without echoing the (possibly personal) input."""
    errors = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = list(err["loc"])
        if loc and loc[0] in MESSAGE_TYPES:  # the union's tag adds nothing for the sender
            loc = loc[1:]
        errors.append({"loc": loc, "message": err["msg"], "type": err["type"]})
    return errors


def parse_messages(
    raws: Sequence[Any],
    received_at: datetime,
    *,
    batch_sent_at: datetime | None = None,
    batch_context: dict[str, Any] | None = None,
    max_event_bytes: int | None = None,
    own: bool = False,
) -> tuple[list[EventRecord], list[Rejected]]:
    """Validate each message on its own; the good become records, the bad get reasons.

    ``own`` is True only for CLM's own writers: anyone else's message on the reserved
    ``system`` channel is refused (``clm.store.own_events``), so that no client event is
    taken for one CLM wrote.
    """
    limit = max_event_bytes or get_settings().max_event_bytes
    if batch_context and b"\\u0000" in orjson.dumps(batch_context):
        batch_context = without_nul(batch_context)
    records: list[EventRecord] = []
    rejected: list[Rejected] = []
    for index, raw in enumerate(raws):
        message_id = raw.get("messageId") if isinstance(raw, dict) else None
        message_id = message_id if isinstance(message_id, str) else None
        if not isinstance(raw, dict):
            rejected.append(Rejected(index=index, errors=[_error((), "must be a JSON object")]))
            continue
        try:
            dumped = orjson.dumps(raw)
        except TypeError as exc:  # e.g. an integer over 64 bits: the log could not store it
            rejected.append(
                Rejected(index=index, message_id=message_id, errors=[_error((), str(exc))])
            )
            continue
        size = len(dumped)
        if b"\\u0000" in dumped:  # orjson escapes NUL so: a cheap test before a walk
            raw = without_nul(raw)
        if size > limit:
            reason = f"message is {size} bytes; the limit is {limit} bytes"
            rejected.append(
                Rejected(index=index, message_id=message_id, errors=[_error((), reason, "size")])
            )
            continue
        try:
            message = message_adapter.validate_python(raw)
            record = to_record(message, raw, received_at, batch_sent_at, batch_context)
        except pydantic.ValidationError as exc:
            rejected.append(
                Rejected(index=index, message_id=message_id, errors=pydantic_errors(exc))
            )
            continue
        except FieldValueError as exc:
            error = _error(exc.loc, str(exc))
            rejected.append(Rejected(index=index, message_id=message_id, errors=[error]))
            continue
        except (TypeError, ValueError, OverflowError) as exc:
            # A value no rule anticipated (e.g. a date out of range): still the sender's fault.
            reason = f"{type(exc).__name__}: {exc}"
            rejected.append(
                Rejected(index=index, message_id=message_id, errors=[_error((), reason)])
            )
            continue
        reserved = None if own else reserved_channel_error(record.channel)
        if reserved is not None:
            where = _channel_field(raw)
            rejected.append(
                Rejected(index=index, message_id=message_id, errors=[_error(where, reserved)])
            )
            continue
        records.append(record)
    return records, rejected


def _channel_field(raw: dict[str, Any]) -> tuple[str, ...]:
    """Where the message set its channel (the first place ``touchpoint`` looks)."""
    properties = raw.get("properties")
    if isinstance(properties, dict) and properties.get("channel") is not None:
        return ("properties", "channel")
    return ("context", "channel")


def _error(loc: tuple[str | int, ...], message: str, kind: str = "value_error") -> dict[str, Any]:
    return {"loc": list(loc), "message": message, "type": kind}


def _existing_message_ids(session: Session, workspace_id: int, ids: list[str]) -> set[str]:
    rows = select_in(
        session.connection(), "message_id", "events", [("workspace_id", workspace_id)],
        "message_id", ids,
    )  # fmt: skip
    return {row[0] for row in rows}


def store_records(db: Database, workspace_id: int, records: list[EventRecord]) -> tuple[int, int]:
    """Store new records in one transaction; returns (stored, duplicates)."""
    known = known_identities(db)
    with db.transaction() as session:
        stored, duplicates, resolver = store_in(session, workspace_id, records, known)
    if resolver is not None:
        known.learn(workspace_id, resolver)
    return stored, duplicates


def known_identities(db: Database) -> KnownIdentities:
    """The identity cache of this database handle (one per process and database)."""
    cache = db.extensions.get("known_identities")
    if cache is None:
        cache = db.extensions["known_identities"] = KnownIdentities()
    assert isinstance(cache, KnownIdentities)
    return cache


def store_in(
    session: Session, workspace_id: int, records: list[EventRecord], known: KnownIdentities
) -> tuple[int, int, IdentityResolver | None]:
    """Store records inside the caller's transaction: (stored, duplicates, resolver).

    The caller commits, then passes the resolver to ``known.learn``: only committed
    identities may be cached.
    """
    counts, resolver = store_batches_in(session, workspace_id, [records], known)
    return *counts[0], resolver


def store_batches_in(
    session: Session,
    workspace_id: int,
    batches: Sequence[list[EventRecord]],
    known: KnownIdentities,
) -> tuple[list[tuple[int, int]], IdentityResolver | None]:
    """``store_in`` for several batches of one workspace at once, with (stored, duplicates)
    for each: one lookup of message ids, one identity resolution, one insert for them all,
    where each batch alone cost a dozen statements. A message sent twice is stored for the
    first batch that carries it."""
    records = [record for batch in batches for record in batch]
    unique: dict[str, EventRecord] = {}
    for record in records:
        unique.setdefault(record.message_id, record)
    fresh: list[EventRecord] = []
    if unique:
        # One writer per workspace at a time: identity merges must see each other.
        until_commit(session, "ingest", workspace_id)
        existing = _existing_message_ids(session, workspace_id, list(unique))
        fresh = [record for key, record in unique.items() if key not in existing]
        fresh = _drop_erased(session.connection(), workspace_id, fresh)
    if not fresh:
        return [(0, len(batch)) for batch in batches], None
    resolver = IdentityResolver(session, workspace_id, datetime.now(UTC))
    # Known customers skip the lookups; the rest are resolved together.
    identity_ids: list[int | None] = [
        None if record.type in ("identify", "alias") else known.identity_of(workspace_id, record)
        for record in fresh
    ]
    pending = [i for i, identity_id in enumerate(identity_ids) if identity_id is None]
    resolver.prefetch(fresh[i] for i in pending)
    resolved = [(i, resolver.resolve(fresh[i])) for i in pending]
    resolver.flush()
    for i, identity in resolved:
        identity_ids[i] = identity.id
    prepare_stored([r for r in fresh if r.stored is None], session.get_bind().dialect.name)
    placed = [
        (identity_id, record)
        for identity_id, record in zip(identity_ids, fresh, strict=True)
        if identity_id is not None
    ]
    rows = [
        (workspace_id, identity_id, *record.stored)  # type: ignore[misc]
        for identity_id, record in placed
    ]
    stored = insert_prepared(session.connection(), rows)
    if len(batches) == 1:
        return [(stored, len(records) - stored)], resolver
    if stored != len(rows):  # cannot happen under the writer lock; if it did, counts would lie
        raise RuntimeError("a message id was stored concurrently")
    new = {record.message_id for _, record in placed}
    counts = []
    for batch in batches:
        mine = 0
        for record in batch:
            if record.message_id in new:
                new.discard(record.message_id)  # a later copy is a duplicate
                mine += 1
        counts.append((mine, len(batch) - mine))
    return counts, resolver


def _drop_erased(
    connection: Connection, workspace_id: int, records: list[EventRecord]
) -> list[EventRecord]:
    """The tombstone rule: a message naming an erased identifier is acknowledged and dropped
    (counted with the duplicates), so an SDK stops retrying and the person is not rebuilt."""
    if not records or not has_tombstones(connection, workspace_id):
        return records
    keys = [
        IdentityResolver.keys_of(record)
        + ([("user_id", r), ("anonymous_id", r)] if (r := record.previous_id) else [])
        for record in records
    ]
    erased = erased_keys(connection, workspace_id, (k for ks in keys for k in ks))
    if not erased:
        return records
    return [r for r, ks in zip(records, keys, strict=True) if erased.isdisjoint(ks)]


def prepare_stored(records: list[EventRecord], dialect: str) -> None:
    """Give each record its ``stored`` columns: done by whoever parsed the records, so that
    the one writer (a thread, or the writer process) does not.

    Those are the event columns after workspace and identity (``EVENT_COLUMNS[2:]``),
    driver-ready: JSON as text, and on SQLite the timestamps as the text it stores.
    """
    when: Any = _same if dialect == "postgresql" else sqlite_datetimes()
    for r in records:
        r.stored = (
            r.message_id, r.type, r.name, r.user_id, r.anonymous_id, when(r.timestamp), r.ts,
            when(r.received_at), when(r.sent_at), when(r.original_timestamp), r.channel,
            r.campaign, r.source, r.revenue, r.currency, json_text(r.properties),
            json_text(r.context), json_text(r.traits),
        )  # fmt: skip


def _same(value: datetime | None) -> datetime | None:
    return value


def ingest(
    db: Database,
    workspace_id: int,
    raws: Sequence[Any],
    *,
    received_at: datetime | None = None,
    batch_sent_at: datetime | None = None,
    batch_context: dict[str, Any] | None = None,
    own: bool = False,
) -> IngestResult:
    """Validate and store Segment messages; the result lists what was rejected and why.

    ``own=True`` is for CLM's own writers only (engagement's event log): they may use the
    reserved ``system`` channel.
    """
    records, rejected = parse_messages(
        raws,
        received_at or datetime.now(UTC),
        batch_sent_at=batch_sent_at,
        batch_context=batch_context,
        own=own,
    )
    stored, duplicates = store_records(db, workspace_id, records)
    return IngestResult(stored=stored, duplicates=duplicates, rejected=rejected)
