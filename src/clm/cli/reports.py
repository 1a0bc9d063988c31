"""``clm report``: the lifecycle analytics reports in the terminal, as JSON or as CSV.

Every option arrives as text and is validated by the report's query (``parse_query``), so a
bad value is one line on stderr and exit code 1, the same message the API gives.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any, cast

import typer

from clm.analytics import Report, ReportTable, import_spend, run_report
from clm.cli._common import (
    DatabaseOption,
    WorkspaceOption,
    cell,
    console,
    friendly_errors,
    open_workspace,
    print_json,
    print_table,
)
from clm.errors import FieldError, ValidationError
from clm.lifecycle.engines import EngineName

report_app = typer.Typer(
    help="Lifecycle analytics: funnel, churn and retention, cohorts, RFM, attribution, "
    "acquisition economics and feedback.",
    no_args_is_help=True,
)

FORMATS = ("table", "json", "csv")
ENGINES: tuple[EngineName, ...] = ("sql", "duckdb", "spark")
CREDIT_COLUMNS = {"first_touch": "first", "last_touch": "last", "linear": "linear",
                  "time_decay": "decay", "position_based": "position", "markov": "markov",
                  "shapley": "shapley"}  # fmt: skip

Text = str | None
Since = Annotated[Text, typer.Option(help="Start of the period (ISO date or time, UTC)")]
Until = Annotated[Text, typer.Option(help="End of the period, exclusive (default: the log's end)")]
Segment = Annotated[Text, typer.Option(help="Only customers in this RFM segment at --until")]
Stage = Annotated[Text, typer.Option(help="Only customers in this stage at --until")]
Channel = Annotated[Text, typer.Option(help="Only customers with a touchpoint on this channel")]
Campaign = Annotated[Text, typer.Option(help="Only customers touched by this campaign")]
Format = Annotated[str, typer.Option("--format", "-f", help="table, json or csv")]
Engine = Annotated[str, typer.Option(help="sql (the store), duckdb or spark")]
StageModel = Annotated[Text, typer.Option(help="Stage model name (default: the active one)")]
Granularity = Annotated[Text, typer.Option(help="month, quarter or year")]


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValidationError(
            f"Invalid --{name}", [FieldError((name,), f"one of: {', '.join(choices)}")]
        )


def _write_csv(tables: list[ReportTable]) -> None:
    """Each table as a ``# title`` line, a header and its rows; a blank line between tables."""
    writer = csv.writer(sys.stdout, lineterminator="\n")
    for i, table in enumerate(tables):
        if i:
            sys.stdout.write("\n")
        sys.stdout.write(f"# {table.title}\n")
        writer.writerow(table.columns)
        writer.writerows([[cell(v) for v in row] for row in table.rows])


def _only_model(tables: list[ReportTable], model: str) -> list[ReportTable]:
    """Attribution tables with one model's credit column instead of all seven."""
    drop = {label for key, label in CREDIT_COLUMNS.items() if key != model}
    result = []
    for table in tables:
        keep = [i for i, column in enumerate(table.columns) if column not in drop]
        result.append(
            ReportTable(
                title=table.title,
                columns=[table.columns[i] for i in keep],
                rows=[[row[i] for i in keep] for row in table.rows],
            )
        )
    return result


def _report(
    name: str,
    workspace: str,
    common: dict[str, Any],
    params: dict[str, Any],
    database_url: str | None,
    tables: Callable[[Report], list[ReportTable]] | None = None,
) -> None:
    """Validate, run one report and print it in the chosen format."""
    output, engine, stage_model = common.pop("format"), common.pop("engine"), common.pop("model")
    with friendly_errors():
        _check_choice("format", output, FORMATS)
        _check_choice("engine", engine, ENGINES)
    raw = {k: v for k, v in {**common, **params}.items() if v is not None}
    status = f"Computing {name} on {engine}..."
    spinner = console.status(status) if output == "table" else nullcontext()
    with open_workspace(database_url, workspace) as (db, ws_id), spinner:
        report = run_report(
            db, ws_id, name, raw, engine=cast(EngineName, engine), model=stage_model
        )
    laid_out = tables(report) if tables else report.tables()
    if output == "json":
        print_json(report)
    elif output == "csv":
        _write_csv(laid_out)
    else:
        for table in laid_out:
            print_table(table.title, table.columns, table.rows)


def _common(since: Text, until: Text, segment: Text, stage: Text, channel: Text,
            campaign: Text, output: str, engine: str, model: Text) -> dict[str, Any]:  # fmt: skip
    return {"since": since, "until": until, "segment": segment, "stage": stage,
            "channel": channel, "campaign": campaign, "format": output, "engine": engine,
            "model": model}  # fmt: skip


@report_app.command("funnel")
def funnel_command(
    workspace: WorkspaceOption,
    at: Annotated[Text, typer.Option(help="Date of the stage counts (default: --until)")] = None,
    since: Since = None, until: Until = None, segment: Segment = None, stage: Stage = None,
    channel: Channel = None, campaign: Campaign = None, output: Format = "table",
    engine: Engine = "sql", stage_model: StageModel = None, database_url: DatabaseOption = None,
) -> None:  # fmt: skip
    """Stage funnel and velocity: counts, conversion, time to next stage, drop-off, flow."""
    common = _common(since, until, segment, stage, channel, campaign, output, engine, stage_model)
    _report("funnel", workspace, common, {"at": at}, database_url)


@report_app.command("churn_retention")
def churn_retention_command(
    workspace: WorkspaceOption,
    granularity: Granularity = None,
    at_risk_below: Annotated[Text, typer.Option(
        help="P(alive) threshold for customers without a health state (default 0.5)")] = None,
    since: Since = None, until: Until = None, segment: Segment = None, stage: Stage = None,
    channel: Channel = None, campaign: Campaign = None, output: Format = "table",
    engine: Engine = "sql", stage_model: StageModel = None, database_url: DatabaseOption = None,
) -> None:  # fmt: skip
    """Churn, reactivation and revenue retention per period, and customers at risk now."""
    common = _common(since, until, segment, stage, channel, campaign, output, engine, stage_model)
    params = {"granularity": granularity, "at_risk_below": at_risk_below}
    _report("churn_retention", workspace, common, params, database_url)


@report_app.command("cohorts")
def cohorts_command(
    workspace: WorkspaceOption,
    cohort_by: Annotated[Text, typer.Option(help="acquisition or first_purchase")] = None,
    max_age: Annotated[Text, typer.Option(help="Months since cohort start (default 24)")] = None,
    returning_event: Annotated[Text, typer.Option(
        help="The event that makes a customer active in a month (default: Order Completed; "
             "'any' for any activity)")] = None,
    since: Since = None, until: Until = None, segment: Segment = None, stage: Stage = None,
    channel: Channel = None, campaign: Campaign = None, output: Format = "table",
    engine: Engine = "sql", stage_model: StageModel = None, database_url: DatabaseOption = None,
) -> None:  # fmt: skip
    """Cohort retention matrix: share active, repeat-purchase rate, revenue per customer."""
    common = _common(since, until, segment, stage, channel, campaign, output, engine, stage_model)
    params = {"cohort_by": cohort_by, "max_age": max_age, "returning_event": returning_event}
    _report("cohorts", workspace, common, params, database_url)


@report_app.command("rfm")
def rfm_command(
    workspace: WorkspaceOption,
    since: Since = None, until: Until = None, segment: Segment = None, stage: Stage = None,
    channel: Channel = None, campaign: Campaign = None, output: Format = "table",
    engine: Engine = "sql", stage_model: StageModel = None, database_url: DatabaseOption = None,
) -> None:  # fmt: skip
    """RFM segments at --until and how customers moved between them since --since."""
    common = _common(since, until, segment, stage, channel, campaign, output, engine, stage_model)
    _report("rfm", workspace, common, {}, database_url)


@report_app.command("attribution")
def attribution_command(
    workspace: WorkspaceOption,
    from_stage: Annotated[Text, typer.Option(help="Only journeys from this stage")] = None,
    to_stage: Annotated[Text, typer.Option(help="Only transitions into this stage")] = None,
    model: Annotated[Text, typer.Option(
        help="Show one model's credits: first_touch, last_touch, linear, time_decay, "
             "position_based, markov or shapley (default: all; JSON always has all)")] = None,
    half_life: Annotated[Text, typer.Option(help="Time-decay half-life, days (default 7)")] = None,
    lookback_days: Annotated[Text, typer.Option(help="Touchpoint window (default 30)")] = None,
    by: Annotated[Text, typer.Option(help="channel, campaign or type")] = None,
    since: Since = None, until: Until = None, segment: Segment = None, stage: Stage = None,
    channel: Channel = None, campaign: Campaign = None, output: Format = "table",
    engine: Engine = "sql", stage_model: StageModel = None, database_url: DatabaseOption = None,
) -> None:  # fmt: skip
    """Credit for stage transitions per channel, campaign or touchpoint type, every model."""
    common = _common(since, until, segment, stage, channel, campaign, output, engine, stage_model)
    params = {"from_stage": from_stage, "to_stage": to_stage, "half_life_days": half_life,
              "lookback_days": lookback_days, "dimension": by}  # fmt: skip
    if model is not None:
        with friendly_errors():
            _check_choice("model", model, tuple(CREDIT_COLUMNS))
    chosen = model
    _report("attribution", workspace, common, params, database_url,
            (lambda r: _only_model(r.tables(), chosen)) if chosen else None)  # fmt: skip


@report_app.command("acquisition")
def acquisition_command(
    workspace: WorkspaceOption,
    by: Annotated[Text, typer.Option(help="channel or campaign")] = None,
    value_until: Annotated[Text, typer.Option(
        help="End of the value horizon: CLV and payback of the customers acquired in "
             "--since..--until are read up to it (default: the whole log)")] = None,
    since: Since = None, until: Until = None, segment: Segment = None, stage: Stage = None,
    channel: Channel = None, campaign: Campaign = None, output: Format = "table",
    engine: Engine = "sql", stage_model: StageModel = None, database_url: DatabaseOption = None,
) -> None:  # fmt: skip
    """CAC, CLV:CAC and payback per channel or campaign (spend: clm report import-spend)."""
    common = _common(since, until, segment, stage, channel, campaign, output, engine, stage_model)
    params = {"dimension": by, "value_until": value_until}
    _report("acquisition", workspace, common, params, database_url)


@report_app.command("feedback")
def feedback_command(
    workspace: WorkspaceOption,
    granularity: Granularity = None,
    since: Since = None, until: Until = None, segment: Segment = None, stage: Stage = None,
    channel: Channel = None, campaign: Campaign = None, output: Format = "table",
    engine: Engine = "sql", stage_model: StageModel = None, database_url: DatabaseOption = None,
) -> None:  # fmt: skip
    """NPS, CSAT and CES per period, by stage at answer time and by RFM segment."""
    common = _common(since, until, segment, stage, channel, campaign, output, engine, stage_model)
    _report("feedback", workspace, common, {"granularity": granularity}, database_url)


@report_app.command("import-spend")
def import_spend_command(
    file: Annotated[Path, typer.Argument(help="CSV: channel, amount, month or period_start/end")],
    workspace: WorkspaceOption,
    output: Format = "table",
    database_url: DatabaseOption = None,
) -> None:
    """Import marketing spend; a bad line is reported with its number and nothing is stored."""
    with friendly_errors():
        _check_choice("format", output, ("table", "json"))
        try:
            text = file.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise ValidationError(f"Cannot read {file}: {exc.strerror}") from exc
    with open_workspace(database_url, workspace) as (db, ws_id):
        stored = import_spend(db, ws_id, text)
    if output == "json":
        print_json({"stored": stored})
    else:
        console.print(f"Imported {stored} spend rows.")
