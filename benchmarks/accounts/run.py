"""What checking a key against the database on every request costs, now that no per-process
cache can outlive a revocation.

Prints, for SQLite and PostgreSQL: microseconds per ``principal_for_key`` (one indexed SELECT,
no cache; last-used already fresh so no write), the old cache hit it replaces (SHA-256 + a dict
lookup), and single ``POST /v1/track`` requests per second over loopback to the real app, so the
key check's share of a request can be read off. Also the one write a minute: the first call
after last-used went stale (SELECT + conditional UPDATE).

    .venv/bin/python benchmarks/accounts/run.py [--calls 2000] [--requests 500]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text, update

from clm.accounts.keys import principal_for_key
from clm.api.app import create_app
from clm.store import workspaces as ws
from clm.store.engine import Database
from clm.store.models import ApiKey

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/_http.py
from _http import LoopbackServer

POSTGRES = os.environ.get(
    "CLM_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _median_us(fn: object, calls: int, rounds: int = 5) -> float:
    per_round = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()  # type: ignore[operator]
        per_round.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(per_round)


def _track_rate(db: Database, write_key: str, requests: int) -> float:
    server = LoopbackServer(create_app(db))
    try:
        with httpx.Client(base_url=server.url, auth=(write_key, "")) as client:
            body = {"type": "track", "userId": "u1", "event": "Bench"}
            for i in range(20):
                client.post("/v1/track", json={**body, "messageId": f"warm-{i}"})
            start = time.perf_counter()
            for i in range(requests):
                assert (
                    client.post("/v1/track", json={**body, "messageId": f"m-{i}"}).status_code
                    == 200
                )
            return requests / (time.perf_counter() - start)
    finally:
        server.stop()


def bench(name: str, db: Database, calls: int, requests: int) -> None:
    with db.transaction() as session:
        workspace = ws.create_workspace(session, f"bench-{uuid.uuid4().hex[:8]}").id
        read = ws.issue_key(session, "read", workspace)
        write = ws.issue_key(session, "write", workspace)
    principal_for_key(db, read.key)  # last-used fresh: the steady state
    lookup = _median_us(lambda: principal_for_key(db, read.key), calls)
    cache = {hashlib.sha256(read.key.encode()).hexdigest(): object()}
    cached = _median_us(
        lambda: cache.get(hashlib.sha256(read.key.encode()).hexdigest()), calls * 10
    )

    def stale_then_lookup() -> None:
        with db.transaction() as session:
            session.execute(
                update(ApiKey)
                .where(ApiKey.id == read.id)
                .values(last_used_at=datetime.now(UTC) - timedelta(minutes=2))
            )
        principal_for_key(db, read.key)

    def stale_only() -> None:
        with db.transaction() as session:
            session.execute(
                update(ApiKey)
                .where(ApiKey.id == read.id)
                .values(last_used_at=datetime.now(UTC) - timedelta(minutes=2))
            )

    with_write = _median_us(stale_then_lookup, max(50, calls // 20)) - _median_us(
        stale_only, max(50, calls // 20)
    )
    rate = _track_rate(db, write.key, requests)
    share = lookup / (1e6 / rate) * 100
    print(
        f"| {name} | {lookup:.0f} | {cached:.1f} | {with_write:.0f} | {rate:.0f} | {share:.0f}% |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    print(
        "| database | key check, µs (no cache) | old cache hit, µs "
        "| key check with the once-a-minute last-used write, µs "
        "| `POST /v1/track`, req/s (one client) | key check's share of a request |"
    )
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        db = Database.open(f"sqlite:///{Path(tmp) / 'bench.sqlite'}")
        bench("SQLite", db, args.calls, args.requests)
        db.dispose()
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        db = Database.open(f"{POSTGRES}?options=-csearch_path%3D{schema}")
        bench("PostgreSQL", db, args.calls, args.requests)
        db.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    print(f"load average at end: {os.getloadavg()[0]:.2f}", file=sys.stderr)


if __name__ == "__main__":
    main()
