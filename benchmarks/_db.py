"""Opening a database a benchmark did not just build: as it is, unless ``--migrate``.

A benchmark builds its data once and reuses it, and the team shares some builds (the demo,
the 100k web workspace). Migrating such a file from newer code changes it for everyone, and
a figure taken on a file migrated under the reader's feet is not the figure of either
schema. So an existing database is opened without migrating; one behind this code's schema
stops the run with what to do (``--migrate`` on a copy of your own), rather than running
on a missing index or column. A file the benchmark creates itself is migrated as usual.

Scripts one folder down import it after ``sys.path.insert(0, <benchmarks>)``.
"""

from __future__ import annotations

import argparse

from clm.store.engine import Database, pending_migrations


def add_migrate_option(parser: argparse.ArgumentParser) -> None:
    """``--migrate``: bring an existing database up to this code's schema first."""
    parser.add_argument(
        "--migrate",
        action="store_true",
        help="migrate an existing database to this code's schema first (changes the file: "
        "copy a shared one before)",
    )


def open_existing(url: str, *, migrate: bool) -> Database:
    """The database at ``url``, migrated only if ``migrate``; one still behind this code's
    schema ends the run with the migrations it lacks."""
    db = Database.open(url, run_migrations=migrate)
    missing = pending_migrations(db.engine)
    if missing:
        db.dispose()
        raise SystemExit(
            f"{url} lacks this code's migrations {', '.join(missing)}: rerun with --migrate "
            "(it changes the file in place; copy a shared database first)"
        )
    return db
