"""The CLI end to end on an embedded database: workspaces, keys, import, customers, events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from clm.cli import app
from clm.engage.playbooks import service as pb
from clm.store.engine import Database
from clm.store.models import Workspace


def run(tmp_path: Path, *args: str) -> tuple[int, str]:
    env = {"CLM_DATA_DIR": str(tmp_path), "CLM_DATABASE_URL": ""}
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output


def test_workspace_import_and_lookup(tmp_path: Path) -> None:
    code, out = run(tmp_path, "workspace", "create", "shop", "--format", "json")
    assert code == 0, out
    created = json.loads(out)
    assert created["write_key"].startswith("clm_wk_")
    code, out = run(tmp_path, "workspace", "create", "shop")
    assert code == 1 and "already exists" in out
    orders = tmp_path / "orders.csv"
    orders.write_text("customer_id,date,amount\nann,2024-01-01,10\nann,2024-02-01,5\nbob,x,1\n")
    rejected = tmp_path / "rejected.jsonl"
    code, out = run(tmp_path, "import", "transactions", str(orders), "-w", "shop",
                    "--rejected-out", str(rejected), "--format", "json")  # fmt: skip
    assert code == 0, out
    assert json.loads(out)["stored"] == 2
    assert [json.loads(line)["line"] for line in rejected.read_text().splitlines()] == [4]
    code, _ = run(tmp_path, "import", "transactions", str(orders), "-w", "shop", "--strict")
    assert code == 1  # a rejected row with --strict
    code, out = run(tmp_path, "customer", "show", "ann", "--by", "user_id", "-w", "shop",
                    "--format", "json")  # fmt: skip
    assert code == 0, out
    shown = json.loads(out)
    assert shown["customer"]["event_count"] == 2
    assert [e["revenue"] for e in shown["timeline"]] == [5.0, 10.0]
    code, out = run(tmp_path, "events", "list", "-w", "shop", "--limit", "1", "--format", "json")
    page = json.loads(out)
    assert len(page["items"]) == 1 and page["next_after"] == page["items"][0]["id"]


def test_keys_are_listed_by_prefix_and_revoked(tmp_path: Path) -> None:
    run(tmp_path, "workspace", "create", "shop")
    code, out = run(tmp_path, "keys", "create", "write", "-w", "shop", "--name", "web",
                    "--format", "json")  # fmt: skip
    assert code == 0, out
    key = json.loads(out)
    code, out = run(tmp_path, "keys", "list", "-w", "shop", "--format", "json")
    listed = json.loads(out)
    assert len(listed) == 3
    assert key["key"] not in out  # only the prefix is stored and shown
    assert {k["prefix"] for k in listed} >= {key["key"][:12]}
    code, out = run(tmp_path, "keys", "revoke", str(key["id"]), "-w", "shop")
    assert code == 0, out
    code, out = run(tmp_path, "keys", "revoke", str(key["id"]), "-w", "shop")
    assert code == 1 and "No active key" in out
    code, out = run(tmp_path, "keys", "create", "admin", "-w", "shop")
    assert code == 1  # admin keys belong to no workspace


def test_unknown_workspace_is_a_clear_error(tmp_path: Path) -> None:
    code, out = run(tmp_path, "events", "list", "-w", "nope")
    assert code == 1
    assert "No workspace 'nope'" in out
    assert "Traceback" not in out


@pytest.mark.parametrize(
    "command",
    [
        ["customer", "show", "1"],
        ["survey", "list"],
        ["playbook", "tick"],
        ["coupon", "list"],
        ["points", "balance", "1"],
        ["stages", "list"],
        ["lifecycle", "tick"],
        ["fit"],
        ["report", "rfm"],
        ["import", "transactions", "orders.csv"],
    ],
    ids=" ".join,
)
def test_unknown_workspace_is_one_line_in_every_module(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "orders.csv").write_text("customer_id,date,amount\nann,2024-01-01,10\n")
    command = [str(tmp_path / a) if a.endswith(".csv") else a for a in command]
    code, out = run(tmp_path, *command, "-w", "nope")
    assert (code, out.splitlines()) == (1, ["error: No workspace 'nope'"])


def test_a_bad_option_is_reported_before_an_unknown_workspace(tmp_path: Path) -> None:
    code, out = run(tmp_path, "report", "rfm", "-w", "nope", "--format", "xml")
    assert code == 1 and "Invalid --format" in out and "nope" not in out
    code, out = run(tmp_path, "report", "import-spend", "no-such-spend.csv", "-w", "nope")
    assert code == 1 and "error: Cannot read no-such-spend.csv" in out and "nope" not in out


def test_an_error_inside_a_workspace_command_is_one_line(tmp_path: Path) -> None:
    run(tmp_path, "workspace", "create", "shop")
    code, out = run(tmp_path, "playbook", "pause", "welcome", "-w", "shop")
    assert (code, out.splitlines()) == (1, ["error: No playbook 'welcome'"])


def test_input_a_model_refuses_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    run(tmp_path, "workspace", "create", "shop")
    code, out = run(tmp_path, "coupon", "issue", "10", "-w", "shop", "--code", "AB")
    assert code == 1 and "error: invalid CouponCreate: code:" in out
    (tmp_path / "broken.yaml").write_text("questions: [1,\n")
    code, out = run(tmp_path, "survey", "apply", str(tmp_path / "broken.yaml"), "-w", "shop")
    assert code == 1 and "error: not valid YAML or JSON" in out
    (tmp_path / "survey.yaml").write_text("key: nps\n")
    code, out = run(tmp_path, "survey", "apply", str(tmp_path / "survey.yaml"), "-w", "shop")
    assert code == 1 and "error: invalid SurveyDefinition" in out
    (tmp_path / "referral.yaml").write_text("referrer_points: lots\n")
    code, out = run(tmp_path, "referral", "create", str(tmp_path / "referral.yaml"), "-w", "shop")
    assert code == 1 and "error: invalid ReferralProgram: referrer_points" in out
    assert "Traceback" not in out


def test_a_playbook_applied_from_a_file_keeps_its_text(tmp_path: Path) -> None:
    """The web editor reopens a playbook applied by the CLI as its file says, comments and
    all; applying it again with a changed comment only replaces the text of that version."""
    from tests.engage.test_console import COMMENTED

    run(tmp_path, "workspace", "create", "shop")
    path = tmp_path / "check-in.yaml"
    path.write_text(COMMENTED)
    code, out = run(tmp_path, "playbook", "apply", str(path), "-w", "shop")
    assert code == 0 and "version 1" in out, out
    path.write_text(COMMENTED.replace("# a person calls", "# someone calls"))
    code, out = run(tmp_path, "playbook", "apply", str(path), "-w", "shop")
    assert code == 0 and "version 1" in out, out
    db = Database.open(f"sqlite:///{tmp_path / 'clm.sqlite'}")
    try:
        with db.session() as session:
            workspace_id = session.scalars(select(Workspace.id)).one()
        found, text = pb.playbook_version(db, workspace_id, "check-in")
        assert (found.version, text) == (1, path.read_text())
    finally:
        db.engine.dispose()
