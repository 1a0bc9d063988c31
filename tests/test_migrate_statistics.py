"""A migration's new index gets SQLite planner statistics when the database already has them
(``store.engine.migrate``): otherwise the planner misjudges it beside the analysed ones."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import create_engine

from clm.store.engine import migrate

NEW_INDEX = "ix_events_identity_name_ts"  # added by migration 0018


def _stats(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone():
            return {}
        rows = conn.execute("SELECT idx, stat FROM sqlite_stat1 WHERE idx IS NOT NULL")
        return {idx: stat for idx, stat in rows}


def _stat_rows(path: Path) -> set[str]:
    return set(_stats(path))


def test_an_analysed_database_gets_statistics_for_a_new_index(tmp_path: Path) -> None:
    path = tmp_path / "clm.sqlite"
    engine = create_engine(f"sqlite:///{path}")
    migrate(engine, "0017")
    with sqlite3.connect(path) as conn:  # some rows, then statistics, as a bulk import leaves
        conn.execute(
            "INSERT INTO workspaces (id, name, slug, settings, created_at) "
            "VALUES (1, 'w', 'w', '{}', '2024-01-01')"
        )
        conn.execute(
            "INSERT INTO events (id, workspace_id, identity_id, message_id, type, name, timestamp,"
            " ts, received_at, properties, context) VALUES (1, 1, 1, 'm', 'track', 'Order',"
            " '2024-01-01', 0, '2024-01-01', '{}', '{}')"
        )
        conn.execute("ANALYZE")
    before = _stats(path)
    assert NEW_INDEX not in before
    migrate(engine)
    after = _stats(path)
    assert NEW_INDEX in after
    # the indexes analysed before keep their full statistics (not resampled)
    kept = before.keys() & after.keys()  # 0018 also drops the index it replaces
    assert kept and {idx: after[idx] for idx in kept} == {idx: before[idx] for idx in kept}


def test_a_database_never_analysed_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "clm.sqlite"
    engine = create_engine(f"sqlite:///{path}")
    migrate(engine, "0017")
    migrate(engine)
    assert _stat_rows(path) == set()
