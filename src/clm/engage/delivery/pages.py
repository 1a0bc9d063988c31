"""The public pages (survey answer, thanks, unsubscribed): small, self-contained HTML."""

from __future__ import annotations

from jinja2 import Environment

_env = Environment(autoescape=True)

_LAYOUT = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>{{ title }}</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem}
button{margin:.15rem;padding:.5rem .8rem}</style></head><body>{{ body }}</body></html>"""

_FORM = _env.from_string("""<h1>{{ prompt }}</h1>
<form method="post" action="/public/surveys/answer-form">
<input type="hidden" name="token" value="{{ token }}">
{% for s in scores %}<button name="score" value="{{ s }}">{{ s }}</button>{% endfor %}
<p><label>Anything to add?<br><textarea name="comment" rows="4" cols="40"></textarea></label></p>
</form>""")

_THANKS = _env.from_string("""<h1>Thank you!</h1><p>Your answer ({{ score }}) is recorded.</p>
{% if comment_token %}<form method="post" action="/public/surveys/comment">
<input type="hidden" name="token" value="{{ comment_token }}">
<p><label>Tell us more?<br><textarea name="comment" rows="4" cols="40"></textarea></label></p>
<button type="submit">Send</button></form>{% endif %}""")


def page(title: str, body: str) -> str:
    from markupsafe import Markup

    return _env.from_string(_LAYOUT).render(title=title, body=Markup(body))  # noqa: S704


# Link scanners (mail security gateways) fetch every link in a message with GET: a GET shows
# what would happen and acts on nothing; the person's click on the button POSTs.
_CONFIRM_SCORE = _env.from_string("""<h1>{{ prompt }}</h1>
<form method="post" action="/public/surveys/answer-form">
<input type="hidden" name="token" value="{{ token }}">
<p>Your answer: <strong>{{ score }}</strong></p>
<p><label>Anything to add?<br><textarea name="comment" rows="4" cols="40"></textarea></label></p>
<button name="score" value="{{ score }}">Send my answer</button></form>""")

_CONFIRM_UNSUBSCRIBE = _env.from_string("""<h1>Unsubscribe?</h1>
<p>You will get no more marketing by {{ channel }}.</p>
<form method="post" action="/public/unsubscribe?token={{ token }}">
<button type="submit">Unsubscribe</button></form>""")


def confirm_score(prompt: str, token: str, score: int) -> str:
    return page("Survey", _CONFIRM_SCORE.render(prompt=prompt, token=token, score=score))


def confirm_unsubscribe(token: str, channel: str) -> str:
    return page("Unsubscribe", _CONFIRM_UNSUBSCRIBE.render(token=token, channel=channel))


def survey_form(prompt: str, token: str, scores: range) -> str:
    return page("Survey", _FORM.render(prompt=prompt, token=token, scores=list(scores)))


def thanks(score: int | None, comment_token: str | None) -> str:
    return page("Thank you", _THANKS.render(score=score, comment_token=comment_token))


def message(title: str, text: str) -> str:
    return page(title, _env.from_string("<h1>{{ t }}</h1><p>{{ x }}</p>").render(t=title, x=text))


_TESTIMONIAL = _env.from_string("""<h1>A few words about us?</h1>
<form method="post" action="/public/testimonials/form">
<input type="hidden" name="token" value="{{ token }}">
<p><label>Your testimonial<br><textarea name="text" rows="5" cols="40" required></textarea>
</label></p><p><label>Name to show <input name="display_name"></label></p>
<p><label><input type="checkbox" name="consent"> You may publish this with my name</label></p>
<button type="submit">Send</button></form>""")


def testimonial_form(token: str) -> str:
    return page("Testimonial", _TESTIMONIAL.render(token=token))
