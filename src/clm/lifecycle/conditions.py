"""The condition language of segments, playbook triggers and branch steps: one definition, one
SQL compiler (whole populations, in the database) and one per-customer evaluator (a journey's
branch step, which also knows the customer's A/B ``variant``).

A condition is ``{attr, op, value}``; a list of them holds when every one holds. Attributes:

==================  ======  =====================================================
``stage``           text    current stage of the active stage model
``health``          text    current health state: happy, at_risk, unhappy
``rfm``             text    RFM segment ("Champions", ...), where it is stored
``health_score``    number  current health score, 0-100
``p_alive``         number  latest P(alive), 0-1
``clv``             number  latest 12-month CLV
``revenue``         number  revenue of all their purchases
``purchases``       number  how many purchases they made
``last_seen_days``  number  days since the customer's own last event
``last_seen_date``  date    day (UTC, ``YYYY-MM-DD``) of the customer's own last event
``search``          text    ``contains``: part of the name, email or user id
``traits.<name>``   any     a trait; numbers compare as numbers, text as text
``variant``         text    a journey's A/B variant (branch steps only)
==================  ======  =====================================================

Ops: ``eq ne in exists`` everywhere (but ``in`` for dates); ``gt gte lt lte`` for numbers,
dates and traits; ``contains`` for ``search``. A missing value fails every op but ``ne``
(and ``exists`` tests for it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, case, false, func, literal, not_, or_, true
from sqlalchemy.sql.elements import ColumnElement

from clm.errors import FieldError
from clm.store.models import Customer

Op = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "exists", "contains"]
TEXT_ATTRS = ("stage", "health", "rfm")
NUMBER_ATTRS = ("health_score", "p_alive", "clv", "revenue", "purchases", "last_seen_days")
DATE_ATTRS = ("last_seen_date",)
ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
HEALTH_STATES = ("happy", "at_risk", "unhappy")
# The RFM segments (clm.analytics.segments.segment_of names them; report filters share these).
RFM_SEGMENTS = ("Champions", "Loyal", "Potential loyalists", "New", "Promising", "Need attention",
                "About to sleep", "At risk", "Can't lose them", "Hibernating", "Lost")  # fmt: skip
COMPARISONS = ("gt", "gte", "lt", "lte")
TRAIT = re.compile(r"^traits\.[A-Za-z0-9_$-]{1,64}$")
MAX_IN = 500
MAX_NUMBER = 2.0**53  # exact in a float, inside every engine's integers
DAY = 86_400


class Condition(BaseModel):
    """One test of a customer: ``attr`` ``op`` ``value`` (see the module's table)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    attr: str = Field(max_length=80)
    op: Op = "eq"
    value: Any = None


def condition_errors(
    conditions: Sequence[Condition], *, where: tuple[str | int, ...] = ("conditions",),
    variant: bool = False,
) -> list[FieldError]:  # fmt: skip
    """Each condition the SQL compiler cannot run (or that could never be meant), by index.

    ``variant`` allows the journey-only ``variant`` attribute (branch steps)."""
    errors = []
    for index, condition in enumerate(conditions):
        problem = _problem(condition, variant)
        if problem:
            errors.append(FieldError((*where, index), problem))
    return errors


def _problem(c: Condition, variant: bool) -> str | None:
    kind = _kind(c.attr, variant)
    if kind is None:
        allowed = ", ".join((*TEXT_ATTRS, *NUMBER_ATTRS, *DATE_ATTRS, "search", "traits.<name>"))
        return f"unknown attribute {c.attr!r}; one of: {allowed}"
    if c.op == "exists":
        return None
    if c.op == "contains":
        if kind != "search":
            return "'contains' is for 'search' only"
        if not isinstance(c.value, str) or not c.value.strip() or len(c.value) > 200:
            return "search needs text of 1 to 200 characters"
        return None
    if kind == "search":
        return "search takes op 'contains'"
    if kind == "date":
        if c.op == "in":
            return f"{c.attr} takes eq, ne, gt, gte, lt, lte or exists"
        return None if _day(c.value) else f"{c.attr} is a date, YYYY-MM-DD"
    values = c.value if c.op == "in" else [c.value]
    if c.op == "in" and (not isinstance(c.value, list) or not 0 < len(c.value) <= MAX_IN):
        return f"'in' needs a list of 1 to {MAX_IN} values"
    if kind == "text":
        if c.op in COMPARISONS:
            return f"{c.attr} takes eq, ne, in or exists"
        if not all(isinstance(v, str) and len(v) <= 200 for v in values):
            return f"{c.attr} is compared with text"
        if c.attr == "health" and set(values) - set(HEALTH_STATES):
            return f"health is one of: {', '.join(HEALTH_STATES)}"
        return None
    for value in values:
        if kind == "number" and not _number(value):
            return f"{c.attr} is compared with a number"
        if kind == "trait" and not (_number(value) or isinstance(value, (str, bool))):
            return "a trait is compared with a number, text or true/false"
        if isinstance(value, str) and len(value) > 200:
            return "text values are at most 200 characters"
    if kind == "trait" and c.op in COMPARISONS and isinstance(c.value, bool):
        return "true/false cannot be ordered"
    return None


def _kind(attr: str, variant: bool) -> str | None:
    if attr in TEXT_ATTRS or (variant and attr == "variant"):
        return "text"
    if attr in NUMBER_ATTRS:
        return "number"
    if attr in DATE_ATTRS:
        return "date"
    if attr == "search":
        return "search"
    return "trait" if TRAIT.match(attr) else None


def _day(value: Any) -> date | None:
    """A ``YYYY-MM-DD`` text as a date, else None."""
    if not isinstance(value, str) or not ISO_DAY.match(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and abs(value) <= MAX_NUMBER
    )


# --- the SQL compiler: a whole population in one statement -----------------------------------


@dataclass(frozen=True)
class CustomerColumns:
    """Where each attribute lives in the statement the conditions filter; ``Customer`` is in
    its FROM (for traits and search). ``rfm`` is None where no RFM segment is stored."""

    stage: ColumnElement[Any]
    health: ColumnElement[Any]
    health_score: ColumnElement[Any]
    p_alive: ColumnElement[Any]
    clv: ColumnElement[Any]
    last_seen: ColumnElement[Any]  # epoch seconds
    rfm: ColumnElement[Any] | None
    now: int  # epoch seconds, for last_seen_days
    dialect: str  # "sqlite" or "postgresql": JSON types are spelled per dialect
    revenue: ColumnElement[Any] | None = None  # None: not stored where the conditions run
    purchases: ColumnElement[Any] | None = None


def compile_conditions(
    conditions: Sequence[Condition], columns: CustomerColumns
) -> ColumnElement[bool]:
    """One SQL boolean for a WHERE clause: every condition holds (true for no conditions).

    A test of a missing value is NULL, which a WHERE clause drops as it drops false; only
    ``ne`` is made definite before it is negated (a missing value is "not equal", as in
    Python). Plain comparisons let SQLite use the ``customer_states`` indexes, which a CASE
    around every test hid (a segment's members took seconds at 100k customers)."""
    parts = [_compile(c, columns) for c in conditions]
    return and_(true(), *parts)


def _definite(expression: ColumnElement[Any]) -> ColumnElement[bool]:
    """True or false, never NULL: so that ``ne`` of a missing value is true, as in Python."""
    return case((expression, literal(True)), else_=literal(False))


def _compile(c: Condition, cols: CustomerColumns) -> ColumnElement[bool]:
    if c.attr == "search":
        return _search(str(c.value)) if c.op == "contains" else true()
    if c.attr.startswith("traits."):
        return _trait(c, c.attr.removeprefix("traits."), cols.dialect)
    if c.attr == "last_seen_days" and c.op in COMPARISONS:
        return _days_ago(c.op, float(c.value), cols)
    if c.attr == "last_seen_date":
        return _on_day(c.op, c.value, cols.last_seen)
    column = _column(c.attr, cols)
    if c.op == "exists":
        return column.is_not(None)
    if c.op == "in":
        return column.in_(list(c.value))
    test = _compare(column, c.op, c.value)
    return not_(_definite(test)) if c.op == "ne" else test


# "More than N days ago" as a bound on the stored time, so it is a range of the last-seen index
# (``(now - last_seen) / DAY > N`` is the same test, but no index can answer it).
_FLIPPED = {"gt": "lt", "gte": "lte", "lt": "gt", "lte": "gte"}


def _days_ago(op: str, days: float, cols: CustomerColumns) -> ColumnElement[bool]:
    # The stored times are whole seconds: an integer bound keeps PostgreSQL on the index too.
    op, bound = _FLIPPED[op], cols.now - days * DAY
    whole = math.ceil(bound) if op in ("lt", "gte") else math.floor(bound)
    return _compare(cols.last_seen, op, whole)


def _midnight(day: date) -> int:
    return int(datetime.combine(day, time(), UTC).timestamp())


def _on_day(op: str, value: Any, last_seen: ColumnElement[Any]) -> ColumnElement[bool]:
    """A test of the UTC day of ``last_seen`` as a range of epoch seconds (index-friendly)."""
    if op == "exists":
        return last_seen.is_not(None)
    day = date.fromisoformat(str(value))
    start, end = _midnight(day), _midnight(day + timedelta(days=1))
    tests: dict[str, ColumnElement[bool]] = {
        "gt": last_seen >= end,
        "gte": last_seen >= start,
        "lt": last_seen < start,
        "lte": last_seen < end,
        "eq": and_(last_seen >= start, last_seen < end),
    }
    if op == "ne":
        return not_(_definite(tests["eq"]))
    return tests[op]


def _column(attr: str, cols: CustomerColumns) -> ColumnElement[Any]:
    if attr == "last_seen_days":
        return (literal(cols.now) - cols.last_seen) / float(DAY)
    if attr in ("rfm", "revenue", "purchases"):
        stored: ColumnElement[Any] | None = getattr(cols, attr)
        return literal(None) if stored is None else stored
    column: ColumnElement[Any] = getattr(cols, attr)
    return column


def _compare(column: ColumnElement[Any], op: str, value: Any) -> ColumnElement[bool]:
    bound = literal(value)
    tests: dict[str, ColumnElement[bool]] = {
        "eq": column == bound,
        "ne": column == bound,
        "gt": column > bound,
        "gte": column >= bound,
        "lt": column < bound,
        "lte": column <= bound,
    }
    return tests[op]


def _search(text: str) -> ColumnElement[bool]:
    text = text.strip()
    matches = [
        Customer.email.icontains(text, autoescape=True),
        Customer.user_id.icontains(text, autoescape=True),
        Customer.traits["name"].as_string().icontains(text, autoescape=True),
    ]
    if text.isdigit() and int(text) < 2**63:
        matches.append(Customer.id == int(text))
    return or_(*matches)


def _json_type(name: str, dialect: str) -> ColumnElement[Any]:
    """The JSON type of a trait, spelled the same on both engines: number, text, boolean,
    null, or NULL when absent (objects and arrays keep their own names and match nothing)."""
    if dialect == "postgresql":
        raw = func.jsonb_typeof(Customer.traits[name])
        return case((raw == "string", "text"), else_=raw)
    raw = func.json_type(Customer.traits, f'$."{name}"')
    return case(
        (raw.in_(("integer", "real")), "number"),
        (raw.in_(("true", "false")), "boolean"),
        else_=raw,
    )


def _trait(c: Condition, name: str, dialect: str) -> ColumnElement[bool]:
    kind = _json_type(name, dialect)
    if c.op == "exists":
        return and_(kind.is_not(None), kind != "null")
    values = list(c.value) if c.op == "in" else [c.value]
    op = "eq" if c.op == "in" else c.op
    tests = [_trait_test(name, kind, op, v, dialect) for v in values]
    test = or_(false(), *tests)
    return not_(_definite(test)) if c.op == "ne" else test


def _trait_test(
    name: str, kind: ColumnElement[Any], op: str, value: Any, dialect: str
) -> ColumnElement[bool]:
    element = Customer.traits[name]
    typed: ColumnElement[Any]
    if isinstance(value, bool):
        wanted, typed = "boolean", element.as_boolean()
    elif isinstance(value, str):
        wanted, typed = "text", element.as_string()
        if dialect == "postgresql":  # order text by code point, as SQLite and Python do
            typed = typed.collate("C")
    else:
        wanted, typed = "number", element.as_float()
    # The CASE keeps PostgreSQL from casting a text trait to a number (an error, not false).
    guarded = case((kind == wanted, typed), else_=None)
    return _compare(guarded, op, value)


# --- the per-customer evaluator: one customer in a journey -----------------------------------


def conditions_hold(
    conditions: Sequence[Condition],
    traits: Mapping[str, Any],
    stage: str | None,
    variant: str | None,
) -> bool:
    """Whether every condition holds for one customer (traits, stage, A/B variant): a journey's
    branch step, and the stage/health history sweep of a segment's backfill. Other attributes
    are read from ``traits`` by name (``health`` from a ``health`` entry)."""
    for c in conditions:
        if c.attr == "stage":
            value: Any = stage
        elif c.attr == "variant":
            value = variant
        else:
            value = traits.get(c.attr.removeprefix("traits."))
        if not _holds(c, value):
            return False
    return True


def _holds(c: Condition, value: Any) -> bool:
    """As the SQL compiler reads it: values of different kinds (a number and text, true and 1)
    are never equal nor ordered."""
    if c.op == "exists":
        return value is not None
    if c.op == "in":
        return any(_equal(value, v) for v in c.value or [])
    if c.op in ("eq", "ne"):
        return _equal(value, c.value) == (c.op == "eq")
    kind = _kind_of(value)
    if kind is None or kind == "boolean" or kind != _kind_of(c.value):
        return False
    if c.op == "gt":
        return bool(value > c.value)
    if c.op == "gte":
        return bool(value >= c.value)
    if c.op == "lt":
        return bool(value < c.value)
    return c.op == "lte" and bool(value <= c.value)


def _kind_of(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "text" if isinstance(value, str) else None


def _equal(value: Any, wanted: Any) -> bool:
    kind = _kind_of(value)
    return kind is not None and kind == _kind_of(wanted) and bool(value == wanted)


def describe(conditions: Sequence[Condition]) -> str:
    """The conditions as one line of text (journey logs, CLI)."""
    return ", ".join(f"{c.attr} {c.op} {c.value}" for c in conditions)
