"""Referral codes and links: a program, a unique code per customer, the landing click.

A code is unique across workspaces so that ``/public/r/<code>`` needs no workspace; the click
is recorded as a ``Referral Link Clicked`` event under a fresh anonymous id, which identity
resolution later ties to the signup.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from clm.config import get_settings
from clm.engage import eventlog
from clm.engage import repository as repo
from clm.engage.playbooks.standing import stages_at
from clm.engage.referrals.schemas import ReferralCodePublic, ReferralProgram
from clm.errors import NotFound
from clm.store.engine import Database
from clm.store.models import Customer, EngageReferralCode

CLICKED = "Referral Link Clicked"
_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: codes are read aloud


def set_program(db: Database, workspace_id: int, program: ReferralProgram) -> ReferralProgram:
    with db.transaction() as session:
        repo.put_config(session, workspace_id, "program", "referral", program.model_dump())
    return program


def get_program(session: Session, workspace_id: int) -> ReferralProgram:
    found = repo.get_config(session, workspace_id, "program", "referral")
    if found is None:
        raise NotFound("No referral program in this workspace", code="no_referral_program")
    return ReferralProgram.model_validate(found)


def link(code: str) -> str:
    return f"{get_settings().public_url.rstrip('/')}/public/r/{code}"


def _new_code(session: Session, taken: set[str]) -> str:
    # Unique across workspaces, so that /public/r/<code> needs no workspace.
    while True:
        code = "".join(secrets.choice(_ALPHABET) for _ in range(8))
        if (
            code not in taken
            and session.scalar(select(EngageReferralCode.id).where(EngageReferralCode.code == code))
            is None
        ):
            taken.add(code)
            return code


def codes_for(session: Session, workspace_id: int, ids: list[int], now: datetime) -> dict[int, str]:
    """Each customer's code, issued on first need, in the caller's transaction."""
    found: dict[int, str] = {}
    for part in repo.chunks(sorted(set(ids))):
        rows = session.execute(
            select(EngageReferralCode.customer_id, EngageReferralCode.code).where(
                EngageReferralCode.workspace_id == workspace_id,
                EngageReferralCode.customer_id.in_(part),
            )
        )
        found.update({int(c): str(code) for c, code in rows})
    taken: set[str] = set()
    for customer_id in sorted(set(ids) - set(found)):
        code = _new_code(session, taken)
        session.add(
            EngageReferralCode(
                workspace_id=workspace_id, customer_id=customer_id, code=code, created_at=now
            )
        )
        found[customer_id] = code
    session.flush()
    return found


def issue_codes(
    db: Database, workspace_id: int, now: datetime, stages: list[str] | None = None
) -> list[ReferralCodePublic]:
    """A code and link for every live customer in the stages (the program's by default)."""
    with db.transaction() as session:
        wanted = stages if stages is not None else get_program(session, workspace_id).stages
        ids = [
            int(c)
            for c in session.scalars(
                select(Customer.id).where(
                    Customer.workspace_id == workspace_id, Customer.merged_into_id.is_(None)
                )
            )
        ]
        if wanted:
            stage_of = stages_at(db, workspace_id, session, ids, now)
            ids = [c for c in ids if stage_of.get(c) in wanted]
        codes = codes_for(session, workspace_id, ids, now)
    return [ReferralCodePublic(customer_id=c, code=v, link=link(v)) for c, v in codes.items()]


@dataclass(frozen=True)
class Landing:
    workspace_id: int
    anonymous_id: str
    redirect_url: str


def record_click(
    db: Database,
    code: str,
    now: datetime,
    *,
    anonymous_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> Landing:
    """A visitor followed a referral link: record who (by anonymous id), where to send them."""
    with db.session() as session:
        row = session.execute(
            select(EngageReferralCode.workspace_id, EngageReferralCode.customer_id).where(
                EngageReferralCode.code == code.upper()
            )
        ).first()
        if row is None:
            raise NotFound("This referral link is not valid", code="referral_code_unknown")
        program = get_program(session, row.workspace_id)
    anonymous_id = anonymous_id or str(uuid.uuid4())
    context: dict[str, Any] = {}
    if ip:
        context["ip"] = ip
    if user_agent:
        context["userAgent"] = user_agent[:512]
    message = eventlog.track(
        {"anonymous_id": anonymous_id},
        CLICKED,
        f"referral-click-{uuid.uuid4().hex}",
        {"code": code.upper(), "referrer_id": row.customer_id},
        now,
    )
    assert message is not None
    message["context"].update(context)
    eventlog.write(db, row.workspace_id, [message])
    query = urlencode({"ref": code.upper(), "anonymous_id": anonymous_id})
    separator = "&" if "?" in program.landing_url else "?"
    return Landing(row.workspace_id, anonymous_id, f"{program.landing_url}{separator}{query}")
