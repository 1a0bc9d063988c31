"""Bad input on the command line (issue 16, item 6): one line on stderr, exit code 1, never a
traceback. Run as a user runs it: ``python -m clm`` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from clm.store.engine import Database
from tests.conftest import make_tenant


def clm(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clm", *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, **env},
    )  # fmt: skip


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'clm.sqlite'}"
    db = Database.open(url)
    make_tenant(db, "shop")
    db.dispose()
    return {"CLM_DATABASE_URL": url, "CLM_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200"}


def assert_one_line_error(run: subprocess.CompletedProcess[str], expected: str) -> None:
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), run.stderr
    assert expected in lines[0]


def test_customer_show_with_an_id_past_64_bits(cli_env: dict[str, str]) -> None:
    run = clm("customer", "show", str(2**70), "-w", "shop", env=cli_env)
    assert_one_line_error(run, "out of range")


def test_survey_apply_with_a_file_that_is_not_utf8(cli_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "survey.yaml"
    path.write_bytes("key: nps\nquestion: ¿Qué tal?\n".encode("latin-1"))
    run = clm("survey", "apply", str(path), "-w", "shop", env=cli_env)
    assert_one_line_error(run, "not UTF-8")


def test_an_unanticipated_failure_is_still_one_line(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """The entry point's last resort: a database URL that cannot be opened."""
    env = {**cli_env, "CLM_DATABASE_URL": f"sqlite:///{tmp_path}/missing/dir/\x01/x.sqlite"}
    run = clm("customer", "show", "1", "-w", "shop", env=env)
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("customer", "show", "--bogus", "1"), "No such option: --bogus"),
        (("no-such-command",), "No such command"),
        (("customer", "show"), "Missing argument"),
        (("workspace", "list", "--format", "yaml"), "'yaml' is not one of"),
    ],
)
def test_a_usage_mistake_is_one_line_and_exit_code_1(
    cli_env: dict[str, str], args: tuple[str, ...], expected: str
) -> None:
    """Click answers these with a usage block, a box and exit code 2; CLM with one line that
    names the command's help, however narrow the terminal (no COLUMNS: rich assumes 80)."""
    env = {k: v for k, v in cli_env.items() if k != "COLUMNS"}
    run = clm(*args, env={**env, "COLUMNS": "40"})
    assert_one_line_error(run, expected)
    assert "--help" in run.stderr


def test_help_still_answers_with_exit_code_0(cli_env: dict[str, str]) -> None:
    run = clm("customer", "--help", env=cli_env)
    assert run.returncode == 0, run.stderr
    assert "show" in run.stdout
