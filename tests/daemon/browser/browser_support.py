"""What the browser tests share: the site under test, the watched page, sign-in and screenshots."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from palyra.testing import FakeUpstream

sys.path.append(str(Path(__file__).resolve().parents[2] / "auth"))
from oauth_server import OAuthTestServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
GOOD_KEY = "sk-browser-good-7d41c0a9e2"
BAD_KEY = "sk-browser-bad-3e8f5b1d60"
CRON_KEY = "sk-browser-cron-92ac4e7f13"
STREAM_CHUNK_DELAY_MS = 150.0  # the cron run's text arrives over a couple of seconds
AGENTS = """
version = 1
[[agents]]
id = "ops"
display_name = "Ops checker"
model = "main"
system_prompt = "You check things."
"""
SHOTS = Path(
    os.environ.get(
        "PALYRA_CONSOLE_SHOTS", Path(__file__).resolve().parents[3] / "test-artifacts" / "console"
    )
)

try:
    from playwright.sync_api import BrowserContext, Page, sync_playwright
except ImportError:  # pragma: no cover - requirements-test.txt pins it
    sync_playwright = None  # type: ignore[assignment]


@dataclass
class ConsoleSite:
    """The running daemon and everything the browser tests talk to."""

    url: str
    admin_token: str = field(repr=False)
    fake: FakeUpstream
    oauth: OAuthTestServer
    state_dir: Path

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.admin_token}"}

    def secrets(self) -> list[str]:
        """Every value that must never reach a page, a console response or browser storage."""
        issued = self.oauth.issued_access_tokens() + self.oauth.issued_refresh_tokens()
        return [self.admin_token, GOOD_KEY, BAD_KEY, CRON_KEY, *issued]


@dataclass
class Watched:
    """A page, the console responses it read and the script errors it raised."""

    page: Page
    context: BrowserContext
    bodies: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def shoot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """A screenshot of the page as it is now, kept as a test artifact (``make
    console-screenshots`` takes the README's from the same tests)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def sign_in(page: Page, token: str) -> None:
    page.goto("/console")
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Auth profiles", level=1).wait_for()


def storage_and_cookies(watched: Watched) -> str:
    """Everything the browser keeps for the site: both storages and every cookie's value."""
    stored = watched.page.evaluate(
        "() => JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])"
    )
    cookies = [c["value"] for c in watched.context.cookies()]
    return stored + "\n".join(cookies)


def assert_no_secret(watched: Watched, secrets: list[str], allowed: tuple[str, ...] = ()) -> None:
    """No secret in the page's HTML, a console response it read (bar ``allowed`` requests,
    such as the one that reveals a new token once), browser storage or cookies."""
    html = watched.page.content()
    kept = storage_and_cookies(watched)
    for secret in secrets:
        assert secret not in html
        assert secret not in kept
        for request, body in watched.bodies:
            if not any(request.startswith(a) for a in allowed):
                assert secret not in body, request
    assert not watched.errors, watched.errors
