"""What privacy costs: ingestion with and without tombstones, and erasing and exporting one
person with many events.

    .venv/bin/python benchmarks/privacy/run.py [--events 40000] [--postgres URL]

Ingestion runs through ``clm.ingest.ingest`` (validation, dedupe, identity resolution, one
transaction per batch of 500, the path the HTTP writer takes), alternating batches between a
workspace with no tombstone and one with 10,000, so machine load hits both alike; the ratio
is the figure to read. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("CLM_ENV", "test")
os.environ.setdefault("CLM_SECRET_KEY", "benchmark-secret-key-0123456789")

from sqlalchemy import create_engine, text

from clm.accounts import Actor
from clm.ingest import ingest
from clm.privacy import erase_customer, export_customer
from clm.store import workspaces
from clm.store.engine import Database
from clm.store.models import Customer, Tombstone
from clm.store.tombstones import identifier_digest, tombstone_key

BATCH = 500
CUSTOMERS = 1_000
WHO = Actor("benchmark")
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _batch(prefix: str, start: int) -> list[dict[str, object]]:
    return [
        {"type": "track", "userId": f"u{(start + i) % CUSTOMERS}", "event": "Page Viewed",
         "messageId": f"{prefix}-{start + i}", "properties": {"path": f"/p/{i % 50}"},
         "timestamp": (T0 + timedelta(seconds=start + i)).isoformat()}
        for i in range(BATCH)
    ]  # fmt: skip


def _workspace(db: Database, slug: str) -> int:
    with db.transaction() as session:
        return workspaces.create_workspace(session, slug).id


def ingestion(db: Database, events: int) -> list[str]:
    plain, marked = _workspace(db, "plain"), _workspace(db, "tombstoned")
    key = tombstone_key()
    with db.transaction() as session:
        digests = (identifier_digest(key, marked, "user_id", f"gone{i}") for i in range(10_000))
        session.add_all(Tombstone(workspace_id=marked, digest=d, created_at=T0) for d in digests)
    for ws in (plain, marked):  # the customers exist: steady-state traffic of known people
        ingest(db, ws, _batch(f"warm{ws}", 0)[: CUSTOMERS // 2])
        ingest(db, ws, _batch(f"warm{ws}b", CUSTOMERS // 2)[: CUSTOMERS // 2])
    seconds = {plain: 0.0, marked: 0.0}
    for start in range(0, events, BATCH):
        for ws in (plain, marked) if (start // BATCH) % 2 == 0 else (marked, plain):
            batch = _batch(f"b{ws}", start)
            clock = time.perf_counter()
            assert ingest(db, ws, batch).stored == BATCH
            seconds[ws] += time.perf_counter() - clock
    a, b = events / seconds[plain], events / seconds[marked]
    return [f"| {db.dialect} | {events:,} | {a:,.0f} | {b:,.0f} | {b / a:.3f} |"]


def erasure(db: Database, events: int) -> list[str]:
    ws = _workspace(db, f"erase-{uuid.uuid4().hex[:6]}")
    for start in range(0, events, BATCH):
        batch = _batch("one", start)
        for message in batch:
            message["userId"] = "the-person"
        ingest(db, ws, batch)
    with db.session() as session:
        person = session.query(Customer.id).filter(Customer.user_id == "the-person").scalar()
    clock = time.perf_counter()
    document = export_customer(db, ws, person, who=WHO)
    exported = time.perf_counter() - clock
    clock = time.perf_counter()
    report = erase_customer(db, ws, person, who=WHO)
    erased = time.perf_counter() - clock
    assert report.deleted["events"] == len(document["tables"]["events"]) == events
    return [f"| {db.dialect} | {events:,} | {exported:.2f} | {erased:.2f} |"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--person-events", type=int, default=20_000)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    ingest_rows, erase_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("CLM_DATA_DIR", tmp)
        db = Database.open(f"sqlite:///{Path(tmp) / 'bench.sqlite'}")
        ingest_rows += ingestion(db, args.events)
        erase_rows += erasure(db, args.person_events)
        db.dispose()
    schema = f"privacy_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.postgres)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        db = Database.open(f"{args.postgres}?options=-csearch_path%3D{schema}")
        ingest_rows += ingestion(db, args.events)
        erase_rows += erasure(db, args.person_events)
        db.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    print("\n| backend | events | events/s, no tombstone | events/s, 10k tombstones | ratio |")
    print("|---|---|---|---|---|")
    print("\n".join(ingest_rows))
    print("\n| backend | one person's events | export s | erase s |")
    print("|---|---|---|---|")
    print("\n".join(erase_rows))
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
