"""Event-to-stage and event-to-email latency with ``clm serve`` and ``clm worker`` running.

For each of ``--purchases`` new customers, one after another: identify them (with an email),
wait for that to settle, then send one ``Order Completed`` to ``/v1/track`` and time from its
acknowledgement (the 200, i.e. committed) to

* **stage**: the customer's ``conversion`` transition stored by the worker, read from the
  database every 10 ms;
* **email**: the welcome email's arrival at an aiosmtpd sink on loopback.

Nothing but ``clm serve`` and ``clm worker`` (real processes, default settings) acts on the
events. Prints p50/p95/max per measure with the load average.

    .venv/bin/python benchmarks/live/run.py [--purchases 40] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, select, text

from clm.engage import repository as repo
from clm.engage.playbooks import service as pb
from clm.engage.schemas import EmailProvider, Policy
from clm.store.engine import Database
from clm.store.models import Identity, StageTransition
from clm.store.workspaces import create_workspace, issue_key

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/_http.py
from _http import free_port

SECRET = "benchmark-secret-0123456789abcdef"


class Sink:
    """Records when each recipient's first message arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook
        now = time.monotonic()
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.arrived.setdefault(rcpt, now)
        return "250 OK"


def wait_for(condition: Any, timeout: float, every: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(every)
    return None


def customer_of(db: Database, workspace_id: int, user_id: str) -> int | None:
    with db.session() as session:
        found = session.scalar(
            select(Identity.customer_id).where(
                Identity.workspace_id == workspace_id,
                Identity.kind == "user_id",
                Identity.value == user_id,
            )
        )
    return None if found is None else int(found)


def converted(db: Database, customer_id: int) -> bool:
    with db.session() as session:
        found = session.scalar(
            select(StageTransition.id).where(
                StageTransition.customer_id == customer_id,
                StageTransition.to_stage == "conversion",
            )
        )
    return found is not None


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "clm", *args], env=env, stdout=sink, stderr=sink
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def summary(name: str, values: list[float]) -> str:
    data = np.array(values)
    return (
        f"| {name} | {len(data)} | {np.percentile(data, 50):.2f} | "
        f"{np.percentile(data, 95):.2f} | {data.max():.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--purchases", type=int, default=40)
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file")
    parser.add_argument("--timeout", type=float, default=120.0, help="per purchase, seconds")
    options = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="clm-live-bench-"))
    url = options.database_url or f"sqlite:///{folder / 'clm.sqlite'}"
    schema = None
    if url.startswith("postgresql"):  # a schema of its own, dropped at the end
        schema = f"clm_live_bench_{os.getpid()}"
        with create_engine(url).begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    db = Database.open(url)
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    with db.transaction() as session:
        workspace = create_workspace(session, f"live{os.getpid()}")
        write_key = issue_key(session, "write", workspace.id).key
        repo.set_provider(
            session, workspace.id, EmailProvider(port=controller.port, sender="s@bench.test")
        )
        repo.set_policy(
            session,
            workspace.id,
            Policy(quiet_hours=None, caps=[], marketing_requires_opt_in=False),
        )
    workspace_id = workspace.id
    pb.apply_playbook(
        db, workspace_id, pb.shipped_playbook("welcome").model_copy(update={"holdout": 0.0})
    )
    env = {
        **os.environ,
        "CLM_DATABASE_URL": url,
        "CLM_DATA_DIR": str(folder),
        "CLM_SECRET_KEY": SECRET,
        "CLM_ENV": "test",
    }
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start(["serve", "--port", str(port)], env, folder / "server.log")
    worker = start(["worker"], env, folder / "worker.log")
    to_stage: list[float] = []
    to_email: list[float] = []
    missed = 0
    try:
        with httpx.Client(base_url=base, auth=(write_key, ""), timeout=30) as client:
            if not wait_for(lambda: _health(client), 120, 0.2):
                raise SystemExit(f"server did not start: {(folder / 'server.log').read_text()}")
            for i in range(options.purchases):
                user, address = f"bench-{i}", f"bench-{i}@bench.test"
                client.post(
                    "/v1/identify",
                    json={"userId": user, "traits": {"email": address, "first_name": "B"}},
                ).raise_for_status()
                customer = wait_for(lambda u=user: customer_of(db, workspace_id, u), 30)
                time.sleep(1.0)  # the identify's own pass settles; then time the purchase alone
                response = client.post(
                    "/v1/track",
                    json={
                        "userId": user,
                        "event": "Order Completed",
                        "properties": {"order_id": f"o-{i}", "revenue": 10.0},
                    },
                )
                response.raise_for_status()
                acknowledged = time.monotonic()
                if not wait_for(lambda c=customer: converted(db, c), options.timeout):
                    missed += 1
                    continue
                to_stage.append(time.monotonic() - acknowledged)
                mailed = wait_for(lambda a=address: sink.arrived.get(a), options.timeout)
                if mailed is None:
                    missed += 1
                    continue
                to_email.append(mailed - acknowledged)
    finally:
        stop(worker)
        stop(server)
        controller.stop()
        db.dispose()
        if schema is not None:
            with create_engine(options.database_url).begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    load = os.getloadavg()
    print(f"database: {db.dialect}; purchases: {options.purchases}; missed: {missed}")
    print(f"load average (1/5/15 min) at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("| from /v1/track's 200 to | n | p50 s | p95 s | max s |")
    print("|---|---:|---:|---:|---:|")
    print(summary("stage stored (conversion)", to_stage))
    print(summary("welcome email at the SMTP sink", to_email))


def _health(client: httpx.Client) -> bool:
    try:
        return client.get("/health").status_code == 200
    except httpx.TransportError:
        return False


if __name__ == "__main__":
    main()
