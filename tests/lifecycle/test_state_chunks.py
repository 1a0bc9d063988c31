"""The catch-up writes the stored rows in chunks, each in its own short write transaction, and
still ends with exactly the rows a full recomputation from the raw tables gives (worked out
here in Python, column by column), on SQLite and PostgreSQL: with events (a purchase, a new
customer, a merge) arriving between two chunks, with a chunk that fails midway, and with an
erasure between two chunks (the refresh stops; nothing of the erased person is written)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select, text

from clm.accounts import Actor
from clm.engage.playbooks.standing import rfm_segments
from clm.ingest import ingest
from clm.lifecycle import current_state, run_lifecycle, score_health
from clm.lifecycle.current_state import refresh_state
from clm.lifecycle.event_counts import workspace_stats
from clm.privacy.erasure import erase_customer
from clm.store.customers import workspace_stats as scan_stats
from clm.store.engine import Database
from clm.store.models import (
    Customer,
    CustomerState,
    Event,
    HealthScore,
    Identity,
    LifecycleDefinition,
    StageTransition,
)
from tests.lifecycle.logs import DAY, at, message, new_workspace

NOW = at(400 * DAY)
USERS = [f"u{n}" for n in range(9)]


def _log() -> list[dict[str, Any]]:
    """Nine customers: identified ones with a name, buyers of several sizes, page viewers, a
    score, and an anonymous buyer (merged into u1 later)."""
    out: list[dict[str, Any]] = []
    for n, user in enumerate(USERS):
        out.append(message(user, n * DAY, f"{user}-id", kind="identify",
                           email=f"{user}@example.com", name=f"Person {n}"))  # fmt: skip
        for k in range(n % 4):
            out.append(message(user, (300 + 10 * n + k) * DAY, f"{user}-o{k}", "Order Completed",
                               revenue=10.0 * (n + k)))  # fmt: skip
        out.append(message(user, (380 + n) * DAY, f"{user}-p", kind="page"))
    score = message("u2", 390 * DAY, "u2-score", "Prediction Scored", p_alive=0.4, clv_12m=12.5,
                    expected_purchases_90d=0.7, fit_id="fit-1", channel="system")  # fmt: skip
    anon = {"type": "track", "anonymousId": "anon-1", "event": "Order Completed",
            "messageId": "anon-o", "properties": {"revenue": 99},
            "timestamp": at(395 * DAY).isoformat()}  # fmt: skip
    return [*out, score, anon]


def _arrivals(tag: str) -> list[dict[str, Any]]:
    """What ingestion writes while a refresh runs: a purchase by u0 (the first chunk, written
    already), a page view of u8 (a later chunk), a new customer, and anon-1 turning out to be
    u1 (a merge, moving a purchase)."""
    return [
        message("u0", 399 * DAY, f"{tag}-o", "Order Completed", revenue=500.0),
        message("u8", 399 * DAY, f"{tag}-p", kind="page"),
        message("newcomer", 399 * DAY, f"{tag}-n", "Order Completed", revenue=1.0),
        {
            "type": "identify",
            "anonymousId": "anon-1",
            "userId": "u1",
            "messageId": f"{tag}-merge",
            "timestamp": at(399 * DAY).isoformat(),
        },
    ]


def _active(db: Database, ws: int, kind: str) -> int:
    with db.session() as session:
        found = session.scalar(
            select(LifecycleDefinition.id)
            .where(
                LifecycleDefinition.workspace_id == ws,
                LifecycleDefinition.kind == kind,
                LifecycleDefinition.active.is_(True),
            )
            .order_by(LifecycleDefinition.id.desc())
        )
    assert found is not None
    return int(found)


def _recomputed(db: Database, ws: int) -> dict[int, dict[str, Any]]:
    """Every live customer's row, from the raw tables by hand (the module's definitions);
    the RFM segment from the RFM report's computation over the log."""
    stage_id, health_id = _active(db, ws, "stages"), _active(db, ws, "health")
    now_ts = int(NOW.timestamp())
    with db.session() as session:
        customers = session.execute(
            select(Customer.id, Customer.user_id, Customer.email, Customer.traits).where(
                Customer.workspace_id == ws, Customer.merged_into_id.is_(None)
            )
        ).all()
        owner = dict(
            session.execute(
                select(Identity.id, Identity.customer_id).where(Identity.workspace_id == ws)
            ).all()
        )
        events = session.execute(
            select(Event.id, Event.identity_id, Event.ts, Event.name, Event.revenue,
                   Event.channel, Event.properties).where(Event.workspace_id == ws)
        ).all()  # fmt: skip
        transitions = session.execute(
            select(StageTransition.customer_id, StageTransition.ts, StageTransition.id,
                   StageTransition.to_stage)
            .where(StageTransition.definition_id == stage_id, StageTransition.ts <= now_ts)
        ).all()  # fmt: skip
        health = {
            int(c): (state, score)
            for c, state, score in session.execute(
                select(HealthScore.customer_id, HealthScore.state, HealthScore.score).where(
                    HealthScore.definition_id == health_id
                )
            )
        }
    per: dict[int, list[Any]] = defaultdict(list)
    for event in events:
        per[int(owner[event.identity_id])].append(event)
    latest: dict[int, tuple[int, int, str]] = {}
    for customer, ts, tid, stage in transitions:
        latest[customer] = max(latest.get(customer, (ts, tid, stage)), (ts, tid, stage))
    segments = rfm_segments(db, ws, NOW)
    out: dict[int, dict[str, Any]] = {}
    for customer, user_id, email, traits in customers:
        mine = per[customer]
        touch = [e for e in mine if e.channel != "system" and e.name != "Prediction Scored"]
        bought = [e for e in mine if e.name == "Order Completed" and e.channel != "system"]
        scores = sorted((e for e in mine if e.name == "Prediction Scored"),
                        key=lambda e: (e.ts, e.id))  # fmt: skip
        score = scores[-1].properties if scores else {}
        stage = latest.get(customer)
        state, points = health.get(customer, (None, None))
        name = (traits or {}).get("name") or ""
        out[customer] = {
            "workspace_id": ws,
            "stage": stage[2] if stage else None,
            "stage_since": stage[0] if stage else None,
            "stage_definition_id": stage_id,
            "health_state": state,
            "health_score": points,
            "health_definition_id": health_id,
            "first_seen_ts": min((e.ts for e in touch), default=None),
            "last_seen_ts": max((e.ts for e in touch), default=None),
            "purchases": len(bought),
            "revenue": float(
                sum(e.revenue for e in bought if e.revenue is not None and math.isfinite(e.revenue))
            ),
            "last_purchase_ts": max((e.ts for e in bought), default=None),
            "p_alive": score.get("p_alive"),
            "clv_12m": score.get("clv_12m"),
            "expected_purchases_90d": score.get("expected_purchases_90d"),
            "prediction_fit_id": score.get("fit_id"),
            "rfm_segment": segments.get(customer),
            "search_text": f"{user_id or ''} {email or ''} {name}".lower(),
        }
    return out


def _stored(db: Database, ws: int) -> dict[int, dict[str, Any]]:
    with db.session() as session:
        rows = session.scalars(select(CustomerState).where(CustomerState.workspace_id == ws))
        return {
            r.customer_id: {
                c: getattr(r, c)
                for c in CustomerState.__table__.columns.keys()  # noqa: SIM118
                if c not in ("customer_id", "updated_at")
            }
            for r in rows
        }


def _assert_equal(stored: dict[int, dict[str, Any]], want: dict[int, dict[str, Any]]) -> None:
    assert set(stored) == set(want)
    for customer, row in want.items():
        got = dict(stored[customer])
        assert got.pop("health_score") == pytest.approx(row["health_score"], abs=1e-9)
        assert got.pop("revenue") == pytest.approx(row["revenue"])
        expected = {k: v for k, v in row.items() if k not in ("health_score", "revenue")}
        assert got == expected, customer


@pytest.fixture
def shop(db: Database) -> int:
    ws = new_workspace(db)
    ingest(db, ws, _log())
    run_lifecycle(db, ws, now=NOW, settle_seconds=0)
    score_health(db, ws, now=NOW)
    refresh_state(db, ws, now=NOW)
    return ws


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[int] | None]]:
    """Chunks of 2 customers; the ids each chunk's rows were computed for, in order. On
    SQLite, a computation under the write lock fails the test: it must happen outside."""
    monkeypatch.setattr(current_state, "CHUNK", 2)
    monkeypatch.setattr(current_state, "COMPUTE", 2)
    seen: list[list[int] | None] = []
    compute = current_state._state_rows

    def recorded(*args: Any) -> Any:
        seen.append(None if args[4] is None else list(args[4]))
        for hook in HOOKS:
            hook(len(seen))
        return compute(*args)

    monkeypatch.setattr(current_state, "_state_rows", recorded)
    yield seen
    HOOKS.clear()


HOOKS: list[Callable[[int], None]] = []


def _outside_the_lock(db: Database) -> Callable[[int], None]:
    """No write transaction open while a chunk is computed: SQLite's writer lock is free, and
    on PostgreSQL no other session of this schema holds a write lock on the rows' table."""

    def check(_chunk: int) -> None:
        if db.dialect == "sqlite":
            assert not db.write_lock.locked(), "a chunk computed inside the write transaction"
            return
        with db.session() as session:
            writers = session.scalar(
                text(
                    "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                    " JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE c.relname = 'customer_states' AND n.nspname = current_schema()"
                    " AND l.mode = 'RowExclusiveLock' AND l.pid <> pg_backend_pid()"
                )
            )
        assert writers == 0, "a chunk computed inside the write transaction"

    return check


@pytest.mark.parametrize("everyone", [False, True], ids=["touched", "rebuild"])
def test_events_arriving_between_chunks(
    db: Database, shop: int, small_chunks: list[list[int] | None], everyone: bool
) -> None:
    ws = shop
    ingest(db, ws, [message(u, 398 * DAY, f"{u}-late", kind="page") for u in USERS])
    HOOKS.append(_outside_the_lock(db))

    def arrive(chunk: int) -> None:
        if chunk == 2:  # after the first chunk's write, before the second's computation
            ingest(db, ws, _arrivals("between"))

    HOOKS.append(arrive)
    report = refresh_state(db, ws, now=NOW, rebuild=everyone)
    assert report.rebuilt == everyone
    assert len(small_chunks) >= 5 and all(c is not None and len(c) <= 2 for c in small_chunks)
    refresh_state(db, ws, now=NOW)  # the next refresh (a read, the live loop) takes the rest
    _assert_equal(_stored(db, ws), _recomputed(db, ws))
    stats = workspace_stats(db, ws)
    with db.session() as session:
        assert stats == scan_stats(session, ws).model_copy(update={"revenue": stats.revenue})


def test_a_chunk_failing_midway(
    db: Database, shop: int, small_chunks: list[list[int] | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = shop
    ingest(db, ws, [*_arrivals("before"), *(message(u, 398 * DAY, f"{u}-l", kind="page")
                                             for u in USERS)])  # fmt: skip
    write = current_state._write_chunk
    calls = iter(range(100))

    def failing(*args: Any) -> int:
        if next(calls) == 2:
            raise RuntimeError("the disk is full")
        return write(*args)

    monkeypatch.setattr(current_state, "_write_chunk", failing)
    with pytest.raises(RuntimeError):
        refresh_state(db, ws, now=NOW)
    monkeypatch.setattr(current_state, "_write_chunk", write)
    refresh_state(db, ws, now=NOW)  # the cursor did not move: the same customers again
    _assert_equal(_stored(db, ws), _recomputed(db, ws))


def test_an_erasure_between_chunks_stops_the_refresh(
    db: Database, shop: int, small_chunks: list[list[int] | None]
) -> None:
    ws = shop
    with db.session() as session:
        u7 = session.scalar(select(Customer.id).where(Customer.user_id == "u7"))
    assert u7 is not None

    def erase(chunk: int) -> None:
        if chunk == 2:
            erase_customer(db, ws, u7, who=Actor("test:state"))

    HOOKS.append(erase)
    refresh_state(db, ws, now=NOW, rebuild=True)
    assert u7 not in _stored(db, ws)  # its chunk came after the erasure: never written
    report = refresh_state(db, ws, now=NOW)
    assert report.rebuilt  # the invalidation stood
    _assert_equal(_stored(db, ws), _recomputed(db, ws))


def test_the_recomputation_matches_a_first_build(db: Database, shop: int) -> None:
    """The reference itself, against rows written in one go (no chunk, no arrival)."""
    _assert_equal(_stored(db, shop), _recomputed(db, shop))
