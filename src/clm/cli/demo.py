"""``clm demo``: build the CDNOW workspace, say how to use it, serve it."""

from __future__ import annotations

import json
import shutil

from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from clm.cli._common import console
from clm.config import get_settings
from clm.demo import WORKSPACE, build_demo
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
    if not serve_api:
        return
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
        "Stop with Ctrl-C.",
        soft_wrap=True,  # commands stay on one line, to copy and paste
    )
    import uvicorn

    from clm.web import create_app

    uvicorn.run(create_app(db), host="127.0.0.1", port=port, log_level="warning")
