"""Lifecycle fixtures: one Spark session for the whole run (it takes ~15 s to start)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from clm.lifecycle.engines import quiet_engines, spark_session


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    session = spark_session(cores=2)
    yield session
    with quiet_engines():
        session.stop()
