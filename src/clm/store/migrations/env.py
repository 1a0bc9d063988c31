"""Alembic environment: CLM passes its own connection; ``alembic`` on the command line uses
``CLM_DATABASE_URL`` (or the embedded default)."""

from __future__ import annotations

from alembic import context

from clm.store.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    from clm.config import get_settings
    from clm.store.engine import create_db_engine

    engine = create_db_engine(get_settings().effective_database_url)
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()


run()
