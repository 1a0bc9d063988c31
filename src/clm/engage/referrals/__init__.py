"""Referrals, loyalty points, coupons and testimonials: the advocacy programmes.

The names below are the package's public surface (what the API, CLI and worker use); each is
loaded from its module on first use, so that importing one module of a sub-package never runs
the others (the sub-packages depend on each other's modules, not on each other's surfaces).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clm.engage._lazy import lazy_getattr

if TYPE_CHECKING:
    from clm.engage.referrals.coupons import (
        CouponCheck,
        CouponCreate,
        CouponPublic,
        create_coupon,
        list_coupons,
        redeem_coupon,
        validate_coupon,
    )
    from clm.engage.referrals.earning import PointsProgram, get_points_program, set_points_program
    from clm.engage.referrals.ledger import balance, statement
    from clm.engage.referrals.schemas import (
        ReferralCodePublic,
        ReferralProgram,
        ReferralPublic,
        ReferralReport,
    )
    from clm.engage.referrals.service import (
        codes_for,
        get_program,
        link,
        list_referrals,
        process,
        referral_report,
        set_program,
    )
    from clm.engage.referrals.testimonials import (
        TestimonialPublic,
        feed,
        feed_token,
        list_testimonials,
        snippet,
    )

_WHERE = {
    "CouponCheck": "coupons",
    "CouponCreate": "coupons",
    "CouponPublic": "coupons",
    "PointsProgram": "earning",
    "ReferralCodePublic": "schemas",
    "ReferralProgram": "schemas",
    "ReferralPublic": "schemas",
    "ReferralReport": "schemas",
    "TestimonialPublic": "testimonials",
    "balance": "ledger",
    "codes_for": "service",
    "create_coupon": "coupons",
    "feed": "testimonials",
    "feed_token": "testimonials",
    "get_points_program": "earning",
    "get_program": "service",
    "link": "service",
    "list_coupons": "coupons",
    "list_referrals": "service",
    "list_testimonials": "testimonials",
    "process": "service",
    "redeem_coupon": "coupons",
    "referral_report": "service",
    "set_points_program": "earning",
    "set_program": "service",
    "snippet": "testimonials",
    "statement": "ledger",
    "validate_coupon": "coupons",
}

__all__ = [
    "CouponCheck",
    "CouponCreate",
    "CouponPublic",
    "PointsProgram",
    "ReferralCodePublic",
    "ReferralProgram",
    "ReferralPublic",
    "ReferralReport",
    "TestimonialPublic",
    "balance",
    "codes_for",
    "create_coupon",
    "feed",
    "feed_token",
    "get_points_program",
    "get_program",
    "link",
    "list_coupons",
    "list_referrals",
    "list_testimonials",
    "process",
    "redeem_coupon",
    "referral_report",
    "set_points_program",
    "set_program",
    "snippet",
    "statement",
    "validate_coupon",
]


__getattr__ = lazy_getattr(__name__, _WHERE, globals())
