"""Sentiment of free-text comments: VADER's compound score in [-1, 1], offline."""

from __future__ import annotations

from functools import lru_cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer  # type: ignore[import-untyped]

NEGATIVE = -0.05  # VADER's own convention: compound <= -0.05 is negative


@lru_cache(maxsize=1)
def _analyzer() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()


def sentiment(text: str) -> float:
    """VADER compound score of ``text``, rounded to 4 places."""
    return round(float(_analyzer().polarity_scores(text)["compound"]), 4)
