"""Several gateways on one PostgreSQL: the combined /v1/batch rate of N ``clm serve`` processes.

    .venv/bin/python benchmarks/ingest/gateways.py                      # 1 and 2 gateways
    .venv/bin/python benchmarks/ingest/gateways.py --gateways 1,2,3 --events 100000

Each gateway is ``python -m clm serve`` with its own data folder (as on a machine of its own,
with its own ingestion writer process); only the PostgreSQL URL is shared. The client sends the
same mix as ``run.py`` (pre-built batches of 100 messages over ``--users`` people) round-robin
over the gateways, so one person's events reach every gateway and identity resolution must
agree across them. After a warm-up, the figure is the next ``--events``, counted in the
database afterwards (only stored events count), with customers checked for duplicates.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/_http.py
from _http import free_port
from run import database_url, drop_schema, messages, send_all

from clm.store import workspaces as ws
from clm.store.bulk import refresh_statistics
from clm.store.engine import Database


def start(url: str, folder: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    env = {**os.environ, "CLM_DATABASE_URL": url, "CLM_DATA_DIR": str(folder)}
    with (folder / "server.log").open("ab") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "clm", "serve", "--port", str(port)],
            env=env, stdout=log, stderr=log,
        )  # fmt: skip
    return f"http://127.0.0.1:{port}", server


def wait_up(base: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"{base} did not start: {log.read_text()[-2000:]}")


async def spread(bases: list[str], key: str, bodies: list[bytes], concurrency: int) -> list[float]:
    """The bodies dealt round-robin to the gateways, ``concurrency`` connections to each."""
    shares = [bodies[i :: len(bases)] for i in range(len(bases))]
    results = await asyncio.gather(
        *(
            send_all(base, key, share, concurrency)
            for base, share in zip(bases, shares, strict=True)
        )
    )
    return sorted(latency for result in results for latency in result)


def run(gateways: int, events: int, users: int, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        url, schema = database_url("postgresql", Path(tmp))
        try:
            db = Database.open(url)
            with db.transaction() as session:
                workspace = ws.create_workspace(session, "bench")
                key = ws.issue_key(session, "write", workspace.id).key
            servers = []
            for i in range(gateways):
                (Path(tmp) / f"g{i}").mkdir()
                servers.append(start(url, Path(tmp) / f"g{i}"))
            try:
                for i, (base, server) in enumerate(servers):
                    wait_up(base, server, Path(tmp) / f"g{i}" / "server.log")
                bases = [base for base, _ in servers]
                warm = messages(20_000, users, seed=1)
                bodies = [orjson.dumps({"batch": warm[i : i + 100]}) for i in range(0, 20_000, 100)]
                asyncio.run(spread(bases, key, bodies, concurrency))
                with db.transaction() as session:
                    refresh_statistics(session.connection())
                batch = messages(events, users, seed=2)
                bodies = [
                    orjson.dumps({"batch": batch[i : i + 100]}) for i in range(0, events, 100)
                ]
                load_before = os.getloadavg()[0]
                started = time.perf_counter()
                latencies = asyncio.run(spread(bases, key, bodies, concurrency))
                elapsed = time.perf_counter() - started
                load_after = os.getloadavg()[0]
            finally:
                for _, server in servers:
                    server.send_signal(signal.SIGINT)
                for _, server in servers:
                    server.wait(timeout=60)
            with db.session() as session:
                stored = session.execute(text("SELECT count(*) FROM events")).scalar_one()
                # One person = one anonymous id in this mix: more live customers than people
                # seen would be duplicates made by gateways racing.
                people = session.execute(
                    text("SELECT count(DISTINCT value) FROM identities WHERE kind = 'anonymous_id'")
                ).scalar_one()
                live = session.execute(
                    text("SELECT count(*) FROM customers WHERE merged_into_id IS NULL")
                ).scalar_one()
            db.dispose()
        finally:
            drop_schema(schema)
    assert stored == 20_000 + events, f"stored {stored}, sent {20_000 + events}"
    assert live == people, f"{live} live customers for {people} people"
    return {
        "gateways": gateways, "events": events, "events_per_s": events / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "customers": live, "load": f"{load_before:.1f}–{load_after:.1f}",
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gateways", default="1,2", help="gateway counts to compare")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=4, help="connections per gateway")
    args = parser.parse_args()
    print("| gateways | events | events/s | p50 ms | p99 ms | live customers | load |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for count in (int(n) for n in args.gateways.split(",")):
        r = run(count, args.events, args.users, args.concurrency)
        print(f"| {r['gateways']} | {r['events']:,} | {r['events_per_s']:,.0f} | "
              f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['customers']:,} | {r['load']} |",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
