"""The reports API on a live server: unauthenticated → other workspace → not found / invalid →
success, for the reports and for the spend import. Numbers: the scenario (scenario.py), as
worked out in test_funnel_retention.py."""

from __future__ import annotations

import httpx
import pytest

from clm.store import workspaces as ws
from tests.analytics.logs import event, load, write_history
from tests.analytics.scenario import HISTORY, MESSAGES, SINCE, UNTIL
from tests.conftest import LiveServer

PERIOD = {"since": SINCE, "until": UNTIL}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def secret_key(server: LiveServer, workspace_id: int) -> str:
    with server.db.transaction() as session:
        return ws.issue_key(session, "secret", workspace_id).key


@pytest.fixture
def keys(live_server: LiveServer) -> tuple[str, str]:
    """Secret keys of ``acme`` (the scenario) and ``other`` (one lead, f, in January)."""
    acme, customers, definition = load(live_server.db, MESSAGES)
    write_history(live_server.db, acme, definition, customers, HISTORY)
    other, others, other_definition = load(
        live_server.db, [event("f", "2024-01-09", "Signed Up", "f1")], slug="other"
    )
    write_history(live_server.db, other, other_definition, others,
                  [("f", "2024-01-09", None, "lead")])  # fmt: skip
    return secret_key(live_server, acme), secret_key(live_server, other)


def test_reports_need_a_workspace_secret_key(live_server: LiveServer) -> None:
    response = httpx.get(f"{live_server.url}/api/v1/reports/funnel")
    assert response.status_code == 401
    response = httpx.get(f"{live_server.url}/api/v1/reports/funnel", headers=bearer("nope"))
    assert response.status_code == 401
    response = httpx.post(f"{live_server.url}/api/v1/reports/spend", json=[])
    assert response.status_code == 401


def test_each_workspace_sees_only_its_own_data(
    live_server: LiveServer, keys: tuple[str, str]
) -> None:
    acme, other = keys
    url = f"{live_server.url}/api/v1/reports/funnel"
    mine = httpx.get(url, params=PERIOD, headers=bearer(acme)).json()
    theirs = httpx.get(url, params=PERIOD, headers=bearer(other)).json()
    assert mine["steps"][0]["entered"] == 4  # a, b, d, e
    assert theirs["steps"][0]["entered"] == 1  # f only
    assert {c["stage"]: c["customers"] for c in theirs["counts"]}["lead"] == 1


def test_unknown_report_and_bad_parameters(live_server: LiveServer, keys: tuple[str, str]) -> None:
    acme, _ = keys
    base = f"{live_server.url}/api/v1/reports"
    missing = httpx.get(f"{base}/churn", headers=bearer(acme))
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    bad = httpx.get(f"{base}/cohorts", headers=bearer(acme),
                    params={"since": "2024-13-01", "max_age": "0", "colour": "red"})  # fmt: skip
    assert bad.status_code == 422
    body = bad.json()
    assert body["code"] == "validation_error"
    assert {tuple(e["loc"]) for e in body["errors"]} == {("since",), ("max_age",), ("colour",)}
    stage = httpx.get(f"{base}/funnel", headers=bearer(acme), params={"stage": "vip"})
    assert stage.status_code == 422 and stage.json()["errors"][0]["loc"] == ["stage"]
    engine = httpx.get(f"{base}/rfm", headers=bearer(acme), params={"engine": "oracle"})
    assert engine.status_code == 422 and engine.json()["errors"][0]["loc"] == ["query", "engine"]


def test_reports_and_spend_import(live_server: LiveServer, keys: tuple[str, str]) -> None:
    acme, other = keys
    base = f"{live_server.url}/api/v1/reports"
    listed = httpx.get(base, headers=bearer(acme)).json()
    assert [r["name"] for r in listed] == ["funnel", "churn_retention", "cohorts", "rfm",
                                           "attribution", "acquisition", "feedback"]  # fmt: skip
    retention = httpx.get(f"{base}/churn_retention", headers=bearer(acme),
                          params={**PERIOD, "engine": "duckdb"}).json()  # fmt: skip
    # February: b and c churn out of the 3 alive at its start
    # c churns in February; b too, but b never bought: not a customer who churned
    assert [p["churned"] for p in retention["periods"]] == [0, 1, 0]
    bad = b"channel,month,amount\nemail,2024-01,x\n"
    bad_csv = httpx.post(f"{base}/spend", headers=bearer(acme), files={"file": ("s.csv", bad)})
    assert bad_csv.status_code == 422
    assert bad_csv.json()["errors"][0]["loc"] == ["line", 2, "amount"]
    csv = b"channel,month,amount\nemail,2024-01,90\n"
    upload = httpx.post(f"{base}/spend", headers=bearer(acme), files={"file": ("s.csv", csv)})
    assert upload.status_code == 201 and upload.json() == {"stored": 1}
    rows = [{"channel": "search", "month": "2024-01", "amount": 40},
            {"channel": "social", "period_start": "2024-02-01", "period_end": "2024-01-01",
             "amount": 5}]  # fmt: skip
    rejected = httpx.post(f"{base}/spend", headers=bearer(acme), json={"rows": rows})
    assert rejected.status_code == 422
    assert rejected.json()["errors"][0]["loc"] == ["rows", 1, "period_end"]
    stored = httpx.post(f"{base}/spend", headers=bearer(acme), json={"rows": rows[:1]})
    assert stored.status_code == 201
    spend = httpx.get(f"{base}/acquisition", headers=bearer(acme), params=PERIOD).json()
    by_channel = {c["value"]: c for c in spend["channels"]}
    # new buyers in Q1: a (first touch email), c (first touch search, in 2023)
    assert (by_channel["email"]["cac"], by_channel["search"]["cac"]) == (90.0, 40.0)
    theirs = httpx.get(f"{base}/acquisition", headers=bearer(other), params=PERIOD).json()
    assert theirs["channels"] == []  # acme's spend is not theirs
