"""The console API on a real daemon: auth profiles, API-key connect against the fake upstream,
OpenAI sign-in against the authlib test server, provider health and daemon tokens."""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx2
import pytest

from palyra.auth.oauth import OPENAI_OAUTH_CALLBACK_PATH
from palyra.config.schema import StorageConfig, default_config
from palyra.daemon import AppState
from palyra.daemon.security.policy import Authenticator
from palyra.daemon.security.tokens_store import TokenKind, generate_token
from palyra.sharedstate import RevocationListener, SharedStateLink
from palyra.testing import FakeUpstream

sys.path.append(str(Path(__file__).resolve().parents[1] / "auth"))
from oauth_server import OAuthTestServer, serving

# Fixture types from tests/daemon/conftest.py (not importable without a tests package).
RunningDaemon = Any
StartDaemon = Any

GOOD = "sk-console-good-5a1c9e7d3b"
BAD = "sk-console-bad-0f2e4d6c8a"
C = "/console/v1"


@dataclass
class Console:
    """A daemon with a token store and a vault, and every response body it sent."""

    daemon: RunningDaemon
    admin: str = field(repr=False)
    client_token: str = field(repr=False)
    http: httpx2.AsyncClient
    bodies: list[str] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.admin}"}

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        headers = {**self.auth, **kwargs.pop("headers", {})}
        response = await self.http.request(method, path, headers=headers, **kwargs)
        self.bodies.append(response.text + str(response.headers))
        return response

    def assert_never_sent(self, *secrets: str) -> None:
        for body in self.bodies:
            for secret in secrets:
                assert secret not in body


@pytest.fixture
def console_daemon(
    start_daemon: StartDaemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[RunningDaemon, str, str]:
    monkeypatch.setenv("PALYRA_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("PALYRA_VAULT_KEY", base64.b64encode(os.urandom(32)).decode())
    url = f"sqlite+aiosqlite:///{tmp_path}/palyra.db"
    config = default_config().model_copy(update={"storage": StorageConfig(url=url)})
    admin, client = generate_token(TokenKind.ADMIN), generate_token(TokenKind.CLIENT)
    auth = Authenticator(
        store_url=url,
        state_dir=tmp_path,
        fixed_tokens={admin: TokenKind.ADMIN, client: TokenKind.CLIENT},
    )
    return start_daemon(AppState.from_config(config), auth=auth), admin, client


@pytest.fixture
async def console(console_daemon: tuple[RunningDaemon, str, str]) -> AsyncIterator[Console]:
    daemon, admin, client = console_daemon
    async with httpx2.AsyncClient(base_url=daemon.url, timeout=10) as http:
        yield Console(daemon, admin, client, http)


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(api_keys=frozenset({GOOD})) as upstream:
        yield upstream


@pytest.fixture
def oauth_server() -> Iterator[OAuthTestServer]:
    with serving() as state:
        yield state


async def connect(console: Console, fake: FakeUpstream, pid: str, key: str = GOOD) -> Any:
    body = {"profile_id": pid, "api_key": key, "base_url": fake.openai_base_url, "name": pid}
    return await console.call("POST", f"{C}/auth/providers/openai/api-key", json=body)


CONSOLE_ROUTES = [
    ("GET", f"{C}/auth/profiles"),
    ("GET", f"{C}/auth/profiles/p1"),
    ("DELETE", f"{C}/auth/profiles/p1"),
    ("PUT", f"{C}/auth/profiles/order"),
    ("POST", f"{C}/auth/profiles/p1/cooldown-clear"),
    ("POST", f"{C}/auth/profiles/p1/refresh"),
    ("GET", f"{C}/auth/doctor"),
    ("GET", f"{C}/auth/explain-selection?provider=openai"),
    ("POST", f"{C}/auth/providers/openai/api-key"),
    ("POST", f"{C}/auth/providers/anthropic/api-key"),
    ("POST", f"{C}/auth/providers/openai/oauth/start"),
    ("GET", f"{C}/auth/providers/openai/oauth/att_1"),
    ("GET", f"{C}/providers/health"),
    ("GET", f"{C}/tokens"),
    ("POST", f"{C}/tokens"),
    ("DELETE", f"{C}/tokens/tok_1"),
]


@pytest.mark.parametrize(("method", "path"), CONSOLE_ROUTES)
async def test_console_routes_refuse_client_tokens_and_no_token(
    console: Console, method: str, path: str
) -> None:
    for headers in ({"authorization": f"Bearer {console.client_token}"}, {}):
        response = await console.http.request(method, path, headers=headers, json={})
        assert response.status_code == 401, response.text
        assert response.json()["error"]["type"] == "authentication_error"
        assert console.client_token not in response.text


async def test_api_key_connect_stores_a_valid_key_and_never_echoes_it(
    console: Console, fake: FakeUpstream
) -> None:
    response = await connect(console, fake, "work")
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["profile_id"], created["provider"]) == ("work", "openai")
    assert fake.requests[-1].headers["authorization"] == f"Bearer {GOOD}"
    got = await console.call("GET", f"{C}/auth/profiles/work")
    assert got.json()["credential"]["api_key_ref"] == "profile:work/api_key"
    console.assert_never_sent(GOOD)


async def test_api_key_the_provider_refuses_is_a_400_and_nothing_is_stored(
    console: Console, fake: FakeUpstream
) -> None:
    response = await connect(console, fake, "work", key=BAD)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "authentication_error"
    assert "nothing was stored" in error["message"]
    listed = await console.call("GET", f"{C}/auth/profiles")
    assert listed.json() == {"data": [], "next_cursor": None}
    console.assert_never_sent(BAD)


async def test_api_key_body_errors_and_unknown_provider_are_400s(console: Console) -> None:
    missing = await console.call("POST", f"{C}/auth/providers/openai/api-key", json={})
    assert missing.status_code == 400
    assert "profile_id" in missing.json()["error"]["message"]
    bad_url = await console.call(
        "POST",
        f"{C}/auth/providers/anthropic/api-key",
        json={"profile_id": "a", "api_key": GOOD, "base_url": "http://10.0.0.1"},
    )
    assert bad_url.status_code == 400
    other = await console.call(
        "POST", f"{C}/auth/providers/gemini/api-key", json={"profile_id": "g", "api_key": GOOD}
    )
    assert other.status_code == 400
    console.assert_never_sent(GOOD)


async def test_profiles_page_filter_order_clear_and_delete(
    console: Console, fake: FakeUpstream
) -> None:
    for pid in ("a", "b", "c"):
        assert (await connect(console, fake, pid)).status_code == 201
    first = (await console.call("GET", f"{C}/auth/profiles?limit=2")).json()
    assert [p["profile_id"] for p in first["data"]] == ["a", "b"]
    rest = (await console.call("GET", f"{C}/auth/profiles?cursor={first['next_cursor']}")).json()
    assert ([p["profile_id"] for p in rest["data"]], rest["next_cursor"]) == (["c"], None)
    none = await console.call("GET", f"{C}/auth/profiles?provider=anthropic")
    assert none.json()["data"] == []
    assert (await console.call("GET", f"{C}/auth/profiles?limit=0")).status_code == 400
    assert (await console.call("GET", f"{C}/auth/profiles?provider=nope")).status_code == 400

    order = {"provider": "openai", "ids": ["c", "a"]}
    ordered = await console.call("PUT", f"{C}/auth/profiles/order", json=order)
    assert [p["profile_id"] for p in ordered.json()["data"]] == ["c", "a", "b"]
    explained = (await console.call("GET", f"{C}/auth/explain-selection?provider=openai")).json()
    assert explained["chosen"] == "c"
    unknown = await console.call(
        "PUT", f"{C}/auth/profiles/order", json={"provider": "openai", "ids": ["zz"]}
    )
    assert unknown.status_code == 400
    assert "zz" in unknown.json()["error"]["message"]

    cleared = await console.call("POST", f"{C}/auth/profiles/b/cooldown-clear")
    assert cleared.json()["health"] == "ok"
    assert (await console.call("POST", f"{C}/auth/profiles/zz/cooldown-clear")).status_code == 404
    assert (await console.call("DELETE", f"{C}/auth/profiles/b")).json()["deleted"] is True
    assert (await console.call("DELETE", f"{C}/auth/profiles/b")).status_code == 404
    missing = await console.call("GET", f"{C}/auth/profiles/b")
    assert missing.status_code == 404
    assert "palyra auth profiles list" in missing.json()["error"]["message"]
    console.assert_never_sent(GOOD)


async def test_doctor_and_explain_selection(console: Console, fake: FakeUpstream) -> None:
    healthy = (await console.call("GET", f"{C}/auth/doctor")).json()
    assert healthy == {"findings": [], "ok": True}
    await connect(console, fake, "solo")
    explained = await console.call("GET", f"{C}/auth/explain-selection?provider=openai&agent=bot")
    assert explained.json()["chosen"] == "solo"
    assert (await console.call("GET", f"{C}/auth/explain-selection")).status_code == 400
    wrong = await console.call("GET", f"{C}/auth/explain-selection?provider=nope")
    assert wrong.status_code == 400


async def test_refreshing_an_api_key_profile_is_refused(
    console: Console, fake: FakeUpstream
) -> None:
    await connect(console, fake, "keyed")
    response = await console.call("POST", f"{C}/auth/profiles/keyed/refresh")
    assert response.status_code == 400
    assert "only OAuth profiles" in response.json()["error"]["message"]
    assert (await console.call("POST", f"{C}/auth/profiles/zz/refresh")).status_code == 404


async def _sign_in(console: Console, server: OAuthTestServer) -> tuple[str, httpx2.Response]:
    body = {
        "profile_id": "openai-work",
        "issuer": server.base_url,
        "client_id": server.client_id,
        "validate_url": server.api_base_url,
    }
    started = await console.call("POST", f"{C}/auth/providers/openai/oauth/start", json=body)
    assert started.status_code == 201, started.text
    payload = started.json()
    assert payload["redirect_uri"] == console.daemon.url + OPENAI_OAUTH_CALLBACK_PATH
    server.redirect_uris.add(payload["redirect_uri"])
    authorize = await console.http.get(payload["authorization_url"])
    assert authorize.status_code == 302, authorize.text
    location = urlsplit(authorize.headers["location"])
    query = dict(parse_qsl(location.query))
    # The browser that started the sign-in carries its session cookie back (no admin token).
    callback = await console.http.get(OPENAI_OAUTH_CALLBACK_PATH, params=query)
    console.bodies.append(callback.text + str(callback.headers))
    return payload["attempt_id"], callback


async def test_openai_sign_in_through_the_daemon_reaches_the_callback_page(
    console: Console, oauth_server: OAuthTestServer
) -> None:
    attempt_id, page = await _sign_in(console, oauth_server)
    assert page.status_code == 200, page.text
    assert "OpenAI Connected" in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'sha256-" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"

    status = await console.call("GET", f"{C}/auth/providers/openai/oauth/{attempt_id}")
    assert status.json()["status"] == "succeeded"
    assert status.json()["profile_id"] == "openai-work"
    profile = (await console.call("GET", f"{C}/auth/profiles/openai-work")).json()
    assert profile["credential"]["kind"] == "oauth"

    refreshed = await console.call("POST", f"{C}/auth/profiles/openai-work/refresh")
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["result"] == "refreshed"
    assert oauth_server.refresh_grants == 1
    secrets = oauth_server.issued_access_tokens() + oauth_server.issued_refresh_tokens()
    console.assert_never_sent(*secrets)


async def test_callback_from_a_browser_without_the_session_cookie_is_refused(
    console: Console, oauth_server: OAuthTestServer
) -> None:
    console.http.cookies.clear()
    body = {"issuer": oauth_server.base_url, "client_id": oauth_server.client_id}
    started = (
        await console.call("POST", f"{C}/auth/providers/openai/oauth/start", json=body)
    ).json()
    oauth_server.redirect_uris.add(started["redirect_uri"])
    authorize = await console.http.get(started["authorization_url"])
    query = dict(parse_qsl(urlsplit(authorize.headers["location"]).query))
    async with httpx2.AsyncClient(base_url=console.daemon.url) as stranger:
        page = await stranger.get(OPENAI_OAUTH_CALLBACK_PATH, params=query)
    assert page.status_code == 403
    assert "another session" in page.text
    assert oauth_server.code_grants == 0
    pending = await console.call("GET", f"{C}/auth/providers/openai/oauth/{started['attempt_id']}")
    assert pending.json()["status"] == "pending"


async def test_oauth_start_behind_a_proxy_is_refused_with_the_reason(console: Console) -> None:
    response = await console.call(
        "POST",
        f"{C}/auth/providers/openai/oauth/start",
        headers={"x-forwarded-host": "console.example.com"},
    )
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "x-forwarded-host" in message and "palyra auth openai login" in message


async def test_oauth_status_is_per_session(console: Console, oauth_server: OAuthTestServer) -> None:
    body = {"issuer": oauth_server.base_url, "client_id": oauth_server.client_id}
    headers = {"x-palyra-session": "tab-1"}
    started = await console.call(
        "POST", f"{C}/auth/providers/openai/oauth/start", json=body, headers=headers
    )
    attempt = started.json()["attempt_id"]
    mine = await console.call("GET", f"{C}/auth/providers/openai/oauth/{attempt}", headers=headers)
    assert mine.json()["status"] == "pending"
    other = await console.call("GET", f"{C}/auth/providers/openai/oauth/{attempt}")
    assert other.status_code == 404
    unknown = await console.call("GET", f"{C}/auth/providers/openai/oauth/att_nope")
    assert unknown.status_code == 404
    bad = await console.call(
        "POST",
        f"{C}/auth/providers/openai/oauth/start",
        json=body,
        headers={"x-palyra-session": "a;b"},
    )
    assert bad.status_code == 400


async def test_providers_health_is_grouped_and_empty_before_traffic(console: Console) -> None:
    response = await console.call("GET", f"{C}/providers/health")
    body = response.json()
    assert set(body) == {"providers", "models", "credentials"}
    assert all(isinstance(rows, list) for rows in body.values())


async def test_tokens_create_once_list_without_secret_and_revoke_at_once(
    console: Console,
) -> None:
    created = await console.call("POST", f"{C}/tokens", json={"kind": "admin", "name": "ops"})
    assert created.status_code == 201
    token, token_id = created.json()["token"], created.json()["id"]
    assert token.startswith("pla_")
    listed = await console.call("GET", f"{C}/tokens")
    assert [t["name"] for t in listed.json()["data"]] == ["ops"]
    assert token not in listed.text and "hash" not in listed.text
    use = {"authorization": f"Bearer {token}"}
    whoami = await console.http.get(f"{C}/whoami", headers=use)
    assert whoami.json()["token_id"] == token_id
    revoked = await console.call("DELETE", f"{C}/tokens/{token_id}")
    assert revoked.json()["status"] == "revoked"
    assert (await console.http.get(f"{C}/whoami", headers=use)).status_code == 401
    assert (await console.call("DELETE", f"{C}/tokens/tok_nope")).status_code == 404
    wrong = await console.call("POST", f"{C}/tokens", json={"kind": "root"})
    assert wrong.status_code == 400
    console.assert_never_sent(console.admin, console.client_token)
    assert sum(token in body for body in console.bodies) == 1


async def test_tokens_need_a_token_store(daemon: RunningDaemon) -> None:
    async with httpx2.AsyncClient(base_url=daemon.url) as http:
        response = await http.get(f"{C}/tokens", headers=daemon.admin_headers)
    assert response.status_code == 409
    assert "palyra token" in response.json()["error"]["message"]


async def test_another_worker_or_a_restarted_daemon_sees_the_same_sign_in(
    console: Console,
    console_daemon: tuple[RunningDaemon, str, str],
    start_daemon: StartDaemon,
    oauth_server: OAuthTestServer,
) -> None:
    """Session ids come from the master key, not from the process: a second daemon on the same
    store and key (a sibling worker, a replica, or this one after a restart) answers the poll."""
    body = {"issuer": oauth_server.base_url, "client_id": oauth_server.client_id}
    started = await console.call("POST", f"{C}/auth/providers/openai/oauth/start", json=body)
    attempt_id = started.json()["attempt_id"]
    daemon, admin, _client = console_daemon
    config = daemon.state.config
    sibling = start_daemon(
        AppState.from_config(config),
        auth=Authenticator(
            store_url=config.storage.url,
            state_dir=Path(os.environ["PALYRA_STATE_DIR"]),
            fixed_tokens={admin: TokenKind.ADMIN},
        ),
    )
    async with httpx2.AsyncClient(base_url=sibling.url, timeout=10) as http:
        polled = await http.get(
            f"{C}/auth/providers/openai/oauth/{attempt_id}",
            headers={"authorization": f"Bearer {admin}"},
        )
    assert polled.status_code == 200, polled.text
    assert polled.json()["status"] == "pending"


@pytest.mark.redis
async def test_a_console_revoke_is_announced_to_every_replica_through_redis(
    start_daemon: StartDaemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    monkeypatch.setenv("PALYRA_STATE_DIR", str(tmp_path))
    url = f"sqlite+aiosqlite:///{tmp_path}/palyra.db"
    storage = StorageConfig(url=url, redis_url=redis_url)
    config = default_config().model_copy(update={"storage": storage})
    admin = generate_token(TokenKind.ADMIN)
    auth = Authenticator(store_url=url, state_dir=tmp_path, fixed_tokens={admin: TokenKind.ADMIN})
    daemon = start_daemon(AppState.from_config(config), auth=auth)
    # Another replica: its own token cache (an hour long), listening on the same Redis.
    other = Authenticator(store_url=url, cache_ttl_s=3600)
    await other.start()
    link = SharedStateLink(redis_url)
    listener = RevocationListener(link, revoked=other.forget_token, missed=other.forget_all)
    listener.start()
    await asyncio.wait_for(listener.subscribed.wait(), 5)
    try:
        async with httpx2.AsyncClient(base_url=daemon.url, timeout=10) as http:
            headers = {"authorization": f"Bearer {admin}"}
            created = await http.post(f"{C}/tokens", json={"name": "ci"}, headers=headers)
            token, token_id = created.json()["token"], created.json()["id"]
            assert await other.authenticate(token) is not None  # cached by the other replica
            revoked = await http.delete(f"{C}/tokens/{token_id}", headers=headers)
            assert revoked.json()["status"] == "revoked"
        loop = asyncio.get_running_loop()
        started = loop.time()
        while await other.authenticate(token) is not None:
            assert loop.time() - started < 1.0, "the other replica still accepts it"
            await asyncio.sleep(0.01)
    finally:
        await listener.aclose()
        await other.aclose()
        await link.aclose()
