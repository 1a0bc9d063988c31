"""Two ``clm worker`` processes on one database, fed by a real ``clm serve`` through the Segment
SDK: every new purchaser gets one welcome, one journey and the stage history a full
recompute gives, even when one worker is killed in the middle of the burst.

The workers share one huey queue (``CLM_QUEUE_URL``) as two hosts would share Redis: each
nudge's pass runs on whichever worker takes it, both run the minute sweeps, and the passes of
one workspace wait for each other (``clm.store.locks``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from segment.analytics import Client
from sqlalchemy import func, select

from clm.engage.eventlog import PREFIX
from clm.engage.playbooks.schedule import run_due
from clm.engage.schemas import EmailProvider
from clm.lifecycle import get_stage_model, reference_history, stage_at
from clm.lifecycle.engines import export_events
from clm.lifecycle.reference import LogEvent
from clm.lifecycle.service import compute_transitions
from clm.store.engine import Database
from clm.store.locks import one_at_a_time
from clm.store.models import EngageJourney, EngageMessage, Event, StageTransition
from clm.store.own_events import STAGE_CHANGED
from tests.conftest import Tenant, free_port
from tests.e2e.test_live import customer_of, live_env, live_shop, start_server, stop, wait_for
from tests.engage.conftest import SmtpSink

pytestmark = pytest.mark.slow
__all__ = ["live_shop"]  # the fixture, imported for the tests below

CUSTOMERS = 40
BATCHES = 4
LEASE_SECONDS = 4  # a killed worker's claimed messages go again this soon, not after a minute
SETTLE = 150.0  # generous: two workers and a server share two cores with other test runs


def start_worker(data_dir: Path, url: str, name: str) -> subprocess.Popen[bytes]:
    """A ``clm worker`` as an operator runs it, logging to ``<name>.log``."""
    env = {**live_env(data_dir, url), "CLM_ENGAGE_LEASE_SECONDS": str(LEASE_SECONDS)}
    with (data_dir / f"{name}.log").open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "clm", "worker", "--workers", "2"],
            env=env,
            stdout=sink,
            stderr=sink,
        )


def _logs(data_dir: Path) -> str:
    return "\n".join(
        f"--- {path.name}\n{path.read_text(errors='replace')[-6000:]}"
        for path in sorted(data_dir.glob("*.log"))
    )


def _user(index: int) -> str:
    return f"buyer{index:03d}"


def _address(user: str) -> str:
    return f"{user}@example.test"


def send_burst(port: int, tenant: Tenant, users: list[str], between: Callable[[int], None]) -> None:
    """Each user identifies then completes an order, ``BATCHES`` batches through the SDK;
    ``between(batch)`` runs after each batch has been accepted by the server."""
    errors: list[object] = []
    client = Client(
        tenant.write_key,
        host=f"http://127.0.0.1:{port}",
        on_error=lambda error, batch: errors.append(error),
        max_retries=3,
        upload_size=50,
    )
    now = datetime.now(UTC)
    size = -(-len(users) // BATCHES)
    try:
        for batch in range(BATCHES):
            for user in users[batch * size : (batch + 1) * size]:
                client.identify(
                    user,
                    {"email": _address(user), "first_name": user.title()},
                    timestamp=now - timedelta(seconds=2),
                    message_id=f"id-{user}",
                )
                client.track(
                    user,
                    "Order Completed",
                    {"order_id": f"o-{user}", "revenue": 30.0},
                    timestamp=now - timedelta(seconds=1),
                    message_id=f"order-{user}",
                )
            client.flush()
            assert errors == []
            between(batch)
    finally:
        client.shutdown()


def _converted(db: Database, workspace_id: int, users: list[str]) -> bool:
    for user in users:
        customer = customer_of(db, workspace_id, user)
        if customer is None:
            return False
        found = stage_at(db, workspace_id, customer)
        if found is None or found.stage != "conversion":
            return False
    return True


def _outbox_settled(db: Database, workspace_id: int) -> bool:
    """Every message decided is out of the worker's hands (sent, blocked or dead)."""
    with db.session() as session:
        open_ = session.scalar(
            select(func.count()).where(
                EngageMessage.workspace_id == workspace_id,
                EngageMessage.status.in_(("pending", "held", "sending")),
            )
        )
    return not open_


def wait_until_done(
    db: Database, tenant: Tenant, users: list[str], sink: SmtpSink, data_dir: Path
) -> None:
    converted = wait_for(lambda: _converted(db, tenant.id, users), SETTLE)
    assert converted, _logs(data_dir)
    wanted = {_address(u) for u in users}
    welcomed = wait_for(lambda: wanted <= {m["To"] for m in sink.messages}, SETTLE)
    assert welcomed, f"{len(wanted - {m['To'] for m in sink.messages})} without a welcome\n" + (
        _logs(data_dir)
    )
    assert wait_for(lambda: _outbox_settled(db, tenant.id), SETTLE), _logs(data_dir)


def _stored_history(db: Database, definition_id: int) -> list[tuple[Any, ...]]:
    with db.session() as session:
        rows = session.execute(
            select(
                StageTransition.customer_id,
                StageTransition.ts,
                StageTransition.from_stage,
                StageTransition.to_stage,
                StageTransition.rule,
                StageTransition.cause_message_id,
            ).where(StageTransition.definition_id == definition_id)
        )
        return sorted(tuple(r) for r in rows)


def _log_events(db: Database, workspace_id: int) -> list[LogEvent]:
    """The log as the lifecycle reads it (its own stage and health announcements left out)."""
    return [
        LogEvent(
            customer_id=r["customer_id"], ts=r["ts"], message_id=r["message_id"], name=r["name"],
            type=r["type"], channel=r["channel"], campaign=r["campaign"], source=r["source"],
            revenue=r["revenue"], properties=json.loads(r["properties"] or "{}"),
        )
        for r in export_events(db, workspace_id).to_pylist()
    ]  # fmt: skip


def assert_consistent(db: Database, tenant: Tenant, users: list[str]) -> None:
    """One journey per customer and playbook; each stored stage history equals a recompute
    from the whole log by the pure-Python reference and by the SQL engine (the workers' ticks
    use incremental DuckDB updates); each stage change announced once."""
    customers = {customer_of(db, tenant.id, u) for u in users}
    assert None not in customers and len(customers) == len(users)
    with db.session() as session:
        journeys = Counter(
            (int(c), str(p))
            for c, p in session.execute(
                select(EngageJourney.customer_id, EngageJourney.playbook_name).where(
                    EngageJourney.workspace_id == tenant.id
                )
            )
        )
        announced = session.execute(
            select(Event.message_id, Event.ts, Event.properties).where(
                Event.workspace_id == tenant.id, Event.name == STAGE_CHANGED
            )
        ).all()
    assert {c for c, _ in journeys} == customers, "a purchaser was never enrolled"
    assert set(journeys.values()) == {1}, [k for k, n in journeys.items() if n > 1]

    info, model = get_stage_model(db, tenant.id)
    stored = _stored_history(db, info.id)
    reference = sorted(
        (t.customer_id, t.ts, t.from_stage, t.to_stage, t.rule, t.cause_message_id)
        for t in reference_history(model, _log_events(db, tenant.id))
    )
    assert stored == reference
    by_sql = sorted(
        (r["customer_id"], r["ts"], r["from_stage"], r["to_stage"], r["rule"],
         r["cause_message_id"])
        for r in compute_transitions(db, tenant.id, model, "sql").to_pylist()
    )  # fmt: skip
    assert stored == by_sql

    # Each change announced once: by message id, and by what it says.
    assert len({m for m, _, _ in announced}) == len(announced)
    told = Counter((p["customer_id"], ts, p["to_stage"]) for _, ts, p in announced)
    assert set(told.values()) == {1}, [k for k, n in told.items() if n > 1]
    now = datetime.now(UTC).timestamp()
    assert set(told) == {(c, ts, to) for c, ts, _, to, _, _ in stored if ts <= now}


def _sent_without_event(db: Database, workspace_id: int) -> set[str]:
    """The addresses of sent messages whose "Email Sent" event is not in the log."""
    with db.session() as session:
        sent = {
            str(key): str(to)
            for key, to in session.execute(
                select(EngageMessage.idempotency_key, EngageMessage.address).where(
                    EngageMessage.workspace_id == workspace_id, EngageMessage.status == "sent"
                )
            )
        }
        logged = set(
            session.scalars(
                select(Event.message_id).where(
                    Event.workspace_id == workspace_id, Event.name == "Email Sent"
                )
            )
        )
    assert {m.removeprefix(f"{PREFIX}sent-") for m in logged} <= set(sent)
    return {to for key, to in sent.items() if f"{PREFIX}sent-{key}" not in logged}


def _welcomes(sink: SmtpSink) -> Counter[str]:
    return Counter(str(m["To"]) for m in sink.messages)


@pytest.fixture
def two_workers(
    db: Database, live_shop: Tenant, tmp_path: Path
) -> Iterator[tuple[int, list[subprocess.Popen[bytes]]]]:
    """``clm serve`` on a free port and two ``clm worker`` processes, stopped afterwards."""
    url = db.engine.url.render_as_string(hide_password=False)
    port = free_port()
    server = start_server(tmp_path, url, port)
    workers = [start_worker(tmp_path, url, "worker-a"), start_worker(tmp_path, url, "worker-b")]
    try:
        yield port, workers
    finally:
        for worker in workers:
            stop(worker)
        stop(server)


def test_two_workers_welcome_each_purchaser_once(
    db: Database,
    live_shop: Tenant,
    smtp_sink: SmtpSink,
    two_workers: tuple[int, list[subprocess.Popen[bytes]]],
    tmp_path: Path,
) -> None:
    """A burst of purchasers while two workers run, and the engagement tick asked for on
    demand meanwhile (``POST /api/v1/engage/tick`` and ``clm playbook tick`` run it beside the
    workers): one welcome email and one journey each, stage histories equal to a recompute."""
    port, workers = two_workers
    users = [_user(i) for i in range(CUSTOMERS)]
    done = threading.Event()
    failures: list[BaseException] = []

    def on_demand() -> None:
        while not done.wait(0.05):
            try:
                run_due(db, live_shop.id)
            except BaseException as exc:
                failures.append(exc)

    ticking = threading.Thread(target=on_demand, daemon=True)
    ticking.start()
    try:
        send_burst(port, live_shop, users, lambda batch: None)
        wait_until_done(db, live_shop, users, smtp_sink, tmp_path)
    finally:
        done.set()
        ticking.join(60)
    assert failures == []
    for worker in workers:
        stop(worker)  # nothing left in flight when the mail is counted
    assert _welcomes(smtp_sink) == Counter({_address(u): 1 for u in users}), _logs(tmp_path)
    assert_consistent(db, live_shop, users)


def _socket_owner(local_port: int, pids: list[int]) -> int | None:
    """Which of ``pids`` holds the loopback TCP socket bound to ``local_port``."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == local_port:
            inodes.add(f"socket:[{fields[9]}]")
    for pid in pids:
        try:
            links = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        except OSError:
            continue
        if links & inodes:
            return pid
    return None


class KillMidSmtp:
    """The sink's DATA handler, which SIGKILLs the sending worker on the ``at``-th message: after
    the message is in the sink, before the worker hears "250" (the worst moment for it)."""

    def __init__(self, sink: SmtpSink, workers: list[subprocess.Popen[bytes]], at: int) -> None:
        self.sink, self.workers, self.at = sink, workers, at
        self.accept = sink.collector.handle_DATA
        self.killed: subprocess.Popen[bytes] | None = None
        self.recipient: str | None = None
        self.before: set[str] = set()  # who had mail in the sink at the kill
        self.done = threading.Event()
        sink.collector.handle_DATA = self.handle_DATA  # type: ignore[method-assign]

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer: str = await self.accept(server, session, envelope)
        if not self.done.is_set() and len(self.sink.messages) >= self.at:
            pid = _socket_owner(int(session.peer[1]), [w.pid for w in self.workers])
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                self.killed = next(w for w in self.workers if w.pid == pid)
                self.recipient = envelope.rcpt_tos[0]
                self.before = {str(m["To"]) for m in self.sink.messages}
                self.done.set()
        return answer


def _taken_within(db: Database, name: str, workspace_id: int, timeout: float) -> bool:
    """Whether this process gets the lock within ``timeout`` seconds."""
    granted = threading.Event()

    def take() -> None:
        with one_at_a_time(db, name, workspace_id):
            granted.set()

    threading.Thread(target=take, daemon=True).start()
    return granted.wait(timeout)


def test_a_worker_killed_mid_smtp_leaves_the_job_to_the_other(
    db: Database,
    live_shop: Tenant,
    smtp_sink: SmtpSink,
    two_workers: tuple[int, list[subprocess.Popen[bytes]]],
    tmp_path: Path,
) -> None:
    """One worker is SIGKILLed while it delivers, after the sink took a message but before it
    answered 250; the other finishes the burst.

    Every purchaser still gets the welcome, some twice: the outbox is at-least-once. A message
    is marked sent only once its server accepted it (``SentRecorder``), so the one the killed
    worker was sending stays ``sending``; its lease runs out and the survivor sends it again,
    under the same idempotency key (the same Message-ID: a receiver that drops repeated ids
    sees it once). That message is certainly sent twice; the killed worker's other open SMTP
    connections may each have had one more accepted and not yet recorded, so at most
    ``connections`` per delivery running in that process (``--workers 2``: two) go twice, and
    nothing goes three times. Enrolment, stages and their announcements are exactly once.

    Not repaired: the messages the killed worker had already recorded as sent keep no
    "Email Sent" event (it writes them after the whole batch; nobody does it for a dead
    worker), so only that many can lack one: mail that was in the sink at the kill.
    """
    port, workers = two_workers
    users = [_user(i) for i in range(CUSTOMERS)]
    per_batch = CUSTOMERS // BATCHES
    killer = KillMidSmtp(smtp_sink, workers, at=per_batch + 2)

    def between(batch: int) -> None:
        if batch == 0:  # the first batch welcomed before the second arrives
            assert wait_for(lambda: len(smtp_sink.messages) >= per_batch, SETTLE), _logs(tmp_path)
        if batch == 1:  # the kill is in the middle of the burst: half of it comes after
            assert killer.done.wait(SETTLE), _logs(tmp_path)

    send_burst(port, live_shop, users, between)
    assert killer.killed is not None and killer.recipient is not None
    assert killer.killed.wait(10) == -signal.SIGKILL
    [survivor] = [w for w in workers if w is not killer.killed]
    wait_until_done(db, live_shop, users, smtp_sink, tmp_path)
    assert survivor.poll() is None, _logs(tmp_path)
    for name in ("live", "lifecycle", "engage"):
        assert _taken_within(db, name, live_shop.id, SETTLE), f"{name} lock stuck"
    stop(survivor)

    welcomes = _welcomes(smtp_sink)
    assert set(welcomes) == {_address(u) for u in users}, "a purchaser got no welcome"
    assert welcomes[killer.recipient] == 2, "the message in flight at the kill was lost"
    twice = {to for to, n in welcomes.items() if n > 1}
    connections = EmailProvider.model_fields["connections"].default
    assert max(welcomes.values()) == 2 and len(twice) <= 2 * connections, welcomes
    ids = {to: {str(m["Message-ID"]) for m in smtp_sink.messages if m["To"] == to} for to in twice}
    assert all(len(found) == 1 for found in ids.values()), ids
    with db.session() as session:
        rows = Counter(
            session.scalars(
                select(EngageMessage.customer_id).where(EngageMessage.workspace_id == live_shop.id)
            )
        )
    assert set(rows.values()) == {1}, "one outbox row per purchaser: the duplicate is a re-send"
    assert _sent_without_event(db, live_shop.id) <= killer.before  # see the docstring
    assert_consistent(db, live_shop, users)


def test_a_worker_started_during_a_long_pass_takes_over_after_sigterm(
    db: Database,
    live_shop: Tenant,
    smtp_sink: SmtpSink,
    tmp_path: Path,
) -> None:
    """A slow mail server makes worker A's passes long (a pass holds the workspace's "live"
    lock while it delivers). Worker B starts meanwhile: its start-up passes wait for the lock
    instead of failing. A gets SIGTERM mid-delivery, as systemd or Docker stop it: it finishes
    its running tasks and exits (huey's own SIGTERM abandoned them, and the messages already
    marked sent never got their "Email Sent" events); B alone handles the rest of the burst.
    """
    url = db.engine.url.render_as_string(hide_password=False)
    port = free_port()
    smtp_sink.collector.delay = 1.0  # seconds before each "250"
    users = [_user(i) for i in range(CUSTOMERS)]
    server = start_server(tmp_path, url, port)
    first = start_worker(tmp_path, url, "worker-a")
    second: subprocess.Popen[bytes] | None = None
    try:

        def between(batch: int) -> None:
            nonlocal second
            if batch != 0:
                return
            # A is delivering, slowly: B starts, then A is told to stop at once.
            assert wait_for(lambda: len(smtp_sink.messages) >= 2, SETTLE), _logs(tmp_path)
            second = start_worker(tmp_path, url, "worker-b")
            first.send_signal(signal.SIGTERM)
            try:
                first.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pytest.fail("worker A did not stop after SIGTERM\n" + _logs(tmp_path))

        send_burst(port, live_shop, users, between)
        assert second is not None
        smtp_sink.collector.delay = 0.0
        wait_until_done(db, live_shop, users, smtp_sink, tmp_path)
        assert second.poll() is None, _logs(tmp_path)
        for name in ("live", "lifecycle", "engage"):
            assert _taken_within(db, name, live_shop.id, SETTLE), f"{name} lock stuck"
    finally:
        for worker in (first, second):
            if worker is not None:
                stop(worker)
        stop(server)
    welcomes = _welcomes(smtp_sink)
    assert set(welcomes) == {_address(u) for u in users}, "a purchaser got no welcome"
    assert max(welcomes.values()) == 1, "SIGTERM finishes the delivery: nothing goes twice"
    assert _sent_without_event(db, live_shop.id) == set(), "SIGTERM lost the sent events"
    assert_consistent(db, live_shop, users)
