"""The ``links.testimonial`` and ``links.referral`` template variables of advocacy asks.

A send whose content mentions one gets it filled in the deciding transaction: a signed
single-use testimonial form link, or the customer's referral link (the code issued on first
need).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from clm.engage.schemas import SendRequest


def _mentions(request: SendRequest, name: str) -> bool:
    content = request.content
    return any(name in (part or "") for part in (content.subject, content.text, content.html))


def with_links(
    session: Session, workspace_id: int, requests: Sequence[SendRequest], now: datetime
) -> Sequence[SendRequest]:
    wants_form = [r.customer_id for r in requests if _mentions(r, "links.testimonial")]
    wants_code = [r.customer_id for r in requests if _mentions(r, "links.referral")]
    if not wants_form and not wants_code:
        return requests
    from clm.engage.referrals import service as referrals
    from clm.engage.referrals import testimonials

    forms = testimonials.form_links(session, workspace_id, wants_form, now)
    codes = referrals.codes_for(session, workspace_id, wants_code, now) if wants_code else {}
    filled = []
    for request in requests:
        links = dict(request.context.get("links", {}))
        if request.customer_id in forms:
            links["testimonial"] = forms[request.customer_id]
        if request.customer_id in codes:
            links["referral"] = referrals.link(codes[request.customer_id])
        if links:
            request = request.model_copy(update={"context": {**request.context, "links": links}})
        filled.append(request)
    return filled
