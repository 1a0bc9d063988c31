"""``clm referral``, ``clm coupon``, ``clm points`` and ``clm testimonial``: the advocacy and
loyalty programs from the command line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

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
    print_json,
    print_listing,
    print_table,
)

referral_app = typer.Typer(
    help="Referral program: codes and links, flagged referrals, rewards.", no_args_is_help=True
)
coupon_app = typer.Typer(help="Coupon codes: issue, validate, redeem.", no_args_is_help=True)
points_app = typer.Typer(help="Points: balances, statements, earning rules.", no_args_is_help=True)
testimonial_app = typer.Typer(
    help="Testimonials: review what customers wrote, publish the approved ones.",
    no_args_is_help=True,
)
FileArg = Annotated[Path, typer.Argument(help="A YAML or JSON file", exists=True, readable=True)]


def _now() -> datetime:
    return datetime.now(UTC)


# --- referrals ---------------------------------------------------------------------------------


@referral_app.command("create")
def referral_create(
    path: FileArg, workspace: WorkspaceOption, database_url: DatabaseOption = None
) -> None:
    """Create or replace the referral program from a YAML/JSON file (stages, rewards, caps)."""
    from clm.engage.referrals import ReferralProgram, set_program

    with friendly_errors():
        program = ReferralProgram.model_validate(yaml.safe_load(path.read_text()) or {})
    with open_workspace(database_url, workspace) as (db, ws_id):
        set_program(db, ws_id, program)
    console.print(
        f"Referral program saved: {program.referrer_points} points to the referrer, "
        f"{program.referee_points} to the referee, after {program.refund_window_days} days."
    )


@referral_app.command("show")
def referral_show(
    workspace: WorkspaceOption,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """The program, codes issued and referrals by status."""
    from clm.engage.referrals import get_program, referral_report

    with open_workspace(database_url, workspace) as (db, ws_id):
        with db.session() as session:
            program = get_program(session, ws_id)
        counts = referral_report(db, ws_id)
    if output is OutputFormat.json:
        print_json({"program": program, "report": counts})
        return
    print_table("Referral program", ["setting", "value"], list(program.model_dump().items()))
    print_table("Referrals", ["", "count"], list(counts.items()))


@referral_app.command("code")
def referral_code(
    customers: Annotated[list[int], typer.Argument(help="Customer ids")],
    workspace: WorkspaceOption,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """A customer's referral code and link (issued on first ask)."""
    from clm.engage.referrals import codes_for, link

    with open_workspace(database_url, workspace) as (db, ws_id), db.transaction() as session:
        codes = codes_for(session, ws_id, customers, _now())
    rows = [{"customer_id": c, "code": v, "link": link(v)} for c, v in sorted(codes.items())]
    print_listing(
        output,
        rows,
        "Referral codes",
        ["customer", "code", "link"],
        [list(r.values()) for r in rows],
    )


@referral_app.command("list")
def referral_list(
    workspace: WorkspaceOption,
    status: Annotated[
        str | None,
        typer.Option(help="attributed, review, qualified, rewarded or rejected"),
    ] = None,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Referrals, with each decision explained; `--status review` lists the flagged ones."""
    from clm.engage.referrals import list_referrals

    with open_workspace(database_url, workspace) as (db, ws_id):
        found = list_referrals(db, ws_id, status)
    print_listing(
        output,
        found,
        "Referrals",
        ["id", "code", "referrer", "referee", "status", "flags"],
        [
            (
                r.id,
                r.code,
                r.referrer_id,
                r.referee_id,
                r.status,
                ", ".join(c["check"] for c in r.checks if c["flagged"]),
            )
            for r in found
        ],
    )


@referral_app.command("explain")
def referral_explain(
    referral_id: int, workspace: WorkspaceOption, database_url: DatabaseOption = None
) -> None:
    """Every check and decision on one referral, in sentences."""
    from clm.engage.referrals import list_referrals

    with open_workspace(database_url, workspace) as (db, ws_id):
        found = [r for r in list_referrals(db, ws_id) if r.id == referral_id]
    if not found:
        console.print(f"[red]error:[/red] No referral {referral_id}")
        raise typer.Exit(1)
    console.print(found[0].explanation, markup=False)


def _review(referral_id: int, approve: bool, note: str, workspace: str, url: str | None) -> None:
    from clm.engage.referrals.service import review

    with open_workspace(url, workspace) as (db, ws_id):
        row = review(db, ws_id, referral_id, approve, note)
    console.print(f"Referral {row.id} is now {row.status}.")


NoteOption = Annotated[str, typer.Option(help="Why, kept with the decision")]


@referral_app.command("approve")
def referral_approve(
    referral_id: int,
    workspace: WorkspaceOption,
    note: NoteOption = "",
    database_url: DatabaseOption = None,
) -> None:
    """Approve a flagged referral: it is rewarded once the refund window has passed."""
    _review(referral_id, True, note, workspace, database_url)


@referral_app.command("reject")
def referral_reject(
    referral_id: int,
    workspace: WorkspaceOption,
    note: NoteOption = "",
    database_url: DatabaseOption = None,
) -> None:
    """Reject a flagged referral: no one is rewarded."""
    _review(referral_id, False, note, workspace, database_url)


@referral_app.command("process")
def referral_process(
    workspace: WorkspaceOption,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Attribute, qualify and reward now (the worker does this every minute)."""
    from clm.engage.referrals import process

    with open_workspace(database_url, workspace) as (db, ws_id):
        report = process(db, ws_id, _now())
    print_listing(
        output, report, "Referral processing", ["", "count"], list(report.model_dump().items())
    )


# --- coupons and points ------------------------------------------------------------------------


@coupon_app.command("issue")
def coupon_issue(
    value: Annotated[float, typer.Argument(help="Amount off, or percent with --percent")],
    workspace: WorkspaceOption,
    percent: Annotated[bool, typer.Option(help="VALUE is a percentage")] = False,
    min_order: Annotated[float, typer.Option(help="Smallest order it applies to")] = 0.0,
    uses: Annotated[int, typer.Option(help="How many orders may use it")] = 1,
    expires: Annotated[datetime | None, typer.Option(help="Expiry (UTC)")] = None,
    customer: Annotated[int | None, typer.Option(help="Meant for this customer")] = None,
    code: Annotated[str | None, typer.Option(help="The code (random by default)")] = None,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Issue a coupon code."""
    from clm.engage.referrals import CouponCreate, create_coupon

    with friendly_errors():
        spec = CouponCreate(
            kind="percent" if percent else "amount",
            value=value,
            min_order=min_order,
            max_redemptions=uses,
            expires_at=expires.replace(tzinfo=expires.tzinfo or UTC) if expires else None,
            customer_id=customer,
            code=code.upper() if code else None,
            source="cli",
        )
    with open_workspace(database_url, workspace) as (db, ws_id):
        coupon = create_coupon(db, ws_id, spec, _now())
    if output is OutputFormat.json:
        print_json(coupon)
        return
    console.print(f"Coupon [bold]{coupon.code}[/bold] issued.")


def _coupon_check(
    code: str, total: float, order: str | None, workspace: str, url: str | None, output: str
) -> None:
    from clm.engage.referrals import redeem_coupon, validate_coupon

    with open_workspace(url, workspace) as (db, ws_id):
        check = (
            redeem_coupon(db, ws_id, code, order, total, _now())
            if order is not None
            else validate_coupon(db, ws_id, code, total, _now())
        )
    if output == OutputFormat.json:
        print_json(check)
    else:
        verdict = "[green]valid[/green]" if check.valid else "[red]not valid[/red]"
        console.print(f"{check.code}: {verdict}, discount {check.discount:.2f} ({check.reason})")
    if not check.valid:
        raise typer.Exit(1)


TotalOption = Annotated[float, typer.Option("--total", help="The order total")]


@coupon_app.command("validate")
def coupon_validate(
    code: str,
    workspace: WorkspaceOption,
    total: TotalOption,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Would the code apply to an order of this total, and for how much (exit 1 if not)."""
    _coupon_check(code, total, None, workspace, database_url, output)


@coupon_app.command("redeem")
def coupon_redeem(
    code: str,
    workspace: WorkspaceOption,
    total: TotalOption,
    order: Annotated[str, typer.Option(help="Order id: redeeming twice for it uses it once")],
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Use the code on an order (exit 1 if it does not apply)."""
    _coupon_check(code, total, order, workspace, database_url, output)


@coupon_app.command("list")
def coupon_list(
    workspace: WorkspaceOption,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """The workspace's coupons and how often each was used."""
    from clm.engage.referrals import list_coupons

    with open_workspace(database_url, workspace) as (db, ws_id):
        found = list_coupons(db, ws_id)
    print_listing(
        output,
        found,
        "Coupons",
        ["code", "kind", "value", "min order", "used", "expires", "customer"],
        [
            (c.code, c.kind, c.value, c.min_order, f"{c.redemptions}/{c.max_redemptions}",
             c.expires_at, c.customer_id)
            for c in found
        ],
    )  # fmt: skip


@points_app.command("balance")
def points_balance(
    customer: int,
    workspace: WorkspaceOption,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """A customer's points balance and every entry behind it."""
    from clm.engage.referrals import balance, statement

    with open_workspace(database_url, workspace) as (db, ws_id):
        entries, total = statement(db, ws_id, customer), balance(db, ws_id, customer)
    print_listing(
        output,
        {"customer_id": customer, "balance": total, "entries": entries},
        f"Customer {customer}: {total} points",
        ["at", "kind", "points", "memo", "expires"],
        [(e.created_at, e.kind, e.amount, e.memo, e.expires_at) for e in entries],
    )


@points_app.command("rules")
def points_rules(
    workspace: WorkspaceOption,
    path: Annotated[
        Path | None, typer.Argument(help="YAML/JSON earning rules to store", exists=True)
    ] = None,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Show the earning rules, or store new ones from a file (they apply from now on)."""
    from clm.engage.referrals import PointsProgram, get_points_program, set_points_program

    with open_workspace(database_url, workspace) as (db, ws_id):
        if path is not None:
            raw = yaml.safe_load(path.read_text()) or {}
            set_points_program(db, ws_id, PointsProgram.model_validate(raw))
        program = get_points_program(db, ws_id) or PointsProgram()
    print_listing(
        output,
        program,
        "Earning rules",
        ["event", "where", "per unit", "of", "bonus", "expires (days)"],
        [
            (r.event, r.where or "", r.points_per_unit, r.amount_property, r.bonus, r.expires_days)
            for r in program.rules
        ],
    )


# --- testimonials ------------------------------------------------------------------------------


@testimonial_app.command("list")
def testimonial_list(
    workspace: WorkspaceOption,
    status: Annotated[str | None, typer.Option(help="pending, approved or rejected")] = None,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Testimonials customers wrote; `--status pending` is the review queue."""
    from clm.engage.referrals import list_testimonials

    with open_workspace(database_url, workspace) as (db, ws_id):
        found = list_testimonials(db, ws_id, status)
    print_listing(
        output,
        found,
        "Testimonials",
        ["id", "customer", "status", "rating", "consent", "text"],
        [
            (t.id, t.customer_id, t.status, t.rating, t.consent, t.text[:60])
            for t in found
        ],
    )  # fmt: skip


def _decide(
    testimonial_id: int,
    decision: Literal["approved", "rejected"],
    note: str,
    workspace: str,
    url: str | None,
) -> None:
    from clm.engage.referrals.testimonials import review

    with open_workspace(url, workspace) as (db, ws_id):
        row = review(db, ws_id, testimonial_id, decision, _now(), note)
    console.print(f"Testimonial {row.id} {row.status}.")


@testimonial_app.command("approve")
def testimonial_approve(
    testimonial_id: int,
    workspace: WorkspaceOption,
    note: NoteOption = "",
    database_url: DatabaseOption = None,
) -> None:
    """Publish a testimonial (only one whose author consented)."""
    _decide(testimonial_id, "approved", note, workspace, database_url)


@testimonial_app.command("reject")
def testimonial_reject(
    testimonial_id: int,
    workspace: WorkspaceOption,
    note: NoteOption = "",
    database_url: DatabaseOption = None,
) -> None:
    """Keep a testimonial off the feed."""
    _decide(testimonial_id, "rejected", note, workspace, database_url)


@testimonial_app.command("feed")
def testimonial_feed(
    workspace: WorkspaceOption,
    brand: Annotated[str | None, typer.Option(help="Only this brand")] = None,
    product: Annotated[str | None, typer.Option(help="Only this product")] = None,
    html: Annotated[bool, typer.Option(help="The embeddable HTML snippet")] = False,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """The approved testimonials as published, with the public feed's signed URL."""
    from clm.config import get_settings
    from clm.engage.referrals import feed, feed_token, snippet

    with open_workspace(database_url, workspace) as (db, ws_id):
        items = feed(db, ws_id, brand, product)
    if html:
        typer.echo(snippet(items))
        return
    url = f"{get_settings().public_url.rstrip('/')}/public/testimonials/feed"
    if output is OutputFormat.json:
        print_json({"url": f"{url}?token={feed_token(ws_id)}", "items": items})
        return
    print_table(
        "Published testimonials",
        ["who", "rating", "brand", "product", "text"],
        [(i.display_name, i.rating, i.brand, i.product, i.text[:60]) for i in items],
    )
    console.print(f"public feed: {url}?token={feed_token(ws_id)}", soft_wrap=True)
