"""The ``clm`` command line: thin commands over the Python API."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from rich.markup import escape
from typer._click.exceptions import UsageError  # typer vendors Click; no public alias

from clm.cli._common import DatabaseOption, console, err_console
from clm.cli.accounts import audit_app, user_app
from clm.cli.admin import keys_app, workspace_app
from clm.cli.customers import customer_app, events_app
from clm.cli.engage import playbook_app, survey_app, worker
from clm.cli.importing import import_app
from clm.cli.lifecycle import health_app, lifecycle_app, stages_app
from clm.cli.predictions import mount as mount_predictions
from clm.cli.privacy import privacy_app
from clm.cli.programs import coupon_app, points_app, referral_app, testimonial_app
from clm.cli.reports import report_app

app = typer.Typer(
    name="clm",
    help="CLM: customer lifecycle management from your event log.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # docstring paragraphs reflow to the terminal's width
)


@app.callback()
def _fresh_settings() -> None:
    """CLM: customer lifecycle management from your event log."""
    # Each invocation reads CLM_* anew (matters when one process runs many commands).
    from clm.config import get_settings

    get_settings.cache_clear()


app.add_typer(workspace_app, name="workspace")
app.add_typer(keys_app, name="keys")
app.add_typer(user_app, name="user")
app.add_typer(audit_app, name="audit")
app.add_typer(customer_app, name="customer")
app.add_typer(events_app, name="events")
app.add_typer(import_app, name="import")
app.add_typer(stages_app, name="stages")
app.add_typer(lifecycle_app, name="lifecycle")
app.add_typer(health_app, name="health")
app.add_typer(survey_app, name="survey")
app.add_typer(playbook_app, name="playbook")
app.add_typer(referral_app, name="referral")
app.add_typer(coupon_app, name="coupon")
app.add_typer(points_app, name="points")
app.add_typer(testimonial_app, name="testimonial")
app.add_typer(report_app, name="report")
app.add_typer(privacy_app, name="privacy")
app.command("worker")(worker)
mount_predictions(app)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000)")] = None,
    workers: Annotated[
        int, typer.Option(help="Server processes; more than one uses more cores")
    ] = 1,
    database_url: DatabaseOption = None,
) -> None:
    """Serve the tracking API (/v1) and the management API (/api/v1)."""
    import os

    import uvicorn

    from clm.cli._common import open_database
    from clm.config import get_settings
    from clm.ingest.writer_process import WriterProcess, socket_path_in
    from clm.store.engine import Database
    from clm.web import create_app

    settings = get_settings()
    db = open_database(database_url)  # migrates once, before any worker starts
    bind_host, bind_port = host or settings.host, port or settings.port
    url = db.engine.url.render_as_string(hide_password=False)
    db.dispose()
    # SQLite has one writer: it gets a process of its own, and the HTTP workers parse.
    writer = WriterProcess(url, socket_path_in(settings.data_dir))
    writer.start()
    os.environ.update({**writer.environment, "CLM_DATABASE_URL": url})
    os.environ.setdefault("CLM_LIVE_NUDGE", "true")  # stored events wake `clm worker`
    # Links made while serving (survey, unsubscribe, reset) point at this server unless told.
    os.environ["CLM_PUBLIC_URL"] = settings.served_public_url(bind_host, bind_port)
    get_settings.cache_clear()  # this process serves too when workers == 1
    console.print(f"CLM on http://{bind_host}:{bind_port}  (dashboard: /, API docs: /docs)")
    try:
        if workers > 1:
            uvicorn.run(
                "clm.web:create_app", factory=True, host=bind_host, port=bind_port,
                workers=workers, log_level="warning",
            )  # fmt: skip
        else:
            app = create_app(Database.open(url, run_migrations=False))
            uvicorn.run(app, host=bind_host, port=bind_port, log_level="warning")
    finally:
        writer.stop()  # after the workers: their last batches are answered first


@app.command()
def migrate(database_url: DatabaseOption = None) -> None:
    """Bring the database schema up to date (the server and every command also do this)."""
    from clm.cli._common import open_database

    db = open_database(database_url)
    console.print(f"Schema up to date ({db.dialect}).")


@app.command()
def demo(
    serve_api: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the API when the data is ready")
    ] = True,
    port: Annotated[int, typer.Option(help="Port of the API")] = 8000,
    customers: Annotated[
        int | None, typer.Option(help="Only the first N CDNOW customers (all 23,570 by default)")
    ] = None,
    fresh: Annotated[bool, typer.Option(help="Delete the demo database and rebuild it")] = False,
) -> None:
    """Build the CDNOW demo workspace in an embedded database and serve the API on localhost.

    The purchases are the real CDNOW log (Fader & Hardie); the other touchpoints (visits,
    sign-ups, emails, tickets, NPS answers, referrals) are synthetic and marked as such. A
    welcome playbook, an NPS survey and a referral program run on it, delivering to an SMTP
    sink the demo starts (one .eml file per message in the demo's mailbox folder).
    """
    from clm.cli.demo import run_demo

    run_demo(serve_api=serve_api, port=port, customers=customers, fresh=fresh)


def main() -> None:
    """The ``clm`` entry point: any failure no command anticipated is still one line on stderr
    and exit code 1, never a traceback (``CLM_DEBUG=1`` shows the traceback)."""
    try:
        code = app(standalone_mode=False, prog_name="clm")
    except UsageError as exc:
        # A wrong option or argument is the user's mistake like any other: one line and exit
        # code 1 (Click's own answer is a usage block, a box and exit code 2).
        where = exc.ctx.command_path if exc.ctx is not None else "clm"
        err_console.print(
            f"[red]error:[/red] {escape(exc.format_message())} (see '{where} --help')",
            highlight=False,
        )
        sys.exit(1)
    except typer.Abort:
        err_console.print("[red]error:[/red] aborted", highlight=False)
        sys.exit(1)
    except Exception as exc:
        if os.environ.get("CLM_DEBUG"):
            raise
        message = str(exc).splitlines()[0] if str(exc) else ""
        err_console.print(
            f"[red]error:[/red] {type(exc).__name__}: {escape(message)}", highlight=False
        )
        sys.exit(1)
    if isinstance(code, int) and code:
        sys.exit(code)
