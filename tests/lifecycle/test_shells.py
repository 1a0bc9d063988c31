"""The CLI commands and HTTP endpoints: thin shells over the Python API."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from clm.api.app import create_app
from clm.api.lifecycle import router
from clm.cli.lifecycle import app
from clm.ingest.service import ingest
from clm.lifecycle.loader import shipped_model_text
from clm.lifecycle.preview import preview_stage_model
from clm.store.engine import Database
from clm.store.workspaces import issue_key
from tests.lifecycle.logs import DAY, message, new_workspace

LOG = [
    message("a", 0, "a1", kind="identify"),
    message("a", DAY, "a2", "Order Completed", revenue=3),
]


def test_cli_validate_preview_apply_run_tick(sqlite_db: Database, tmp_path: Path) -> None:
    workspace_id = new_workspace(sqlite_db)
    ingest(sqlite_db, workspace_id, LOG)
    url = ["--database-url", str(sqlite_db.engine.url), "--workspace", "acme"]
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(shipped_model_text("four_stage"))
    bad.write_text(shipped_model_text("four_stage").replace("purchase_count >= 1", "purchases"))
    runner = CliRunner()
    result = runner.invoke(app, ["stages", "validate", str(bad)])
    # line 12 of four_stage.yaml is the purchase stage's rule
    assert result.exit_code == 1
    assert "line 12: unknown feature 'purchases'" in " ".join(result.output.split())
    result = runner.invoke(app, ["stages", "validate", str(good), "--format", "json"])
    assert json.loads(result.output)["stages"][0] == "awareness"
    result = runner.invoke(app, ["stages", "preview", str(good), *url, "--format", "json"])
    assert json.loads(result.stdout)["counts"] == {
        "awareness": 0,
        "consideration": 0,
        "purchase": 1,
        "loyalty": 0,
    }
    result = runner.invoke(app, ["stages", "apply", str(good), *url, "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["run"]["transitions"] == 2  # consideration, purchase
    result = runner.invoke(app, ["lifecycle", "tick", *url, "--format", "json"])
    assert json.loads(result.output)["mode"] == "tick"
    # health on the database and on DuckDB: the same stored rows and the same current states
    stored = []
    for e in ("sql", "duckdb"):
        args = ["health", "run", *url, "--engine", e, "--now", "2030-01-01", "--format", "json"]
        summary = json.loads(runner.invoke(app, args).stdout)
        stored.append((summary["scored"], summary["counts"], summary["history_rows"]))
    assert stored[0] == stored[1] and stored[0][0] > 0
    result = runner.invoke(app, ["health", "run", *url, "--no-history", "--now", "2030-01-02"])
    assert result.exit_code == 0 and "customers as of 2030-01-02" in result.output
    result = runner.invoke(app, ["health", "backtest", *url, "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["horizon_days"] == 90
    result = runner.invoke(app, ["health", "backtest", *url])
    assert "no cutoff fits" in result.output  # a log of a few days
    for group in ("stages", "lifecycle", "health"):
        assert runner.invoke(app, [group, "--help"]).exit_code == 0


class _Client:
    """Synchronous calls into the ASGI app (no server, no lifespan: these routes need none)."""

    def __init__(self, api: Any) -> None:
        self.transport = httpx.ASGITransport(app=api)

    def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            async with httpx.AsyncClient(transport=self.transport, base_url="http://t") as c:
                return await c.request(method, url, **kwargs)

        return asyncio.run(go())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._call("GET", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._call("PUT", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._call("POST", url, **kwargs)


def test_api_model_422_with_lines_customer_counts_transitions(sqlite_db: Database) -> None:
    workspace_id = new_workspace(sqlite_db)
    ingest(sqlite_db, workspace_id, LOG)
    with sqlite_db.transaction() as session:
        secret = issue_key(session, "secret", workspace_id).key
    api = create_app(sqlite_db)
    api.include_router(router)
    headers = {"Authorization": f"Bearer {secret}"}
    client = _Client(api)
    if True:
        bad = shipped_model_text("classic").replace("rule: identified", "rule: identifed")
        response = client.put("/api/v1/lifecycle/model", json={"yaml": bad}, headers=headers)
        assert response.status_code == 422
        assert response.json()["errors"][0]["message"] == (
            "line 15: unknown feature 'identifed'; did you mean 'identified'?"
        )
        assert client.get("/api/v1/lifecycle/model").status_code == 401
        model = client.get("/api/v1/lifecycle/model", headers=headers).json()
        assert model["definition"]["name"] == "classic"
        from clm.lifecycle import run_health, run_lifecycle

        run_lifecycle(sqlite_db, workspace_id)
        run_health(sqlite_db, workspace_id)
        counts = client.get("/api/v1/lifecycle/counts", headers=headers).json()
        assert counts["stages"]["churned"] == 1  # the only order was long ago
        assert sum(counts["health"].values()) == 1
        detail = client.get("/api/v1/customers/1/lifecycle", headers=headers).json()
        assert [t["to_stage"] for t in detail["stage_history"]] == [
            "acquisition",
            "conversion",
            "churned",
        ]
        assert detail["features"]["purchase_count"] == 1
        page = client.get(
            "/api/v1/lifecycle/transitions",
            params={"start": "2024-01-01T00:00:00Z", "end": "2024-01-03T00:00:00Z", "limit": 1},
            headers=headers,
        ).json()
        assert page["total"] == 2 and len(page["items"]) == 1


def test_api_preview_answers_the_problems_or_the_counts_and_stores_nothing(
    sqlite_db: Database,
) -> None:
    """The settings editor's check as you type: a model with a mistake is a 200 with
    ``valid: false`` and the same line-numbered problem the PUT gives as a 422; a good one
    gives the counts it would produce (worked out by hand), and neither is stored."""
    workspace_id = new_workspace(sqlite_db)
    ingest(sqlite_db, workspace_id, LOG)
    with sqlite_db.transaction() as session:
        secret = issue_key(session, "secret", workspace_id).key
    client = _Client(create_app(sqlite_db))
    headers = {"Authorization": f"Bearer {secret}"}
    url = "/api/v1/lifecycle/model/preview"
    good = shipped_model_text("classic")
    bad = good.replace("rule: identified", "rule: identifed")
    assert client.post(url, json={"yaml": good}).status_code == 401
    answer = client.post(url, json={"yaml": bad}, headers=headers)
    assert answer.status_code == 200
    assert answer.json()["valid"] is False and answer.json()["preview"] is None
    assert [e["message"] for e in answer.json()["errors"]] == [
        "line 15: unknown feature 'identifed'; did you mean 'identified'?"
    ]
    answer = client.post(url, json={"yaml": good}, headers=headers)
    assert answer.status_code == 200 and answer.json()["valid"] is True
    # A valid model's preview reads the whole history: a job, polled as the page polls it.
    job = answer.json()["job"]
    assert answer.json()["preview"] is None and job["kind"] == "stage_preview"
    deadline = time.monotonic() + 120
    while job["status"] not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.05)
        job = client.get(f"/api/v1/lifecycle/jobs/{job['id']}", headers=headers).json()
    assert job["status"] == "done", job
    preview = job["result"]
    # Asked again: the job's answer, at once.
    again = client.post(url, json={"yaml": good}, headers=headers).json()
    assert again["preview"] == preview and again["job"] is None
    # One customer: identified (acquisition), one order the next day (conversion), and that
    # order is decades ago now: churned.
    assert preview["customers"] == 1 and preview["transitions"] == 3
    assert {k: v for k, v in preview["counts"].items() if v} == {"churned": 1}
    # The model's order (classic.yaml), which the counts' keys lose on PostgreSQL (jsonb).
    classic = ["reach", "acquisition", "conversion", "retention", "loyalty", "churned"]
    assert preview["stages"] == classic
    assert client.post(url, json={"yaml": 3}, headers=headers).status_code == 422
    before = client.get("/api/v1/lifecycle/model", headers=headers).json()["definition"]
    client.post(url, json={"yaml": good.replace("name: classic", "name: other")}, headers=headers)
    after = client.get("/api/v1/lifecycle/model", headers=headers).json()["definition"]
    assert after == before


def test_preview_reports_each_step_for_the_progress_bar(sqlite_db: Database) -> None:
    workspace_id = new_workspace(sqlite_db)
    ingest(sqlite_db, workspace_id, LOG)
    steps: list[tuple[str, int, int]] = []
    source = shipped_model_text("four_stage")
    result = preview_stage_model(
        sqlite_db, workspace_id, source, progress=lambda *step: steps.append(step)
    )
    assert result.counts["purchase"] == 1
    # two events of one customer: one range of customers, reported done
    assert steps == [
        ("reading the event log", 0, 1),
        ("scanning the log with DuckDB", 0, 1),
        ("computing stages", 1, 1),
        ("counting customers per stage", 0, 1),
    ]
