"""The overview's stored readings (``clm.analytics.kept``): the stored changes of the stage and
health charts plus the rows written since equal the hand-worked counts; a
restarted server (a new process: nothing in memory) answers from storage without reading the
log; a change makes the reading not current and it is read again; two processes storing one
reading at once leave one whole, newest reading. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import delete

from clm.analytics import report_readings, retention_trend
from clm.analytics import trends as trends_module
from clm.analytics.kept import canonical, readings_of
from clm.analytics.overview_readings import refresh_overview
from clm.analytics.reports import REPORTS
from clm.analytics.retention_trend import funnel_summary
from clm.analytics.retention_trend import retention_trend as retention
from clm.analytics.trends import (
    TrendQuery,
    active_scorecard_id,
    active_stage_model,
    at_points,
    new_moves,
    stored_moves,
    stored_version,
    trends,
)
from clm.ingest import ingest
from clm.lifecycle.health import STATE_LABELS
from clm.store import workspaces as ws
from clm.store.engine import Database
from clm.store.models import HealthSnapshot, OverviewReading, StageTransition
from clm.web import create_app
from tests.analytics.logs import event, ts
from tests.analytics.test_trends import STAGES, _write
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
WEEK_ENDS = [ts(f"2024-01-{d:02d}") + 86_399 for d in (7, 14, 21, 28)]
# The weekly counts of test_trends' hand-worked history, worked out there by hand.
STAGES_BY_HAND = [
    {"lead": 3},
    {"lead": 1, "trial": 2},
    {"lead": 1, "trial": 1, "paying": 1, "churned": 1},
    {"trial": 1, "paying": 1, "churned": 2},
]
HEALTH_BY_HAND = [
    {"happy": 1, "unhappy": 1},
    {"at_risk": 1, "unhappy": 1},
    {"happy": 1, "at_risk": 1, "unhappy": 1},
    {"happy": 1, "at_risk": 1, "unhappy": 1},
]
SCORES_BY_HAND = [80 + 35, 50 + 35, 50 + 35 + 90, 50 + 35 + 90]


def _columns(series: dict[str, list[int]]) -> list[dict[str, int]]:
    return [{k: v[n] for k, v in series.items() if v[n]} for n in range(len(WEEK_ENDS))]


def _same_url(db: Database) -> Database:
    """The same database opened again, as a restarted process would: nothing in memory."""
    return Database.open(db.engine.url.render_as_string(hide_password=False), run_migrations=False)


def _snapshot(workspace_id: int, health_id: int, customer: int, when: str, score: float,
              state: str) -> HealthSnapshot:  # fmt: skip
    return HealthSnapshot(
        workspace_id=workspace_id, definition_id=health_id, customer_id=customer, ts=ts(when),
        occurred_at=datetime.fromtimestamp(ts(when), UTC), score=score, state=state,
        contributions={},
    )  # fmt: skip


def _transition(workspace_id: int, stage_id: int, customer: int, when: str, source: str,
                target: str, kind: str) -> StageTransition:  # fmt: skip
    return StageTransition(
        workspace_id=workspace_id, definition_id=stage_id, customer_id=customer, ts=ts(when),
        occurred_at=datetime.fromtimestamp(ts(when), UTC), from_stage=source, to_stage=target,
        kind=kind, rule=f"rule:{target}", announced=True,
    )  # fmt: skip


@pytest.mark.parametrize("cut_day", ["2023-12-01", "2024-01-12", "2024-01-15", "2024-03-01"])
def test_the_stored_changes_and_the_rows_written_since_equal_the_hand_worked_counts(
    db: Database, cut_day: str
) -> None:
    """Wherever the reading's day cut falls (12 January splits a's two scores), the stored
    changes give the hand-worked counts; rows written after it are added per request."""
    workspace_id, customers = _write(db)
    stage_id = active_stage_model(db, workspace_id)[0]
    health_id = active_scorecard_id(db, workspace_id)
    stored, version = stored_moves(db, stage_id, health_id, ts(cut_day))
    assert stored.rows == [10, 5] and version == [stored.tops, stored.rows]
    stages, _ = at_points(stored.stage, STAGES, WEEK_ENDS)
    states, scores = at_points(stored.health, list(STATE_LABELS), WEEK_ENDS)
    assert (_columns(stages), _columns(states), scores) == (
        STAGES_BY_HAND, HEALTH_BY_HAND, SCORES_BY_HAND
    )  # fmt: skip
    # written since: c comes back on 27 January (churned -> lead) and scores 40 (at risk)
    with db.transaction() as session:
        session.add(_transition(workspace_id, stage_id, customers["c"], "2024-01-27",
                                "churned", "lead", "reactivation"))  # fmt: skip
        session.add(_snapshot(workspace_id, health_id, customers["c"], "2024-01-27", 40.0,
                              "at_risk"))  # fmt: skip
    assert stored_version(db, stage_id, health_id, stored) == version  # still exact
    stage, health = new_moves(db, stage_id, health_id, stored.tops, ts(cut_day))
    stages, _ = at_points(stored.stage + stage, STAGES, WEEK_ENDS)
    states, scores = at_points(stored.health + health, list(STATE_LABELS), WEEK_ENDS)
    # the last week by hand: b trial, a paying, e churned, c lead again; a 50, b 35, c 40
    assert _columns(stages)[3] == {"trial": 1, "paying": 1, "churned": 1, "lead": 1}
    assert _columns(states)[3] == {"at_risk": 2, "unhappy": 1} and scores[3] == 50 + 35 + 40
    assert _columns(stages)[:3] == STAGES_BY_HAND[:3] and scores[:3] == SCORES_BY_HAND[:3]
    # a late snapshot (before a's stored 12 January one) changes a stored predecessor
    with db.transaction() as session:
        session.add(_snapshot(workspace_id, health_id, customers["a"], "2024-01-10", 60.0,
                              "at_risk"))  # fmt: skip
    assert stored_version(db, stage_id, health_id, stored) != version


def test_a_stored_row_deleted_makes_the_reading_not_current(db: Database) -> None:
    workspace_id, customers = _write(db)
    stage_id = active_stage_model(db, workspace_id)[0]
    health_id = active_scorecard_id(db, workspace_id)
    stored, version = stored_moves(db, stage_id, health_id, ts("2024-06-01"))
    with db.transaction() as session:  # a recompute of e: its exit rewritten
        session.execute(delete(StageTransition).where(
            StageTransition.customer_id == customers["e"], StageTransition.to_stage == "churned"
        ))  # fmt: skip
    assert stored_version(db, stage_id, health_id, stored) != version


def test_a_restarted_process_answers_from_storage_and_follows_new_history(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace_id, customers = _write(db)
    query = TrendQuery(since=date(2024, 1, 1), until=date(2024, 1, 28), grain="week")
    first = trends(db, workspace_id, query)
    assert _columns(first.stages) == STAGES_BY_HAND
    funnel = funnel_summary(db, workspace_id)
    assert funnel.ready and funnel.steps

    restarted = _same_url(db)
    try:

        def no_log_reading(*_: object, **__: object) -> object:
            raise AssertionError("the whole history was read again")

        monkeypatch.setattr(trends_module, "stored_moves", no_log_reading)
        monkeypatch.setattr(retention_trend, "run_report", no_log_reading)
        monkeypatch.setattr(report_readings, "run_report", no_log_reading)
        again = trends(restarted, workspace_id, query)
        assert again.current and again.computed_at == first.computed_at
        assert (again.stages, again.health, again.mean_health) == (
            first.stages, first.health, first.mean_health
        )  # fmt: skip
        stored_funnel = funnel_summary(restarted, workspace_id)
        assert stored_funnel.current and stored_funnel.steps == funnel.steps
        assert stored_funnel.computed_at == funnel.computed_at

        # a new event moves the reports' inputs: the stored funnel is served, not current
        ingest(restarted, workspace_id, [event("a", "2024-02-10", "Signed Up", "late-a")])
        outdated = funnel_summary(restarted, workspace_id)
        assert not outdated.current and outdated.steps == funnel.steps
        monkeypatch.undo()
        funnel_kind = replace(report_readings.KINDS["funnel"], min_interval=0.0)
        monkeypatch.setitem(report_readings.KINDS, "funnel", funnel_kind)
        renewed = funnel_summary(restarted, workspace_id)  # starts the refresh (last one failed)
        for _ in range(20):  # a loaded machine may need more than one look
            readings_of(restarted).settle()
            renewed = funnel_summary(restarted, workspace_id)
            if renewed.current:
                break
            time.sleep(0.5)
        assert renewed.current and renewed.computed_at is not None
        assert funnel.computed_at is not None and renewed.computed_at > funnel.computed_at
        report = retention_trend.run_report(restarted, workspace_id, "funnel", {})
        assert renewed.steps == report.steps  # type: ignore[union-attr]
    finally:
        restarted.dispose()
    assert customers


def test_a_transition_today_shows_at_once_without_reading_the_past_again(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace_id, customers = _write(db)
    today = datetime.now(UTC).date()
    query = TrendQuery(since=today - timedelta(days=3), until=today, grain="day")
    before = trends(db, workspace_id, query)
    assert before.stages["lead"][-1] == 1  # d (entered 5 February 2024)

    def no_log_reading(*_: object, **__: object) -> object:
        raise AssertionError("the stored days were read again")

    monkeypatch.setattr(trends_module, "stored_moves", no_log_reading)
    midnight = int(datetime(today.year, today.month, today.day, tzinfo=UTC).timestamp())
    stage_id = active_stage_model(db, workspace_id)[0]
    with db.transaction() as session:  # c comes back at the first second of today
        session.add(StageTransition(
            workspace_id=workspace_id, definition_id=stage_id, customer_id=customers["c"],
            ts=midnight, occurred_at=datetime.fromtimestamp(midnight, UTC),
            from_stage="churned", to_stage="lead", kind="reactivation", rule="rule:lead",
            announced=True,
        ))  # fmt: skip
    after = trends(db, workspace_id, query)
    assert after.current
    assert after.stages["lead"][-1] == 2 and after.stages["churned"][-1] == 1
    assert after.stages["lead"][:-1] == before.stages["lead"][:-1]  # the days before: as they were


def test_the_live_loop_step_stores_each_default_reading_once(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace_id, _ = _write(db)
    reports = [f"report:{name}" for name in REPORTS]  # each report's default view too
    overview = ["trends", "movers", "retention"]  # the funnel: the funnel report's reading
    assert refresh_overview(db, workspace_id) == overview + reports
    with db.session() as session:
        kinds = sorted(r.kind for r in session.query(OverviewReading))
    assert kinds == sorted(overview + reports)
    assert refresh_overview(db, workspace_id) == []  # nothing moved: nothing read
    # a new event: the reports' inputs moved, but they were read under their interval ago
    ingest(db, workspace_id, [event("b", "2024-02-10", "Signed Up", "late-b")])
    assert refresh_overview(db, workspace_id) == []
    no_interval = replace(retention_trend.RETENTION, min_interval=0.0)
    monkeypatch.setattr(retention_trend, "RETENTION", no_interval)
    funnel_kind = replace(report_readings.KINDS["funnel"], min_interval=0.0)
    monkeypatch.setitem(report_readings.KINDS, "funnel", funnel_kind)
    assert refresh_overview(db, workspace_id) == ["retention", "report:funnel"]
    # the page's default range, read from storage without computing
    since, until = retention_trend.default_range(datetime.now(UTC).date())
    monkeypatch.setattr(retention_trend, "run_report", lambda *a, **k: 1 / 0)
    restarted = _same_url(db)
    try:
        stored = retention(restarted, workspace_id, since, until)
    finally:
        restarted.dispose()
    assert stored.ready and stored.current


@contextmanager
def _server(db: Database) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(db), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/api/v1/overview"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_restarted_server_answers_the_overview_from_storage(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace_id, _ = _write(db)
    with db.transaction() as session:
        key = ws.issue_key(session, "read", workspace_id).key
    auth = {"Authorization": f"Bearer {key}"}
    params = {"since": "2024-01-01", "until": "2024-01-28", "grain": "week"}
    with _server(db) as url:
        first = {
            path: httpx.get(f"{url}/{path}", headers=auth, timeout=60,
                            params=params if path == "trends" else {}).json()
            for path in ("trends", "funnel", "retention")
        }  # fmt: skip
    assert first["funnel"]["ready"] and first["retention"]["ready"]
    restarted = _same_url(db)

    def no_log_reading(*_: object, **__: object) -> object:
        raise AssertionError("the whole history was read again")

    monkeypatch.setattr(trends_module, "stored_moves", no_log_reading)
    monkeypatch.setattr(retention_trend, "run_report", no_log_reading)
    monkeypatch.setattr(report_readings, "run_report", no_log_reading)
    try:
        with _server(restarted) as url:
            trend = httpx.get(f"{url}/trends", headers=auth, params=params).json()
            funnel = httpx.get(f"{url}/funnel", headers=auth).json()
            churn = httpx.get(f"{url}/retention", headers=auth).json()
    finally:
        restarted.dispose()
    assert trend["stages"] == first["trends"]["stages"] and trend["current"]
    assert trend["stages"]["churned"] == [0, 0, 1, 2]  # by hand (test_trends)
    assert funnel == first["funnel"] and funnel["current"]
    assert churn == first["retention"] and churn["current"]


WRITER = """
import json, sys
from pydantic import BaseModel, TypeAdapter
from clm.analytics.kept import Kind, readings_of
from clm.store.engine import Database

class Value(BaseModel):
    writer: str
    n: int
    payload: list[int]

KIND = Kind("test", TypeAdapter(Value), wait=60.0, min_interval=0.0)
url, writer, workspace = sys.argv[1], sys.argv[2], int(sys.argv[3])
db = Database.open(url, run_migrations=False)
readings = readings_of(db)
written = []
for n in range(40):
    value = Value(writer=writer, n=n, payload=list(range(n * 50)))
    reading = readings.refresh(KIND, workspace, {"p": 1}, lambda: (value, [writer, n]))
    written.append(reading.computed_at.isoformat())
print(json.dumps(written))
"""


def test_two_processes_storing_one_reading_leave_one_whole_newest_reading(db: Database) -> None:
    with db.transaction() as session:
        workspace_id = ws.create_workspace(session, "race").id
    url = db.engine.url.render_as_string(hide_password=False)
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, url, name, str(workspace_id)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        for name in ("one", "two")
    ]  # fmt: skip
    began: list[str] = []
    for writer in writers:
        out, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
        began += json.loads(out)
    with db.session() as session:
        rows = session.query(OverviewReading).filter_by(workspace_id=workspace_id).all()
    assert len(rows) == 1  # one reading per key, never two
    [row] = rows
    value = json.loads(row.value)
    # whole: the value and the version are the same writer's same reading
    assert row.version == canonical([value["writer"], value["n"]])
    assert value["payload"] == list(range(value["n"] * 50))
    # newest: no reading that began later was overwritten by an older one
    assert row.computed_at == max(datetime.fromisoformat(b) for b in began)


def test_a_reading_stored_in_another_shape_is_read_again(db: Database) -> None:
    """A reading an older CLM stored in another shape is no answer: it is read again."""
    workspace_id, _ = _write(db)
    with db.transaction() as session:
        session.add(OverviewReading(
            workspace_id=workspace_id, kind="report:funnel", params="{}", version="[]",
            computed_at=datetime(2020, 1, 1, tzinfo=UTC), value='{"shape": "old"}',
        ))  # fmt: skip
    found = funnel_summary(db, workspace_id)
    report = retention_trend.run_report(db, workspace_id, "funnel", {})
    assert found.ready and found.steps == report.steps  # type: ignore[union-attr]
    with db.session() as session:
        [row] = session.query(OverviewReading).filter_by(workspace_id=workspace_id).all()
    assert json.loads(row.value)["steps"] == [s.model_dump(mode="json") for s in found.steps]


def test_a_reading_nobody_took_for_a_week_is_pruned_by_the_live_loop(db: Database) -> None:
    workspace_id, _ = _write(db)
    now = datetime.now(UTC)
    with db.transaction() as session:  # a range somebody asked for 8 and 6 days ago
        for days, since in ((8, "2020-01-01"), (6, "2021-01-01")):
            session.add(OverviewReading(
                workspace_id=workspace_id, kind="retention",
                params=canonical({"since": since, "until": "2022-01-01"}), version="[]",
                computed_at=now - timedelta(days=days), value="{}",
            ))  # fmt: skip
    refresh_overview(db, workspace_id, now)
    with db.session() as session:
        params = sorted(
            r.params for r in session.query(OverviewReading).filter_by(kind="retention")
        )
    since, until = retention_trend.default_range(now.date())
    assert params == sorted([
        canonical({"since": "2021-01-01", "until": "2022-01-01"}),
        canonical({"since": since.isoformat(), "until": until.isoformat()}),
    ])  # fmt: skip
