"""An acknowledged event survives the server being killed: restart, and it is there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from clm.store.engine import Database
from tests.conftest import Tenant, free_port


def start_server(url: str, port: int, data_dir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CLM_DATABASE_URL": url, "CLM_DATA_DIR": str(data_dir)}
    log = data_dir / "server.log"
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "clm", "serve", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=sink,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    process.wait()
    raise RuntimeError(f"server did not start: {log.read_text()}")


def test_acknowledged_events_survive_a_kill(db: Database, tenant: Tenant, tmp_path: Path) -> None:
    url = db.engine.url.render_as_string(hide_password=False)
    port = free_port()
    server = start_server(url, port, tmp_path)
    batch = {
        "batch": [
            {
                "type": "track",
                "userId": f"u{i % 7}",
                "event": "Order Completed",
                "messageId": f"m-{i}",
                "properties": {"revenue": i},
            }
            for i in range(100)
        ]
    }
    try:
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/batch", json=batch, auth=(tenant.write_key, "")
        )
        assert response.status_code == 200
        assert response.json()["stored"] == 100
    finally:
        server.send_signal(signal.SIGKILL)  # no shutdown hook, no flush: only the commit counts
        server.wait(timeout=10)
    server = start_server(url, port, tmp_path)
    try:
        seen: list[str] = []
        after = None
        while True:
            params = {"limit": 1000} if after is None else {"limit": 1000, "after": after}
            page = httpx.get(
                f"http://127.0.0.1:{port}/api/v1/events",
                params=params,
                headers={"Authorization": f"Bearer {tenant.secret_key}"},
            ).json()
            seen += [e["message_id"] for e in page["items"]]
            after = page["next_after"]
            if after is None:
                break
        assert sorted(seen) == sorted(f"m-{i}" for i in range(100))
    finally:
        server.terminate()
        server.wait(timeout=10)
