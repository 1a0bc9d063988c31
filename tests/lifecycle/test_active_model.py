"""Exactly one active stage model per workspace; ``--model`` picks any stored one.

Applying a second model used to leave both active, and ``run``, ``tick`` and counts silently
kept using the first (``classic``)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from clm.cli import app
from clm.ingest.service import ingest
from clm.lifecycle import (
    apply_stage_model,
    list_definitions,
    run_lifecycle,
    shipped_model_text,
    stage_at,
    stage_counts,
    tick,
)
from clm.store.engine import Database
from clm.store.models import Customer
from tests.lifecycle.logs import DAY, at, message, new_workspace

LOG = [
    message("a", 0, "a1", "Order Completed", revenue=10),
    message("a", DAY, "a2", "Order Completed", revenue=10),
    message("a", 2 * DAY, "a3", "Order Completed", revenue=10),
]


def test_applying_a_model_makes_it_the_one_active_model(db: Database) -> None:
    workspace_id = new_workspace(db)
    ingest(db, workspace_id, LOG)
    classic = apply_stage_model(db, workspace_id, shipped_model_text("classic"))
    assert classic.replaced is None
    four = apply_stage_model(db, workspace_id, shipped_model_text("four_stage"))
    assert four.replaced is not None and four.replaced.name == "classic"
    assert [(d.name, d.active) for d in list_definitions(db, workspace_id)] == [
        ("classic", False),
        ("four_stage", True),
    ]
    # Everything that is not told which model now uses four_stage.
    assert run_lifecycle(db, workspace_id).model == "four_stage"
    assert tick(db, workspace_id, now=at(3 * DAY)).model == "four_stage"
    with db.session() as session:
        a = session.scalar(select(Customer.id).where(Customer.user_id == "a"))
    assert a is not None
    # Three purchases: loyalty under four_stage (purchase_count >= 3), by its YAML.
    found = stage_at(db, workspace_id, a, at(3 * DAY))
    assert found is not None and (found.stage, found.model) == ("loyalty", "four_stage")
    counts = stage_counts(db, workspace_id, at(3 * DAY))
    assert counts == {"awareness": 0, "consideration": 0, "purchase": 0, "loyalty": 1}
    # classic is still there, by name, with its own history.
    assert run_lifecycle(db, workspace_id, model_name="classic").model == "classic"
    assert stage_counts(db, workspace_id, at(3 * DAY), model="classic")["retention"] == 1


def test_cli_run_tick_and_counts_take_a_model(tmp_path: Path) -> None:
    env = {"CLM_DATA_DIR": str(tmp_path), "CLM_DATABASE_URL": ""}

    def clm(*args: str) -> str:
        result = CliRunner().invoke(app, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.output

    clm("workspace", "create", "shop")
    orders = tmp_path / "orders.csv"
    orders.write_text("customer_id,date,amount\nann,2024-01-01,10\nann,2024-02-01,5\n")
    clm("import", "transactions", str(orders), "-w", "shop")
    for name in ("classic", "four_stage"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(shipped_model_text(name))
        out = clm("stages", "apply", str(path), "-w", "shop")
    assert "four_stage version 1: now the active model" in out
    assert "classic version 1 is no longer active" in out
    ran = json.loads(clm("lifecycle", "run", "-w", "shop", "--model", "classic", "-f", "json"))
    assert ran["model"] == "classic"
    ticked = json.loads(clm("lifecycle", "tick", "-w", "shop", "-f", "json"))
    assert ticked["model"] == "four_stage"
    when = "2024-03-01T00:00:00+00:00"
    counts = json.loads(
        clm("lifecycle", "counts", "-w", "shop", "--at", when, "-m", "classic", "-f", "json")
    )
    assert (counts["model"], counts["stages"]["retention"]) == ("classic", 1)
    active = json.loads(clm("lifecycle", "counts", "-w", "shop", "--at", when, "-f", "json"))
    assert (active["model"], active["stages"]["purchase"]) == ("four_stage", 1)
