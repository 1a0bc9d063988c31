"""``clm survey``, ``clm playbook`` and ``clm worker``: engagement from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml

from clm.cli._common import (
    DatabaseOption,
    FormatOption,
    OutputFormat,
    WorkspaceOption,
    console,
    friendly_errors,
    open_workspace,
    percent,
    percentage_points,
    print_json,
    print_listing,
    print_table,
)

if TYPE_CHECKING:
    from clm.engage.playbooks.schemas import PlaybookReport

survey_app = typer.Typer(help="NPS, CSAT, CES and custom surveys.", no_args_is_help=True)
playbook_app = typer.Typer(
    help="Playbooks: triggers and steps, journeys, reports.", no_args_is_help=True
)
FileArg = Annotated[Path, typer.Argument(help="A YAML or JSON file", exists=True, readable=True)]


@survey_app.command("apply")
def survey_apply(
    path: FileArg, workspace: WorkspaceOption, database_url: DatabaseOption = None
) -> None:
    """Create or replace a survey from a YAML/JSON definition."""
    from clm.engage.surveys import SurveyDefinition, save_survey

    with friendly_errors():
        definition = SurveyDefinition.model_validate(yaml.safe_load(path.read_text()))
    with open_workspace(database_url, workspace) as (db, ws_id):
        saved = save_survey(db, ws_id, definition)
    console.print(f"Survey [bold]{saved.key}[/bold] ({saved.type}) saved.")


@survey_app.command("list")
def survey_list(
    workspace: WorkspaceOption,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """The workspace's surveys."""
    from clm.engage.surveys import list_surveys

    with open_workspace(database_url, workspace) as (db, ws_id):
        found = list_surveys(db, ws_id)
    print_listing(
        output,
        found,
        "Surveys",
        ["key", "type", "active", "schedule"],
        [(s.key, s.type, s.active, s.definition.get("schedule")) for s in found],
    )


@survey_app.command("send")
def survey_send(
    key: Annotated[str, typer.Argument(help="Survey key")],
    customers: Annotated[list[int], typer.Option("--customer", "-c", help="Customer id")],
    workspace: WorkspaceOption,
    database_url: DatabaseOption = None,
) -> None:
    """Send a survey to customers now (through the guardrails)."""
    from clm.engage.surveys import send_survey

    with open_workspace(database_url, workspace) as (db, ws_id):
        decided = send_survey(db, ws_id, key, customers)
    for d in decided:
        console.print(f"customer {d.request.customer_id}: {d.status} {d.reason or ''}")


@survey_app.command("schedule")
def survey_schedule(workspace: WorkspaceOption, database_url: DatabaseOption = None) -> None:
    """Send every recurring survey to the customers it is due for."""
    from clm.engage.surveys import run_schedules

    with open_workspace(database_url, workspace) as (db, ws_id):
        count = run_schedules(db, ws_id)
    console.print(f"{count} survey sends decided.")


@playbook_app.command("validate")
def playbook_validate(path: FileArg) -> None:
    """Check a playbook file: schema, step references, templates."""
    from clm.engage.playbooks import parse_playbook

    with friendly_errors():
        definition = parse_playbook(path.read_text())
    console.print(f"[green]valid[/green]: {definition.name}, {len(definition.steps)} steps")


@playbook_app.command("apply")
def playbook_apply(
    path: FileArg,
    workspace: WorkspaceOption,
    migrate: Annotated[bool, typer.Option(help="Move journeys under way to this version")] = False,
    database_url: DatabaseOption = None,
) -> None:
    """Store a playbook as its active version (a changed one becomes a new version)."""
    from clm.engage.playbooks import apply_playbook, parse_playbook

    text = path.read_text()
    with open_workspace(database_url, workspace) as (db, ws_id):
        # the file's text is kept with its version: the web editor reopens it, comments and all
        saved = apply_playbook(db, ws_id, parse_playbook(text), migrate=migrate, source=text)
    console.print(f"Playbook [bold]{saved.name}[/bold] version {saved.version} ({saved.status}).")


@playbook_app.command("list")
def playbook_list(
    workspace: WorkspaceOption,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Current playbooks and their versions."""
    from clm.engage.playbooks import list_playbooks

    with open_workspace(database_url, workspace) as (db, ws_id):
        found = list_playbooks(db, ws_id)
    print_listing(
        output,
        found,
        "Playbooks",
        ["name", "version", "status", "trigger", "steps", "goal", "holdout"],
        [
            (p.name, p.version, p.status, describe_trigger(p.definition.get("trigger") or {}),
             len(p.definition.get("steps") or []), describe_goal(p.definition.get("goal")),
             f"{100 * float(p.definition.get('holdout') or 0):.0f}%")
            for p in found
        ],
    )  # fmt: skip


def describe_trigger(trigger: dict[str, Any]) -> str:
    """A trigger in words: its type, then what it names (``stage_changed to conversion``)."""
    words = [str(trigger.get("type", "?")).replace("_", " ")]
    for key in ("from", "to", "event", "trait"):
        if trigger.get(key):
            words.append(f"{key} {trigger[key]}")
    if trigger.get("type") == "schedule":
        words.append(f"every {trigger.get('every_days', 30)} days")
    if trigger.get("offset_days"):
        words.append(f"{trigger['offset_days']:+d} days")
    if trigger.get("where"):
        words.append("where " + ", ".join(f"{k} = {v}" for k, v in trigger["where"].items()))
    for condition in trigger.get("conditions") or []:
        words.append(" ".join(str(v) for v in condition.values() if v is not None))
    return " ".join(words)


def describe_goal(goal: dict[str, Any] | None) -> str:
    if not goal:
        return ""
    target = goal.get("stage") or goal.get("event") or "?"
    return f"{target} within {goal.get('within_days', 30)} days"


@playbook_app.command("report")
def playbook_report(
    name: str,
    workspace: WorkspaceOption,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Goal conversion, treatment against holdout, uplift with its 95% interval."""
    from clm.engage.playbooks import playbook_report as report_of

    with open_workspace(database_url, workspace) as (db, ws_id):
        report = report_of(db, ws_id, name)
    if output is OutputFormat.json:
        print_json(report)
        return
    print_table(
        f"{name}: goal {report.goal}",
        ["arm", "enrolled", "reached goal", "rate"],
        [
            (arm, r.enrolled, r.reached_goal, percent(r.rate))
            for arm, r in [
                ("treatment", report.treatment),
                ("control", report.control),
                *report.variants.items(),
            ]
        ],
    )
    console.print(uplift_sentence(report), soft_wrap=True)


def uplift_sentence(report: PlaybookReport) -> str:
    """The uplift as the web app says it: "uplift +3.2 pp (95% CI −0.4 to +6.8 pp): not
    distinguishable from the holdout"."""
    if report.uplift is None or report.ci_low is None or report.ci_high is None:
        return "uplift: not enough data (a goal, and journeys in both arms)"
    low = percentage_points(report.ci_low).removesuffix(" pp")
    verdict = (
        "better than the holdout" if report.ci_low > 0
        else "worse than the holdout" if report.ci_high < 0
        else "not distinguishable from the holdout"
    )  # fmt: skip
    return (
        f"uplift {percentage_points(report.uplift)} "
        f"(95% CI {low} to {percentage_points(report.ci_high)}): {verdict}"
    )


@playbook_app.command("pause")
def playbook_pause(
    name: str, workspace: WorkspaceOption, database_url: DatabaseOption = None
) -> None:
    """Stop enrolling and advancing (journeys wait where they are)."""
    from clm.engage.playbooks import set_paused

    with open_workspace(database_url, workspace) as (db, ws_id):
        set_paused(db, ws_id, name, True)
    console.print(f"{name} paused.")


@playbook_app.command("resume")
def playbook_resume(
    name: str, workspace: WorkspaceOption, database_url: DatabaseOption = None
) -> None:
    """Resume a paused playbook."""
    from clm.engage.playbooks import set_paused

    with open_workspace(database_url, workspace) as (db, ws_id):
        set_paused(db, ws_id, name, False)
    console.print(f"{name} resumed.")


@playbook_app.command("history")
def playbook_history(
    customer: int,
    workspace: WorkspaceOption,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """A customer's journeys: which step, when, and why."""
    from clm.engage.playbooks import journey_history

    with open_workspace(database_url, workspace) as (db, ws_id):
        journeys = journey_history(db, ws_id, customer)
    if output is OutputFormat.json:
        print_json(journeys)
        return
    for j in journeys:
        print_table(
            f"{j.playbook} v{j.version} ({j.arm}, {j.state})",
            ["at", "step", "action", "detail"],
            [(h.at, h.step, h.action, h.detail) for h in j.history],
        )


@playbook_app.command("tick")
def playbook_tick(
    workspace: WorkspaceOption,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Enrol and advance journeys, process referrals, earn and expire points (what the worker
    does every minute)."""
    from clm.engage.playbooks import run_due

    with open_workspace(database_url, workspace) as (db, ws_id):
        report = run_due(db, ws_id)
    if output is OutputFormat.json:
        print_json(report)
        return
    console.print(
        f"enrolled {report.enrolled}, steps {report.steps}, sends {report.sends} "
        f"({report.blocked} blocked) in {report.seconds}s; points earned "
        f"{report.points_earned}, expired {report.points_expired}"
    )
    if report.referrals is not None:
        r = report.referrals
        console.print(
            f"referrals: {r.attributed} attributed, {r.qualified} qualified, {r.review} to "
            f"review, {r.rewarded} rewarded, {r.rejected} rejected"
        )


def worker(
    workers: Annotated[int, typer.Option(help="Delivery threads")] = 2,
    database_url: DatabaseOption = None,
) -> None:
    """Keep every workspace current and deliver the outbox until stopped: stages, health,
    playbooks and predictions without cron (huey on SQLite or Redis; `CLM_LIVE_*` knobs)."""
    from clm.config import get_settings
    from clm.worker import run_worker

    live = get_settings()
    console.print(
        "CLM worker: "
        + ("keeping stages, health and playbooks live; " if live.live_enabled else "")
        + "delivering the outbox (Ctrl-C to stop)"
    )
    run_worker(database_url or get_settings().effective_database_url, workers=workers)
