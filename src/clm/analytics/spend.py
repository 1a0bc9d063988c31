"""Marketing spend: import it from CSV, read it back per channel or campaign and period.

CSV columns (header required): ``channel``, ``amount``, then either ``month`` (``YYYY-MM``) or
``period_start`` and ``period_end`` (ISO dates, end exclusive); optional ``campaign`` and
``currency``. Importing a row for a (channel, campaign, period) already stored replaces it.
Every bad row is reported with its line number, and nothing is stored unless all rows are good.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime

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


def parse_spend_csv(text: str) -> list[SpendRow]:
    """Validated rows of a spend CSV, or ValidationError listing each bad line and field."""
    reader = csv.DictReader(io.StringIO(text))
    fields = set(reader.fieldnames or [])
    problems: list[FieldError] = []
    has_period = "month" in fields or {"period_start", "period_end"} <= fields
    if not {"channel", "amount"} <= fields or not has_period:
        needs = "needs channel, amount and month (or period_start and period_end)"
        raise ValidationError("Invalid spend file", [FieldError(("header",), needs)])
    rows = []
    for line, raw in enumerate(reader, start=2):
        try:
            channel = (raw.get("channel") or "").strip()
            if not channel:
                raise ValueError("channel", "must not be empty")
            try:
                amount = float(raw.get("amount") or "")
            except ValueError:
                raise ValueError("amount", "must be a number") from None
            try:
                if raw.get("month"):
                    start, end = _month(raw["month"])
                else:
                    start, end = _date(raw["period_start"]), _date(raw["period_end"])
            except (ValueError, TypeError, KeyError):
                raise ValueError("period", "invalid month or dates") from None
            if end <= start:
                raise ValueError("period_end", "must be after period_start")
            rows.append(SpendRow(channel, (raw.get("campaign") or "").strip(), start, end, amount,
                                 (raw.get("currency") or "").strip()))  # fmt: skip
        except ValueError as exc:
            field, message = exc.args if len(exc.args) == 2 else ("row", str(exc))
            problems.append(FieldError(("line", line, field), message))
    if problems:
        raise ValidationError("Invalid spend file", problems)
    return rows


def import_spend(db: Database, workspace_id: int, text: str) -> int:
    """Store the spend rows of a CSV (replacing the same channel, campaign and period)."""
    rows = parse_spend_csv(text)
    now = datetime.now(UTC)
    with db.transaction() as session:
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
