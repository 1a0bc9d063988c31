"""Marketing spend: import it from CSV, read it back per channel or campaign and period.

CSV columns (header required): ``channel``, ``amount``, then either ``month`` (``YYYY-MM``) or
``period_start`` and ``period_end`` (ISO dates, end exclusive); optional ``campaign`` and
``currency``. Importing a row for a (channel, campaign, period) already stored replaces it.
Every bad row is reported with its line number, and nothing is stored unless all rows are good.

An amount is a finite number >= 0 (``nan``, ``inf`` and negative amounts are refused: a
refund belongs in the period it corrects, as a smaller amount). A workspace's spend is in one
currency: a file mixing currencies, or one in another currency than the spend already stored,
is refused at the first line that differs (CAC adds amounts; it cannot add dollars to euros).
A row without a currency takes the others'.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select

from clm.errors import FieldError, ValidationError
from clm.store.engine import Database
from clm.store.models import MarketingSpend


@dataclass(frozen=True)
class SpendRow:
    channel: str
    campaign: str
    period_start: int
    period_end: int
    amount: float
    currency: str = ""


def _date(text: str) -> int:
    moment = datetime.fromisoformat(text.strip())
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


def _month(text: str) -> tuple[int, int]:
    year, month = (int(part) for part in text.strip().split("-"))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return int(start.timestamp()), int(end.timestamp())


def _text(raw: Mapping[str, Any], name: str) -> str:
    value = raw.get(name)
    return "" if value is None else str(value).strip()


def _spend_row(raw: Mapping[str, Any]) -> SpendRow:
    """One row, or ValueError(field, message)."""
    channel = _text(raw, "channel")
    if not channel:
        raise ValueError("channel", "must not be empty")
    try:
        amount = float(_text(raw, "amount"))
    except ValueError:
        raise ValueError("amount", "must be a number") from None
    if not math.isfinite(amount):
        raise ValueError("amount", f"must be a finite number, not {_text(raw, 'amount')!r}")
    if amount < 0:
        raise ValueError("amount", "must not be negative")
    try:
        if _text(raw, "month"):
            start, end = _month(_text(raw, "month"))
        else:
            start, end = _date(_text(raw, "period_start")), _date(_text(raw, "period_end"))
    except (ValueError, TypeError):
        raise ValueError("period", "invalid month or dates") from None
    if end <= start:
        raise ValueError("period_end", "must be after period_start")
    return SpendRow(channel, _text(raw, "campaign"), start, end, amount, _text(raw, "currency"))


def _spend_rows(records: Iterable[tuple[tuple[str | int, ...], Mapping[str, Any]]],
                what: str) -> list[SpendRow]:  # fmt: skip
    rows, problems = [], []
    currency: tuple[str, tuple[str | int, ...]] | None = None  # the first one, and where
    for loc, raw in records:
        try:
            row = _spend_row(raw)
        except ValueError as exc:
            field, message = exc.args if len(exc.args) == 2 else ("row", str(exc))
            problems.append(FieldError((*loc, field), message))
            continue
        rows.append(row)
        if row.currency and currency is None:
            currency = (row.currency, loc)
        elif row.currency and currency is not None and row.currency != currency[0]:
            first = " ".join(str(part) for part in currency[1])
            problems.append(FieldError(
                (*loc, "currency"), f"{row.currency} differs from {currency[0]} ({first}): "
                "one currency per workspace",
            ))  # fmt: skip
    if problems:
        raise ValidationError(f"Invalid {what}", problems)
    return rows


def parse_spend_csv(text: str) -> list[SpendRow]:
    """Validated rows of a spend CSV, or ValidationError listing each bad line and field."""
    reader = csv.DictReader(io.StringIO(text))
    fields = set(reader.fieldnames or [])
    has_period = "month" in fields or {"period_start", "period_end"} <= fields
    if not {"channel", "amount"} <= fields or not has_period:
        needs = "needs channel, amount and month (or period_start and period_end)"
        raise ValidationError("Invalid spend file", [FieldError(("header",), needs)])
    return _spend_rows(
        ((("line", line), raw) for line, raw in enumerate(reader, start=2)), "spend file"
    )


def parse_spend_records(records: Sequence[Mapping[str, Any]]) -> list[SpendRow]:
    """Validated spend rows given as mappings (JSON), with the CSV's fields; errors are
    located at ``("rows", index, field)``."""
    return _spend_rows(((("rows", i), raw) for i, raw in enumerate(records)), "spend rows")


def store_spend(db: Database, workspace_id: int, rows: Sequence[SpendRow]) -> int:
    """Store validated spend rows (replacing the same channel, campaign and period); refused
    when their currency differs from the workspace's stored spend."""
    now = datetime.now(UTC)
    with db.transaction() as session:
        stored = session.scalars(
            select(MarketingSpend.currency)
            .where(MarketingSpend.workspace_id == workspace_id, MarketingSpend.currency != "")
            .distinct()
        ).all()
        new = sorted({r.currency for r in rows if r.currency})
        if stored and new and set(new) != set(stored):
            raise ValidationError("Invalid spend file", [FieldError(
                ("currency",), f"{', '.join(new)} differs from the stored spend's "
                f"{', '.join(sorted(stored))}: one currency per workspace",
            )])  # fmt: skip
        for row in rows:
            session.execute(
                delete(MarketingSpend).where(
                    MarketingSpend.workspace_id == workspace_id,
                    MarketingSpend.channel == row.channel,
                    MarketingSpend.campaign == row.campaign,
                    MarketingSpend.period_start == row.period_start,
                    MarketingSpend.period_end == row.period_end,
                )
            )
            session.add(MarketingSpend(workspace_id=workspace_id, imported_at=now, **row.__dict__))
    return len(rows)


def import_spend(db: Database, workspace_id: int, text: str) -> int:
    """Store the spend rows of a CSV (replacing the same channel, campaign and period)."""
    return store_spend(db, workspace_id, parse_spend_csv(text))


def load_spend(db: Database, workspace_id: int) -> list[SpendRow]:
    """Every stored spend row of a workspace."""
    with db.session() as session:
        rows = session.scalars(
            select(MarketingSpend).where(MarketingSpend.workspace_id == workspace_id)
        )
        return [SpendRow(r.channel, r.campaign, r.period_start, r.period_end, r.amount,
                         r.currency) for r in rows]  # fmt: skip


def spend_in_period(rows: list[SpendRow], since: int, until: int, dimension: str
                    ) -> dict[str, float]:  # fmt: skip
    """Spend per channel (or campaign) in ``[since, until)``, pro rata for partly covered rows."""
    totals: dict[str, float] = {}
    for row in rows:
        overlap = min(until, row.period_end) - max(since, row.period_start)
        if overlap <= 0:
            continue
        key = row.channel if dimension == "channel" else (row.campaign or "(none)")
        share = overlap / (row.period_end - row.period_start)
        totals[key] = totals.get(key, 0.0) + row.amount * share
    return totals
