"""The saved segments API on a real server: the ladder (no key, another workspace, no such
segment, success), field-level errors, members and CSV equal to the customer list filtered by
hand, the size history, audit records of every change, and deletion refused while in use."""

from __future__ import annotations

import csv
import io

import httpx

from clm.store import workspaces as ws
from clm.store.models import AuditRecord
from tests.conftest import LiveServer, make_tenant
from tests.lifecycle.test_customer_list import seed_shop


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _key(live_server: LiveServer, workspace_id: int, kind: str = "secret") -> str:
    with live_server.db.transaction() as session:
        return ws.issue_key(session, kind, workspace_id).key


def test_segments_walk_the_ladder_and_audit_each_change(live_server: LiveServer) -> None:
    workspace, ids = seed_shop(live_server.db)
    url = f"{live_server.url}/api/v1/segments"
    mine, reader = (
        bearer(_key(live_server, workspace)),
        bearer(_key(live_server, workspace, "read")),
    )
    other = bearer(make_tenant(live_server.db, "other").secret_key)
    # seed_shop: ann's and dora's emails end in example.com; ann last seen 400 days ago.
    search = {"attr": "search", "op": "contains", "value": "example.com"}
    body = {"name": "Example people", "description": "partners", "conditions": [search]}
    assert httpx.post(url, json=body).status_code == 401
    assert httpx.post(url, json=body, headers=reader).status_code == 403
    created = httpx.post(url, json=body, headers=mine)
    assert created.status_code == 201, created.text
    segment = created.json()
    assert (segment["size"], segment["created_by"].startswith("key:")) == (2, True)
    path = f"{url}/{segment['id']}"
    assert httpx.get(path, headers=other).status_code == 404
    assert httpx.get(f"{url}/999999", headers=mine).status_code == 404
    assert httpx.get(url, headers=other).json() == []
    assert [s["name"] for s in httpx.get(url, headers=reader).json()] == ["Example people"]
    # The same name twice: a conflict; bad conditions: one error per condition, by index.
    assert httpx.post(url, json=body, headers=mine).status_code == 409
    bad = {"name": "bad", "conditions": [
        {"attr": "p_alive", "op": "gt", "value": "x"},
        {"attr": "health", "value": "happy"},
        {"attr": "traits.plan", "op": "like", "value": "a"},
    ]}  # fmt: skip
    refused = httpx.post(url, json=bad, headers=mine)
    assert refused.status_code == 422
    assert [e["loc"] for e in refused.json()["errors"]] == [["body", "conditions", 2, "op"]]
    bad["conditions"] = bad["conditions"][:2]
    refused = httpx.post(url, json=bad, headers=mine).json()
    assert [e["loc"] for e in refused["errors"]] == [["conditions", 0]]
    # Members: the customer list with the segment applied, paged and sorted in the database.
    page = httpx.get(f"{path}/members", params={"sort": "last_seen", "order": "desc",
                                                 "per_page": 1}, headers=reader).json()  # fmt: skip
    assert (page["total"], [r["id"] for r in page["items"]]) == (2, [ids["dora"]])
    listed = httpx.get(f"{live_server.url}/api/v1/customer-list",
                       params={"segment": segment["id"]}, headers=reader).json()  # fmt: skip
    assert sorted(r["id"] for r in listed["items"]) == sorted([ids["ann"], ids["dora"]])
    assert httpx.get(f"{live_server.url}/api/v1/customer-list", params={"segment": segment["id"]},
                     headers=other).status_code == 404  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(httpx.get(f"{path}/members.csv", headers=reader).text)))
    assert sorted(int(r["id"]) for r in rows) == sorted([ids["ann"], ids["dora"]])
    history = httpx.get(f"{path}/sizes", headers=reader).json()
    assert history["backfilled"] is False
    assert [p["size"] for p in history["points"]] == [2]
    # Narrow it: ann (400 days) drops out.
    change = {
        "conditions": [*body["conditions"], {"attr": "last_seen_days", "op": "lte", "value": 30}]
    }
    assert httpx.patch(path, json=change, headers=reader).status_code == 403
    changed = httpx.patch(path, json=change, headers=mine)
    assert changed.status_code == 200 and changed.json()["size"] == 1
    assert httpx.delete(path, headers=mine).status_code == 204
    assert httpx.get(path, headers=mine).status_code == 404
    with live_server.db.session() as session:
        actions = [
            (r.action, r.target, r.before is not None, r.after is not None)
            for r in session.query(AuditRecord).filter(AuditRecord.workspace_id == workspace)
            .order_by(AuditRecord.id)
        ]  # fmt: skip
    target = f"segment:{segment['id']}"
    assert actions == [("segment.create", target, False, True),
                       ("segment.update", target, True, True),
                       ("segment.delete", target, True, False)]  # fmt: skip


def test_the_playbook_editor_says_when_a_trigger_names_no_saved_segment(
    live_server: LiveServer,
) -> None:
    workspace, _ = seed_shop(live_server.db)
    mine = bearer(_key(live_server, workspace))
    url = f"{live_server.url}/api/v1"
    yaml = (
        "name: lapsing\ntrigger:\n  type: segment_entered\n  segment: Lapsing\n"
        "steps:\n  - id: note\n    type: task\n    title: Call them\n"
    )
    check = httpx.post(f"{url}/engage/playbooks/check", json={"yaml": yaml}, headers=mine).json()
    assert check["valid"] is False
    assert [e["loc"] for e in check["errors"]] == [["trigger", "segment"]]
    assert "no saved segment named 'Lapsing'" in check["errors"][0]["message"]
    conditions = [{"attr": "last_seen_days", "op": "gt", "value": 30}]
    made = httpx.post(f"{url}/segments", json={"name": "Lapsing", "conditions": conditions},
                      headers=mine)  # fmt: skip
    assert made.status_code == 201
    check = httpx.post(f"{url}/engage/playbooks/check", json={"yaml": yaml}, headers=mine).json()
    assert {k: check[k] for k in ("valid", "errors", "name", "steps")} == {
        "valid": True, "errors": [], "name": "lapsing", "steps": 1,
    }  # fmt: skip
    assert check["draft"]["trigger"] == {"type": "segment_entered", "segment": "Lapsing"}
    saved = httpx.post(f"{url}/engage/playbooks/source", json={"yaml": yaml}, headers=mine)
    assert saved.status_code == 201, saved.text
    # In use: deleting or renaming it is refused, naming the playbook.
    gone = httpx.delete(f"{url}/segments/{made.json()['id']}", headers=mine)
    assert gone.status_code == 409 and "lapsing" in gone.json()["message"]
    renamed = httpx.patch(f"{url}/segments/{made.json()['id']}", json={"name": "Gone quiet"},
                          headers=mine)  # fmt: skip
    assert renamed.status_code == 409
    # The page learns it up front: the segment names the playbooks that keep its name.
    shown = httpx.get(f"{url}/segments/{made.json()['id']}", headers=mine).json()
    assert shown["used_by"] == ["lapsing"]
    # Its conditions may still change (the playbook names the segment, not its conditions).
    narrower = [{"attr": "last_seen_days", "op": "gt", "value": 60}]
    changed = httpx.patch(f"{url}/segments/{made.json()['id']}", json={"conditions": narrower},
                          headers=mine)  # fmt: skip
    assert changed.status_code == 200 and changed.json()["conditions"] == narrower


def test_a_draft_of_conditions_is_previewed_with_its_size_or_its_field_errors(
    live_server: LiveServer,
) -> None:
    workspace, _ = seed_shop(live_server.db)
    url = f"{live_server.url}/api/v1/segments"
    mine, reader = (
        bearer(_key(live_server, workspace)),
        bearer(_key(live_server, workspace, "read")),
    )
    draft = {"conditions": [{"attr": "revenue", "op": "gte", "value": 40}]}
    assert httpx.post(f"{url}/preview", json=draft).status_code == 401
    assert httpx.post(f"{url}/preview", json=draft, headers=reader).status_code == 403
    # seed_shop's revenue: ann 30, bob 80, dora 45, cid none.
    answer = httpx.post(f"{url}/preview", json=draft, headers=mine)
    assert answer.status_code == 200
    assert answer.json() == {"valid": True, "errors": [], "size": 2}
    draft["conditions"].append({"attr": "purchases", "op": "gte", "value": 2})
    assert httpx.post(f"{url}/preview", json=draft, headers=mine).json()["size"] == 1  # dora
    assert httpx.post(f"{url}/preview", json={"conditions": []}, headers=mine).json()["size"] == 4
    # Mistakes are an ordinary answer (typing fills no console), by condition index.
    shape = {"conditions": [{"attr": "clv", "op": "gt", "value": 1},
                            {"attr": "clv", "op": "like", "value": 1}]}  # fmt: skip
    refused = httpx.post(f"{url}/preview", json=shape, headers=mine)
    assert refused.status_code == 200
    assert [e["loc"] for e in refused.json()["errors"]] == [["conditions", 1, "op"]]
    assert refused.json()["valid"] is False and refused.json()["size"] is None
    bad_day = {"attr": "last_seen_date", "op": "gte", "value": "2026-02-30"}
    kind = {"conditions": [{"attr": "clv", "op": "gt", "value": "lots"}, bad_day]}
    found = httpx.post(f"{url}/preview", json=kind, headers=mine).json()["errors"]
    assert found == [
        {"loc": ["conditions", 0], "message": "clv is compared with a number"},
        {"loc": ["conditions", 1], "message": "last_seen_date is a date, YYYY-MM-DD"},
    ]
    stage = {"conditions": [{"attr": "stage", "op": "eq", "value": "nowhere"}]}
    found = httpx.post(f"{url}/preview", json=stage, headers=mine).json()["errors"]
    assert [e["loc"] for e in found] == [["conditions", 0]]
    assert found[0]["message"].startswith("unknown stage 'nowhere'; one of: ")
    # Saving the same mistakes is a 422 with the same locations.
    made = httpx.post(url, json={"name": "Big", **draft}, headers=mine).json()
    saved = httpx.patch(f"{url}/{made['id']}", json=kind, headers=mine)
    assert saved.status_code == 422
    assert [e["loc"] for e in saved.json()["errors"]] == [["conditions", 0], ["conditions", 1]]
    assert httpx.get(f"{url}/{made['id']}", headers=mine).json()["used_by"] == []


def test_members_take_the_customer_lists_filters_with_the_same_field_errors(
    live_server: LiveServer,
) -> None:
    workspace, ids = seed_shop(live_server.db)
    mine = bearer(_key(live_server, workspace))
    url = f"{live_server.url}/api/v1"
    buyers = {"name": "Buyers", "conditions": [{"attr": "purchases", "op": "gte", "value": 1}]}
    made = httpx.post(f"{url}/segments", json=buyers, headers=mine)
    assert made.status_code == 201, made.text
    path = f"{url}/segments/{made.json()['id']}"

    def members(**params: str | int) -> list[str]:
        answer = httpx.get(f"{path}/members", params=params, headers=mine)
        assert answer.status_code == 200, answer.text
        by_id = {v: k for k, v in ids.items()}
        return [by_id[row["id"]] for row in answer.json()["items"]]

    def exported(**params: str | int) -> list[str]:
        answer = httpx.get(f"{path}/members.csv", params=params, headers=mine)
        assert answer.status_code == 200, answer.text
        by_id = {v: k for k, v in ids.items()}
        return [by_id[int(row["id"])] for row in csv.DictReader(io.StringIO(answer.text))]

    # seed_shop, worked out by hand: buyers ann (30, last seen 400 days ago), bob (80, 2 days),
    # dora (45 in two purchases, 5 days); cid never bought, so is never a member.
    assert members(sort="revenue", order="desc") == ["bob", "dora", "ann"]
    assert members(revenue_min=40, sort="revenue") == ["dora", "bob"]
    assert members(q="example.com", sort="revenue") == ["ann", "dora"]
    assert members(unseen_days=30) == ["ann"]
    assert members(sort="revenue", order="desc", page=2, per_page=2) == ["ann"]
    assert exported(q="example.com", sort="revenue", order="desc") == ["dora", "ann"]
    assert exported(purchases_min=2) == ["dora"]
    assert exported(sort="revenue") == ["ann", "dora", "bob"]  # the page's Export CSV
    # The same bad parameters give the list's field errors, at their names.
    for bad, field in (
        ({"revenue_min": 50, "revenue_max": 10}, "revenue_max"),
        ({"health_fell": "true"}, "moved_since"),
        ({"rfm": "Royalty"}, "rfm"),
        ({"health_state": "sad"}, "health_state"),
    ):
        for route in (f"{path}/members", f"{path}/members.csv", f"{url}/customer-list"):
            answer = httpx.get(route, params=bad, headers=mine)
            assert answer.status_code == 422, (route, bad, answer.text)
            assert [e["loc"][-1] for e in answer.json()["errors"]] == [field], (route, bad)
    for route in ("members", "members.csv"):
        missing = httpx.get(f"{url}/segments/999999/{route}", params={"q": "a"}, headers=mine)
        assert missing.status_code == 404


def test_members_and_the_customer_list_document_the_same_parameters(
    live_server: LiveServer,
) -> None:
    spec = httpx.get(f"{live_server.url}/openapi.json").json()["paths"]

    def parameters(path: str, leave_out: set[str]) -> dict[str, object]:
        found = spec[path]["get"]["parameters"]
        return {p["name"]: p for p in found if p["name"] not in leave_out}

    listed = parameters("/api/v1/customer-list", {"segment"})
    assert {"q", "rfm", "clv_min", "unseen_days", "as_of", "health_fell", "page"} <= set(listed)
    assert parameters("/api/v1/segments/{segment_id}/members", {"segment_id"}) == listed
    csv_listed = parameters("/api/v1/customer-list.csv", {"segment"})
    assert set(listed) - set(csv_listed) == {"page", "per_page"}
    assert parameters("/api/v1/segments/{segment_id}/members.csv", {"segment_id"}) == csv_listed
