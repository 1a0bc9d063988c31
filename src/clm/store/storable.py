"""What the databases can store, checked at CLM's edges: ids that fit the 64-bit columns they
are looked up in, finite floats, and text without NUL characters.

Python integers have no size limit and JSON numbers may be ``1e400``; the databases have
both. A number outside what a column holds used to reach the driver and fail there (SQLite's
``OverflowError``, PostgreSQL's out-of-range error): a 500 instead of a field-level 422. Every
id, page cursor and count at the HTTP, file and YAML edges uses these types, and a test walks
the OpenAPI to prove no integer input is left unbounded.
"""

from __future__ import annotations

from typing import Annotated, Any

from annotated_types import Ge, Le
from pydantic import AllowInfNan

MAX_BIGINT = 2**63 - 1
"""The largest value of a 64-bit signed column (SQLite INTEGER, PostgreSQL BIGINT)."""

RowId = Annotated[int, Ge(1), Le(MAX_BIGINT)]
"""The id of a stored row (customer, key, referral, ...) or a page cursor after one."""

Offset = Annotated[int, Ge(0), Le(MAX_BIGINT)]
"""A count of rows to skip."""

Points = Annotated[int, Ge(-(10**12)), Le(10**12)]
"""Loyalty points in one ledger entry: far beyond any program, far inside a 64-bit sum."""

Days = Annotated[int, Ge(0), Le(36_500)]
"""A number of days in a schedule or window: up to a century (``timedelta`` overflows near
2.7 million years, the calendar long before)."""

FiniteFloat = Annotated[float, AllowInfNan(False)]
"""A float that is a number: ``inf``, ``-inf`` and ``nan`` are refused with a field error, as
JSON cannot store them and every sum over them is lost."""


def without_nul(value: Any) -> Any:
    """``value`` (JSON-like) with every NUL character (U+0000) removed from strings and keys.

    PostgreSQL cannot store NUL in ``text`` or ``jsonb``; SQLite can. Rather than store on one
    backend what the other refuses, CLM strips NUL on both: it never carries meaning in text,
    and refusing would lose an event over a stray byte in a user agent.
    """
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {
            without_nul(k) if isinstance(k, str) else k: without_nul(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [without_nul(item) for item in value]
    return value


__all__ = ["MAX_BIGINT", "Days", "FiniteFloat", "Offset", "Points", "RowId", "without_nul"]
