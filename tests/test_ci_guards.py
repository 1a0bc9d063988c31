"""Holes a green CI must not have: skipped published-paper checks, a schema the migrations
build that differs from the models the code queries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, MetaData, String

from clm.store.engine import Database
from clm.store.models import SQLITE_ONLY_TABLES, Base
from tests.conftest import REPO, shared_data_file


def test_missing_published_data_skips_locally_and_fails_under_ci(tmp_path: Path) -> None:
    with pytest.raises(pytest.skip.Exception):
        shared_data_file("CDNOW_sample.txt", root=tmp_path, in_ci=False)
    with pytest.raises(pytest.fail.Exception, match="CI=true requires the published data"):
        shared_data_file("CDNOW_sample.txt", root=tmp_path, in_ci=True)
    (tmp_path / "CDNOW_sample.txt").write_text("1 1 19970101 1 9.99\n")
    assert shared_data_file("CDNOW_sample.txt", root=tmp_path, in_ci=True).exists()


@pytest.mark.slow
def test_a_paper_test_fails_under_ci_without_the_data(tmp_path: Path) -> None:
    """The real thing: pytest itself, CI=true, the data folder pointing nowhere."""
    env = {**os.environ, "CI": "true", "CLM_SHARED_DATA": str(tmp_path / "absent")}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/predict/test_beta_geo.py", "-x"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 1, run.stdout[-2000:]
    assert "CI=true requires the published data sets" in run.stdout
    assert " skipped" not in run.stdout.splitlines()[-1]


def test_migrations_build_exactly_the_models_schema(db: Database) -> None:
    """Alembic's own comparison of the migrated database with the models' metadata: tables,
    columns, types, nullability, indexes, unique constraints and foreign keys."""
    with db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "compare_server_default": False,
                # SQLite's FTS5 search index and its shadow tables: not models (see models.py).
                "include_name": lambda name, kind, _: (
                    not (kind == "table" and (name or "").startswith(SQLITE_ONLY_TABLES))
                ),
            },
        )
        differences = compare_metadata(context, Base.metadata)
        # The comparison sees a difference when there is one: a column the models would add.
        altered = MetaData()
        for table in Base.metadata.tables.values():
            table.to_metadata(altered)
        altered.tables["customers"].append_column(Column("nickname", String(40)))
        noticed = compare_metadata(context, altered)
    assert differences == []
    assert [(d[0], d[2], d[3].name) for d in noticed] == [("add_column", "customers", "nickname")]
