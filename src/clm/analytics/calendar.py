"""Calendar months from epoch seconds, in integer arithmetic every engine agrees on.

SQLite, PostgreSQL, DuckDB and Spark disagree on date functions and time zones; integer
division does not. ``month_index`` is ``year * 12 + month - 1`` (UTC), computed with Howard
Hinnant's ``civil_from_days`` (http://howardhinnant.github.io/date_algorithms.html),
simplified to the years in which every fourth year is a leap year.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import ibis
import ibis.expr.types as ir

DAY = 86_400
Granularity = Literal["month", "quarter", "year"]
_PER = {"month": 1, "quarter": 3, "year": 12}


def month_index(ts: ir.IntegerValue) -> ir.IntegerValue:
    """Ibis: the UTC calendar month of an epoch-seconds column, as ``year * 12 + month - 1``.

    Valid from 1968-03-01 to 2100-02-28, where every fourth year is a leap year: days are
    counted from 1968-03-01 in 4-year cycles of 1,461 days that end on a 29 February, and
    months from March (``(5 * day_of_year + 2) // 153``), so the SQL stays small.
    """
    days = (ts // DAY).cast("int64") + 671  # 1968-03-01 is day 0
    cycle = (days // 1461).cast("int64")
    rest = days - cycle * 1461
    years = ibis.least((rest // 365).cast("int64"), 3)
    march_month = ((5 * (rest - 365 * years) + 2) // 153).cast("int64")
    return ((1968 + 4 * cycle + years) * 12 + 2 + march_month).cast("int64")


def period_index(ts: ir.IntegerValue, granularity: Granularity) -> ir.IntegerValue:
    per = _PER[granularity]
    months = month_index(ts)
    return months if per == 1 else (months // per).cast("int64")


def month_of(ts: int) -> int:
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.year * 12 + moment.month - 1


def period_of(ts: int, granularity: Granularity) -> int:
    return month_of(ts) // _PER[granularity]


def period_start(index: int, granularity: Granularity) -> int:
    """Epoch seconds at the start of a period."""
    months = index * _PER[granularity]
    return int(datetime(months // 12, months % 12 + 1, 1, tzinfo=UTC).timestamp())


def period_label(index: int, granularity: Granularity) -> str:
    months = index * _PER[granularity]
    year, month = months // 12, months % 12 + 1
    if granularity == "month":
        return f"{year:04d}-{month:02d}"
    if granularity == "quarter":
        return f"{year:04d}-Q{(month - 1) // 3 + 1}"
    return f"{year:04d}"


def periods_between(since: int, until: int, granularity: Granularity) -> list[int]:
    """The periods that overlap ``[since, until)``."""
    if until <= since:
        return []
    return list(range(period_of(since, granularity), period_of(until - 1, granularity) + 1))
