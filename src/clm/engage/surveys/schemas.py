"""Surveys at the edge: definitions (NPS, CSAT, CES, custom), answers, results."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SurveyType = Literal["nps", "csat", "ces", "custom"]
SCALES: dict[str, tuple[int, int]] = {
    "nps": (0, 10),
    "csat": (1, 5),
    "ces": (1, 7),
    "custom": (1, 5),
}
QUESTIONS = {
    "nps": "How likely are you to recommend us to a friend or colleague?",
    "csat": "How satisfied are you with us?",
    "ces": "How easy was it to get what you needed?",
    "custom": "What do you think?",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class CustomQuestion(_Strict):
    id: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,32}$")]
    kind: Literal["rating", "choice", "text"]
    label: str
    options: list[str] = Field(default_factory=list)
    scale: tuple[int, int] = (1, 5)


class Schedule(_Strict):
    """Recurring: ask every ``every_days``, never within ``min_gap_days`` of any survey."""

    every_days: Annotated[int, Field(ge=1, le=36_500)] = 90
    min_gap_days: Annotated[int, Field(ge=0, le=36_500)] = 30
    stages: list[str] | None = None


class Trigger(_Strict):
    """Ask after an event (``Order Completed``, ``Ticket Closed``, ``lifecycle_stage_changed``)
    whose properties match ``where`` (equality)."""

    event: str
    where: dict[str, Any] = Field(default_factory=dict)


class FollowUp(_Strict):
    """Closing the loop: a task for the account owner on a detractor or a negative comment."""

    detractor_at_most: Annotated[int | None, Field(ge=-1_000, le=1_000)] = (
        None  # default: NPS 6, CSAT 2; CES: at least 5
    )
    negative_sentiment: float = -0.05
    owner: str | None = None  # falls back to the customer's ``account_owner`` trait


class SurveyDefinition(_Strict):
    key: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    type: SurveyType
    question: Annotated[str | None, Field(max_length=1_000)] = None
    questions: list[CustomQuestion] = Field(default_factory=list)
    channel: Literal["email", "sms"] = "email"
    subject: Annotated[str, Field(min_length=1, max_length=200)] = "A quick question from us"
    token_days: Annotated[int, Field(ge=1, le=365)] = 14
    schedule: Schedule | None = None
    triggers: list[Trigger] = Field(default_factory=list)
    follow_up: FollowUp = Field(default_factory=FollowUp)

    @model_validator(mode="after")
    def _custom_has_questions(self) -> SurveyDefinition:
        if self.type == "custom" and not self.questions:
            raise ValueError("a custom survey needs at least one question")
        return self

    @property
    def prompt(self) -> str:
        return self.question or QUESTIONS[self.type]

    @property
    def scale(self) -> tuple[int, int]:
        return SCALES[self.type]


class SurveyPublic(BaseModel):
    id: int
    key: str
    type: str
    active: bool
    definition: dict[str, Any]
    answer_link: str = Field(
        description="the answer page; each customer asked gets it with a signed, single-use "
        "``token`` of their own (and ``score`` for a one-click answer)"
    )


class Answer(_Strict):
    """What a respondent sends: the score, an optional comment, custom answers."""

    token: str
    score: Annotated[int | None, Field(ge=-1_000, le=1_000)] = None
    comment: Annotated[str | None, Field(max_length=5_000)] = None
    answers: dict[str, Any] = Field(default_factory=dict)


class AnswerResult(BaseModel):
    survey_id: str
    survey_type: str
    score: int | None
    sentiment: float | None
    follow_up_task_id: int | None
    comment_token: str | None = None
