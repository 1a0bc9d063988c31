"""``clm report``: the lifecycle analytics reports in the terminal, as JSON, CSV or Parquet.

Every option arrives as text and is validated by the report's query (``parse_query``), so a
bad value is one line on stderr and exit code 1, the same message the API gives. A report has
several tables: CSV and Parquet write one file per table into ``--output DIR``, or one table
(``--table NAME``, or a report's only table) as CSV to stdout. Progress and a closing summary go
to stderr as plain log lines when stderr is not a terminal, so a pipe or a log file sees them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any, cast

import typer

from clm.analytics import Report, ReportTable, import_spend, run_report
from clm.cli._common import (
    DatabaseOption,
    WorkspaceOption,
    console,
    err_console,
    friendly_errors,
    heartbeat,
    open_workspace,
    print_json,
    progress_line,
)
from clm.cli._tables import print_tables, stdout_csv, write_files
from clm.errors import FieldError, ValidationError
from clm.lifecycle.engines import EngineName

report_app = typer.Typer(
    help="Lifecycle analytics: funnel, churn and retention, cohorts, RFM, attribution, "
    "acquisition economics and feedback.",
    no_args_is_help=True,
)

FORMATS = ("table", "json", "csv", "parquet")
ENGINES: tuple[EngineName, ...] = ("sql", "duckdb", "spark")
CREDIT_COLUMNS = {"first_touch": "first", "last_touch": "last", "linear": "linear",
                  "time_decay": "decay", "position_based": "position", "markov": "markov",
                  "shapley": "shapley"}  # fmt: skip

Text = str | None
Since = Annotated[Text, typer.Option(help="Start of the period (ISO date or time, UTC)")]
Until = Annotated[Text, typer.Option(help="End of the period, exclusive (default: the log's end)")]
Segment = Annotated[Text, typer.Option(help="Only customers in this RFM segment at --until")]
SavedSegment = Annotated[
    Text, typer.Option(help="Only the current members of this saved segment (its name)")
]
Stage = Annotated[Text, typer.Option(help="Only customers in this stage at --until")]
Channel = Annotated[Text, typer.Option(help="Only customers with a touchpoint on this channel")]
Campaign = Annotated[Text, typer.Option(help="Only customers touched by this campaign")]
Format = Annotated[str, typer.Option("--format", "-f", help="table, json, csv or parquet")]
Output = Annotated[
    Path | None,
    typer.Option(
        "--output", "-o", help="Directory for csv/parquet: one <report>-<table> file per table"
    ),
]
TableName = Annotated[
    Text, typer.Option("--table", help="Only this table (see its name in --output's file names)")
]
Engine = Annotated[str, typer.Option(help="sql (the store), duckdb or spark")]
StageModel = Annotated[Text, typer.Option(help="Stage model name (default: the active one)")]
Granularity = Annotated[Text, typer.Option(help="month, quarter or year")]


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValidationError(
            f"Invalid --{name}", [FieldError((name,), f"one of: {', '.join(choices)}")]
        )


def _chosen(tables: list[ReportTable], name: str | None) -> list[ReportTable]:
    if name is None:
        return tables
    found = [t for t in tables if t.name == name]
    if not found:
        names = ", ".join(t.name for t in tables) or "none"
        raise ValidationError("Invalid --table", [FieldError(("table",), f"one of: {names}")])
    return found


def _emit(name: str, report: Report, laid_out: list[ReportTable], output: str,
          directory: Path | None) -> str:  # fmt: skip
    """Print or write the report; returns what was done, for the summary."""
    if output == "json":
        print_json(report)
        return "JSON on stdout"
    if output in ("csv", "parquet") and directory is not None:
        paths = write_files(name, laid_out, output, directory)
        return f"{len(paths)} {output} files in {directory}"
    if output == "parquet" or (output == "csv" and len(laid_out) != 1):
        names = ", ".join(t.name for t in laid_out)
        raise ValidationError(f"Invalid --format {output}", [FieldError(
            ("output",), f"{len(laid_out)} tables ({names}): write them with --output DIR, "
            "or choose one with --table NAME" if output == "csv" else "needs --output DIR",
        )])  # fmt: skip
    if output == "csv":
        stdout_csv(laid_out)
        return f"table {laid_out[0].name} as CSV on stdout"
    print_tables(console, laid_out, report.definitions)
    return f"{len(laid_out)} tables"


def _only_model(tables: list[ReportTable], model: str) -> list[ReportTable]:
    """Attribution tables with one model's credit column instead of all seven."""
    drop = {label for key, label in CREDIT_COLUMNS.items() if key != model}
    result = []
    for table in tables:
        keep = [i for i, column in enumerate(table.columns) if column not in drop]
        result.append(
            ReportTable(
                name=table.name,
                title=table.title,
                columns=[table.columns[i] for i in keep],
                rows=[[row[i] for i in keep] for row in table.rows],
                kinds=[table.kinds[i] for i in keep if i < len(table.kinds)],
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
    """Validate, run one report and print or write it in the chosen format."""
    output, engine, stage_model = common.pop("format"), common.pop("engine"), common.pop("model")
    directory, table_name = common.pop("output"), common.pop("table")
    with friendly_errors():
        _check_choice("format", output, FORMATS)
        _check_choice("engine", engine, ENGINES)
    raw = {k: v for k, v in {**common, **params}.items() if v is not None}
    status = f"Computing {name} on {engine}..."
    on_terminal = err_console.is_terminal
    spinner = console.status(status) if output == "table" and on_terminal else nullcontext()
    started = time.perf_counter()
    beats = nullcontext() if on_terminal else heartbeat(f"clm report {name} on {engine}")
    with open_workspace(database_url, workspace) as (db, ws_id), spinner, beats:
        report = run_report(
            db, ws_id, name, raw, engine=cast(EngineName, engine), model=stage_model
        )
    with friendly_errors():
        laid_out = _chosen(tables(report) if tables else report.tables(), table_name)
        done = _emit(name, report, laid_out, output, directory)
    rows = sum(len(t.rows) for t in laid_out)
    progress_line(f"clm report {name}: {done}, {rows:,} rows, {report.since:%Y-%m-%d} to "
         f"{report.until:%Y-%m-%d}, in {time.perf_counter() - started:.1f} s")  # fmt: skip


def _common(since: Text, until: Text, segment: Text, stage: Text, channel: Text,
            campaign: Text, output: str, engine: str, model: Text, directory: Path | None = None,
            table: Text = None, saved_segment: Text = None) -> dict[str, Any]:  # fmt: skip
    return {"since": since, "until": until, "segment": segment, "stage": stage,
            "saved_segment": saved_segment,
            "channel": channel, "campaign": campaign, "format": output, "engine": engine,
            "model": model, "output": directory, "table": table}  # fmt: skip


@report_app.command("funnel")
def funnel_command(
    workspace: WorkspaceOption,
    at: Annotated[Text, typer.Option(help="Date of the stage counts (default: --until)")] = None,
    since: Since = None, until: Until = None, segment: Segment = None, stage: Stage = None,
    saved_segment: SavedSegment = None,
    channel: Channel = None, campaign: Campaign = None, output: Format = "table",
    engine: Engine = "sql", stage_model: StageModel = None, directory: Output = None,
    table: TableName = None, database_url: DatabaseOption = None,
) -> None:  # fmt: skip
    """Stage funnel and velocity: counts, conversion, time to next stage, drop-off, flow."""
    common = _common(
        since,
        until,
        segment,
        stage,
        channel,
        campaign,
        output,
        engine,
        stage_model,
        directory,
        table,
        saved_segment=saved_segment,
    )
    _report("funnel", workspace, common, {"at": at}, database_url)


@report_app.command("churn_retention")
def churn_retention_command(
    workspace: WorkspaceOption,
    granularity: Granularity = None,
    at_risk_below: Annotated[Text, typer.Option(
        help="P(alive) threshold for customers without a health state (default 0.5)")] = None,
    since: Since = None, until: Until = None, segment: Segment = None, stage: Stage = None,
    saved_segment: SavedSegment = None,
    channel: Channel = None, campaign: Campaign = None, output: Format = "table",
    engine: Engine = "sql", stage_model: StageModel = None, directory: Output = None,
    table: TableName = None, database_url: DatabaseOption = None,
) -> None:  # fmt: skip
    """Churn, reactivation and revenue retention per period, and customers at risk now."""
    common = _common(
        since,
        until,
        segment,
        stage,
        channel,
        campaign,
        output,
        engine,
        stage_model,
        directory,
        table,
        saved_segment=saved_segment,
    )
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
    saved_segment: SavedSegment = None,
    channel: Channel = None, campaign: Campaign = None, output: Format = "table",
    engine: Engine = "sql", stage_model: StageModel = None, directory: Output = None,
    table: TableName = None, database_url: DatabaseOption = None,
) -> None:  # fmt: skip
    """Cohort retention matrix: share active, repeat-purchase rate, revenue per customer."""
    common = _common(
        since,
        until,
        segment,
        stage,
        channel,
        campaign,
        output,
        engine,
        stage_model,
        directory,
        table,
        saved_segment=saved_segment,
    )
    params = {"cohort_by": cohort_by, "max_age": max_age, "returning_event": returning_event}
    _report("cohorts", workspace, common, params, database_url)


@report_app.command("rfm")
def rfm_command(
    workspace: WorkspaceOption,
    since: Since = None, until: Until = None, segment: Segment = None, stage: Stage = None,
    saved_segment: SavedSegment = None,
    channel: Channel = None, campaign: Campaign = None, output: Format = "table",
    engine: Engine = "sql", stage_model: StageModel = None, directory: Output = None,
    table: TableName = None, database_url: DatabaseOption = None,
) -> None:  # fmt: skip
    """RFM segments at --until and how customers moved between them since --since."""
    common = _common(
        since,
        until,
        segment,
        stage,
        channel,
        campaign,
        output,
        engine,
        stage_model,
        directory,
        table,
        saved_segment=saved_segment,
    )
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
    saved_segment: SavedSegment = None,
    channel: Channel = None, campaign: Campaign = None, output: Format = "table",
    engine: Engine = "sql", stage_model: StageModel = None, directory: Output = None,
    table: TableName = None, database_url: DatabaseOption = None,
) -> None:  # fmt: skip
    """Credit for stage transitions per channel, campaign or touchpoint type, every model."""
    common = _common(
        since,
        until,
        segment,
        stage,
        channel,
        campaign,
        output,
        engine,
        stage_model,
        directory,
        table,
        saved_segment=saved_segment,
    )
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
    saved_segment: SavedSegment = None,
    channel: Channel = None, campaign: Campaign = None, output: Format = "table",
    engine: Engine = "sql", stage_model: StageModel = None, directory: Output = None,
    table: TableName = None, database_url: DatabaseOption = None,
) -> None:  # fmt: skip
    """CAC, CLV:CAC and payback per channel or campaign (spend: clm report import-spend)."""
    common = _common(
        since,
        until,
        segment,
        stage,
        channel,
        campaign,
        output,
        engine,
        stage_model,
        directory,
        table,
        saved_segment=saved_segment,
    )
    params = {"dimension": by, "value_until": value_until}
    _report("acquisition", workspace, common, params, database_url)


@report_app.command("feedback")
def feedback_command(
    workspace: WorkspaceOption,
    granularity: Granularity = None,
    since: Since = None, until: Until = None, segment: Segment = None, stage: Stage = None,
    saved_segment: SavedSegment = None,
    channel: Channel = None, campaign: Campaign = None, output: Format = "table",
    engine: Engine = "sql", stage_model: StageModel = None, directory: Output = None,
    table: TableName = None, database_url: DatabaseOption = None,
) -> None:  # fmt: skip
    """NPS, CSAT and CES per period, by stage at answer time and by RFM segment."""
    common = _common(
        since,
        until,
        segment,
        stage,
        channel,
        campaign,
        output,
        engine,
        stage_model,
        directory,
        table,
        saved_segment=saved_segment,
    )
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
