"""Personalised content: Jinja2 in a sandbox, compiled once per template text.

Templates see ``customer`` (id, email, traits), ``first_name``, ``stage``, ``health``,
``predictions`` (from the customer's ``predictions`` trait), ``links`` (unsubscribe and any the
caller adds) and whatever ``context`` the caller passes. A missing value renders empty.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, Template
from jinja2.sandbox import ImmutableSandboxedEnvironment

from clm.engage.schemas import Content
from clm.errors import FieldError, ValidationError

_text_env = ImmutableSandboxedEnvironment(autoescape=False, undefined=ChainableUndefined)
_html_env = ImmutableSandboxedEnvironment(autoescape=True, undefined=ChainableUndefined)
_PART = "\x00clm-part\x00"


@lru_cache(maxsize=1024)
def _compiled(source: str, html: bool) -> Template:
    return (_html_env if html else _text_env).from_string(source)


def check(content: Content, loc: tuple[str | int, ...] = ()) -> None:
    """Compile every template now, so a typo fails when the playbook is applied, not sent."""
    problems = []
    for name in ("subject", "text", "html"):
        source = getattr(content, name)
        if source:
            try:
                _compiled(source, name == "html")
            except Exception as exc:  # jinja2's TemplateSyntaxError and friends
                problems.append(FieldError((*loc, name), f"template error: {exc}"))
    if problems:
        raise ValidationError("Invalid template", problems)


def template_context(
    customer_id: int, profile: dict[str, Any] | None, extra: dict[str, Any]
) -> dict[str, Any]:
    traits = dict((profile or {}).get("traits") or {})
    name = str(traits.get("first_name") or traits.get("name") or "").split(" ")[0]
    return {
        "customer": {"id": customer_id, "email": (profile or {}).get("email"), "traits": traits},
        "first_name": name or "there",
        "predictions": traits.get("predictions") or {},
        **extra,
    }


def _render_json(value: Any, context: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return _compiled(value, False).render(context)
    if isinstance(value, dict):
        return {k: _render_json(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_json(v, context) for v in value]
    return value


def render(channel: str, content: Content, context: dict[str, Any]) -> dict[str, Any]:
    """The payload stored in the outbox: rendered once, delivered as is (retries included)."""
    if channel == "webhook":
        body = content.body if content.body is not None else {"text": content.text}
        return {"body": _render_json(body, context)}
    if channel == "sms":
        return {"body": _compiled(content.text, False).render(context)}
    # Subject and text in one render: setting up a template context costs as much as the
    # rendering itself, and this runs once per customer.
    both = _compiled(f"{content.subject}{_PART}{content.text}", False).render(context)
    if both.count(_PART) == 1:
        subject, text = both.split(_PART)
    else:  # a value carried the separator: render apart
        subject = _compiled(content.subject, False).render(context)
        text = _compiled(content.text, False).render(context)
    return {
        "subject": subject.strip(),
        "text": text,
        "html": _compiled(content.html, True).render(context) if content.html else None,
    }
