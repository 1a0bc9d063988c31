"""Hand-built logs for the EVERYTHING model, with their stage histories worked out by hand."""

from __future__ import annotations

from typing import Any

from tests.lifecycle.logs import DAY, T0, message

M = message
MESSAGES: list[dict[str, Any]] = [
    # u1: two big orders make a whale; the first leaves the 7-day window; then the buyer lapse.
    M("u1", 0, "u1-a", "Order Completed", revenue=60),
    M("u1", 2 * DAY, "u1-b", "Order Completed", revenue=70),
    # u2: a promoter who buys is a fan; fan lapses to buyer, buyer to visitor; a detractor is
    # lost; a new promoter score reactivates (and lapses straight through to visitor).
    M("u2", 0, "u2-a", "Survey", score=10),
    M("u2", 1 * DAY, "u2-b", "Order Completed", revenue=5),
    M("u2", 50 * DAY, "u2-c", "Survey", score=1),
    M("u2", 60 * DAY, "u2-d", "Survey", score=9),
    # u3: two e-mail touches in 30 days engage; the window closes; a 'pro' property engages.
    M("u3", 0, "u3-a", "Email Opened", channel="email"),
    M("u3", 1 * DAY, "u3-b", "Email Opened", channel="email"),
    M("u3", 35 * DAY, "u3-c", "Page Viewed", plan="pro"),
]

# (user, seconds after T0, from, to, rule, cause message id)
EXPECTED: list[tuple[str, int, str | None, str, str, str | None]] = [
    ("u1", 0, None, "buyer", "stage:buyer", "u1-a"),
    ("u1", 2 * DAY, "buyer", "whale", "stage:whale", "u1-b"),
    ("u1", 7 * DAY, "whale", "buyer", "stage:buyer", None),  # day-0 order leaves the window
    # first order > 40 days ago (strictly: one second after day 40), last >= 30 days ago
    ("u1", 40 * DAY + 1, "buyer", "visitor", "lapse:buyer_to_visitor", None),
    ("u2", 0, None, "visitor", "stage:visitor", "u2-a"),
    ("u2", 1 * DAY, "visitor", "fan", "stage:fan", "u2-b"),
    ("u2", 11 * DAY, "fan", "buyer", "lapse:fan_to_buyer", None),  # 10 days after the order
    ("u2", 41 * DAY + 1, "buyer", "visitor", "lapse:buyer_to_visitor", None),
    ("u2", 50 * DAY, "visitor", "lost", "stage:lost", "u2-c"),
    ("u2", 60 * DAY, "lost", "visitor", "lapse:buyer_to_visitor", "u2-d"),
    ("u3", 0, None, "visitor", "stage:visitor", "u3-a"),
    ("u3", 1 * DAY, "visitor", "engaged", "stage:engaged", "u3-b"),
    ("u3", 30 * DAY, "engaged", "visitor", "stage:visitor", None),  # day-0 e-mail leaves
    ("u3", 35 * DAY, "visitor", "engaged", "stage:engaged", "u3-c"),
]


def expected_rows(customer_of: dict[str, int]) -> list[tuple[Any, ...]]:
    return sorted(
        (customer_of[user], T0 + seconds, source, target, rule, cause)
        for user, seconds, source, target, rule, cause in EXPECTED
    )
