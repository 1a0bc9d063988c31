"""``clm user`` and ``clm audit``: people and roles from the server's command line, for the
first owner and for servers without email, and the audit log for whoever holds the database.

The command line acts as the operator (``cli:<login name>`` in the audit log): whoever can run
it holds the database, so it may do everything; its changes are audited like any other.
"""

from __future__ import annotations

import getpass
import os
from typing import Annotated

import typer

from clm.accounts import Principal, Role, list_records, operator, resets, users
from clm.accounts.audit import MAX_PAGE
from clm.cli._common import (
    DatabaseOption,
    FormatOption,
    OutputFormat,
    WorkspaceOption,
    console,
    friendly_errors,
    open_database,
    open_workspace,
    print_json,
    print_listing,
    workspace_id,
)
from clm.errors import ValidationError

user_app = typer.Typer(help="People who sign in: create, list, disable, reset passwords.")
audit_app = typer.Typer(help="The audit log: who changed what, when, before and after.")

PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from standard input instead of prompting"
    ),
]


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "operator")


def operator_here(workspace_id: int | None = None) -> Principal:
    """The person at this command line, as the audit log names them."""
    return operator(_operator(), workspace_id)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return typer.get_text_stream("stdin").readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise ValidationError("The two passwords differ")
    return first


@user_app.command("create")
def create_user(
    email: Annotated[str, typer.Argument(help="The person's email (their sign-in name)")],
    workspace: Annotated[
        str | None, typer.Option("--workspace", "-w", help="Workspace to add them to")
    ] = None,
    role: Annotated[Role, typer.Option(help="Their role in that workspace")] = Role.OWNER,
    name: Annotated[str, typer.Option(help="Display name")] = "",
    no_password: Annotated[
        bool, typer.Option("--no-password", help="Create without one; they use a reset link")
    ] = False,
    password_stdin: PasswordStdin = False,
    database_url: DatabaseOption = None,
) -> None:
    """Create a person (the first owner, typically), optionally with a role in a workspace."""
    db = open_database(database_url)
    with friendly_errors():
        password = None if no_password else _read_password(password_stdin)
        with db.transaction() as session:
            ws_id = workspace_id(db, workspace) if workspace else None
            who = operator_here(ws_id)
            user = users.create_user(session, who, email, password, name)
            if ws_id is not None:
                users.set_role(session, who, user, ws_id, role)
    where = f" as {role} of workspace {workspace}" if workspace else ""
    console.print(f"User [bold]{user.email}[/bold] (id {user.id}) created{where}.")


@user_app.command("grant")
def grant_role(
    email: Annotated[str, typer.Argument(help="The person's email or id")],
    role: Annotated[Role, typer.Argument(help="owner, admin, marketer, customer_success, viewer")],
    workspace: WorkspaceOption,
    database_url: DatabaseOption = None,
) -> None:
    """Give a person a role in a workspace (adding them, or changing their role)."""
    with open_workspace(database_url, workspace) as (db, ws_id), db.transaction() as session:
        user = users.get_user(session, email)
        users.set_role(session, operator_here(ws_id), user, ws_id, role)
    console.print(f"{email} is now {role} of workspace {workspace}.")


@user_app.command("list")
def list_users(
    workspace: Annotated[
        str | None, typer.Option("--workspace", "-w", help="Only this workspace's members")
    ] = None,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """List people, their roles per workspace, and whether they are disabled."""
    db = open_database(database_url)
    with friendly_errors():
        ws_id = workspace_id(db, workspace) if workspace else None
        with db.session() as session:
            items = users.list_users(session, ws_id)
    rows = [
        (
            u.id,
            u.email,
            ", ".join(f"{m.role}@{m.workspace_id}" for m in u.memberships),
            "disabled" if u.disabled_at else ("active" if u.has_password else "no password"),
            u.created_at,
        )
        for u in items
    ]
    print_listing(output, items, "Users", ["id", "email", "roles", "status", "created"], rows)


@user_app.command("disable")
def disable_user(
    email: Annotated[str, typer.Argument(help="The person's email or id")],
    enable: Annotated[bool, typer.Option("--enable", help="Re-enable instead")] = False,
    database_url: DatabaseOption = None,
) -> None:
    """Disable a person: signed out everywhere at once, sign-in refused (``--enable`` undoes)."""
    db = open_database(database_url)
    with friendly_errors(), db.transaction() as session:
        user = users.get_user(session, email)
        users.set_disabled(session, operator_here(), user, not enable)
    console.print(f"{email} {'enabled' if enable else 'disabled'}.")


@user_app.command("reset")
def reset_password(
    email: Annotated[str, typer.Argument(help="The person's email or id")],
    link: Annotated[
        bool, typer.Option("--link", help="Print a one-time reset link instead of setting one")
    ] = False,
    password_stdin: PasswordStdin = False,
    database_url: DatabaseOption = None,
) -> None:
    """Set a person's password (signing them out everywhere), or print a reset link to hand
    them when the server has no email channel."""
    db = open_database(database_url)
    with friendly_errors():
        if link:
            with db.transaction() as session:
                token = resets.create_reset(session, users.get_user(session, email))
            console.print(resets.reset_url(token), soft_wrap=True, highlight=False)
            return
        password = _read_password(password_stdin)
        with db.transaction() as session:
            user = users.get_user(session, email)
            users.set_password(session, operator_here(), user, password)
    console.print(f"Password of {email} set; their sessions are ended.")


@audit_app.command("list")
def list_audit(
    workspace: WorkspaceOption,
    limit: Annotated[int, typer.Option(min=1, max=MAX_PAGE, help="How many, newest first")] = 50,
    action: Annotated[
        str | None, typer.Option(help="Only actions starting with this, e.g. key. or playbook")
    ] = None,
    before_id: Annotated[int | None, typer.Option(help="Page: records older than this id")] = None,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Who changed what in a workspace, newest first."""
    with open_workspace(database_url, workspace) as (db, ws_id), db.session() as session:
        items = list_records(session, ws_id, before_id=before_id, limit=limit, action=action)
    if output is OutputFormat.json:
        print_json(items)
        return
    rows = [(r.id, r.at, r.actor, r.action, r.target, _brief(r.before), _brief(r.after))
            for r in items]  # fmt: skip
    print_listing(
        output, items, "Audit log", ["id", "when", "who", "action", "target", "before", "after"],
        rows,
    )  # fmt: skip


def _brief(value: object, width: int = 60) -> str:
    if value is None:
        return ""
    text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"
