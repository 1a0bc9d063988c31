"""Engagement API under ``/api/v1/engage``: channels, policy, consent, messages, surveys,
playbooks, journeys, tasks. Secrets go in, never out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, Field

from clm.accounts import Principal, record
from clm.accounts.audit import record_after
from clm.api.deps import Configurer, DatabaseDep, Marketer, Reader, Support, workspace_id
from clm.api.routing import ClmRoute
from clm.engage import repository as repo
from clm.engage.delivery import outbox
from clm.engage.playbooks import (
    EngageTickReport,
    JourneyPublic,
    PlaybookPublic,
    PlaybookReport,
    run_due,
)
from clm.engage.playbooks import service as pb
from clm.engage.referrals import (
    CouponCheck,
    CouponCreate,
    CouponPublic,
    PointsProgram,
    ReferralCodePublic,
    ReferralProgram,
    ReferralPublic,
    ReferralReport,
    TestimonialPublic,
    coupons,
    earning,
    ledger,
    testimonials,
)
from clm.engage.referrals import service as referrals
from clm.engage.schemas import (
    EmailProvider,
    MessagePublic,
    Policy,
    SendRequest,
    SmsProvider,
    WebhookProvider,
)
from clm.engage.surveys import SurveyDefinition, SurveyPublic
from clm.engage.surveys import service as surveys
from clm.errors import Conflict, NotFound
from clm.store.customers import require_customer
from clm.store.storable import FiniteFloat, Points, RowId

router = APIRouter(prefix="/api/v1/engage", tags=["engage"], route_class=ClmRoute)


class ConsentBody(BaseModel):
    customer_id: RowId
    channel: Literal["email", "sms", "webhook"]
    purpose: Literal["marketing", "transactional"]
    granted: bool
    # Where the decision was made (a signup form, a call) and the words agreed to: history.
    source: Annotated[str, Field(max_length=64)] = "api"
    text: Annotated[str, Field(max_length=10_000)] = ""


class DecidedPublic(BaseModel):
    idempotency_key: str
    status: str
    reason: str | None


class Audience(BaseModel):
    customer_ids: list[RowId]


def _redacted(provider: EmailProvider | SmsProvider | WebhookProvider) -> dict[str, Any]:
    return provider.model_dump(mode="json")  # SecretStr dumps as "**********"


def _set_channel(
    db: DatabaseDep,
    who: Principal,
    channel: str,
    body: EmailProvider | SmsProvider | WebhookProvider,
) -> dict[str, Any]:
    """Store a channel, audited with secrets redacted on both sides."""
    with db.transaction() as session:
        try:
            before: dict[str, Any] | None = _redacted(
                repo.get_provider(session, workspace_id(who), channel)
            )
        except NotFound:
            before = None
        repo.set_provider(session, workspace_id(who), body)
        record(session, who, "channel.update", channel, before=before, after=_redacted(body))
    return _redacted(body)


@router.put("/channels/email")
def put_email(body: EmailProvider, db: DatabaseDep, key: Configurer) -> dict[str, Any]:
    return _set_channel(db, key, "email", body)


@router.put("/channels/sms")
def put_sms(body: SmsProvider, db: DatabaseDep, key: Configurer) -> dict[str, Any]:
    return _set_channel(db, key, "sms", body)


@router.put("/channels/webhook")
def put_webhook(body: WebhookProvider, db: DatabaseDep, key: Configurer) -> dict[str, Any]:
    return _set_channel(db, key, "webhook", body)


@router.patch("/channels/{channel}")
def patch_channel(
    channel: Literal["email", "sms", "webhook"],
    body: Annotated[
        dict[str, Any],
        Body(
            description="the fields to change (those of the channel's PUT body); a secret "
            "left out is kept, a new value replaces it, null clears an optional one",
            examples=[{"port": 587, "starttls": True}],
        ),
    ],
    db: DatabaseDep,
    key: Configurer,
) -> dict[str, Any]:
    """Change some fields of a channel and keep the rest, secrets included: what the settings
    form sends (a PUT replaces the whole configuration, so a form that never sees the secrets
    would wipe them). Answers the channel as ``GET /channels`` shows it."""
    with db.session() as session:
        provider = repo.patch_provider(session, workspace_id(key), channel, body)
    _set_channel(db, key, channel, provider)
    return _shown(provider)


class ChannelsPublic(BaseModel):
    """The channels configured, as stored, with every secret shown as "set" (or null)."""

    email: dict[str, Any] | None
    sms: dict[str, Any] | None
    webhook: dict[str, Any] | None


def _shown(provider: EmailProvider | SmsProvider | WebhookProvider) -> dict[str, Any]:
    shown = _redacted(provider)
    for name, field in type(provider).model_fields.items():
        if field.annotation is not None and "SecretStr" in str(field.annotation):
            shown[name] = "set" if getattr(provider, name) is not None else None
    return shown


@router.get("/channels")
def get_channels(db: DatabaseDep, key: Reader) -> ChannelsPublic:
    """Which channels are configured and how; secrets are never returned, only "set"."""
    found: dict[str, dict[str, Any] | None] = {}
    with db.session() as session:
        for channel in ("email", "sms", "webhook"):
            try:
                found[channel] = _shown(repo.get_provider(session, workspace_id(key), channel))
            except NotFound:
                found[channel] = None
    return ChannelsPublic(**found)


@router.get("/policy")
def get_policy(db: DatabaseDep, key: Reader) -> Policy:
    with db.session() as session:
        return repo.get_policy(session, workspace_id(key))


@router.put("/policy")
def put_policy(body: Policy, db: DatabaseDep, key: Configurer) -> Policy:
    with db.transaction() as session:
        before = repo.get_policy(session, workspace_id(key)).model_dump(mode="json")
        repo.set_policy(session, workspace_id(key), body)
        record(
            session,
            key,
            "policy.update",
            "policy",
            before=before,
            after=body.model_dump(mode="json"),
        )
    return body


@router.put("/consents")
def put_consent(body: ConsentBody, db: DatabaseDep, key: Support) -> ConsentBody:
    with db.transaction() as session:
        repo.set_consent(
            session,
            workspace_id(key),
            body.customer_id,
            body.channel,
            body.purpose,
            body.granted,
            source=body.source,
            text=body.text,
        )
        decided = body.model_dump(include={"channel", "purpose", "granted", "source"})
        record(session, key, "consent.update", f"customer:{body.customer_id}", after=decided)
    return body


@router.post("/messages", status_code=202)
def send_messages(body: list[SendRequest], db: DatabaseDep, key: Marketer) -> list[DecidedPublic]:
    decided = outbox.send(db, workspace_id(key), body)
    return [
        DecidedPublic(idempotency_key=d.request.idempotency_key, status=d.status, reason=d.reason)
        for d in decided
    ]


@router.get("/messages")
def list_messages(
    db: DatabaseDep,
    key: Reader,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[MessagePublic]:
    with db.session() as session:
        return repo.list_messages(session, workspace_id(key), status=status, limit=limit)


@router.post("/surveys", status_code=201)
def save_survey(
    body: SurveyDefinition,
    db: DatabaseDep,
    key: Marketer,
    create_only: Annotated[
        bool, Query(description="refuse (409) a key in use instead of replacing that survey")
    ] = False,
) -> SurveyPublic:
    """Create a survey, or replace the one with the same key (the definition's version)."""
    old = {s.key: s.definition for s in surveys.list_surveys(db, workspace_id(key))}
    saved = surveys.save_survey(db, workspace_id(key), body, create_only=create_only)
    record_after(
        db, key, "survey.save", f"survey:{saved.key}",
        before=old.get(saved.key), after=saved.definition,
    )  # fmt: skip
    return saved


@router.get("/surveys")
def list_surveys(db: DatabaseDep, key: Reader) -> list[SurveyPublic]:
    return surveys.list_surveys(db, workspace_id(key))


@router.post("/surveys/{survey_key}/send", status_code=202)
def send_survey(
    survey_key: str, body: Audience, db: DatabaseDep, key: Marketer
) -> list[DecidedPublic]:
    decided = surveys.send_survey(db, workspace_id(key), survey_key, body.customer_ids)
    return [
        DecidedPublic(idempotency_key=d.request.idempotency_key, status=d.status, reason=d.reason)
        for d in decided
    ]


@router.post("/playbooks/validate")
def validate_playbook(
    body: Annotated[dict[str, Any], Body()], db: DatabaseDep, key: Marketer
) -> dict[str, Any]:
    definition = pb.parse_playbook(body)
    pb.check_segment(db, workspace_id(key), definition)
    return {"valid": True, "name": definition.name, "steps": len(definition.steps)}


@router.post("/playbooks", status_code=201)
def apply_playbook(
    body: Annotated[dict[str, Any], Body()],
    db: DatabaseDep,
    key: Marketer,
    migrate: bool = False,
) -> PlaybookPublic:
    definition = pb.parse_playbook(body)
    old = {p.name: p for p in pb.list_playbooks(db, workspace_id(key))}.get(definition.name)
    saved = pb.apply_playbook(db, workspace_id(key), definition, migrate=migrate)
    if old is None or old.version != saved.version:
        record_after(
            db, key, "playbook.save", f"playbook:{saved.name}",
            before=old.definition if old else None, after=saved.definition,
        )  # fmt: skip
    return saved


@router.get("/playbooks")
def list_playbooks(db: DatabaseDep, key: Reader) -> list[PlaybookPublic]:
    return pb.list_playbooks(db, workspace_id(key))


@router.post("/playbooks/{name}/pause")
def pause_playbook(name: str, db: DatabaseDep, key: Marketer) -> PlaybookPublic:
    saved = pb.set_paused(db, workspace_id(key), name, True)
    record_after(db, key, "playbook.pause", f"playbook:{name}", after={"status": saved.status})
    return saved


@router.post("/playbooks/{name}/resume")
def resume_playbook(name: str, db: DatabaseDep, key: Marketer) -> PlaybookPublic:
    saved = pb.set_paused(db, workspace_id(key), name, False)
    record_after(db, key, "playbook.resume", f"playbook:{name}", after={"status": saved.status})
    return saved


@router.get("/playbooks/{name}/report")
def report_playbook(name: str, db: DatabaseDep, key: Reader) -> PlaybookReport:
    return pb.playbook_report(db, workspace_id(key), name)


@router.get("/customers/{customer_id}/journeys")
def customer_journeys(customer_id: RowId, db: DatabaseDep, key: Reader) -> list[JourneyPublic]:
    return pb.journey_history(db, workspace_id(key), customer_id)


@router.post("/tick")
def run_tick(db: DatabaseDep, key: Configurer) -> EngageTickReport:
    """Enrol and advance journeys, process referrals, earn and expire points (the worker also
    does this every minute)."""
    return run_due(db, workspace_id(key))


@router.get("/tasks")
def list_tasks(
    db: DatabaseDep,
    key: Reader,
    status: Literal["open", "done"] = "open",
    owner: Annotated[str | None, Query(max_length=255)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> list[dict[str, Any]]:
    """The team's follow-up tasks, oldest first; ``owner=`` (empty) lists the unassigned."""
    with db.session() as session:
        return repo.list_tasks(session, workspace_id(key), status=status, owner=owner, limit=limit)


# --- referrals, points, coupons, testimonials -------------------------------------------------


@router.put("/referrals/program")
def put_referral_program(body: ReferralProgram, db: DatabaseDep, key: Marketer) -> ReferralProgram:
    with db.session() as session:
        before = repo.get_config(session, workspace_id(key), "program", "referral")
    saved = referrals.set_program(db, workspace_id(key), body)
    record_after(
        db, key, "referral_program.update", "referral_program",
        before=before, after=saved.model_dump(mode="json"),
    )  # fmt: skip
    return saved


@router.post("/referrals/codes")
def issue_referral_codes(
    db: DatabaseDep, key: Marketer, stages: Annotated[list[str] | None, Body()] = None
) -> list[ReferralCodePublic]:
    """A code and link for each customer in the stages (the program's stages by default)."""
    return referrals.issue_codes(db, workspace_id(key), datetime.now(UTC), stages)


@router.post("/referrals/process")
def process_referrals(db: DatabaseDep, key: Configurer) -> ReferralReport:
    return referrals.process(db, workspace_id(key), datetime.now(UTC))


@router.get("/referrals")
def get_referrals(db: DatabaseDep, key: Reader, status: str | None = None) -> list[ReferralPublic]:
    return referrals.list_referrals(db, workspace_id(key), status)


class ReviewBody(BaseModel):
    approve: bool
    note: str = ""


@router.post("/referrals/{referral_id}/review")
def review_referral(
    referral_id: RowId, body: ReviewBody, db: DatabaseDep, key: Support
) -> ReferralPublic:
    decided = referrals.review(db, workspace_id(key), referral_id, body.approve, body.note)
    record_after(
        db, key, "referral.review", f"referral:{referral_id}",
        after={"approve": body.approve, "note": body.note, "status": decided.status},
    )  # fmt: skip
    return decided


def _own_customer(db: DatabaseDep, workspace: int, customer_id: int) -> None:
    """404 unless the customer is this workspace's: points never go to another's or nobody."""
    with db.session() as session:
        require_customer(session, workspace, customer_id)


class PointsBody(BaseModel):
    customer_id: RowId
    points: Points
    txn_id: str
    memo: str = ""
    expires_at: datetime | None = None


@router.put("/programs/points")
def put_points_program(body: PointsProgram, db: DatabaseDep, key: Marketer) -> PointsProgram:
    """Earning rules: points per currency unit, bonuses on matching events (from now on)."""
    with db.session() as session:
        before = repo.get_config(session, workspace_id(key), "program", "points")
    saved = earning.set_points_program(db, workspace_id(key), body)
    record_after(
        db, key, "points_program.update", "points_program",
        before=before, after=saved.model_dump(mode="json"),
    )  # fmt: skip
    return saved


@router.post("/points/earn")
def earn_points(body: PointsBody, db: DatabaseDep, key: Support) -> dict[str, int]:
    _own_customer(db, workspace_id(key), body.customer_id)
    balance = ledger.earn(
        db,
        workspace_id(key),
        body.customer_id,
        body.points,
        body.txn_id,
        datetime.now(UTC),
        memo=body.memo,
        expires_at=body.expires_at,
    )
    return {"balance": balance}


@router.post("/points/redeem")
def redeem_points(body: PointsBody, db: DatabaseDep, key: Support) -> dict[str, int]:
    _own_customer(db, workspace_id(key), body.customer_id)
    balance = ledger.redeem(
        db,
        workspace_id(key),
        body.customer_id,
        body.points,
        body.txn_id,
        datetime.now(UTC),
        memo=body.memo,
    )
    return {"balance": balance}


@router.get("/points/{customer_id}")
def points_statement(
    customer_id: RowId, db: DatabaseDep, key: Reader
) -> list[ledger.LedgerEntryPublic]:
    return ledger.statement(db, workspace_id(key), customer_id)


@router.post("/coupons")
def create_coupon(body: CouponCreate, db: DatabaseDep, key: Marketer) -> CouponPublic:
    created = coupons.create_coupon(db, workspace_id(key), body, datetime.now(UTC))
    record_after(
        db, key, "coupon.create", f"coupon:{created.code}", after=created.model_dump(mode="json")
    )
    return created


class CouponOrder(BaseModel):
    order_total: FiniteFloat
    order_id: str = ""


@router.post("/coupons/{code}/validate")
def validate_coupon(code: str, body: CouponOrder, db: DatabaseDep, key: Support) -> CouponCheck:
    """For the shop's checkout: does the code apply to this order, and how much off. A "no" is
    an answer, not a failed request: 200 with ``valid: false`` and ``reason_code`` (``unknown``,
    ``expired``, ``used_up``, ``below_minimum``), so a checkout asks without handling errors."""
    return coupons.validate_coupon(db, workspace_id(key), code, body.order_total, datetime.now(UTC))


@router.post("/coupons/{code}/redeem")
def redeem_coupon(code: str, body: CouponOrder, db: DatabaseDep, key: Support) -> CouponCheck:
    """Use the code on the order; a refusal is an error the checkout must not miss: 404
    ``coupon_unknown``, or 409 ``coupon_expired``/``coupon_used_up``/``coupon_below_minimum``."""
    check = coupons.redeem_coupon(
        db, workspace_id(key), code, body.order_id or "-", body.order_total, datetime.now(UTC)
    )
    if check.reason_code == "unknown":
        raise NotFound(f"No coupon {code}", code="coupon_unknown")
    if not check.valid:
        raise Conflict(f"Coupon {code}: {check.reason}", code=f"coupon_{check.reason_code}")
    return check


@router.get("/testimonials")
def get_testimonials(
    db: DatabaseDep, key: Reader, status: str | None = None
) -> list[TestimonialPublic]:
    return testimonials.list_testimonials(db, workspace_id(key), status)


class TestimonialReview(BaseModel):
    decision: Literal["approved", "rejected"]
    note: str = ""


@router.post("/testimonials/{testimonial_id}/review")
def review_testimonial(
    testimonial_id: RowId, body: TestimonialReview, db: DatabaseDep, key: Marketer
) -> TestimonialPublic:
    decided = testimonials.review(
        db, workspace_id(key), testimonial_id, body.decision, datetime.now(UTC), body.note
    )
    record_after(
        db, key, "testimonial.review", f"testimonial:{testimonial_id}",
        after={"decision": body.decision, "note": body.note},
    )  # fmt: skip
    return decided


@router.get("/testimonials/feed-token")
def testimonial_feed_token(key: Marketer) -> dict[str, str]:
    """A signed read-only token for the public feed and embed of approved testimonials."""
    return {"token": testimonials.feed_token(workspace_id(key))}
