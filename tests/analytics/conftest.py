"""Analytics fixtures: the hand-built scenario loaded into each backend, and one Spark session
for the whole run."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from clm.lifecycle.engines import quiet_engines, spark_session
from clm.store.engine import Database
from tests.analytics.logs import load, write_history
from tests.analytics.scenario import HISTORY, MESSAGES


@dataclass
class Loaded:
    db: Database
    workspace_id: int
    customers: dict[str, int]
    definition_id: int


@pytest.fixture
def scenario(db: Database) -> Loaded:
    workspace_id, customers, definition_id = load(db, MESSAGES)
    write_history(db, workspace_id, definition_id, customers, HISTORY)
    return Loaded(db, workspace_id, customers, definition_id)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    session = spark_session(cores=2)
    yield session
    with quiet_engines():
        session.stop()
