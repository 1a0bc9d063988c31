"""The API routes and CLI commands over the predictions service."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import httpx
from typer.testing import CliRunner

from clm.cli import app
from clm.ingest import ingest
from clm.predictions import fit_workspace, latest_predictions
from clm.store import customers as customers_repo
from clm.store.engine import Database
from tests.conftest import LiveServer, Tenant, make_tenant
from tests.predictions.conftest import purchase


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _shop(db: Database, slug: str = "shop") -> Tenant:
    tenant = make_tenant(db, slug)
    start = datetime(2024, 1, 1, 12, tzinfo=UTC)
    messages = [
        purchase(f"u{i}", start.replace(month=1 + i % 3, day=1 + i), 10.0) for i in range(25)
    ]
    messages += [
        purchase(f"u{i}", start.replace(month=5, day=1 + i), 12.0 + i) for i in range(0, 25, 2)
    ]
    messages += [purchase(f"u{i}", start.replace(month=9, day=1 + i), 8.0) for i in range(0, 25, 3)]
    ingest(db, tenant.id, messages)
    return tenant


def test_api_walks_the_ladder(live_server: LiveServer) -> None:
    db = live_server.db
    shop = _shop(db)
    other = make_tenant(db, "other")
    url = live_server.url + "/api/v1"
    body = {"model": "bgnbd", "as_of": "2024-12-31", "holdout_weeks": 13}
    assert httpx.post(f"{url}/predictions/fit", json=body).status_code == 401
    empty = httpx.post(f"{url}/predictions/fit", json=body, headers=bearer(other.secret_key))
    assert empty.status_code == 422 and empty.json()["code"] == "validation_error"
    assert "No purchases" in empty.json()["message"]
    bad = httpx.post(
        f"{url}/predictions/fit", json={"model": "lstm"}, headers=bearer(shop.secret_key)
    )
    assert bad.status_code == 422
    missing = httpx.get(f"{url}/predictions/fits/latest", headers=bearer(shop.secret_key))
    assert missing.status_code == 404

    fitted = httpx.post(f"{url}/predictions/fit", json=body, headers=bearer(shop.secret_key))
    assert fitted.status_code == 200, fitted.text
    report = fitted.json()
    assert report["model"] == "bgnbd" and report["scores_written"] == 25
    assert report["holdout"]["weeks"] == 13
    latest = httpx.get(f"{url}/predictions/fits/latest", headers=bearer(shop.secret_key))
    assert latest.json()["fit_id"] == report["fit_id"]
    assert (
        httpx.get(f"{url}/predictions/fits/latest", headers=bearer(other.secret_key)).status_code
        == 404
    )

    with db.session() as session:
        u0 = customers_repo.find_customer(session, shop.id, "user_id", "u0")
    path = f"{url}/customers/{u0.id}/predictions"
    assert httpx.get(path, headers=bearer(other.secret_key)).status_code == 404  # wrong tenant
    assert (
        httpx.get(
            f"{url}/customers/999999/predictions", headers=bearer(shop.secret_key)
        ).status_code
        == 404
    )
    mine = httpx.get(path, headers=bearer(shop.secret_key)).json()
    assert mine["customer_id"] == u0.id and 0 <= mine["latest"]["p_alive"] <= 1
    assert mine["latest"]["model_version"] == report["model_version"]

    holdout = httpx.get(f"{url}/predictions/plots/holdout", headers=bearer(shop.secret_key)).json()
    assert len(holdout["actual"]) == len(holdout["predicted"]) == len(holdout["frequency"])
    heat = httpx.get(
        f"{url}/predictions/plots/heatmap",
        params={"quantity": "purchases", "points": 5},
        headers=bearer(shop.secret_key),
    ).json()
    assert len(heat["values"]) == 21 and len(heat["values"][0]) == 5
    assert heat["values"][0][1] is None  # no repeat purchases, recency > 0: impossible
    history = httpx.get(
        f"{url}/predictions/plots/p-alive",
        params={"customer_id": u0.id},
        headers=bearer(shop.secret_key),
    ).json()
    # u0 bought on 2024-01-01, 05-01 and 09-01: weeks since the first purchase.
    assert history["purchase_weeks"] == [0.0, 121 / 7, 244 / 7]
    assert history["p_alive"][0] == 1.0
    no_customer = httpx.get(f"{url}/predictions/plots/p-alive", headers=bearer(shop.secret_key))
    assert no_customer.status_code == 422
    unknown = httpx.get(f"{url}/predictions/plots/nope", headers=bearer(shop.secret_key))
    assert unknown.status_code == 422


def test_cli_fit_plot_and_customer_record(sqlite_db: Database, tmp_path: Path) -> None:
    # SQLite only: each command opens (and leaves to the process) its own engine.
    db = sqlite_db
    url = str(db.engine.url.render_as_string(hide_password=False))
    shop = _shop(db)
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["fit", "-w", "shop", "--model", "pareto", "--as-of", "2024-12-31",
         "--holdout-weeks", "13", "--database-url", url],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "alpha" in result.output and "Holdout" in result.output
    again = runner.invoke(
        app,
        ["fit", "-w", "shop", "--model", "pareto", "--as-of", "2024-12-31",
         "--holdout-weeks", "13", "--database-url", url, "--format", "json"],
    )  # fmt: skip
    assert again.exit_code == 0 and '"reused": true' in again.output
    with db.session() as session:
        u0 = customers_repo.find_customer(session, shop.id, "user_id", "u0")
    for command, name in [
        (["holdout"], "holdout.png"),
        (["heatmap", "--quantity", "purchases"], "heat.svg"),
        (["p-alive", "--customer", str(u0.id)], "alive.png"),
    ]:
        target = tmp_path / name
        done = runner.invoke(
            app, ["plot", *command, "-w", "shop", "-o", str(target), "--database-url", url]
        )
        assert done.exit_code == 0, done.output
        assert target.stat().st_size > 1000
    assert (tmp_path / "heat.svg").read_text().lstrip().startswith("<?xml")
    shown = runner.invoke(
        app, ["customer", "show", str(u0.id), "-w", "shop", "--database-url", url]
    )
    assert shown.exit_code == 0 and "Predictions" in shown.output and "P(alive)" in shown.output
    empty = make_tenant(db, "empty")
    failed = runner.invoke(app, ["fit", "-w", empty.slug, "--database-url", url])
    assert failed.exit_code == 1 and "No purchases" in failed.output


def test_customer_without_scores_has_no_latest(db: Database) -> None:
    shop = _shop(db)
    ingest(db, shop.id, [purchase("late", datetime(2025, 3, 1, tzinfo=UTC), 9.0)])
    fit_workspace(db, shop.id, model="bgnbd", as_of=date(2024, 12, 31))
    with db.session() as session:
        late = customers_repo.find_customer(session, shop.id, "user_id", "late")
    scores = latest_predictions(db, shop.id, late.id)
    assert scores.latest is None and scores.history == []
