"""``clm fit`` and ``clm plot``: fit a workspace's history, draw the modeller's plots.

Mounted on the ``clm`` app by :func:`mount`.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from clm.cli._common import (
    DatabaseOption,
    FormatOption,
    OutputFormat,
    WorkspaceOption,
    console,
    open_workspace,
    print_json,
    print_table,
)

plot_app = typer.Typer(help="Plots of the latest fit, as PNG or SVG files.")


class ModelChoice(StrEnum):
    auto = "auto"
    bgnbd = "bgnbd"
    pareto = "pareto"
    sbg = "sbg"


class Quantity(StrEnum):
    p_alive = "p_alive"
    purchases = "purchases"


OutputFile = Annotated[Path, typer.Option("--output", "-o", help="File to write: .png or .svg")]


def _day(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value).date()
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


def fit(
    workspace: WorkspaceOption,
    model: Annotated[
        ModelChoice,
        typer.Option(help="auto: by the workspace's business model (BG/NBD or sBG)"),
    ] = ModelChoice.auto,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Last day included, YYYY-MM-DD (default: yesterday)"),
    ] = None,
    holdout_weeks: Annotated[
        float | None,
        typer.Option(help="Hold out the last N weeks and compare predicted with actual purchases"),
    ] = None,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Fit the purchase history and score every customer: P(alive), purchases, CLV."""
    from clm.predictions import fit_workspace

    with open_workspace(database_url, workspace) as (db, ws_id):
        columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            progress.add_task("fitting and scoring", total=None)
            report = fit_workspace(db, ws_id, model.value, _day(as_of), holdout_weeks)
    if output is OutputFormat.json:
        print_json(report)
        return
    print_table(
        f"{report.model} fit {report.fit_id} on {report.n_customers:,} customers",
        ["parameter", "estimate", "se", "95% interval"],
        [
            (
                p.name,
                f"{p.estimate:.4g}",
                "" if p.se is None else f"{p.se:.3g}",
                "" if p.lower_95 is None else f"{p.lower_95:.4g} – {p.upper_95:.4g}",
            )
            for p in report.parameters
        ],
    )
    console.print(
        f"log-likelihood {report.log_likelihood:,.1f}; calibration ends "
        f"{report.calibration_end:%Y-%m-%d}; scores as of {report.as_of:%Y-%m-%d %H:%M} UTC; "
        f"{report.scores_written:,} new scores" + (" (fit already stored)" if report.reused else "")
    )
    if report.holdout is not None:
        h = report.holdout
        print_table(
            f"Holdout: {h.duration_weeks:g} weeks, {h.customers:,} customers "
            f"(actual {h.actual:,.0f}, predicted {h.predicted:,.0f} repeat purchases)",
            ["calibration purchases", "customers", "actual mean", "predicted mean"],
            [
                (f"{b['frequency']:g}", f"{b['customers']:g}", f"{b['actual']:.3f}",
                 f"{b['predicted']:.3f}")
                for b in h.by_frequency
            ],
        )  # fmt: skip
    for warning in report.diagnostics.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {warning}")


def _save(
    workspace: str, name: str, path: Path, database_url: str | None, **kwargs: object
) -> None:
    from clm.predictions import plot_figure

    if path.suffix.lower() not in (".png", ".svg"):
        raise typer.BadParameter("the output file must end in .png or .svg")
    with open_workspace(database_url, workspace) as (db, ws_id):
        figure = plot_figure(db, ws_id, name, **kwargs)  # type: ignore[arg-type]
    figure.savefig(path, bbox_inches="tight")
    console.print(f"wrote {path}")


@plot_app.command("holdout")
def plot_holdout(
    workspace: WorkspaceOption, output: OutputFile, database_url: DatabaseOption = None
) -> None:
    """Calibration vs holdout: mean purchases by calibration frequency (needs --holdout-weeks)."""
    _save(workspace, "holdout", output, database_url)


@plot_app.command("heatmap")
def plot_heatmap(
    workspace: WorkspaceOption,
    output: OutputFile,
    quantity: Annotated[Quantity, typer.Option(help="p_alive, or purchases in 90 days")] = (
        Quantity.p_alive
    ),
    database_url: DatabaseOption = None,
) -> None:
    """Frequency/recency heat-map of P(alive) or of expected purchases."""
    _save(workspace, "heatmap", output, database_url, quantity=quantity.value)


@plot_app.command("p-alive")
def plot_p_alive(
    workspace: WorkspaceOption,
    output: OutputFile,
    customer: Annotated[int, typer.Option("--customer", help="Customer id")],
    database_url: DatabaseOption = None,
) -> None:
    """A customer's P(alive) history: up at each purchase, decaying in between."""
    _save(workspace, "p-alive", output, database_url, customer_id=customer)


def mount(app: typer.Typer) -> None:
    """Add ``clm fit`` and ``clm plot`` to the ``clm`` app."""
    app.command("fit")(fit)
    app.add_typer(plot_app, name="plot")
