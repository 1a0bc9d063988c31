"""The report answers of ``GET /api/v1/reports/{name}`` as /docs and /redoc document them: one
schema per report naming its fields, and every answer of a real server valid against the
document it serves (checked by jsonschema_rs, a JSON Schema validator independent of pydantic),
on SQLite and PostgreSQL. The workspace is the hand-built scenario of tests/analytics."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema_rs
import pytest

from clm.store import workspaces as ws
from tests.analytics.logs import load, write_history
from tests.analytics.scenario import HISTORY, MESSAGES, SINCE, UNTIL
from tests.conftest import LiveServer

# Each report's own fields, written out by hand from what the CLI and the web page read.
FIELDS = {
    "funnel": {"model", "at", "counts", "steps", "backward", "reentries", "flow_nodes", "flow"},
    "churn_retention": {"granularity", "churn_stages", "periods", "at_risk"},
    "cohorts": {"cohort_by", "returning_event", "cohorts"},
    "rfm": {"segments", "grid", "movement"},
    "attribution": {"dimension", "lookback_days", "half_life_days", "pairs"},
    "acquisition": {"dimension", "value_until", "channels"},
    "feedback": {"granularity", "over_time", "by_stage", "by_segment"},
}
COMMON = {"report", "since", "until", "definitions", "tables", "ready", "current", "computed_at"}
ROUTE = "/api/v1/reports/{name}"


def _answer_schema(document: dict[str, Any]) -> dict[str, Any]:
    return document["paths"][ROUTE]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ]


def _component(document: dict[str, Any], ref: dict[str, str]) -> dict[str, Any]:
    return document["components"]["schemas"][ref["$ref"].rsplit("/", 1)[-1]]


@pytest.fixture
def served(live_server: LiveServer) -> tuple[LiveServer, dict[str, str], dict[str, Any]]:
    """The scenario's workspace with some spend, its key's header and the served document."""
    acme, customers, definition = load(live_server.db, MESSAGES)
    write_history(live_server.db, acme, definition, customers, HISTORY)
    with live_server.db.transaction() as session:
        headers = {"Authorization": f"Bearer {ws.issue_key(session, 'secret', acme).key}"}
    spend = {"rows": [{"channel": "email", "month": "2024-01", "amount": 90}]}
    stored = httpx.post(f"{live_server.url}/api/v1/reports/spend", headers=headers, json=spend)
    assert stored.status_code == 201
    document = httpx.get(f"{live_server.url}/openapi.json").json()
    return live_server, headers, document


def test_the_document_names_each_reports_fields(
    served: tuple[LiveServer, dict[str, str], dict[str, Any]],
) -> None:
    _, _, document = served
    options = [_component(document, ref) for ref in _answer_schema(document)["oneOf"]]
    by_report = {o["properties"]["report"].get("const", "pending"): o for o in options}
    assert set(by_report) == {*FIELDS, "pending"}
    for name, fields in FIELDS.items():
        schema = by_report[name]
        assert set(schema["properties"]) == fields | COMMON, name
        assert set(schema["required"]) == fields | COMMON, name  # all always answered
        assert schema["properties"]["ready"]["const"] is True
        assert schema.get("description"), name
    pending = by_report["pending"]
    assert set(pending["properties"]) == {"report", "ready", "current", "computed_at", "tables"}
    assert pending["properties"]["ready"]["const"] is False


@pytest.mark.parametrize("fresh", [True, False], ids=["computed", "stored"])
def test_every_answer_validates_against_the_document(
    served: tuple[LiveServer, dict[str, str], dict[str, Any]], fresh: bool
) -> None:
    server, headers, document = served
    # The document is the root, so its "#/components/..." references resolve.
    validator = jsonschema_rs.Draft202012Validator({**document, **_answer_schema(document)})
    for name, fields in FIELDS.items():
        answer = httpx.get(
            f"{server.url}/api/v1/reports/{name}",
            headers=headers,
            params={"since": SINCE, "until": UNTIL, "fresh": str(fresh).lower()},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        errors = [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(body)]
        assert errors == [], (name, errors)
        if body["ready"]:
            assert body["report"] == name and set(body) == fields | COMMON
            assert body["tables"] and all(t["columns"] for t in body["tables"])
        else:  # the first stored reading still running: the pending shape, no figures
            assert not fresh and body["tables"] == [] and body["report"] == name
    wrong = {"report": "funnel", "ready": True, "current": True, "computed_at": None}
    assert not validator.is_valid(wrong)  # the schema does hold answers to their fields
