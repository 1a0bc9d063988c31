"""What every browser test does with its page: sign in (as a person or with a key), save a
screenshot of what it sees, and tell the console errors it caused on purpose (a refused form)
from the ones it must never see. The fixtures that hand these out are in ``conftest.py``."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from tests.accounts.conftest import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
# Kept after the run (git ignores them) so people can look at every page the tests saw.
SHOTS = Path(__file__).parent / "screenshots"
FIRST_LOAD = 60_000  # ms: a first load or reading on two busy cores can take this long
# What the app shows while a panel's data is on its way (lib/hooks.js status(), app.js).
BUSY = "[aria-busy=true], .loading"

# Console errors of each open page, by id(page): filled by the browser_page fixture.
CONSOLE: dict[int, list[str]] = {}


def console_errors(page: Page) -> list[str]:
    """Errors the page logged (uncaught exceptions, failed loads), since it opened."""
    return CONSOLE.get(id(page), [])


def refused_once(page: Page, *statuses: int) -> None:
    """The single console error of one request the test made the API refuse on purpose (bad
    input: 422 unless ``statuses`` says otherwise), cleared so later checks see only what
    comes after; a second error, or another status, fails the test."""
    errors = console_errors(page)
    codes = [str(status) for status in statuses or (422,)]
    assert len(errors) == 1 and any(code in errors[0] for code in codes), errors
    errors.clear()


def sign_in(page: Page, url: str, email: str, password: str = PASSWORD) -> None:
    """Open ``url`` as a person: the app asks for email and password first (typed, with Enter
    to send), then shows the page; returns once the session is open."""
    page.goto(url)
    expect(page.locator("#email")).to_be_visible(timeout=FIRST_LOAD)
    page.fill("#email", email)
    page.fill("#password", password)
    page.press("#password", "Enter")
    expect(page.locator("#sign-out")).to_be_visible()


def sign_in_with_key(page: Page, url: str, key: str) -> None:
    """Open ``url`` with a workspace's secret key (the sign-in of scripts and of the first
    version of the app)."""
    page.goto(url)
    expect(page.locator("#key")).to_be_visible(timeout=FIRST_LOAD)
    page.fill("#key", key)
    page.click("#login-form button")


# Which test saved each screenshot in this run: two tests writing one file would leave only
# the last one's page to look at.
SAVED_BY: dict[Path, str] = {}


class Shot:
    """Saves the whole page, once its requests are done, as ``SHOTS/<name>-<width>.png`` (with
    ``-postgresql`` after the width on PostgreSQL, so the two runs keep their own), and checks
    that no console error came before it."""

    def __init__(self, page: Page, backend: str, test: str) -> None:
        self.page = page
        self.suffix = "" if backend == "sqlite" else f"-{backend}"
        self.test = test

    def __call__(self, name: str, *, loading: bool = False) -> None:
        """``loading``: the test shows a panel while it loads, on purpose."""
        # The app moves between pages without loading a document, so "networkidle" may be
        # long past: wait for its own signs of a panel still loading to go.
        if not loading:
            expect(self.page.locator(BUSY)).to_have_count(0, timeout=FIRST_LOAD)
        self.page.wait_for_load_state("networkidle")
        size = self.page.viewport_size
        width = size["width"] if size else 0
        path = SHOTS / f"{name}-{width}{self.suffix}.png"
        saved_by = SAVED_BY.setdefault(path, self.test)
        assert saved_by == self.test, f"{path.name} is saved by {saved_by} too"
        SHOTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(path), full_page=True)
        assert console_errors(self.page) == [], name
