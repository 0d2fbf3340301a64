"""Console sessions without a browser: the one-way cookie and CSRF derivations, expiry on an
injected clock in memory and in the store, and the sign-in, session and sign-out routes of a
real daemon (what they refuse, and that bearer tokens keep working without CSRF)."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from palyra.config.schema import StorageConfig, default_config
from palyra.daemon import AppState, create_app
from palyra.daemon.security.console_sessions import (
    CSRF_HEADER,
    SESSION_COOKIE,
    SESSIONS_SCHEMA,
    ConsoleSessions,
    MemorySessions,
    StoredSessions,
    cookie_header,
    cookie_value,
    csrf_matches,
    csrf_token,
    session_key,
)
from palyra.daemon.security.policy import Access, Authenticator, required_access
from palyra.daemon.security.tokens_store import TokenKind, generate_token, hash_token
from palyra.store import open_store

RunningDaemon = Any
StartDaemon = Any
C = "/console/v1"


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def test_the_server_keeps_only_one_way_hashes_of_the_cookie() -> None:
    value = "pcs_" + "a" * 43
    assert value not in session_key(value) and value not in csrf_token(value)
    assert session_key(value) != csrf_token(value)
    assert csrf_matches(value, csrf_token(value))
    assert not csrf_matches(value, None)
    assert not csrf_matches(value, csrf_token("pcs_" + "b" * 43))
    plain = cookie_header(value, 60, secure=False)
    assert (
        plain == f"{SESSION_COOKIE}={value}; Path=/console; Max-Age=60; HttpOnly; SameSite=Strict"
    )
    assert cookie_header(value, 60, secure=True).endswith("; Secure")
    assert cookie_value(f"theme=dark; {SESSION_COOKIE}={value}; x=1") == value
    assert cookie_value(f"{SESSION_COOKIE}=forged-without-prefix") is None
    assert cookie_value("other=1") is None


@pytest.mark.parametrize("backend", ["memory", "store"])
async def test_sessions_expire_and_end_on_an_injected_clock(tmp_path: Path, backend: str) -> None:
    clock = Clock()
    store = None
    if backend == "store":
        store = await open_store(
            f"sqlite+aiosqlite:///{tmp_path}/s.db", migrations=(SESSIONS_SCHEMA,)
        )
        sessions = ConsoleSessions(StoredSessions(store), clock=clock, ttl_s=600)
    else:
        sessions = ConsoleSessions(MemorySessions(), clock=clock, ttl_s=600)
    try:
        value, started = await sessions.start(hash_token("pla_x"))
        assert started.expires_at_ms == int(clock.now * 1000) + 600_000
        found = await sessions.find(value)
        assert found is not None and found.token_hash == hash_token("pla_x")
        other, _ = await sessions.start(hash_token("pla_x"))
        assert other != value
        clock.now += 600
        assert await sessions.find(value) is None
        clock.now -= 600
        assert await sessions.find(other) is not None
        assert await sessions.end(other) is True
        assert await sessions.find(other) is None
        assert await sessions.end(other) is False
    finally:
        if store is not None:
            await store.aclose()


@pytest.fixture
def site(
    start_daemon: StartDaemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[RunningDaemon, str]:
    monkeypatch.setenv("PALYRA_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("PALYRA_VAULT_KEY", base64.b64encode(os.urandom(32)).decode())
    url = f"sqlite+aiosqlite:///{tmp_path}/palyra.db"
    config = default_config().model_copy(update={"storage": StorageConfig(url=url)})
    admin = generate_token(TokenKind.ADMIN)
    auth = Authenticator(store_url=url, state_dir=tmp_path, fixed_tokens={admin: TokenKind.ADMIN})
    return start_daemon(AppState.from_config(config), auth=auth), admin


@pytest.fixture
async def http(site: tuple[RunningDaemon, str]) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=site[0].url, timeout=10) as client:
        yield client


async def _sign_in(http: httpx2.AsyncClient, token: str) -> tuple[str, str]:
    response = await http.post(f"{C}/sign-in", json={"token": token})
    assert response.status_code == 201, response.text
    assert token not in response.text and token not in str(response.headers)
    return response.cookies[SESSION_COOKIE], response.json()["csrf_token"]


async def test_sign_in_refuses_other_tokens_other_origins_and_forms(
    site: tuple[RunningDaemon, str], http: httpx2.AsyncClient
) -> None:
    daemon, _admin = site
    for token in (daemon.client_token, generate_token(TokenKind.ADMIN), "pla_x"):
        refused = await http.post(f"{C}/sign-in", json={"token": token})
        assert refused.status_code == 401
        assert "palyra token create --admin" in refused.json()["error"]["message"]
        assert token not in refused.text
        assert SESSION_COOKIE not in refused.headers.get("set-cookie", "")
    empty = await http.post(f"{C}/sign-in", json={})
    assert empty.status_code == 400 and "token" in empty.json()["error"]["message"]
    form = await http.post(
        f"{C}/sign-in",
        content=b'{"token": "pla_x"}',
        headers={"content-type": "text/plain"},
    )
    assert form.status_code in (400, 415), form.text
    assert "set-cookie" not in form.headers
    foreign = await http.post(
        f"{C}/sign-in", json={"token": site[1]}, headers={"origin": "http://evil.example"}
    )
    assert foreign.status_code == 403
    assert "another origin (http://evil.example)" in foreign.json()["error"]["message"]
    assert "set-cookie" not in foreign.headers


async def test_a_session_needs_its_csrf_token_to_change_anything_and_bearer_needs_none(
    site: tuple[RunningDaemon, str], http: httpx2.AsyncClient
) -> None:
    daemon, admin = site
    cookie, csrf = await _sign_in(http, admin)
    seen = await http.get(f"{C}/session")
    assert seen.json()["csrf_token"] == csrf
    assert seen.json()["principal"]["kind"] == "admin"
    for headers in ({}, {CSRF_HEADER: "wrong"}, {CSRF_HEADER: csrf_token("pcs_other")}):
        forged = await http.post(f"{C}/tokens", json={"name": "forged"}, headers=headers)
        assert forged.status_code == 403, forged.text
        assert forged.json()["error"]["code"] == "csrf_token_invalid"
    made = await http.post(f"{C}/tokens", json={"name": "ok"}, headers={CSRF_HEADER: csrf})
    assert made.status_code == 201
    assert made.headers["cache-control"] == "no-store"  # the one response with a new token
    async with httpx2.AsyncClient(base_url=daemon.url) as bearer:
        auth = {"authorization": f"Bearer {admin}"}
        listed = await bearer.get(f"{C}/tokens", headers=auth)
        assert [t["name"] for t in listed.json()["data"]] == ["ok"]
        assert (await bearer.post(f"{C}/tokens", json={}, headers=auth)).status_code == 201
        session = await bearer.get(f"{C}/session", headers=auth)
        assert session.json()["csrf_token"] is None
        out = await bearer.delete(f"{C}/session", headers=auth)
        assert out.status_code == 400 and "no console session" in out.json()["error"]["message"]
    assert cookie not in made.text


async def test_revoking_the_admin_token_ends_its_sessions_and_sign_out_ends_one(
    site: tuple[RunningDaemon, str], http: httpx2.AsyncClient
) -> None:
    daemon, admin = site
    auth = {"authorization": f"Bearer {admin}"}
    stored = (await http.post(f"{C}/tokens", json={"kind": "admin"}, headers=auth)).json()
    _cookie, _csrf = await _sign_in(http, stored["token"])
    assert (await http.get(f"{C}/session")).status_code == 200
    await http.delete(f"{C}/tokens/{stored['id']}", headers=auth)
    assert (await http.get(f"{C}/session")).status_code == 401

    http.cookies.clear()
    cookie, csrf = await _sign_in(http, admin)
    without = await http.delete(f"{C}/session")
    assert without.status_code == 403
    ended = await http.delete(f"{C}/session", headers={CSRF_HEADER: csrf})
    assert ended.json() == {"signed_out": True}
    assert "Max-Age=0" in ended.headers["set-cookie"]
    async with httpx2.AsyncClient(base_url=daemon.url, cookies={SESSION_COOKIE: cookie}) as old:
        assert (await old.get(f"{C}/session")).status_code == 401


async def test_the_cookie_is_secure_when_the_daemon_serves_tls() -> None:
    admin = generate_token(TokenKind.ADMIN)
    state = AppState.from_config(default_config())
    state.auth = Authenticator(fixed_tokens={admin: TokenKind.ADMIN})
    transport = httpx2.ASGITransport(app=create_app(state))
    async with httpx2.AsyncClient(transport=transport, base_url="https://127.0.0.1") as http:
        response = await http.post(f"{C}/sign-in", json={"token": admin})
    assert response.status_code == 201, response.text
    assert response.headers["set-cookie"].endswith("SameSite=Strict; Secure")


async def test_console_pages_are_open_hold_no_data_and_refuse_unknown_files(
    http: httpx2.AsyncClient,
) -> None:
    page = await http.get("/console")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script>" not in page.text and "style=" not in page.text
    assert 'src="/console/static/js/main.js"' in page.text
    script = await http.get("/console/static/js/main.js")
    assert script.headers["content-type"].startswith("text/javascript")
    for missing in (
        "/console/static/nope.js",
        "/console/static/%2e%2e/pages.py",
        "/console/static/js",
    ):
        assert (await http.get(missing)).status_code == 404
    assert (await http.get(f"{C}/openapi.json")).status_code == 401


@pytest.mark.parametrize(
    ("path", "access"),
    [
        ("/console", Access.OPEN),
        ("/console/", Access.OPEN),
        ("/console/static/js/main.js", Access.OPEN),
        ("/docs", Access.OPEN),
        ("/console/v1/sign-in", Access.OPEN),
        ("/console/v1/session", Access.ADMIN),
        ("/console/v1/openapi.json", Access.ADMIN),
        ("/console/static", Access.CLIENT),
        ("/consoles", Access.CLIENT),
        ("/openapi.json", Access.CLIENT),
    ],
)
def test_only_the_pages_and_the_sign_in_are_open(path: str, access: Access) -> None:
    assert required_access(path) is access
