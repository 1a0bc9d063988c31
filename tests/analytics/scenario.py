"""The shared scenario: five customers over the first quarter of 2024, with a stage history
written by hand (see each test for the numbers worked out from it)."""

from __future__ import annotations

from typing import Any

from tests.analytics.logs import event

SINCE, UNTIL = "2024-01-01", "2024-04-01"

MESSAGES: list[dict[str, Any]] = [
    event("a", "2024-01-05", "Page Viewed", "a1", channel="email", campaign="welcome"),
    event("a", "2024-01-20", "Order Completed", "a2", revenue=100),
    event("a", "2024-02-10", "Order Completed", "a3", revenue=50),
    event("a", "2024-03-01", "Order Completed", "a4", revenue=30),
    event("a", "2024-03-20", "Prediction Scored", "a5", p_alive=0.9, clv_12m=200),
    event("b", "2024-01-07", "Signed Up", "b1", channel="social"),
    event("b", "2024-03-20", "Prediction Scored", "b2", p_alive=0.1, clv_12m=5),
    event("c", "2023-12-01", "Page Viewed", "c1", channel="search"),
    event("c", "2024-01-03", "Order Completed", "c2", revenue=40),
    event("c", "2024-01-15", "Prediction Scored", "c3", p_alive=0.95, clv_12m=80),
    event("c", "2024-03-10", "Order Completed", "c4", revenue=60),
    event("c", "2024-03-20", "Prediction Scored", "c5", p_alive=0.2, clv_12m=50),
    event("d", "2024-02-01", "Signed Up", "d1"),
    event("e", "2024-03-15", "Signed Up", "e1", channel="email"),
]

HISTORY: list[tuple[str, str, str | None, str]] = [
    ("a", "2024-01-05", None, "lead"),
    ("a", "2024-01-10", "lead", "trial"),
    ("a", "2024-01-20", "trial", "paying"),
    ("a", "2024-03-01", "paying", "loyal"),
    ("a", "2024-03-25", "loyal", "paying"),
    ("b", "2024-01-07", None, "lead"),
    ("b", "2024-01-17", "lead", "trial"),
    ("b", "2024-02-15", "trial", "churned"),
    ("c", "2023-12-01", None, "lead"),
    ("c", "2024-01-03", "lead", "paying"),
    ("c", "2024-02-01", "paying", "churned"),
    ("c", "2024-03-10", "churned", "paying"),
    ("d", "2024-02-01", None, "lead"),
    ("e", "2024-03-15", None, "lead"),
    ("e", "2024-03-16", "lead", "trial"),
    ("e", "2024-05-01", "trial", "paying"),  # after the period: never counted
]
