"""Privacy over HTTP and the CLI: export, erase, consent history, settings; wrong tenant and
bad input get clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from sqlalchemy import select
from typer.testing import CliRunner

from clm.cli import app
from clm.engage.repository import set_consent
from clm.store.engine import Database
from clm.store.models import Customer
from tests.conftest import LiveServer, make_tenant
from tests.engage.conftest import add_customer


def test_export_consent_history_and_erase_over_http(live_server: LiveServer) -> None:
    db = live_server.db
    tenant = make_tenant(db)
    other = make_tenant(db, "other")
    ada = add_customer(db, tenant.id, "ada", traits={"name": "Ada Lovelace"})
    auth = {"Authorization": f"Bearer {tenant.secret_key}"}
    with httpx.Client(base_url=live_server.url) as http:
        for granted, source, text in (
            (True, "signup form", "Email me offers."),
            (False, "preference centre", ""),
        ):
            put = http.put(
                "/api/v1/engage/consents",
                headers=auth,
                json={
                    "customer_id": ada,
                    "channel": "email",
                    "purpose": "marketing",
                    "granted": granted,
                    "source": source,
                    "text": text,
                },
            )
            assert put.status_code == 200, put.text
        history = http.get(f"/api/v1/customers/{ada}/consents", headers=auth).json()
        assert [(h["granted"], h["source"], h["text"]) for h in history] == [
            (True, "signup form", "Email me offers."),
            (False, "preference centre", ""),
        ]
        assert http.get(f"/api/v1/customers/{ada}/export").status_code == 401
        other_auth = {"Authorization": f"Bearer {other.secret_key}"}
        assert http.get(f"/api/v1/customers/{ada}/export", headers=other_auth).status_code == 404
        assert http.delete(f"/api/v1/customers/{ada}", headers=other_auth).status_code == 404
        document = http.get(f"/api/v1/customers/{ada}/export", headers=auth).json()
        assert document["customer_id"] == ada
        assert document["tables"]["customers"][0]["traits"]["name"] == "Ada Lovelace"
        assert len(document["tables"]["privacy_consent_history"]) == 2
        erased = http.delete(f"/api/v1/customers/{ada}", headers=auth)
        assert erased.status_code == 200, erased.text
        assert erased.json()["deleted"]["customers"] == 1
        assert http.get(f"/api/v1/customers/{ada}", headers=auth).status_code == 404
        audit = http.get("/api/v1/audit", headers=auth).json()
        actions = [(r["action"], r["target"]) for r in audit]
        assert actions[:2] == [("customer.erase", f"customer:{ada}"),
                               ("customer.export", f"customer:{ada}")]  # fmt: skip
        assert ("consent.update", f"customer:{ada}") in actions
        assert {r["actor"] for r in audit} == {f"key:{audit[0]['actor_key_id']}"}
        assert http.post(f"/api/v1/customers/{ada}/erase", headers=auth).status_code == 404
        bad = http.put(
            "/api/v1/privacy/settings",
            headers=auth,
            json={"retention_months": 0, "cors_origins": ["shop.example/path"]},
        )
        assert bad.status_code == 422
        assert {tuple(e["loc"])[-2:] for e in bad.json()["errors"]} >= {
            ("body", "retention_months"),
            ("cors_origins", 0),
        }
        ok = http.put(
            "/api/v1/privacy/settings",
            headers=auth,
            json={"retention_months": 24, "cors_origins": ["https://Shop.example/"]},
        )
        assert ok.json() == {"retention_months": 24, "cors_origins": ["https://shop.example"]}
        assert http.get("/api/v1/privacy/settings", headers=auth).json() == ok.json()


def _run(tmp_path: Path, *args: str) -> tuple[int, str]:
    env = {"CLM_DATA_DIR": str(tmp_path), "CLM_DATABASE_URL": ""}
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output


def test_cli_export_erase_and_settings(tmp_path: Path) -> None:
    assert _run(tmp_path, "workspace", "create", "shop")[0] == 0
    events = tmp_path / "events.jsonl"
    events.write_text(
        json.dumps(
            {
                "type": "identify",
                "userId": "ann",
                "messageId": "m1",
                "traits": {"email": "ann@example.org"},
            }
        )
        + "\n"
    )
    code, out = _run(tmp_path, "import", "events", str(events), "-w", "shop")
    assert code == 0, out
    db = Database.open(f"sqlite:///{tmp_path / 'clm.sqlite'}")
    with db.session() as session:
        ann = session.scalar(select(Customer.id).where(Customer.user_id == "ann"))
    db.dispose()
    target = tmp_path / "ann.json"
    code, out = _run(tmp_path, "customer", "export", str(ann), "-w", "shop", "-o", str(target))
    assert code == 0, out
    assert json.loads(target.read_text())["tables"]["identities"][0]["value"] in (
        "ann",
        "ann@example.org",
    )
    db = Database.open(f"sqlite:///{tmp_path / 'clm.sqlite'}")
    with db.transaction() as session:
        set_consent(session, 1, ann, "email", "marketing", True, "checkout", text="Send offers")
        set_consent(session, 1, ann, "email", "marketing", False, "unsubscribe link")
    db.dispose()
    code, out = _run(tmp_path, "customer", "consents", str(ann), "-w", "shop", "-f", "json")
    assert code == 0, out
    assert [(c["granted"], c["source"], c["text"]) for c in json.loads(out)] == [
        (True, "checkout", "Send offers"),
        (False, "unsubscribe link", ""),
    ]
    code, out = _run(tmp_path, "customer", "erase", str(ann), "-w", "shop")
    assert code == 1 and "--yes" in out
    code, out = _run(
        tmp_path, "customer", "erase", str(ann), "-w", "shop", "--yes", "--format", "json"
    )
    assert code == 0, out
    assert json.loads(out)["tombstones"] == 2  # user id and email
    code, out = _run(tmp_path, "customer", "export", str(ann), "-w", "shop")
    assert code == 1 and out.count("\n") == 1 and "No customer" in out
    code, out = _run(tmp_path, "privacy", "settings", "-w", "shop", "--retention-months", "0")
    assert code == 1 and "retention_months" in out
    code, out = _run(
        tmp_path,
        "privacy",
        "settings",
        "-w",
        "shop",
        "--retention-months",
        "6",
        "--cors-origin",
        "http://127.0.0.1:5000",
    )
    assert code == 0 and json.loads(out)["cors_origins"] == ["http://127.0.0.1:5000"]
