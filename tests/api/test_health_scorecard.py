"""The scorecard under ``/api/v1/health``: weights and thresholds read, an edit previewed (the
customers who would change state, worked out by hand below), saved as a new version with the
old one kept and audited, hostile edits refused field by field, and an edit's backtest scored
beside the active scorecard -- on SQLite and PostgreSQL, through a real server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from clm.ingest.service import ingest
from clm.lifecycle.backtest import COMPARED, SCORE, backtest
from clm.lifecycle.catalog import list_definitions, save_definition
from clm.lifecycle.scorecard_edit import ScorecardEdit, preview_scorecard
from clm.store.engine import Database
from tests.conftest import LiveServer, Tenant

# Two risk factors, equal weights. Risk share = mean of the factor shares; "at risk" below 0.5.
SIMPLE = """\
name: simple
factors:
  recency: {feature: days_since_last_purchase, axis: risk, weight: 1, best: 0, worst: 100}
  frequency: {feature: purchases_365d, axis: risk, weight: 1, best: 4, worst: 0}
"""
# For the backtest: no clipping within the log, so recency alone ranks as the baseline does.
WIDE = """\
name: wide
factors:
  recency: {feature: days_since_last_purchase, axis: risk, weight: 1, best: 0, worst: 1000}
  frequency: {feature: purchases_365d, axis: risk, weight: 1, best: 20, worst: 0}
"""
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def _shop(db: Database, tenant: Tenant, now: datetime) -> None:
    """ann: 1 purchase 10 days ago; bob: 4 purchases 63..60 days ago; cat: 1, 80 days ago."""
    bought = {"ann": [10], "bob": [63, 62, 61, 60], "cat": [80]}
    events = [
        {"type": "track", "userId": who, "event": "Order Completed", "messageId": f"{who}{d}",
         "properties": {"revenue": 10}, "timestamp": (now - timedelta(days=d)).isoformat()}
        for who, days in bought.items() for d in days
    ]  # fmt: skip
    ingest(db, tenant.id, events)
    save_definition(db, tenant.id, "health", SIMPLE)


@pytest.fixture
def api(live_server: LiveServer, tenant: Tenant) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=live_server.url + "/api/v1/health",
        headers={"Authorization": f"Bearer {tenant.secret_key}"},
        timeout=120,
    ) as client:
        yield client


def test_an_edit_previews_who_changes_state(db: Database, tenant: Tenant) -> None:
    _shop(db, tenant, NOW)
    # Equal weights: ann (0.9 + 0.25) / 2 = 0.575 happy; bob (0.4 + 1) / 2 = 0.7 happy;
    # cat (0.2 + 0.25) / 2 = 0.225 at risk. Frequency weighted 3: ann (0.9 + 0.75) / 4 =
    # 0.4125 at risk; bob (0.4 + 3) / 4 = 0.85 happy; cat (0.2 + 0.75) / 4 = 0.2375 at risk.
    tripled = preview_scorecard(db, tenant.id, ScorecardEdit(weights={"frequency": 3}), NOW)
    assert tripled.customers == 3
    assert tripled.before == {"happy and stable": 2, "happy but at risk": 1, "unhappy": 0}
    assert tripled.after == {"happy and stable": 1, "happy but at risk": 2, "unhappy": 0}
    assert (tripled.changed, tripled.moves) == (1, {"happy and stable -> happy but at risk": 1})
    # Scores: before (57.5 + 70 + 22.5) / 3 = 50; after (41.25 + 85 + 23.75) / 3 = 50.
    assert tripled.mean_score_before == pytest.approx(50, abs=0.01)
    assert tripled.mean_score_after == pytest.approx(50, abs=0.01)
    # A threshold alone: at risk below 0.6 moves ann (0.575) only.
    stricter = preview_scorecard(db, tenant.id, ScorecardEdit(at_risk_below=0.6), NOW)
    assert (stricter.changed, stricter.after["happy and stable"]) == (1, 1)
    # Frequency off (weight 0): recency alone, ann 0.9, bob 0.4, cat 0.2: bob joins cat.
    alone = preview_scorecard(db, tenant.id, ScorecardEdit(weights={"frequency": 0}), NOW)
    assert alone.moves == {"happy and stable -> happy but at risk": 1}


def test_the_scorecard_api_reads_checks_saves_and_refuses(
    live_server: LiveServer, tenant: Tenant, api: httpx.Client
) -> None:
    db = live_server.db
    _shop(db, tenant, datetime.now(UTC))
    card = api.get("/scorecard").json()
    assert [(f["key"], f["weight"], f["share"]) for f in card["factors"]] == [
        ("recency", 1, 50), ("frequency", 1, 50),
    ]  # fmt: skip
    assert (card["definition"]["name"], card["at_risk_below"]) == ("simple", 0.5)
    # The first valid edit waits for every customer's features: a job, shared by the next edit
    # asked for meanwhile; once it is done, previews are answered at once from its snapshot.
    first = api.post("/scorecard/preview", json={"weights": {"frequency": 3}}).json()
    assert first["valid"] and first["preview"] is None and first["job"]["kind"] == "health_snapshot"
    other = api.post("/scorecard/preview", json={"weights": {"frequency": 2}}).json()
    assert other["job"] is None or other["job"]["id"] == first["job"]["id"]
    job = first["job"]
    deadline = time.monotonic() + 120
    while job["status"] not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.05)
        job = api.get(f"/jobs/{job['id']}").json()
    assert job["status"] == "done" and job["result"] == {"customers": 3}, job
    check = api.post("/scorecard/preview", json={"weights": {"frequency": 3}}).json()
    assert check["valid"] and check["job"] is None and check["preview"]["changed"] == 1
    # Mistakes: a factor the scorecard lacks is a problem in the answer (the editor types);
    # a negative, non-finite or absurd weight is a field-level 422; nothing is stored.
    check = api.post("/scorecard/preview", json={"weights": {"nps": 2}}).json()
    assert check == {
        "valid": False,
        "errors": [{"loc": ["weights", "nps"], "message": "no factor 'nps' in scorecard 'simple'"}],
        "preview": None,
        "job": None,
    }
    everything_off = {"weights": {"recency": 0, "frequency": 0}}
    assert not api.post("/scorecard/preview", json=everything_off).json()["valid"]
    for bad, loc in (
        ('{"weights": {"recency": -1}}', ["body", "weights", "recency"]),
        ('{"weights": {"recency": 1e999}}', None),  # infinite: refused however it is parsed
        ('{"weights": {"recency": NaN}}', None),
        ('{"at_risk_below": 1.5}', ["body", "at_risk_below"]),
        ('{"weights": {"recency": "many"}}', ["body", "weights", "recency"]),
    ):
        answer = api.put("/scorecard", content=bad, headers={"Content-Type": "application/json"})
        assert answer.status_code == 422, bad
        if loc is not None:
            assert loc in [e["loc"] for e in answer.json()["errors"]], answer.json()
    assert api.put("/scorecard", json={"weights": {"nps": 2}}).status_code == 422
    assert [d.version for d in list_definitions(db, tenant.id, "health")] == [1]
    # Saving: version 2 is active, version 1 kept; the audit log has the change.
    saved = api.put("/scorecard", json={"weights": {"frequency": 3}, "at_risk_below": 0.4})
    assert saved.status_code == 200, saved.text
    after = saved.json()
    assert after["definition"]["version"] == 2 and after["at_risk_below"] == 0.4
    assert [(f["key"], f["share"]) for f in after["factors"]] == [
        ("recency", 25), ("frequency", 75),
    ]  # fmt: skip
    assert [(v["version"], v["active"]) for v in after["versions"]] == [(1, False), (2, True)]
    audit = api.get("../audit", params={"action": "scorecard.update"}).json()
    assert len(audit) == 1 and "frequency" in str(audit[0]["after"])
    # A read key may look but not change.
    with db.transaction() as session:
        from clm.store import workspaces as ws

        read_key = ws.issue_key(session, "read", tenant.id).key
    reader = {"Authorization": f"Bearer {read_key}"}
    assert api.get("/scorecard", headers=reader).status_code == 200
    assert api.put("/scorecard", json={}, headers=reader).status_code == 403


def _job(api: httpx.Client, answer: httpx.Response) -> dict[str, Any]:
    """The job's final state, polled as the page does (a wait for the result, not a timing)."""
    assert answer.status_code == 202, answer.text
    job: dict[str, Any] = answer.json()
    deadline = time.monotonic() + 300
    while job["status"] not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.05)
        job = api.get(f"/jobs/{job['id']}").json()
    return job


def _backtest(api: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    job = _job(api, api.post("/backtest", json=body))
    assert job["status"] == "done", job
    return job["result"]  # type: ignore[no-any-return]


def test_a_large_workspaces_preview_is_a_job_with_the_same_answer(
    live_server: LiveServer, tenant: Tenant, api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``SYNC_PREVIEW_CUSTOMERS`` (here 2: the shop has 3) the preview is a job whose
    result is what ``preview_scorecard`` gives when called directly."""
    monkeypatch.setattr("clm.api.health.SYNC_PREVIEW_CUSTOMERS", 2)
    db = live_server.db
    _shop(db, tenant, datetime.now(UTC))
    edit = {"weights": {"frequency": 3}}
    warm = _job(
        api, httpx.Response(202, json=api.post("/scorecard/preview", json=edit).json()["job"])
    )
    assert warm["kind"] == "health_snapshot" and warm["status"] == "done"
    first = api.post("/scorecard/preview", json=edit).json()
    assert first["valid"] and first["preview"] is None and first["job"]["kind"] == "health_preview"
    job = _job(api, httpx.Response(202, json=first["job"]))
    assert job["status"] == "done", job
    direct = preview_scorecard(db, tenant.id, ScorecardEdit(weights={"frequency": 3}))
    for field in ("customers", "before", "after", "changed", "moves"):
        assert job["result"][field] == direct.model_dump(mode="json")[field], field
    assert job["result"]["changed"] == 1  # worked by hand in the test above
    # Asked again: the job's answer at once.
    again = api.post("/scorecard/preview", json=edit).json()
    assert again["job"] is None and again["preview"]["changed"] == 1


@pytest.mark.slow
def test_an_edit_is_backtested_beside_the_active_scorecard(
    live_server: LiveServer, tenant: Tenant, api: httpx.Client
) -> None:
    """Fifteen months of a shop: 40 buyers, the first 20 buying monthly to the end, the others
    stopping after month 9 (the cutoff is the end of month 12, horizon 90 days)."""
    start = datetime(2025, 1, 1, 12, tzinfo=UTC)
    events = []
    for i in range(40):
        months = 15 if i < 20 else 9 + i % 4
        for m in range(0, months, 1 + i % 3):
            when = start + timedelta(days=30 * m + i)
            events.append({"type": "track", "userId": f"c{i}", "event": "Order Completed",
                           "messageId": f"c{i}-{m}", "properties": {"revenue": 5},
                           "timestamp": when.isoformat()})  # fmt: skip
    ingest(live_server.db, tenant.id, events)
    save_definition(live_server.db, tenant.id, "health", WIDE)
    same = _backtest(api, {"weights": {"frequency": 1}})
    [cut] = same["cutoffs"]
    by_name = {m["name"]: m for m in cut["metrics"]}
    assert list(by_name)[:2] == [SCORE, COMPARED]
    # An edit that changes nothing scores exactly as the active scorecard.
    assert by_name[SCORE]["auc"] == by_name[COMPARED]["auc"] is not None
    assert by_name[SCORE]["precision_at_risk"] == by_name[COMPARED]["precision_at_risk"]
    assert "random" in by_name and COMPARED not in cut["lost_to"]
    # Recency alone (frequency off) is the recency baseline's ranking: the same AUC.
    alone = _backtest(api, {"weights": {"frequency": 0}})
    metrics = {m["name"]: m["auc"] for m in alone["cutoffs"][0]["metrics"]}
    assert metrics[SCORE] == pytest.approx(metrics["recency"])
    # Without an edit: the active scorecard alone, and the latest cutoff is the last of all.
    plain = _backtest(api, {"cutoffs": 12})
    assert COMPARED not in {m["name"] for m in plain["cutoffs"][-1]["metrics"]}
    assert plain["cutoffs"][-1]["cutoff"] == cut["cutoff"]
    # The job's report is the synchronous computation's, number for number.
    direct = backtest(live_server.db, tenant.id, latest=12).model_dump(mode="json")
    assert {**plain, "scorecard": None} == {**direct, "scorecard": None}
    # Asked again: the same job and its kept answer, not a second run.
    first = api.post("/backtest", json={"cutoffs": 12}).json()
    assert first["status"] == "done" and first["result"] == plain
    assert api.post("/backtest", json={"horizon_days": 0}).status_code == 422
