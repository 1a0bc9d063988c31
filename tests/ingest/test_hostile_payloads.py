"""Generated Segment payloads against real SQLite and PostgreSQL: whatever JSON a client sends
(NUL characters, huge and tiny numbers, deep nesting, odd keys, numeric ids), each message is
either stored and readable back, or rejected with field-level reasons; nothing raises."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from clm.ingest import ingest
from clm.ingest.jsontext import loads
from clm.store import customers as repo
from clm.store.engine import Database
from tests.conftest import make_tenant

_counter = itertools.count()

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
    st.sampled_from(["a\x00b", "\x00", "Infinity", "NaN", "-1e309", "1e400"]),  # the known
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
ids = st.one_of(
    st.text(min_size=1, max_size=30),
    st.sampled_from(["u\x00", "123456789012345678901234567890"]),
    st.integers(min_value=0, max_value=10**30),
)
messages = st.fixed_dictionaries(
    {"type": st.sampled_from(["track", "identify", "page", "screen", "group", "alias"])},
    optional={
        "userId": ids,
        "anonymousId": ids,
        "event": st.text(max_size=30),
        "properties": st.dictionaries(
            st.sampled_from(["revenue", "total", "k\x00"]) | st.text(max_size=10),
            json_values,
            max_size=5,
        ),
        "traits": st.dictionaries(st.text(max_size=10), json_values, max_size=5),
        "context": st.dictionaries(st.text(max_size=10), json_values, max_size=3),
        "timestamp": st.sampled_from(["2026-01-01T00:00:00Z", "not a date", "9999-12-31"]),
        "groupId": ids,
        "previousId": ids,
    },
)


def _as_a_client_sends_it(message: dict[str, Any]) -> dict[str, Any]:
    """Through JSON text and CLM's reader, as the HTTP and JSONL paths do."""
    text = orjson.dumps(message) if _fits_orjson(message) else _stdlib_dumps(message)
    parsed: dict[str, Any] = loads(text)
    return parsed


def _fits_orjson(value: Any) -> bool:
    try:
        orjson.dumps(value)
    except TypeError:
        return False
    return True


def _stdlib_dumps(value: Any) -> bytes:
    import json

    return json.dumps(value).encode()


@pytest.mark.slow
@seed(1616)
@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(messages, min_size=1, max_size=5))
def test_any_payload_is_stored_or_rejected_never_raises(
    db: Database, batch: list[dict[str, Any]]
) -> None:
    tenant = make_tenant(db, f"h{next(_counter)}")
    raws = []
    for n, message in enumerate(batch):
        raw = _as_a_client_sends_it(message)
        raw["messageId"] = f"m{n}"
        raws.append(raw)
    result = ingest(db, tenant.id, raws)
    assert result.stored + result.duplicates + len(result.rejected) == len(raws)
    assert all(r.errors for r in result.rejected)
    with db.session() as session:
        page = repo.list_events(session, tenant.id, limit=100)
        stats = repo.workspace_stats(session, tenant.id)
    assert len(page.items) == result.stored
    for event in page.items:
        assert b"\\u0000" not in orjson.dumps(event.model_dump(mode="json"))  # NUL stripped
    assert stats.revenue == stats.revenue  # a number, not NaN
