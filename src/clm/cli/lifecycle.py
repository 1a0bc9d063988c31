"""``clm stages``, ``clm lifecycle`` and ``clm health``: define stages, compute, look back.

Mount with ``app.add_typer(stages_app, name="stages")`` (and ``lifecycle``, ``health``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from clm.accounts.audit import record_after
from clm.cli._common import (
    DatabaseOption,
    FormatOption,
    OutputFormat,
    WorkspaceOption,
    console,
    heartbeat,
    open_workspace,
    print_json,
    print_table,
    progress_line,
)
from clm.cli.accounts import operator_here

stages_app = typer.Typer(help="Stage models: validate, preview, apply and list them.")
lifecycle_app = typer.Typer(help="Compute stage history: full runs and scheduled ticks.")
health_app = typer.Typer(help="Customer health: compute the scores and backtest them.")
T = TypeVar("T")


class Engine(StrEnum):
    sql = "sql"
    duckdb = "duckdb"
    spark = "spark"


EngineOption = Annotated[
    Engine, typer.Option(help="sql: in the database itself; duckdb: fast, in-process; spark")
]
FileArgument = Annotated[Path, typer.Argument(help="A stage model YAML file", exists=True)]


def _busy(label: str, work: Callable[[], T]) -> T:
    """Run ``work`` under a rich progress display (the engines report no finer progress)."""
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        progress.add_task(label, total=None)
        return work()


@contextmanager
def _steps(command: str) -> Iterator[Callable[[str, int, int], None]]:
    """Progress fed by ``progress(what, done, total)`` calls: the step's name, and how far it
    is (DuckDB reports each range of customers it finishes). On a terminal a rich progress
    bar; off one (a pipe, a log file, cron), where nobody sees a bar, a log line on stderr for
    each new step and a heartbeat while a step lasts, as ``clm report`` does."""
    if not console.is_terminal:
        last: list[str] = []

        def log(what: str, done: int, total: int) -> None:
            if last != [what]:
                last[:] = [what]
                progress_line(f"{command}: {what} ({done}/{total})")

        with heartbeat(command):
            yield log
        return
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("starting", total=None)

        def report(what: str, done: int, total: int) -> None:
            bar.update(task, description=what, completed=done, total=total)

        yield report


def _date(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@stages_app.command("validate")
def validate(path: FileArgument, output: FormatOption = OutputFormat.table) -> None:
    """Check a stage model file; every problem is listed with its line."""
    from clm.errors import ValidationError
    from clm.lifecycle import load_stage_model

    try:
        model = load_stage_model(path.read_text())
    except ValidationError as exc:
        if output is OutputFormat.json:
            print_json(exc.as_dict())
        else:
            for error in exc.errors:
                console.print(f"[red]{path}:[/red] {error.message}")
        raise typer.Exit(1) from exc
    stage_names = [s.name for s in model.stages]
    summary = {
        "valid": True,
        "name": model.name,
        "stages": stage_names,
        "precedence": list(model.precedence),
        "features": sorted(model.features),
    }
    if output is OutputFormat.json:
        print_json(summary)
    else:
        console.print(f"[green]valid[/green]: {model.name}, stages {' -> '.join(stage_names)}")


@stages_app.command("preview")
def preview(
    path: FileArgument,
    workspace: WorkspaceOption,
    sample: Annotated[int, typer.Option(help="How many transitions to show")] = 10,
    engine: EngineOption = Engine.duckdb,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """What a stage model would give on this workspace, before applying it."""
    from clm.lifecycle import preview_stage_model

    with open_workspace(database_url, workspace) as (db, ws_id):
        source = path.read_text()
        with _steps("clm stages preview") as report:
            result = preview_stage_model(
                db,
                ws_id,
                source,
                sample=sample,
                engine=engine.value,  # type: ignore[arg-type]
                progress=report,
            )
    if output is OutputFormat.json:
        print_json(result)
        return
    print_table(
        f"{result.model}: customers per stage now",
        ["stage", "customers"],
        list(result.counts.items()),
    )
    _print_transitions(f"sample of {result.transitions} transitions", result.sample)


@stages_app.command("apply")
def apply(
    path: FileArgument,
    workspace: WorkspaceOption,
    run: Annotated[bool, typer.Option(help="Recompute history right away")] = True,
    engine: EngineOption = Engine.sql,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Store a stage model as a new version and (by default) recompute history under it."""
    from clm.lifecycle import apply_stage_model, run_lifecycle

    with open_workspace(database_url, workspace) as (db, ws_id):
        info = apply_stage_model(db, ws_id, path.read_text())
        record_after(
            db, operator_here(ws_id), "stage_model.update", f"stage_model:{info.name}",
            after={"version": info.version, "name": info.name, "yaml": path.read_text()},
        )  # fmt: skip
        result = None
        if run:
            result = _busy(
                "recomputing history",
                lambda: run_lifecycle(db, ws_id, model_name=info.name, engine=engine.value),
            )  # type: ignore[arg-type]
    if output is OutputFormat.json:
        print_json({"definition": info, "run": result})
    else:
        replaced = info.replaced
        was = (
            f"; {replaced.name} version {replaced.version} is no longer active"
            if replaced is not None and replaced.id != info.id
            else ""
        )
        console.print(
            f"applied {info.name} version {info.version}: now the active model{was}",
            soft_wrap=True,
        )
        if result:
            console.print(f"{result.transitions} transitions for {result.customers} customers")


@stages_app.command("list")
def list_models(
    workspace: WorkspaceOption,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Stored stage model versions (the active one marked), and the shipped models."""
    from clm.lifecycle import list_definitions, shipped_model_names

    with open_workspace(database_url, workspace) as (db, ws_id):
        rows = list_definitions(db, ws_id)
    if output is OutputFormat.json:
        print_json({"stored": rows, "shipped": shipped_model_names()})
        return
    print_table(
        "Stage models",
        ["name", "version", "active", "created"],
        [(r.name, r.version, "yes" if r.active else "", r.created_at) for r in rows],
    )
    console.print(f"shipped: {', '.join(shipped_model_names())}")


ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model", "-m", help="A stored stage model by name (default: the workspace's active one)"
    ),
]


def _run(
    full: bool,
    workspace: str,
    engine: Engine,
    database_url: str | None,
    output: OutputFormat,
    now: str | None = None,
    model: str | None = None,
) -> None:
    from clm.lifecycle import run_lifecycle, tick

    with open_workspace(database_url, workspace) as (db, ws_id):
        if full:
            result = _busy(
                "recomputing history",
                lambda: run_lifecycle(db, ws_id, model_name=model, engine=engine.value),  # type: ignore[arg-type]
            )
        else:
            result = _busy(
                "ticking",
                lambda: tick(db, ws_id, model_name=model, now=_date(now), engine=engine.value),  # type: ignore[arg-type]
            )
    if output is OutputFormat.json:
        print_json(result)
    else:
        console.print(
            f"{result.mode} of {result.model} v{result.model_version}: {result.customers} "
            f"customers, {result.transitions} transitions, {result.events_written} events "
            f"written, {result.seconds:.2f} s ({result.engine})"
        )


@lifecycle_app.command("run")
def run_command(
    workspace: WorkspaceOption,
    model: ModelOption = None,
    engine: EngineOption = Engine.sql,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Recompute every customer's stage history from the event log."""
    _run(True, workspace, engine, database_url, output, model=model)


@lifecycle_app.command("tick")
def tick_command(
    workspace: WorkspaceOption,
    model: ModelOption = None,
    engine: EngineOption = Engine.duckdb,
    now: Annotated[str | None, typer.Option(help="Pretend it is this ISO time")] = None,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Take in new events and announce lapses that are now due (`clm worker` does this by
    itself; run it by hand to catch up at once, or for a model that is not the active one)."""
    _run(False, workspace, engine, database_url, output, now, model)


@lifecycle_app.command("state")
def state_command(
    workspace: WorkspaceOption,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Recompute every customer's row, not just new ones")
    ] = False,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Bring the stored current state of each customer (what the customer list and the counters
    read) up to date; `clm worker` does this every pass, `--rebuild` recomputes it all."""
    from clm.lifecycle.current_state import refresh_state

    with open_workspace(database_url, workspace) as (db, ws_id):
        report = _busy(
            "rebuilding customer state" if rebuild else "refreshing customer state",
            lambda: refresh_state(db, ws_id, rebuild=rebuild),
        )
    if output is OutputFormat.json:
        print_json(report.__dict__)
    else:
        console.print(
            f"{'rebuilt' if report.rebuilt else 'refreshed'} {report.customers:,} customers' "
            f"state, {report.removed:,} merged away removed"
            f"{', RFM segments recomputed' if report.rfm_refreshed else ''}, "
            f"{report.seconds:.2f} s"
        )


@lifecycle_app.command("counts")
def counts_command(
    workspace: WorkspaceOption,
    model: ModelOption = None,
    at: Annotated[str | None, typer.Option(help="The date (ISO), default now")] = None,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """How many customers stand in each stage at a date, under the active (or given) model."""
    from clm.lifecycle import get_stage_model, stage_counts

    with open_workspace(database_url, workspace) as (db, ws_id):
        info, _ = get_stage_model(db, ws_id, model)
        counts = stage_counts(db, ws_id, _date(at), model=info.name, version=info.version)
    if output is OutputFormat.json:
        print_json({"model": info.name, "version": info.version, "at": at, "stages": counts})
        return
    print_table(
        f"{info.name} v{info.version}: customers per stage" + (f" as of {at}" if at else ""),
        ["stage", "customers"],
        list(counts.items()),
    )


@health_app.command("run")
def health_run(
    workspace: WorkspaceOption,
    engine: EngineOption = Engine.duckdb,
    history: Annotated[
        bool, typer.Option(help="Also recompute the stored history (every instant)")
    ] = True,
    now: Annotated[str | None, typer.Option(help="Score as of this ISO time")] = None,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Score every customer's health as of now (and recompute the history), with a summary."""
    from clm.lifecycle import recompute_health, score_health

    when = _date(now)
    total = 7 if history else 4  # the steps a pass names (features, stages, scores, store)
    started = time.perf_counter()
    steps = _steps("clm health run")
    with open_workspace(database_url, workspace) as (db, ws_id), steps as report:
        done = iter(range(1, total + 1))

        def step(label: str) -> None:
            report(label, next(done, total), total)

        chosen: Any = engine.value
        fast: Any = "duckdb" if engine is Engine.duckdb else "sql"
        if history:
            summary = recompute_health(db, ws_id, engine=chosen, now=when, on_step=step)
        else:
            summary = score_health(db, ws_id, now=when, engine=fast, on_step=step)
    if output is OutputFormat.json:
        print_json(summary)
    else:
        console.print(summary.line())
    history_rows = f", {summary.history_rows:,} history rows" if history else ""
    progress_line(
        f"clm health run: {summary.scored:,} customers scored{history_rows}, "
        f"in {time.perf_counter() - started:.1f} s"
    )


@health_app.command("backtest")
def health_backtest(
    workspace: WorkspaceOption,
    horizon: Annotated[int, typer.Option(min=1, help="Days after each cutoff")] = 90,
    step_months: Annotated[int, typer.Option(min=1, help="Months between cutoffs")] = 3,
    active_days: Annotated[
        int, typer.Option(min=1, help="Customers who bought within these days are scored")
    ] = 365,
    calibrate: Annotated[
        bool, typer.Option(help="Also backtest weights fitted walk-forward on earlier history")
    ] = False,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Did health predict who lapsed? AUC, lift and precision/recall against baselines.

    Cutoffs are month ends from the end of the log's ninth month; every score uses only the
    events before its cutoff. Warns when the score loses to recency, P(alive), frequency or
    random."""
    from clm.lifecycle import backtest
    from clm.lifecycle.calibrate import calibrated_backtest

    with open_workspace(database_url, workspace) as (db, ws_id):
        with _progress("cutoffs") as tick:
            report = backtest(
                db, ws_id, horizon_days=horizon, step_months=step_months,
                active_days=active_days, on_cutoff=tick,
            )  # fmt: skip
        reports = [report]
        if calibrate:
            with _progress("calibrated cutoffs") as tick:
                reports.append(
                    calibrated_backtest(
                        db, ws_id, horizon_days=horizon, step_months=step_months,
                        active_days=active_days, on_cutoff=tick,
                    )
                )  # fmt: skip
    if output is OutputFormat.json:
        print_json(reports if calibrate else report)
        return
    for one in reports:
        _print_backtest(one)


def _print_backtest(report: Any) -> None:
    console.print(f"[bold]{report.scorecard}[/bold]: label = {report.label}")
    for cut in report.cutoffs:
        print_table(
            f"cutoff {cut.cutoff:%Y-%m-%d}: {cut.customers:,} customers, {cut.lapsed:,} lapsed, "
            f"{cut.flagged:,} flagged at risk",
            ["", "AUC", "healthiest-tenth lift", "precision", "recall", "lapse lift by decile"],
            [
                (
                    m.name,
                    _num(m.auc),
                    _num(m.top_decile_lift),
                    _num(m.precision_at_risk),
                    _num(m.recall_at_risk),
                    " ".join(f"{x:.2f}" for x in m.lift_by_decile),
                )
                for m in cut.metrics
            ],
        )
    console.print("mean AUC: " + ", ".join(f"{k} {v:.3f}" for k, v in report.mean_auc.items()))
    for warning in report.warnings:
        console.print(f"[bold red]{warning}[/bold red]")
    if report.cutoffs and not report.warnings:
        console.print("[green]the score beat every baseline at every cutoff[/green]")


@health_app.command("fit")
def health_fit(
    workspace: WorkspaceOption,
    horizon: Annotated[int, typer.Option(min=1, help="Days after the training cutoff")] = 90,
    active_days: Annotated[int, typer.Option(min=1)] = 365,
    apply: Annotated[
        bool, typer.Option(help="Store the fitted scorecard as the active one")
    ] = False,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Learn the scorecard's weights from this workspace's own history (a regularised
    logistic regression of who kept buying over the factors), printed as YAML."""
    from clm.lifecycle.calibrate import fit_scorecard
    from clm.lifecycle.catalog import save_definition

    with open_workspace(database_url, workspace) as (db, ws_id):
        fitted = _busy(
            "fitting",
            lambda: fit_scorecard(db, ws_id, horizon_days=horizon, active_days=active_days),
        )
        if apply:
            saved = save_definition(db, ws_id, "health", fitted.yaml)
            record_after(
                db, operator_here(ws_id), "scorecard.update", f"scorecard:{saved.name}",
                after={"version": saved.version, "yaml": fitted.yaml},
            )  # fmt: skip
    if output is OutputFormat.json:
        print_json(fitted)
        return
    console.print(fitted.yaml)
    if apply:
        console.print("stored as the active scorecard; run `clm health run` to re-score")


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None]]:
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(label, total=None)

        def tick(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield tick


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _print_transitions(title: str, rows: list[Any]) -> None:
    print_table(
        title,
        ["customer", "at", "from", "to", "kind", "rule", "cause"],
        [
            (
                t.customer_id,
                t.at,
                t.from_stage,
                t.to_stage,
                t.kind,
                t.rule,
                t.cause_message_id or t.cause,
            )
            for t in rows
        ],
    )


def customer_lifecycle_data(db: Any, workspace_id_: int, customer_id: int) -> Any:
    """For ``clm customer show``: the customer's stage, health, reasons and histories."""
    from clm.lifecycle import customer_lifecycle

    return customer_lifecycle(db, workspace_id_, customer_id)


def print_customer_lifecycle(data: Any, history: int = 10) -> None:
    """The lifecycle section of ``clm customer show``: stage, health, reasons, recent history."""
    stage, health = data.stage, data.health
    if stage is not None:
        console.print(
            f"stage: [bold]{stage.stage}[/bold] since {stage.since:%Y-%m-%d} "
            f"({stage.rule}; model {stage.model} v{stage.model_version})"
        )
    if health is not None:
        console.print(f"health: [bold]{health.state_label}[/bold], score {health.score:.0f} of 100")
        print_table(
            "Health reasons (the factors costing the most points first)",
            ["factor", "axis", "value", "points", "of"],
            [(f.label, f.axis, f.value, f.points, f.weight) for f in health.factors[:5]],
        )
    print_table(
        f"Stage history (latest {history})",
        ["when", "from", "to", "kind", "rule", "cause"],
        [
            (t.at, t.from_stage, t.to_stage, t.kind, t.rule, t.cause_message_id)
            for t in data.stage_history[-history:]
        ],
    )


app = typer.Typer(help="Lifecycle stages and health.")
app.add_typer(stages_app, name="stages")
app.add_typer(lifecycle_app, name="lifecycle")
app.add_typer(health_app, name="health")
