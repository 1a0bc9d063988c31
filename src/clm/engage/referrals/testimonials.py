"""Testimonials: a signed single-use form link, consent to publish, review, a public feed.

Only approved testimonials whose author consented are ever published: as JSON, or as an HTML
snippet for embedding, in which every piece of customer text is escaped.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from clm.config import get_settings
from clm.engage.delivery import tokens
from clm.errors import Conflict, NotFound, ValidationError
from clm.store.engine import Database
from clm.store.models import EngageTestimonial

FORM_DAYS = 30
PURPOSE, FEED = "testimonial", "testimonial-feed"


class TestimonialSubmit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str
    text: Annotated[str, Field(min_length=1, max_length=4000)]
    display_name: Annotated[str, Field(max_length=120)] = ""
    rating: Annotated[int | None, Field(ge=1, le=5)] = None
    brand: Annotated[str | None, Field(max_length=64)] = None
    product: Annotated[str | None, Field(max_length=128)] = None
    consent: bool = False


class TestimonialPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    customer_id: int | None
    text: str
    rating: int | None
    display_name: str
    brand: str | None
    product: str | None
    consent: bool
    status: str
    review_note: str | None
    created_at: datetime


class FeedItem(BaseModel):
    text: str
    rating: int | None
    display_name: str
    brand: str | None
    product: str | None


def form_links(
    session: Session, workspace_id: int, customer_ids: list[int], now: datetime
) -> dict[int, str]:
    """A signed single-use form link per customer, issued in the caller's transaction."""
    base = f"{get_settings().public_url.rstrip('/')}/public/testimonials/form?token="
    found = {}
    for customer_id in customer_ids:
        token, _ = tokens.issue(session, PURPOSE, workspace_id, customer_id, now=now)
        found[customer_id] = base + token
    return found


def feed_token(workspace_id: int) -> str:
    """A signed, read-only token naming the workspace whose approved testimonials to show."""
    return tokens.sign(FEED, workspace_id, None)[0]


def submit(db: Database, body: TestimonialSubmit, now: datetime) -> TestimonialPublic:
    claims = tokens.verify(body.token, PURPOSE, FORM_DAYS * tokens.DAY)
    with db.transaction() as session:
        tokens.consume(session, claims.jti, now)
        row = EngageTestimonial(
            workspace_id=claims.workspace_id,
            customer_id=claims.customer_id,
            text=body.text.strip(),
            rating=body.rating,
            display_name=body.display_name.strip(),
            brand=body.brand,
            product=body.product,
            consent=body.consent,
            status="pending",
            created_at=now,
        )
        session.add(row)
        session.flush()
        return TestimonialPublic.model_validate(row)


def review(
    db: Database,
    workspace_id: int,
    testimonial_id: int,
    decision: Literal["approved", "rejected"],
    now: datetime,
    note: str = "",
) -> TestimonialPublic:
    with db.transaction() as session:
        row = session.get(EngageTestimonial, testimonial_id)
        if row is None or row.workspace_id != workspace_id:
            raise NotFound(f"No testimonial {testimonial_id}")
        if row.status != "pending":
            raise Conflict(f"Testimonial {testimonial_id} is already {row.status}")
        if decision == "approved" and not row.consent:
            raise ValidationError("The author did not consent to publishing this testimonial")
        row.status, row.review_note, row.reviewed_at = decision, note or None, now
        session.flush()
        return TestimonialPublic.model_validate(row)


def list_testimonials(
    db: Database, workspace_id: int, status: str | None = None
) -> list[TestimonialPublic]:
    with db.session() as session:
        query = select(EngageTestimonial).where(EngageTestimonial.workspace_id == workspace_id)
        if status:
            query = query.where(EngageTestimonial.status == status)
        rows = session.scalars(query.order_by(EngageTestimonial.id))
        return [TestimonialPublic.model_validate(r) for r in rows]


def feed(
    db: Database, workspace_id: int, brand: str | None = None, product: str | None = None
) -> list[FeedItem]:
    """Approved, consented testimonials, newest first, optionally for one brand or product."""
    with db.session() as session:
        query = select(EngageTestimonial).where(
            EngageTestimonial.workspace_id == workspace_id,
            EngageTestimonial.status == "approved",
            EngageTestimonial.consent.is_(True),
        )
        if brand:
            query = query.where(EngageTestimonial.brand == brand)
        if product:
            query = query.where(EngageTestimonial.product == product)
        rows = session.scalars(query.order_by(EngageTestimonial.id.desc()))
        return [
            FeedItem(
                text=r.text,
                rating=r.rating,
                display_name=r.display_name,
                brand=r.brand,
                product=r.product,
            )
            for r in rows
        ]


def snippet(items: list[FeedItem]) -> str:
    """Embeddable HTML; customer text is escaped, so a testimonial cannot inject markup."""
    quotes = []
    for item in items:
        stars = "★" * item.rating if item.rating else ""
        who = escape(item.display_name or "A customer")
        quotes.append(
            f'<blockquote class="clm-testimonial"><p>{escape(item.text)}</p>'
            f"<footer>{who}{' ' + stars if stars else ''}</footer></blockquote>"
        )
    return '<div class="clm-testimonials">' + "".join(quotes) + "</div>"
