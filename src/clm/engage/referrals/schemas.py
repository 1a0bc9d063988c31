"""Referral programs at the edge: the program, a referral and its explained checks."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ReferralStatus = Literal["attributed", "review", "qualified", "rewarded", "rejected"]


class ReferralProgram(BaseModel):
    """Who gets a code, what counts as a successful referral, what both sides earn."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    stages: list[str] = Field(default_factory=list)  # empty: every customer
    landing_url: str = "http://127.0.0.1:8000/"
    qualifying_event: Literal["signup", "first_purchase"] = "first_purchase"
    min_amount: Annotated[float, Field(ge=0)] = 0.0
    referrer_points: Annotated[int, Field(ge=0, le=10**12)] = 500
    referee_points: Annotated[int, Field(ge=0, le=10**12)] = 500
    # Rewarded referrals per referrer, ever; the referee is still rewarded past the cap.
    referrer_cap: Annotated[int, Field(ge=0, le=1_000_000_000)] = 10
    refund_window_days: Annotated[int, Field(ge=0, le=36_500)] = 30
    same_ip_window_hours: Annotated[float, Field(ge=0)] = 24.0


class Check(BaseModel):
    """One fraud check on one referral: its name, whether it flagged, and why."""

    check: str
    flagged: bool
    detail: str


class ReferralPublic(BaseModel):
    id: int
    code: str
    referrer_id: int
    referee_id: int
    status: str
    checks: list[dict[str, Any]]
    qualified_at: datetime | None
    reward_due_at: datetime | None
    rewarded_at: datetime | None
    explanation: str


class ReferralCodePublic(BaseModel):
    customer_id: int
    code: str
    link: str


class ReferralReport(BaseModel):
    """What one pass of referral processing did."""

    attributed: int = 0
    qualified: int = 0
    review: int = 0
    rewarded: int = 0
    rejected: int = 0
