"""``clm demo``: build the CDNOW workspace, say how to use it, serve it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from clm.analytics.overview_readings import refresh_overview
from clm.cli._common import console
from clm.config import get_settings
from clm.demo import CDNOW_END, WORKSPACE, DemoSummary, build_demo
from clm.demo.engagement import Mailbox, setup_engagement
from clm.engage.delivery import drain_once
from clm.engage.playbooks import run_due
from clm.store.engine import Database


def run_demo(*, serve_api: bool, port: int, customers: int | None, fresh: bool) -> None:
    settings = get_settings()
    folder = settings.data_dir / "demo"
    if fresh and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder / 'clm.sqlite'}"
    db = Database.open(url)
    console.print(f"[bold]CLM demo[/bold]: building workspace '{WORKSPACE}' in {folder}")
    counts = TextColumn("{task.completed:,}/{task.total:,}")
    with Progress(
        TextColumn("{task.description}"), BarColumn(), counts, TimeElapsedColumn(),
        console=console, transient=True,
    ) as bar:  # fmt: skip
        tasks: dict[str, int] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(TaskID(tasks[stage]), completed=done)

        summary = build_demo(db, customers=customers, progress=report)
        # The overview's readings, stored now so its first page load does not read the log.
        report("overview", 0, 1)
        refresh_overview(db, summary.workspace_id)
        report("overview", 1, 1)
    keys_file = folder / "keys.json"
    if summary.secret_key:  # first build: keep the demo's keys where the next run finds them
        keys_file.write_text(
            json.dumps({"write_key": summary.write_key, "secret_key": summary.secret_key})
        )
        keys_file.chmod(0o600)
    keys = json.loads(keys_file.read_text()) if keys_file.exists() else {}
    console.print(
        f"{summary.customers:,} customers, {summary.purchases:,} CDNOW purchases, "
        f"{summary.touchpoints:,} synthetic touchpoints, {summary.predictions:,} customers scored."
    )
    if summary.shift_days:
        console.print(
            f"Dates shifted {summary.shift_days:,} days so the log (which ended {CDNOW_END}) "
            f"ends on {summary.last_day}: stages, health and live events all read today as now.",
            soft_wrap=True,
        )
    mailbox = Mailbox(folder / "mailbox").start()
    try:
        _engage(db, url, folder, summary, mailbox, serve_api, port, keys)
    finally:
        mailbox.stop()


def _engage(
    db: Database,
    url: str,
    folder: Path,
    summary: DemoSummary,
    mailbox: Mailbox,
    serve_api: bool,
    port: int,
    keys: dict[str, str],
) -> None:
    """Welcome playbook, NPS survey and referral program, delivered to the demo's mailbox:
    by a worker process while the API is served, or once, right here, with ``--no-serve``."""
    with _environment(
        CLM_QUEUE_URL=str(folder / "queue.sqlite"),
        CLM_PUBLIC_URL=get_settings().served_public_url("127.0.0.1", port),
        CLM_LIVE_NUDGE=os.environ.get("CLM_LIVE_NUDGE", "true"),  # live events wake the worker
    ):
        _engage_in(db, url, summary, mailbox, serve_api, port, keys)


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Settings for the demo's worker and server, restored after (tests run commands in-process)."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()


def _engage_in(
    db: Database,
    url: str,
    summary: DemoSummary,
    mailbox: Mailbox,
    serve_api: bool,
    port: int,
    keys: dict[str, str],
) -> None:
    workspace_id = summary.workspace_id
    engaged = setup_engagement(db, workspace_id, mailbox, log_end=summary.last_day)
    console.print(
        f"Engagement: welcome playbook (replaying the last {engaged.welcome_replayed} stage "
        f"changes), NPS survey to {engaged.nps_sent} recent buyers, referral program "
        f"({engaged.referral_codes:,} codes for loyal customers); SMTP sink on "
        f"127.0.0.1:{mailbox.port}."
    )
    if not serve_api:
        ticked = run_due(db, workspace_id)
        drain_once(db)
        console.print(
            f"Mailbox: {mailbox.received:,} messages in {mailbox.folder} "
            f"({ticked.enrolled} journeys started, {ticked.sends} welcome sends decided).",
            soft_wrap=True,
        )
        return
    worker = subprocess.Popen(  # noqa: S603 (this interpreter, our own module)
        [sys.executable, "-c", f"from clm.worker import run_worker; run_worker({url!r})"],
        env=dict(os.environ),
    )
    try:
        _serve(db, url, port, keys, mailbox)
    finally:
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        console.print(f"Mailbox: {mailbox.received:,} messages in {mailbox.folder}")


def _serve(db: Database, url: str, port: int, keys: dict[str, str], mailbox: Mailbox) -> None:
    base = f"http://127.0.0.1:{port}"
    secret = keys.get("secret_key", "<see keys.json>")
    console.print(
        f"\nDashboard:  {base}/  (paste the secret key below)\n"
        f"API:        {base}/docs\n"
        f"Secret key: {secret}\n"
        f"Customers:  curl -H 'Authorization: Bearer {secret}' {base}/api/v1/customers\n"
        f"Send:       curl -u '{keys.get('write_key', '')}:' {base}/v1/track "
        '-H \'Content-Type: application/json\' -d \'{"userId": "00001", "event": "Hello"}\'\n'
        f"CLI:        CLM_DATABASE_URL={url} clm customer show 00001 --by user_id -w {WORKSPACE}\n"
        f"Mail:       {mailbox.folder}/*.eml  (the worker delivers in the background; "
        f"CLM_DATABASE_URL={url} clm playbook report welcome -w {WORKSPACE})\n"
        "Stop with Ctrl-C.",
        soft_wrap=True,  # commands stay on one line, to copy and paste
    )
    import uvicorn

    from clm.web import create_app

    uvicorn.run(create_app(db), host="127.0.0.1", port=port, log_level="warning")
