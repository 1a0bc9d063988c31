"""Whatever arrives, ingestion answers with stored/duplicate/rejected counts — never a crash."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clm.ingest.service import parse_messages, store_records
from clm.store.engine import Database
from tests.conftest import make_tenant

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=12,
)  # fmt: skip
fields = st.sampled_from(
    ["type", "userId", "anonymousId", "event", "timestamp", "sentAt", "messageId", "properties",
     "context", "traits", "previousId", "groupId", "name", "originalTimestamp"]
)  # fmt: skip
type_values = st.sampled_from(["track", "identify", "page", "screen", "group", "alias", "x"])
messages = st.one_of(
    json_values,
    st.dictionaries(fields, json_values, max_size=8),
    st.fixed_dictionaries(
        {"type": type_values, "userId": st.one_of(st.text(max_size=5), st.integers())},
        optional={"event": json_values, "timestamp": st.one_of(st.text(max_size=30), scalars),
                  "properties": json_values, "context": json_values, "traits": json_values,
                  "previousId": json_values, "groupId": json_values},
    ),
)  # fmt: skip


_shared: dict[str, Any] = {}


def _database() -> tuple[Database, int]:
    """One database for all examples (a migration per example would take minutes)."""
    if not _shared:
        folder = Path(tempfile.mkdtemp(prefix="clm-fuzz-"))
        db = Database.open(f"sqlite:///{folder / 'clm.sqlite'}")
        _shared.update(db=db, workspace=make_tenant(db).id)
    return _shared["db"], _shared["workspace"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(messages, max_size=6))
def test_any_batch_is_stored_or_rejected_field_by_field(batch: list[Any]) -> None:
    records, rejected = parse_messages(batch, datetime.now(UTC))
    assert len(records) + len(rejected) == len(batch)
    assert all(r.errors and all("loc" in e and e["message"] for e in r.errors) for r in rejected)
    db, workspace = _database()
    stored, duplicates = store_records(db, workspace, records)
    assert stored + duplicates == len(records)


def test_a_large_batch_is_stored_whole_and_its_duplicates_counted(db: Database) -> None:
    """250 messages cross the driver's rows-per-statement chunks (100 on SQLite); repeats
    inside the batch and of stored messages are counted, never stored twice."""
    from sqlalchemy import text

    workspace = make_tenant(db).id
    first = [{"type": "track", "userId": f"u{i % 9}", "event": "Seen", "messageId": f"m{i}"}
             for i in range(120)]  # fmt: skip
    records, _ = parse_messages(first, datetime.now(UTC))
    assert store_records(db, workspace, records) == (120, 0)
    second = [{"type": "track", "userId": f"u{i % 9}", "event": "Seen", "messageId": f"m{i}",
               "properties": {"n": i}} for i in range(100, 350)]  # fmt: skip
    records, _ = parse_messages([*second, second[0]], datetime.now(UTC))
    assert store_records(db, workspace, records) == (230, 21)
    with db.session() as session:
        stored = session.execute(
            text("SELECT message_id, properties FROM events WHERE workspace_id = :w"),
            {"w": workspace},
        ).all()
    assert len(stored) == 350
    assert len({row[0] for row in stored}) == 350
    late = {row[0]: row[1] for row in stored}["m349"]
    assert (late if isinstance(late, dict) else orjson.loads(late)) == {"n": 349}
