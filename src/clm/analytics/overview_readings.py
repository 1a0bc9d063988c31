"""Keep the overview page's default readings stored and current, so the page answers at once
after a restart and after new events: the stage and health histories' past days, the stage
funnel, the year's churn and revenue retention and this week's movers; and each report's
default view, what the Reports page opens on (``clm.analytics.report_readings``). The live
loop runs this
after its passes (no cron), ``clm demo`` after building; each reading is read again only when
its data moved and it is older than its kind's ``min_interval`` (``clm.analytics.kept``).
Readings of other ranges, stored on demand, go after a week without being taken again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

from clm.analytics.kept import readings_of
from clm.analytics.movers import PAGE_QUERY, store_movers
from clm.analytics.report_readings import store_report
from clm.analytics.reports import REPORTS
from clm.analytics.retention_trend import default_range, store_retention
from clm.analytics.trends import store_past_moves
from clm.store.engine import Database

PRUNE_AFTER_DAYS = 7  # a reading not taken again for a week (a range nobody asks for) goes


def refresh_overview(db: Database, workspace_id: int, now: datetime | None = None) -> list[str]:
    """Read again each default reading of the overview and the reports that is outdated;
    returns the kinds read (the cheap ones first, the whole-log reports last)."""
    moment = now or datetime.now(UTC)
    readings_of(db).prune(workspace_id, moment - timedelta(days=PRUNE_AFTER_DAYS))
    today = moment.date()
    since, until = default_range(today)
    steps: tuple[tuple[str, Callable[[], bool]], ...] = (
        ("trends", lambda: store_past_moves(db, workspace_id)),
        ("movers", lambda: store_movers(db, workspace_id, PAGE_QUERY)),
        ("retention", lambda: store_retention(db, workspace_id, since, until)),
        *((f"report:{name}", partial(store_report, db, workspace_id, name)) for name in REPORTS),
    )
    return [name for name, step in steps if step()]
