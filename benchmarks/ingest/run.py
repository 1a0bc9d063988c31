"""Ingestion benchmark: HTTP /v1/batch throughput and bulk import rate, SQLite and PostgreSQL.

    .venv/bin/python benchmarks/ingest/run.py                  # everything, default sizes
    .venv/bin/python benchmarks/ingest/run.py --backends sqlite --events 100000

The server runs as its own process (``python -m clm serve``); this process is the client, with
``--concurrency`` keep-alive connections sending pre-built batches of 100 Segment messages.
Events are counted in the database afterwards: a figure counts only what was stored. The
bulk import runs in a child process so its peak memory is its own.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import polars as pl
from sqlalchemy import create_engine, text

from clm.store import workspaces as ws
from clm.store.bulk import refresh_statistics
from clm.store.engine import Database

POSTGRES = os.environ.get(
    "CLM_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def messages(count: int, users: int, seed: int) -> list[dict[str, Any]]:
    """A realistic mix: 80% track, 10% page, 5% identify, 5% screen, over ``users`` people."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(count):
        user = rng.randrange(users)
        base = {
            "messageId": f"{seed}-{i}",
            "anonymousId": f"anon-{user}",
            "timestamp": "2026-11-01T10:00:00Z",
            "context": {
                "library": {"name": "analytics.js", "version": "4.1"},
                "ip": "203.0.113.7",
                "page": {"url": "https://shop.test/p?utm_source=news&utm_medium=email"},
            },
        }
        roll = rng.random()
        if roll < 0.05:
            out.append(
                {
                    **base,
                    "type": "identify",
                    "userId": f"user-{user}",
                    "traits": {"email": f"user{user}@example.com", "plan": "pro"},
                }
            )
        elif roll < 0.15:
            out.append({**base, "type": "page", "name": "Product"})
        elif roll < 0.20:
            out.append({**base, "type": "screen", "name": "Home"})
        else:
            out.append(
                {
                    **base,
                    "type": "track",
                    "userId": f"user-{user}",
                    "event": rng.choice(["Product Viewed", "Order Completed", "Email Opened"]),
                    "properties": {
                        "product_id": f"p{rng.randrange(500)}",
                        "revenue": round(rng.uniform(5, 80), 2),
                    },
                }
            )
    return out  # fmt: skip


def database_url(backend: str, folder: Path) -> tuple[str, str | None]:
    if backend == "sqlite":
        return f"sqlite:///{folder / 'bench.sqlite'}", None
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    return f"{POSTGRES}?options=-csearch_path%3D{schema}", schema


def drop_schema(schema: str | None) -> None:
    if schema:
        admin = create_engine(POSTGRES)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def process_tree(pid: int) -> list[int]:
    """The server and its worker processes (uvicorn forks one per worker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(int(c) for c in children)]


def cpu_seconds(pids: list[int]) -> tuple[float, float]:
    """(user, system) CPU time of these processes so far: a figure that load on the machine
    from other work disturbs far less than a wall-clock rate."""
    user = system = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        user, system = user + int(fields[11]), system + int(fields[12])
    tick = os.sysconf("SC_CLK_TCK")
    return user / tick, system / tick


def process_cpu(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) of each process."""
    return {pid: sum(cpu_seconds([pid])) for pid in pids}


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def send_all(url: str, key: str, bodies: list[bytes], concurrency: int) -> list[float]:
    """POST every body to ``/v1/batch`` over ``concurrency`` keep-alive connections.

    A bare HTTP/1.1 client, like wrk's: requests are pre-built bytes and a reply is read by its
    Content-Length. On a 2-core machine the client shares the CPU with the server it measures,
    and httpx spent about 20 µs of CPU an event here, a fifth of what the server needed.
    """
    latencies: list[float] = []
    parsed = httpx.URL(url)
    token = base64.b64encode(f"{key}:".encode()).decode()
    head = (
        f"POST /v1/batch HTTP/1.1\r\nHost: {parsed.host}:{parsed.port}\r\n"
        f"Authorization: Basic {token}\r\nContent-Type: application/json\r\n"
    ).encode()
    requests = [head + b"Content-Length: %d\r\n\r\n" % len(body) + body for body in bodies]
    requests.reverse()

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(parsed.host, parsed.port)
        try:
            while requests:
                request = requests.pop()
                started = time.perf_counter()
                writer.write(request)
                header = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: *(\d+)", header)[1])  # type: ignore[index]
                reply = await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                if not header.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"{header[:40]!r}: {reply[:200]!r}")
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def py_spy(pid: int, output: str) -> subprocess.Popen[bytes]:
    """py-spy sampling the server (and its workers) into collapsed stacks, until stopped."""
    command = os.environ.get("CLM_BENCH_PY_SPY", "py-spy")
    extra = os.environ.get("CLM_BENCH_PY_SPY_ARGS", "").split()  # e.g. --gil
    return subprocess.Popen(
        [command, "record", "--pid", str(pid), "--subprocesses", "--format", "raw",
         "--rate", "500", "--nonblocking", *extra, "--output", output],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def http_ingestion(
    backend: str,
    events: int,
    concurrency: int,
    users: int,
    workers: int,
    profile: str | None = None,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url, schema = database_url(backend, folder)
        try:
            db = Database.open(url)
            with db.transaction() as session:
                workspace = ws.create_workspace(session, "bench")
                key = ws.issue_key(session, "write", workspace.id).key
            port = 18_000 + random.randrange(1000)
            env = {**os.environ, "CLM_DATABASE_URL": url, "CLM_DATA_DIR": str(folder)}
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "clm",
                    "serve",
                    *("--port", str(port)),
                    *("--workers", str(workers)),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
            )
            base = f"http://127.0.0.1:{port}"
            try:
                for _ in range(200):
                    try:
                        if httpx.get(f"{base}/health").status_code == 200:
                            break
                    except httpx.TransportError:
                        time.sleep(0.1)
                warm = messages(20_000, users, seed=1)
                body = [
                    orjson.dumps({"batch": warm[i : i + 100]}) for i in range(0, len(warm), 100)
                ]
                asyncio.run(send_all(base, key, body, concurrency))  # users now known
                with db.transaction() as session:  # as autovacuum would have, in production
                    refresh_statistics(session.connection())
                batch = messages(events, users, seed=2)
                bodies = [
                    orjson.dumps({"batch": batch[i : i + 100]}) for i in range(0, len(batch), 100)
                ]
                profiler = py_spy(server.pid, profile) if profile else None
                cpu_before = cpu_seconds(process_tree(server.pid))
                each_before = process_cpu(process_tree(server.pid))
                client_before = time.process_time()
                started = time.perf_counter()
                latencies = asyncio.run(send_all(base, key, bodies, concurrency))
                elapsed = time.perf_counter() - started
                client_cpu = time.process_time() - client_before
                cpu_after = cpu_seconds(process_tree(server.pid))
                each_after = process_cpu(process_tree(server.pid))
                busiest = max(each_after[p] - each_before.get(p, 0.0) for p in each_after)
                server_cpu = sum(cpu_after) - sum(cpu_before)
                server_system = cpu_after[1] - cpu_before[1]
                if profiler is not None:
                    profiler.send_signal(signal.SIGINT)
                    profiler.wait(timeout=60)
                rss = sum(peak_rss_mib(pid) for pid in process_tree(server.pid))
            finally:
                server.send_signal(signal.SIGINT)
                server.wait(timeout=30)
            with db.session() as session:
                stored = session.execute(text("SELECT count(*) FROM events")).scalar_one()
            db.dispose()
        finally:
            drop_schema(schema)
    assert stored == 20_000 + events, f"stored {stored}, sent {20_000 + events}"
    latencies.sort()
    return {
        "backend": backend, "workers": workers, "events": events,
        "events_per_s": events / elapsed,
        "client_cpu_us": 1e6 * client_cpu / events,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)], "server_peak_mib": rss,
        "server_cpu_us": 1e6 * server_cpu / events,
        "busiest_cpu_us": 1e6 * busiest / events,
        "server_system_us": 1e6 * server_system / events, "load": os.getloadavg()[0],
    }  # fmt: skip


def write_transactions(path: Path, rows: int, customers: int) -> None:
    rng = pl.Series(range(rows))
    pl.DataFrame({
        "customer_id": (rng * 7919 % customers).cast(pl.String),
        "date": pl.date_range(pl.date(2020, 1, 1), pl.date(2024, 12, 31), eager=True)
        .sample(rows, with_replacement=True, seed=3),
        "amount": (rng * 37 % 20_000 / 100 + 1).cast(pl.Float64),
    }).write_parquet(path)  # fmt: skip


def bulk_import(backend: str, rows: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        parquet = folder / "transactions.parquet"
        write_transactions(parquet, rows, customers=max(rows // 10, 1))
        url, schema = database_url(backend, folder)
        try:
            db = Database.open(url)
            with db.transaction() as session:
                workspace_id = ws.create_workspace(session, "bench").id
            db.dispose()
            child = subprocess.run(
                [sys.executable, __file__, "--child-import", url, str(workspace_id), str(parquet)],
                capture_output=True,
                text=True,
                check=True,
            )
            stored, elapsed, rss, cpu = child.stdout.split()
        finally:
            drop_schema(schema)
    assert int(stored) == rows, child.stdout
    return {
        "backend": backend,
        "rows": rows,
        "events_per_s": rows / float(elapsed),
        "seconds": float(elapsed),
        "peak_mib": float(rss),
        "client_cpu_s": float(cpu),
        "load": os.getloadavg()[0],
    }


def child_import(url: str, workspace_id: int, parquet: Path) -> None:
    from clm.ingest.importer import import_transactions

    db = Database.open(url)
    started, cpu = time.perf_counter(), time.process_time()
    report = import_transactions(db, workspace_id, parquet)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(report.stored, elapsed, rss, cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", default="1,2", help="server processes to try, e.g. 1,2")
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--import-rows", type=int, default=1_000_000, help="0 skips it")
    parser.add_argument(
        "--profile",
        help="write py-spy collapsed stacks of the server during the measurement to this file "
        "(py-spy from $CLM_BENCH_PY_SPY or PATH; its own sampling adds a little server CPU)",
    )
    parser.add_argument("--child-import", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_import:
        child_import(args.child_import[0], int(args.child_import[1]), Path(args.child_import[2]))
        return
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}")
    print(
        "\n| HTTP /v1/batch (100/batch) | server processes | events | events/s | p50 ms "
        "| p99 ms | server CPU µs/event (of which system) | busiest process µs/event "
        "| client CPU µs/event | server peak MiB | load avg |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for backend in args.backends.split(","):
        for workers in (int(w) for w in args.workers.split(",")):
            r = http_ingestion(
                backend, args.events, args.concurrency, args.users, workers, args.profile
            )
            print(
                f"| {backend} | {workers} | {r['events']:,} | {r['events_per_s']:,.0f} | "
                f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                f"{r['server_cpu_us']:.0f} ({r['server_system_us']:.0f}) | "
                f"{r['busiest_cpu_us']:.0f} | {r['client_cpu_us']:.0f} | "
                f"{r['server_peak_mib']:.0f} | {r['load']:.1f} |",
                flush=True,
            )
    if args.import_rows <= 0:
        return
    print(
        "\n| bulk import (Parquet transactions) | rows | events/s | seconds "
        "| importer CPU s | peak MiB | load avg |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for backend in args.backends.split(","):
        r = bulk_import(backend, args.import_rows)
        print(
            f"| {backend} | {r['rows']:,} | {r['events_per_s']:,.0f} | {r['seconds']:.1f} | "
            f"{r['client_cpu_s']:.1f} | {r['peak_mib']:.0f} | {r['load']:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
