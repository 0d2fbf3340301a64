"""The console's flows as a person clicks through them in Chromium, each ending with a check
that no secret reached the page, a console response or the browser's storage."""

from __future__ import annotations

import re

import httpx2
import pytest
from browser_support import (
    BAD_KEY,
    GOOD_KEY,
    ConsoleSite,
    Watched,
    assert_no_secret,
    shoot,
    sign_in,
)

from palyra.auth.oauth import OPENAI_OAUTH_CALLBACK_PATH
from palyra.daemon.security.console_sessions import SESSION_COOKIE
from palyra.testing.faults import Fault, FaultKind

# Echoed back word by word by the fake upstream: about 30 chunks, some 4.5 s of streaming, so
# the run page is open and following long before the run ends.
LONG_PROMPT = (
    "check the disks, the queues, the certificates, the backups, the replicas, the mail relay, "
    "the build runners, the DNS records and the VPN gateway, then report what you found and say ok"
)

expect = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed (requirements-test.txt)"
).expect
pytestmark = pytest.mark.slow  # a real browser: a few seconds per test


def test_a_wrong_token_is_refused_and_an_admin_token_signs_in(
    watched: Watched, site: ConsoleSite
) -> None:
    page = watched.page
    page.goto("/console")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shoot(page, "sign-in")
    page.get_by_label("Admin token").fill("pla_not-a-token-of-this-daemon")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#sign-in-status")).to_contain_text("that token does not sign in")
    expect(page.get_by_label("Admin token")).to_have_value("")
    assert page.context.cookies() == []

    sign_in(page, site.admin_token)
    expect(page.get_by_role("navigation", name="Console sections")).to_be_visible()
    (cookie,) = page.context.cookies()
    assert cookie["name"] == SESSION_COOKIE
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/console" and cookie["expires"] > 0
    assert cookie["secure"] is False  # plain HTTP on loopback; the daemon adds it under TLS
    # A reload keeps the session (the cookie), not the token: nothing to type again.
    page.reload()
    expect(page.get_by_role("heading", name="Auth profiles", level=1)).to_be_visible()
    assert_no_secret(watched, site.secrets())


def test_connect_an_api_key_rejected_then_valid_shown_as_text(
    watched: Watched, site: ConsoleSite
) -> None:
    page = watched.page
    sign_in(page, site.admin_token)
    form = page.locator("form", has=page.get_by_role("heading", name="Connect an API key"))
    form.get_by_label("Profile id").fill("work")
    # Markup in a name is shown as text: it neither runs nor styles the page.
    hostile = '<img src=x onerror="window.__pwned=1"><b>Work</b>'
    form.get_by_label("Display name").fill(hostile)
    form.get_by_text("Advanced").click()
    form.get_by_label("Base URL").fill(site.fake.openai_base_url)
    form.get_by_label("API key").fill(BAD_KEY)
    form.get_by_role("button", name="Connect").click()
    status = form.get_by_role("status")
    expect(status).to_contain_text("nothing was stored")
    expect(form.get_by_label("API key")).to_have_value("")
    expect(page.get_by_role("row", name=re.compile(r"^work "))).to_have_count(0)

    form.get_by_label("API key").fill(GOOD_KEY)
    form.get_by_role("button", name="Connect").click()
    expect(status).to_contain_text("Connected work")
    row = page.get_by_role("row", name=re.compile(r"^work "))
    expect(row).to_contain_text("API key")
    expect(row).to_contain_text("does not expire")
    expect(row.get_by_role("cell", name=hostile)).to_be_visible()
    assert page.evaluate("() => window.__pwned") is None
    assert site.fake.requests[-1].headers["authorization"] == f"Bearer {GOOD_KEY}"

    row.get_by_role("button", name="Move work up").click()
    expect(
        page.get_by_role("row", name=re.compile(r"^work ")).get_by_role(
            "cell", name="1", exact=True
        )
    ).to_be_visible()
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Delete work").click()
    expect(page.get_by_role("row", name=re.compile(r"^work "))).to_have_count(1)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete work").click()
    expect(page.get_by_role("row", name=re.compile(r"^work "))).to_have_count(0)
    expect(page.locator("#page > .status")).to_contain_text("Deleted work")
    finding = page.locator(".finding", has_text="old-claude")
    expect(finding).to_contain_text("is not in the vault")
    expect(finding.locator("code")).to_contain_text("palyra auth")
    assert_no_secret(watched, site.secrets())


def test_sign_in_with_openai_in_a_popup_then_refresh_the_profile(
    watched: Watched, site: ConsoleSite
) -> None:
    page = watched.page
    site.oauth.redirect_uris.add(site.url + OPENAI_OAUTH_CALLBACK_PATH)
    sign_in(page, site.admin_token)
    # What reaches the console window from the callback page, and from which origin.
    page.evaluate(
        "() => { window.__messages = []; window.addEventListener('message',"
        " (e) => window.__messages.push([e.origin, e.data && e.data.type])); }"
    )
    form = page.locator("form", has=page.get_by_role("heading", name="Sign in with OpenAI"))
    form.get_by_label("Profile id").fill("openai-work")
    form.get_by_text("Advanced").click()
    form.get_by_label("Issuer").fill(site.oauth.base_url)
    form.get_by_label("Client id").fill(site.oauth.client_id)
    form.get_by_label("Token check URL").fill(site.oauth.api_base_url)
    with page.expect_popup() as popup_info:
        form.get_by_role("button", name="Sign in with OpenAI").click()
    popup = popup_info.value
    popup.wait_for_url(re.compile(re.escape(OPENAI_OAUTH_CALLBACK_PATH)))
    expect(popup.get_by_role("heading")).to_contain_text("OpenAI Connected")
    status = form.get_by_role("status")
    expect(status).to_contain_text("Signed in with OpenAI: profile openai-work is saved")
    assert page.evaluate("() => window.__messages") == [[site.url, "palyra-openai-oauth-complete"]]
    assert site.oauth.code_grants == 1
    row = page.get_by_role("row", name=re.compile(r"^openai-work "))
    expect(row).to_contain_text("OAuth")

    row.get_by_role("button", name="Refresh openai-work").click()
    expect(page.locator("#page > .status")).to_contain_text("openai-work: refreshed")
    assert site.oauth.refresh_grants == 1
    shoot(page, "auth-profiles")
    assert_no_secret(watched, site.secrets())


def test_create_a_client_token_shown_once_then_revoke_it(
    watched: Watched, site: ConsoleSite
) -> None:
    page = watched.page
    sign_in(page, site.admin_token)
    page.get_by_role("link", name="Client tokens").click()
    page.get_by_label("Name").fill("ci bot")
    page.get_by_label("Agent").select_option("ops")
    page.get_by_role("button", name="Create token").click()
    secret = page.locator(".reveal code").inner_text()
    assert secret.startswith("plk_")
    with httpx2.Client(base_url=site.url) as http:
        models = http.get("/v1/models", headers={"authorization": f"Bearer {secret}"})
        assert models.status_code == 200
        row = page.get_by_role("row", name=re.compile("ci bot"))
        expect(row).to_contain_text("active")
        expect(row).to_contain_text("ops")
        shoot(page, "client-tokens")
        page.get_by_role("button", name="I have saved it").click()
        expect(page.locator(".reveal")).to_be_hidden()
        assert secret not in page.content()

        page.once("dialog", lambda dialog: dialog.accept())
        row.get_by_role("button", name="Revoke ci bot").click()
        expect(row).to_contain_text("revoked")
        refused = http.get("/v1/models", headers={"authorization": f"Bearer {secret}"})
        assert refused.status_code == 401
    # The token was in the one response that created it, and nowhere else.
    created = [body for request, body in watched.bodies if request.startswith("POST")]
    assert sum(secret in body for body in created) == 1
    assert_no_secret(
        watched, [*site.secrets(), secret], allowed=(f"POST {site.url}/console/v1/tokens",)
    )


def test_add_a_cron_job_run_it_now_and_watch_its_events_arrive(
    watched: Watched, site: ConsoleSite
) -> None:
    page = watched.page
    sign_in(page, site.admin_token)
    page.get_by_role("link", name="Cron jobs").click()
    page.get_by_role("button", name="Add a job").click()
    form = page.locator("form", has=page.get_by_role("heading", name="Add a job"))
    form.get_by_label("Name").fill("morning-check")
    form.get_by_label("Schedule").fill("30 7 * * 1-5")
    form.get_by_label("Time zone").fill("Asia/Tokyo")
    form.get_by_label("Prompt").fill(LONG_PROMPT)
    form.get_by_label("Auth profile").fill("cronkey")
    form.get_by_role("button", name="Add job").click()
    row = page.get_by_role("row", name=re.compile("morning-check"))
    expect(row).to_contain_text("30 7 * * 1-5 (Asia/Tokyo)")
    # The next run is shown at 07:30 in the job's own zone, whatever the browser's zone.
    expect(row.locator("time")).to_contain_text("7:30:00")
    expect(row.locator("time")).to_contain_text(re.compile("GMT\\+9|JST"))

    row.get_by_role("button", name="Explain morning-check").click()
    expect(page.get_by_role("heading", name="Explain morning-check")).to_be_visible()
    shoot(page, "cron-jobs")

    row.get_by_role("button", name="Run morning-check now").click()
    page.get_by_role("link", name="watch its events").click()
    expect(page.get_by_role("heading", name=re.compile("^Run "))).to_be_visible()
    events = page.get_by_role("list", name="Events")
    expect(events.locator("li[data-type=run_started]")).to_have_count(1)
    # The fake upstream streams a chunk every STREAM_CHUNK_DELAY_MS: the first pieces of text
    # are on the page while the run is still going, the rest arrive without a reload.
    expect(events.locator("li[data-type=model_delta]").first).to_be_visible()
    assert events.locator("li[data-type=run_completed]").count() == 0
    expect(events.locator("li[data-type=run_completed]")).to_have_count(1, timeout=30_000)
    assert events.locator("li[data-type=model_delta]").count() > 5
    expect(page.locator("#page .status")).to_contain_text("The run has ended")
    expect(page.locator(".summary")).to_contain_text("succeeded")
    shoot(page, "run-events")

    page.get_by_role("link", name="Cron jobs").click()
    row.get_by_role("button", name="Disable morning-check").click()
    expect(row.get_by_role("cell", name="no", exact=True)).to_be_visible()
    row.get_by_role("button", name="Enable morning-check").click()
    expect(row.get_by_role("cell", name="yes", exact=True)).to_be_visible()
    row.get_by_role("button", name="Edit morning-check").click()
    page.get_by_label("Schedule").fill("not a schedule")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#page > .status")).to_contain_text("schedule")
    page.get_by_label("Schedule").fill("0 9 * * *")
    page.get_by_role("button", name="Save").click()
    expect(row).to_contain_text("0 9 * * * (Asia/Tokyo)")
    expect(row.locator("time")).to_contain_text("9:00:00")

    page.get_by_role("link", name="Runs", exact=True).click()
    run = page.get_by_role("row").filter(has_text="succeeded").first
    expect(run).to_contain_text(re.compile(r"\d+ in / \d+ out"))
    shoot(page, "runs")

    page.get_by_role("link", name="Cron jobs").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete morning-check").click()
    expect(page.get_by_text("Jobs: none yet.")).to_be_visible()
    assert_no_secret(watched, site.secrets())


def test_providers_agents_and_docs_pages_and_sign_out(watched: Watched, site: ConsoleSite) -> None:
    page = watched.page
    sign_in(page, site.admin_token)
    page.get_by_role("link", name="Providers and models").click()
    expect(page.get_by_text(re.compile(r"^Updated "))).to_be_visible()
    # A run that fails upstream while the page is open shows up without a reload.
    site.fake.faults.push(*[Fault(FaultKind.RATE_LIMIT, retry_after_s=0) for _ in range(3)])
    with httpx2.Client(base_url=site.url, headers=site.admin_headers) as http:
        started = http.post("/console/v1/runs", json={"agent": "ops", "prompt": "hi"})
        assert started.status_code == 202, started.text
    models = page.get_by_role("region", name="Models")
    expect(models).to_contain_text("rate_limited", timeout=20_000)
    expect(models.locator("time")).to_have_count(1)
    shoot(page, "providers")

    page.get_by_role("link", name="Agents").click()
    row = page.get_by_role("row", name=re.compile("^ops "))
    row.get_by_role("button", name="Edit ops").click()
    page.get_by_label("System prompt").fill("You check things twice.")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#page > .status")).to_contain_text("Saved ops")
    assert "You check things twice." in (site.state_dir / "agents.toml").read_text()
    shoot(page, "agents")

    page.get_by_role("link", name="API docs").click()
    expect(page.get_by_text("/console/v1/auth/profiles").first).to_be_visible()
    shoot(page, "docs", full_page=False)
    page.go_back()

    (cookie,) = page.context.cookies()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    # The session is over on the server: its old cookie value opens nothing.
    jar = {cookie["name"]: cookie["value"]}
    with httpx2.Client(base_url=site.url, cookies=jar) as http:
        stale = http.get("/console/v1/session")
    assert stale.status_code == 401
    assert_no_secret(watched, site.secrets())


def test_keyboard_only_in_a_window_as_narrow_as_400_percent_zoom(
    watched: Watched, site: ConsoleSite
) -> None:
    """1280 CSS pixels at 400% zoom leave 320: every page must fit without sideways scrolling,
    and a keyboard alone signs in and moves between pages."""
    page = watched.page
    page.set_viewport_size({"width": 320, "height": 640})
    page.goto("/console")
    expect(page.get_by_label("Admin token")).to_be_focused()  # where the cursor starts
    page.keyboard.type(site.admin_token)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Auth profiles", level=1)).to_be_focused()
    for link in ("Providers and models", "Client tokens", "Agents", "Cron jobs", "Runs"):
        page.get_by_role("link", name=link).focus()
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", level=1)).to_be_focused()
        wide = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert wide <= 0, f"{link} scrolls sideways by {wide}px at 320px"
    page.get_by_role("link", name="Auth profiles").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Auth profiles", level=1)).to_be_focused()
    assert page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth") <= 0
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll("input, select, textarea, button")]
        .filter((el) => !el.labels?.length && !el.getAttribute("aria-label")
                        && !(el.tagName === "BUTTON" && el.textContent.trim()))
        .map((el) => el.outerHTML)"""
    )
    assert unlabelled == []
    shoot(page, "narrow-auth-profiles")
    assert_no_secret(watched, site.secrets())
