"""A program that opens a database without migrating it can tell what it lacks
(``store.engine.pending_migrations``), and the benchmarks' ``open_existing`` refuses a file
behind this code's schema instead of changing it, unless told to migrate: on SQLite files,
against the chain read from the migration files themselves (a second implementation)."""

from __future__ import annotations

import importlib.util
import re
import sqlite3
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import create_engine

from clm.store.engine import MIGRATIONS, migrate, pending_migrations

ROOT = Path(__file__).resolve().parents[1]


def _chain() -> list[str]:
    """The revisions oldest first, from each file's ``revision`` and ``down_revision``."""
    parent_of: dict[str, str | None] = {}
    for path in (MIGRATIONS / "versions").glob("*.py"):
        text = path.read_text()
        revision = re.search(r'^revision = "(\w+)"', text, re.M)
        down = re.search(r'^down_revision = (?:"(\w+)"|None)', text, re.M)
        assert revision and down, path
        parent_of[revision.group(1)] = down.group(1)
    child_of = {parent: child for child, parent in parent_of.items()}
    chain, at = [], child_of[None]
    while True:
        chain.append(at)
        if at not in child_of:
            return chain
        at = child_of[at]


def _version(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("SELECT version_num FROM alembic_version").fetchone()[0])


def _benchmarks_db() -> ModuleType:
    spec = importlib.util.spec_from_file_location("benchmarks_db", ROOT / "benchmarks" / "_db.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pending_migrations_of_an_empty_an_old_a_current_and_a_newer_schema(
    tmp_path: Path,
) -> None:
    chain = _chain()
    assert len(chain) == len(list((MIGRATIONS / "versions").glob("*.py"))) and chain[0] == "0001"
    engine = create_engine(f"sqlite:///{tmp_path / 'clm.sqlite'}")
    assert pending_migrations(engine) == chain
    migrate(engine, chain[-3])
    assert pending_migrations(engine) == chain[-2:]
    migrate(engine)
    assert pending_migrations(engine) == []
    with engine.begin() as connection:  # a later checkout's revision, unknown here
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    assert pending_migrations(engine) == []
    engine.dispose()


def test_a_benchmark_opens_an_old_file_only_when_told_to_migrate_it(tmp_path: Path) -> None:
    chain, opener = _chain(), _benchmarks_db()
    path = tmp_path / "shared.sqlite"
    engine = create_engine(f"sqlite:///{path}")
    migrate(engine, chain[-2])
    engine.dispose()
    with pytest.raises(SystemExit) as refused:
        opener.open_existing(f"sqlite:///{path}", migrate=False)
    assert f"lacks this code's migrations {chain[-1]}: rerun with --migrate" in str(refused.value)
    assert _version(path) == chain[-2]  # the file is as it was
    db = opener.open_existing(f"sqlite:///{path}", migrate=True)
    db.dispose()
    assert _version(path) == chain[-1]
    again = opener.open_existing(f"sqlite:///{path}", migrate=False)  # current: opened as is
    again.dispose()
