"""Two gateways on one database (issue 16, item 12): ``clm serve`` twice, as two machines would
run it, each with its own ingestion writer, under concurrent load whose people show up on both.

What must hold afterwards, checked in the database against what was sent: every message stored
exactly once (the same message sent to both gateways too), one live customer per person (no
duplicates), every identifier of a person on that customer (no lost merge), and every event
reaching its person through its identity.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from clm.store.engine import Database
from tests.conftest import Tenant, free_port

PEOPLE = 120


def person_messages(p: int) -> list[dict[str, Any]]:
    """Two devices browse anonymously; the person signs in on each, so the two anonymous
    customers must end up merged into the signed-in one, whichever gateway sees what first."""
    email = {"email": f"person{p}@example.com"}
    return [
        {"type": "page", "anonymousId": f"a-{p}", "messageId": f"p{p}-1", "name": "Home"},
        {"type": "track", "anonymousId": f"b-{p}", "messageId": f"p{p}-2", "event": "Viewed"},
        {"type": "identify", "userId": f"u-{p}", "anonymousId": f"a-{p}",
         "messageId": f"p{p}-3", "traits": email},
        {"type": "identify", "userId": f"u-{p}", "anonymousId": f"b-{p}",
         "messageId": f"p{p}-4", "traits": {"plan": "pro"}},
        {"type": "track", "userId": f"u-{p}", "messageId": f"p{p}-5", "event": "Order Completed",
         "properties": {"revenue": 10 + p}},
        {"type": "identify", "anonymousId": f"c-{p}", "messageId": f"p{p}-6", "traits": email},
    ]  # fmt: skip


def start_gateway(url: str, port: int, data_dir: Path) -> subprocess.Popen[bytes]:
    """``clm serve`` in a process of its own (with its own ingestion writer), as on a machine
    of its own: only the database URL is shared."""
    env = {**os.environ, "CLM_DATABASE_URL": url, "CLM_DATA_DIR": str(data_dir)}
    with (data_dir / "server.log").open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "clm", "serve", "--port", str(port)],
            env=env, stdout=sink, stderr=sink,
        )  # fmt: skip


def wait_until_up(base: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120  # start-up is slow on a busy 2-core machine
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"gateway did not start: {log.read_text()}")


@pytest.mark.slow
def test_two_gateways_share_people_without_duplicates_or_lost_merges(
    db: Database, tenant: Tenant, tmp_path: Path
) -> None:
    url = db.engine.url.render_as_string(hide_password=False)
    gateways = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        port = free_port()
        gateways.append((f"http://127.0.0.1:{port}", start_gateway(url, port, tmp_path / name)))
    rng = random.Random(16)
    sent = [m for p in range(PEOPLE) for m in person_messages(p)]
    rng.shuffle(sent)
    batches = [sent[i : i + 12] for i in range(0, len(sent), 12)]
    # A tenth of the batches again, to the other gateway (an SDK retrying elsewhere).
    posts = [(i % 2, b) for i, b in enumerate(batches)]
    posts += [
        ((i + 1) % 2, batches[i]) for i in rng.sample(range(len(batches)), len(batches) // 10)
    ]
    rng.shuffle(posts)

    def post(item: tuple[int, list[dict[str, Any]]]) -> int:
        gateway, batch = item
        response = httpx.post(f"{gateways[gateway][0]}/v1/batch", json={"batch": batch},
                              auth=(tenant.write_key, ""), timeout=60)  # fmt: skip
        assert response.status_code == 200, response.text
        return int(response.json()["stored"])

    try:
        for (base, server), name in zip(gateways, ("a", "b"), strict=True):
            wait_until_up(base, server, tmp_path / name / "server.log")
        with ThreadPoolExecutor(8) as pool:
            stored = sum(pool.map(post, posts))
    finally:
        for _, server in gateways:
            server.terminate()
            server.wait(timeout=20)

    assert stored == len(sent)  # each message acknowledged as stored once, over both gateways
    with db.session() as session:
        rows = session.execute(text("SELECT message_id, identity_id FROM events")).all()
        identities = {
            (kind, value): customer
            for kind, value, customer in session.execute(
                text("SELECT kind, value, customer_id FROM identities")
            )
        }
        merged = dict(session.execute(text("SELECT id, merged_into_id FROM customers")).all())
        by_identity = dict(session.execute(text("SELECT id, customer_id FROM identities")).all())
        user_of = dict(session.execute(text("SELECT id, user_id FROM customers")).all())
    assert sorted(m for m, _ in rows) == sorted(m["messageId"] for m in sent)  # none lost, once
    live = {c for c, into in merged.items() if into is None}
    assert len(live) == PEOPLE  # no duplicate customers
    for p in range(PEOPLE):
        keys = [("user_id", f"u-{p}"), ("anonymous_id", f"a-{p}"), ("anonymous_id", f"b-{p}"),
                ("anonymous_id", f"c-{p}"), ("email", f"person{p}@example.com")]  # fmt: skip
        owners = {identities[key] for key in keys}
        assert len(owners) == 1, (p, owners)  # every identifier on one customer: no lost merge
        [owner] = owners
        assert owner in live and user_of[owner] == f"u-{p}"
    for message_id, identity_id in rows:
        p = int(message_id[1:].split("-")[0])
        assert by_identity[identity_id] == identities[("user_id", f"u-{p}")], message_id
