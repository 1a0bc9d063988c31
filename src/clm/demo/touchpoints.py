"""Synthetic multi-channel touchpoints around the real CDNOW purchases.

CDNOW records only purchases. A lifecycle needs the rest of a customer's journey, so the demo
adds it, **synthetically** and reproducibly (seeded): anonymous visits from ads, search, social
and email before the first purchase, the sign-up that identifies the visitor, newsletter
engagement after purchases, support tickets, NPS answers that lean on how often the customer
bought, and referrals from promoters. Every synthetic message carries
``context.synthetic = true`` so nobody mistakes it for observed data.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

CHANNELS: dict[str, tuple[float, str, list[str | None]]] = {
    # channel: (weight, utm source, campaigns)
    "paid_search": (0.30, "google", ["brand_search", "cd_deals_search"]),
    "organic": (0.22, "google", [None]),
    "social": (0.14, "facebook", ["new_releases_social"]),
    "email": (0.10, "newsletter", ["welcome_series", "weekly_picks"]),
    "display": (0.12, "music_network", ["spring_banner_97"]),
    "referral": (0.12, "partner_site", ["friend_referral"]),
}
_NAMES = list(CHANNELS)
_WEIGHTS = np.array([CHANNELS[c][0] for c in _NAMES]) / sum(CHANNELS[c][0] for c in _NAMES)


def _at(day: datetime, hours: float) -> str:
    return (day + timedelta(hours=float(hours))).isoformat()


def _context(channel: str, rng: np.random.Generator) -> dict[str, Any]:
    _, source, campaigns = CHANNELS[channel]
    campaign = campaigns[int(rng.integers(len(campaigns)))]
    utm: dict[str, Any] = {"source": source, "medium": channel}
    if campaign:
        utm["name"] = campaign
    return {"campaign": utm, "synthetic": True}


def journeys(purchases: pl.DataFrame, seed: int = 1997) -> Iterator[dict[str, Any]]:
    """Segment messages for each customer of ``purchases`` (customer_id, date: Datetime UTC)."""
    rng = np.random.default_rng(seed)
    days = purchases.group_by("customer_id").agg(pl.col("date").unique().sort()).sort("customer_id")
    for customer, dates in days.iter_rows():
        yield from _journey(str(customer), [d.replace(tzinfo=UTC) for d in dates], rng)


def _journey(
    customer: str, dates: list[datetime], rng: np.random.Generator
) -> Iterator[dict[str, Any]]:
    anonymous = f"anon-{customer}"
    first = dates[0]
    n = 0

    def message(kind: str, when: str, **fields: Any) -> dict[str, Any]:
        nonlocal n
        n += 1
        return {"type": kind, "messageId": f"demo-{customer}-{n}", "timestamp": when, **fields}

    # Before the first purchase: anonymous visits from one to four channels.
    visits = 1 + int(rng.poisson(1.5))
    channel = _NAMES[int(rng.choice(len(_NAMES), p=_WEIGHTS))]
    for hours_before in sorted(rng.uniform(30, 21 * 24, size=visits), reverse=True):
        if rng.random() < 0.35:
            channel = _NAMES[int(rng.choice(len(_NAMES), p=_WEIGHTS))]
        yield message(
            "page",
            _at(first, -hours_before),
            anonymousId=anonymous,
            name="Landing",
            context=_context(channel, rng),
        )
    signup = -float(rng.uniform(1, 24))
    traits = {"email": f"customer{customer}@example.com", "signup_channel": channel}
    yield message(
        "identify",
        _at(first, signup),
        anonymousId=anonymous,
        userId=customer,
        traits=traits,
        context={"synthetic": True},
    )
    yield message(
        "track",
        _at(first, signup + 0.1),
        userId=customer,
        event="Signed Up",
        context=_context(channel, rng),
    )
    # After purchases: newsletter engagement.
    for day in dates:
        if rng.random() < 0.45:
            yield message(
                "track",
                _at(day, rng.uniform(24, 20 * 24)),
                userId=customer,
                event="Email Opened",
                context=_context("email", rng),
            )
    # Support: a few customers open a ticket; most get it resolved.
    unhappy = False
    if rng.random() < 0.08:
        opened = dates[int(rng.integers(len(dates)))] + timedelta(days=float(rng.uniform(1, 10)))
        yield message(
            "track",
            opened.isoformat(),
            userId=customer,
            event="Ticket Opened",
            properties={"topic": "delivery"},
            context={"synthetic": True},
        )
        if rng.random() < 0.85:
            closed = opened + timedelta(days=float(rng.uniform(1, 5)))
            yield message(
                "track",
                closed.isoformat(),
                userId=customer,
                event="Ticket Closed",
                properties={"outcome": "resolved"},
                context={"synthetic": True},
            )
        else:
            unhappy = True
    # NPS: repeat buyers lean to promoters, customers with an open ticket to detractors.
    if rng.random() < 0.3:
        centre = 8.5 if len(dates) > 1 else 6.5
        score = int(np.clip(round(rng.normal(centre - (4 if unhappy else 0), 1.8)), 0, 10))
        yield message(
            "track",
            _at(first, rng.uniform(7 * 24, 14 * 24)),
            userId=customer,
            event="NPS Survey Answered",
            properties={"score": score, "survey": "nps"},
            context=_context("email", rng),
        )
        if score >= 9 and len(dates) > 1 and rng.random() < 0.3:
            yield message(
                "track",
                _at(dates[1], rng.uniform(24, 10 * 24)),
                userId=customer,
                event="Referral Sent",
                properties={"program": "friends"},
                context={"synthetic": True},
            )
