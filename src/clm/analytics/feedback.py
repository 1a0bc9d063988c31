"""Feedback trend: NPS, CSAT and CES over time, by stage (at the time of the answer) and by
RFM segment (at ``until``), from the ``score`` of survey answers.

Answers are CLM's own ``survey_answered`` events (``survey_type`` nps, csat or ces) and the
older per-survey names ``NPS/CSAT/CES Survey Answered``. A ``survey_answered`` response can be
written more than once (a comment added after a one-click answer is revision 2 of the same
``response_id``): each response counts once, with its latest revision that has a score (and
that revision's time). Answers without a ``response_id`` count one by one.

NPS = % promoters (9-10) - % detractors (0-6); CSAT = % satisfied (4-5 on a 1-5 scale);
CES = mean score. Every row also gives the number of answers and the mean score.
"""

from __future__ import annotations

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from clm.analytics.attribution import stays
from clm.analytics.calendar import period_index, period_label
from clm.analytics.query import FeedbackQuery, filtered, iso, resolve_period
from clm.analytics.rfm import NONE
from clm.analytics.schemas import FeedbackReport, FeedbackRow
from clm.analytics.segments import rfm_scores
from clm.analytics.source import ReportSource

SURVEYS = {"NPS Survey Answered": "nps", "CSAT Survey Answered": "csat",
           "CES Survey Answered": "ces"}  # fmt: skip
ANSWERED = "survey_answered"
KINDS = ("nps", "csat", "ces")


def survey_answers(source: ReportSource, events: ir.Table, until: int) -> ir.Table:
    """The answers before ``until`` with a score, one per response (its latest revision), and
    the survey each belongs to in ``survey``; ``ts`` is filtered and ordered as the source
    wants it for a read of the whole log (``ReportSource.scan_ts``)."""
    kind = ibis.cases(
        *[(events.name == name, ibis.literal(k)) for name, k in SURVEYS.items()],
        else_=ibis.ifelse(events.name == ANSWERED, events.survey_type, ibis.null("string")),
    )
    before = source.scan_ts(events) < until
    scored = events.filter(events.score.notnull(), before).mutate(survey=kind)
    scored = scored.filter(scored.survey.isin(list(KINDS)))
    response = ibis.ifelse(
        (scored.name == ANSWERED) & scored.response_id.notnull(),
        "r:" + scored.response_id, "m:" + scored.message_id,
    )  # fmt: skip
    scored = scored.mutate(response=response)
    latest = ibis.row_number().over(
        group_by=[scored.customer_id, scored.response],
        order_by=[scored.revision.fill_null(1).desc(), source.scan_ts(scored).desc(),
                  scored.message_id.desc()],
    )  # fmt: skip
    ranked = scored.mutate(nth=latest)
    return ranked.filter(ranked.nth == 0).drop("nth", "response")


def _metrics(table: ir.Table, key: ir.Value) -> ir.Table:
    score = table.score
    return table.group_by(survey=table.survey, key=key).aggregate(
        responses=ibis._.count(), total=score.sum(),
        promoters=ibis.ifelse(score >= 9, 1, 0).sum(),
        detractors=ibis.ifelse(score <= 6, 1, 0).sum(),
        satisfied=ibis.ifelse(score >= 4, 1, 0).sum(),
    )  # fmt: skip


def _rows(source: ReportSource, table: ir.Table) -> list[FeedbackRow]:
    rows = []
    for r in source.run(table).to_pylist():
        n, kind = int(r["responses"]), str(r["survey"])
        value = {
            "nps": 100 * (int(r["promoters"]) - int(r["detractors"])) / n,
            "csat": 100 * int(r["satisfied"]) / n,
            "ces": float(r["total"]) / n,
        }[kind]
        rows.append(FeedbackRow(survey=kind, key=str(r["key"]), responses=n,
                                mean_score=round(float(r["total"]) / n, 6),
                                value=round(value, 6)))  # fmt: skip
    return sorted(rows, key=lambda row: (row.survey, row.key))


def feedback(source: ReportSource, query: FeedbackQuery | None = None) -> FeedbackReport:
    """NPS, CSAT and CES per period, per stage and per RFM segment."""
    query = query or FeedbackQuery()
    period = resolve_period(source, query)
    events, transitions = filtered(source, query, period)
    answers = survey_answers(source, events, period.until)
    answers = answers.filter(answers.ts >= period.since)
    # kept with the four columns the breakdowns read (not every column of the log)
    answers = answers.select("customer_id", "ts", "survey", "score")
    answers = source.reuse(answers, join_key="customer_id")  # read by all three breakdowns
    trend = answers.mutate(p=period_index(answers.ts, query.granularity))
    over_time = _rows(source, _metrics(trend, trend.p))
    for row in over_time:
        row.key = period_label(int(row.key), query.granularity)
    # the answering customers' stays: their transitions first (a stay is per customer)
    s = stays(transitions.filter(transitions.customer_id.isin(answers.customer_id)), period.until)
    s = s.select(
        "customer_id", "stage", "start_ts", end_ts=s.end_ts.cast(dt.Int64(nullable=True))
    )  # nullable: Ibis types a lead() as never null, and a cached table would refuse the nulls
    # on SQLite an indexed temporary table: joined to a window subquery, its planner scanned
    # every stay once per answer (the demo's feedback report: 73 s of CPU, now well under 1 s)
    s = source.reuse(s, join_key="customer_id")
    staged = answers.join(s, "customer_id")
    staged = staged.filter(staged.start_ts <= staged.ts,
                           staged.end_ts.isnull() | (staged.ts < staged.end_ts))  # fmt: skip
    segments = rfm_scores(source.events, period.until).select("customer_id", "segment")
    segments = source.reuse(segments, join_key="customer_id")
    segmented = answers.left_join(segments, "customer_id").select(answers, segments.segment)
    return FeedbackReport(
        since=iso(period.since), until=iso(period.until), granularity=query.granularity,
        over_time=over_time, by_stage=_rows(source, _metrics(staged, staged.stage)),
        by_segment=_rows(source, _metrics(segmented, segmented.segment.fill_null(NONE))),
    )  # fmt: skip
