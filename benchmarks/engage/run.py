"""Engagement benchmark: playbook enrolment + step evaluation, and email delivery.

    .venv/bin/python benchmarks/engage/run.py --customers 1000000 --emails 5000

1. ``N`` customers each get a ``lifecycle_stage_changed`` (→ conversion) event; a playbook
   triggered by it sends a welcome email (guardrails, Jinja2 rendering, outbox) and waits.
   Timed: enrolment (``enroll_from_events``) and step evaluation (``advance``). Goal: ≥ 5,000
   customers/s end to end.
2. ``M`` outbox emails are delivered by ``deliver_due`` to a local SMTP sink (aiosmtpd) on
   loopback. Goal: ≥ 500 messages/s.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert

os.environ.setdefault("CLM_SECRET_KEY", "benchmark-secret-0123456789abcdef")
os.environ.setdefault("CLM_ENV", "test")
os.environ.setdefault("CLM_ENGAGE_NOTIFY", "false")
os.environ.setdefault("CLM_PUBLIC_URL", "http://clm.local")

from clm.config import get_settings
from clm.engage import repository as repo
from clm.engage.delivery.deliver import deliver_due
from clm.engage.playbooks.journey_steps import advance
from clm.engage.playbooks.journeys import enroll_from_events
from clm.engage.playbooks.service import apply_playbook, parse_playbook
from clm.engage.schemas import EmailProvider, Policy
from clm.store import workspaces as ws
from clm.store.bulk import insert_events
from clm.store.engine import Database
from clm.store.models import Customer, EngageConsent, Identity

PLAYBOOK = {
    "name": "welcome",
    "trigger": {"type": "stage_changed", "to": "conversion"},
    "steps": [
        {"id": "hello", "type": "send", "category": "welcome",
         "content": {"subject": "Welcome, {{ first_name }}!",
                     "text": "Hi {{ first_name }}, thanks for your first order.",
                     "html": "<p>Hi {{ first_name }}, thanks for your first order.</p>"}},
        {"id": "pause", "type": "wait", "days": 3},
    ],
}  # fmt: skip
NOW = datetime(2024, 6, 12, 12, 0, tzinfo=UTC)


def populate(db: Database, workspace_id: int, n: int) -> None:
    """Customers, identities, marketing consent and one stage change each, in bulk."""
    chunk = 50_000
    for start in range(0, n, chunk):
        ids = range(start + 1, min(n, start + chunk) + 1)
        with db.transaction() as session:
            session.execute(
                insert(Customer),
                [
                    {
                        "id": i,
                        "workspace_id": workspace_id,
                        "user_id": f"u{i}",
                        "email": f"u{i}@example.com",
                        "traits": {"first_name": f"Cust{i}"},
                        "created_at": NOW,
                    }
                    for i in ids
                ],
            )
            session.execute(
                insert(Identity),
                [
                    {
                        "id": i,
                        "workspace_id": workspace_id,
                        "kind": "user_id",
                        "value": f"u{i}",
                        "customer_id": i,
                        "first_seen_at": NOW,
                    }
                    for i in ids
                ],
            )
            session.execute(
                insert(EngageConsent),
                [
                    {
                        "workspace_id": workspace_id,
                        "customer_id": i,
                        "channel": "email",
                        "purpose": "marketing",
                        "granted": True,
                        "source": "bench",
                        "updated_at": NOW,
                    }
                    for i in ids
                ],
            )
            insert_events(session.connection(), [
                (workspace_id, i, f"lc-{i}", "track", "lifecycle_stage_changed", f"u{i}", None,
                 NOW, int(NOW.timestamp()), NOW, None, None, "system", None, None, None, None,
                 {"from_stage": "acquisition", "to_stage": "conversion"}, {}, None)
                for i in ids])  # fmt: skip


def bench_playbooks(db: Database, workspace_id: int, n: int) -> dict[str, float]:
    apply_playbook(db, workspace_id, parse_playbook(PLAYBOOK))
    t0, c0 = time.perf_counter(), time.process_time()
    enrolled = enroll_from_events(db, workspace_id, NOW)
    t1, c1 = time.perf_counter(), time.process_time()
    steps, sends, blocked = advance(db, workspace_id, NOW)
    t2, c2 = time.perf_counter(), time.process_time()
    assert enrolled == n and sends == n and blocked == 0, (enrolled, sends, blocked)
    return {"customers": n, "enrol_s": t1 - t0, "advance_s": t2 - t1,
            "enrol_per_s": n / (t1 - t0), "advance_per_s": n / (t2 - t1),
            "total_per_s": n / (t2 - t0), "steps": steps,
            "enrol_cpu": c1 - c0, "advance_cpu": c2 - c1,
            "cpu_per_s": n / (c2 - c0)}  # fmt: skip


def bench_email(db: Database, workspace_id: int, m: int) -> dict[str, float]:
    from aiosmtpd.controller import Controller

    class Sink:
        count = 0

        async def handle_DATA(  # noqa: N802 - aiosmtpd hook name
            self, server: object, session: object, envelope: object
        ) -> str:
            Sink.count += 1
            return "250 OK"

    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with db.transaction() as session:
            repo.set_provider(session, workspace_id, EmailProvider(host="127.0.0.1", port=port))
        t0, c0 = time.perf_counter(), time.process_time()
        sent = 0
        while sent < m:
            report = deliver_due(db, now=NOW, limit=500)
            if report.claimed == 0:
                break
            sent += report.sent
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        controller.stop()
    return {"emails": sent, "received": Sink.count, "seconds": elapsed, "per_s": sent / elapsed,
            "cpu": cpu, "cpu_per_s": sent / cpu}  # fmt: skip


def load() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine skews wall times."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--emails", type=int, default=5_000)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("CLM_DATA_DIR", tmp)
        get_settings.cache_clear()
        db = Database.open(args.database_url or f"sqlite:///{Path(tmp) / 'bench.sqlite'}")
        with db.transaction() as session:
            workspace_id = ws.create_workspace(session, f"bench-{int(time.time())}").id
            repo.set_policy(session, workspace_id, Policy(quiet_hours=None, caps=[]))
        t = time.perf_counter()
        populate(db, workspace_id, args.customers)
        print(f"populated {args.customers:,} customers in {time.perf_counter() - t:.1f}s",
              file=sys.stderr)  # fmt: skip
        print(f"load average before: {load()}")
        pb = bench_playbooks(db, workspace_id, args.customers)
        print(f"playbook  {db.dialect}: {pb['customers']:,} customers: enrol {pb['enrol_s']:.1f}s "
              f"({pb['enrol_per_s']:,.0f}/s), evaluate+send {pb['advance_s']:.1f}s "
              f"({pb['advance_per_s']:,.0f}/s), end to end {pb['total_per_s']:,.0f}/s "
              f"(goal 5,000/s); CPU {pb['enrol_cpu']:.1f}s + {pb['advance_cpu']:.1f}s = "
              f"{pb['cpu_per_s']:,.0f} customers per CPU-second")  # fmt: skip
        email = bench_email(db, workspace_id, args.emails)
        print(f"email     {email['emails']:,} delivered to SMTP on loopback in "
              f"{email['seconds']:.1f}s: {email['per_s']:,.0f}/s (goal 500/s); CPU "
              f"{email['cpu']:.1f}s = {email['cpu_per_s']:,.0f} messages per CPU-second "
              "(sink included: it runs in this process)")  # fmt: skip
        print(f"load average after: {load()}")
        db.dispose()


if __name__ == "__main__":
    main()
