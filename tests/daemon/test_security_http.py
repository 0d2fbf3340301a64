"""Token enforcement, body limits and CORS on a real daemon, over every route the app has."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from starlette.routing import Route

from palyra.auth.oauth import OPENAI_OAUTH_CALLBACK_PATH
from palyra.config.schema import DaemonConfig, default_config
from palyra.daemon import AppState, create_app
from palyra.daemon.security.policy import Access, Authenticator, required_access
from palyra.daemon.security.startup_tokens import resolve_client_tokens
from palyra.daemon.security.tokens_store import TOKENS_SCHEMA, TokenKind, TokenStore, generate_token
from palyra.store import open_store

# Fixture types from tests/daemon/conftest.py (not importable without a tests package).
RunningDaemon = Any
StartDaemon = Any

CHAT: dict[str, Any] = {"model": "default", "messages": [{"role": "user", "content": "hi"}]}


def _routes() -> Iterator[tuple[str, str]]:
    app = create_app(AppState.from_config(default_config()))
    for route in app.routes:
        if not isinstance(route, Route) or required_access(route.path) is Access.OPEN:
            continue
        path = re.sub(r"\{[^}]+\}", "x", route.path)
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                yield method, path


ROUTES = list(_routes())


def _assert_refused(response: httpx2.Response, path: str, *tokens: str) -> None:
    assert response.status_code == 401, (path, response.text)
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    if path.startswith("/v1/messages"):
        assert body["type"] == "error"
        assert body["error"]["type"] == "authentication_error"
    else:
        assert body["error"]["code"] == "invalid_api_key"
        assert body["error"]["type"] == "authentication_error"
    for token in tokens:
        assert token not in response.text
        assert token not in str(response.headers)


def test_route_list_covers_v1_console_and_metrics() -> None:
    paths = {path for _, path in ROUTES}
    assert {"/v1/chat/completions", "/v1/messages", "/console/v1/whoami", "/metrics"} <= paths


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_refuses_missing_wrong_and_wrong_kind_tokens(
    daemon: RunningDaemon, method: str, path: str
) -> None:
    url = f"{daemon.url}{path}"
    wrong = generate_token(TokenKind.CLIENT)
    _assert_refused(httpx2.request(method, url), path)
    _assert_refused(
        httpx2.request(method, url, headers={"authorization": f"Bearer {wrong}"}), path, wrong
    )
    access = required_access(path).value
    if access == "client":
        refused = daemon.admin_token
    elif access == "admin":
        refused = daemon.client_token
    else:
        return
    response = httpx2.request(method, url, headers={"authorization": f"Bearer {refused}"})
    _assert_refused(response, path, refused)


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_the_right_token_gets_past_the_guard(daemon: RunningDaemon, method: str, path: str) -> None:
    headers = daemon.admin_headers if path.startswith("/console") else daemon.headers
    response = httpx2.request(method, f"{daemon.url}{path}", headers=headers)
    assert response.status_code != 401


def test_open_paths_need_no_token(daemon: RunningDaemon) -> None:
    assert httpx2.get(f"{daemon.url}/healthz").status_code == 200
    callback = httpx2.get(f"{daemon.url}{OPENAI_OAUTH_CALLBACK_PATH}")
    assert callback.status_code != 401


def test_whoami_names_the_admin_principal(daemon: RunningDaemon) -> None:
    response = httpx2.get(f"{daemon.url}/console/v1/whoami", headers=daemon.admin_headers)
    assert response.json() == {
        "kind": "admin",
        "source": "config",
        "token_id": None,
        "name": None,
        "agent": None,
    }
    assert daemon.admin_token not in response.text


def test_x_api_key_is_accepted_only_on_anthropic_routes(daemon: RunningDaemon) -> None:
    claude = anthropic.Anthropic(base_url=daemon.url, api_key=daemon.client_token, max_retries=0)
    message = claude.messages.create(
        model="default", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].text == "You said: hi"  # type: ignore[union-attr]
    key = {"x-api-key": daemon.client_token}
    response = httpx2.post(f"{daemon.url}/v1/chat/completions", json=CHAT, headers=key)
    _assert_refused(response, "/v1/chat/completions", daemon.client_token)
    admin_key = {"x-api-key": daemon.admin_token}
    response = httpx2.post(f"{daemon.url}/v1/messages", json=CHAT, headers=admin_key)
    _assert_refused(response, "/v1/messages", daemon.admin_token)


def test_sdks_see_authentication_errors(daemon: RunningDaemon) -> None:
    bad = openai.OpenAI(base_url=f"{daemon.url}/v1", api_key="plk_wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    claude = anthropic.Anthropic(base_url=daemon.url, api_key="plk_wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        claude.messages.create(model="default", max_tokens=5, messages=CHAT["messages"])


def _token_db(tmp_path: Path) -> tuple[str, dict[str, str]]:
    """A SQLite file with an active, a revoked and an expired client token, plus an admin one."""
    url = f"sqlite+aiosqlite:///{tmp_path}/palyra.db"

    async def make() -> dict[str, str]:
        store = await open_store(url, migrations=(TOKENS_SCHEMA,))
        try:
            tokens = TokenStore(store)
            active, _ = await tokens.create(TokenKind.CLIENT, name="ci")
            admin, _ = await tokens.create(TokenKind.ADMIN, name="ops")
            revoked, record = await tokens.create(TokenKind.CLIENT)
            await tokens.revoke(record.id)
            past = TokenStore(store, clock=lambda: time.time() - 3600)
            expired, _ = await past.create(TokenKind.CLIENT, expires_in_s=60)
            return {"active": active, "admin": admin, "revoked": revoked, "expired": expired}
        finally:
            await store.aclose()

    return url, asyncio.run(make())


def test_stored_tokens_work_and_revoked_or_expired_ones_do_not(
    start_daemon: StartDaemon, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, tokens = _token_db(tmp_path)
    caplog.set_level(logging.DEBUG)
    running = start_daemon(
        AppState.from_config(default_config()), auth=Authenticator(store_url=url)
    )
    models = f"{running.url}/v1/models"
    ok = httpx2.get(models, headers={"authorization": f"Bearer {tokens['active']}"})
    assert ok.status_code == 200
    for name in ("revoked", "expired", "admin"):
        response = httpx2.get(models, headers={"authorization": f"Bearer {tokens[name]}"})
        _assert_refused(response, "/v1/models", tokens[name])
    who = httpx2.get(
        f"{running.url}/console/v1/whoami", headers={"authorization": f"Bearer {tokens['admin']}"}
    )
    assert who.json()["name"] == "ops" and who.json()["token_id"].startswith("tok_")
    for secret in tokens.values():
        assert secret not in caplog.text
    raw = (tmp_path / "palyra.db").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("palyra.db-*")
    )
    for secret in tokens.values():
        assert secret.encode() not in raw
        assert secret[4:].encode() not in raw


def test_client_tokens_from_env_and_file_refs_are_accepted(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text("from-a-file-0123456789\n")
    secret_file.chmod(0o600)
    refs = ["env:PALYRA_TEST_CLIENT_TOKEN", f"file:{secret_file}"]
    fixed = asyncio.run(
        resolve_client_tokens(
            refs,
            state_dir=tmp_path,
            store_url="sqlite+aiosqlite:///{state_dir}/palyra.db",
            environ={"PALYRA_TEST_CLIENT_TOKEN": "from-the-env-0123456789"},
        )
    )
    assert set(fixed.values()) == {TokenKind.CLIENT}
    running = start_daemon(
        AppState.from_config(default_config()), auth=Authenticator(fixed_tokens=fixed)
    )
    for token in ("from-the-env-0123456789", "from-a-file-0123456789"):
        client = openai.OpenAI(base_url=f"{running.url}/v1", api_key=token, max_retries=0)
        assert [m.id for m in client.models.list()][:1] == ["default"]
        console = httpx2.get(
            f"{running.url}/console/v1/whoami", headers={"authorization": f"Bearer {token}"}
        )
        assert console.status_code == 401


def test_unresolvable_client_token_ref_is_a_config_error_naming_it(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.write_text("x")
    loose.chmod(0o644)
    for ref, expected in [
        ("env:PALYRA_NOT_SET_ANYWHERE", "PALYRA_NOT_SET_ANYWHERE is not set"),
        (f"file:{loose}", "chmod 600"),
    ]:
        with pytest.raises(Exception, match=re.escape(expected)) as info:
            asyncio.run(
                resolve_client_tokens([ref], state_dir=tmp_path, store_url="unused", environ={})
            )
        assert "[daemon] client_tokens" in str(info.value)


def _with_daemon(**daemon: object) -> AppState:
    config = default_config()
    config = config.model_copy(update={"daemon": DaemonConfig(**daemon)})
    return AppState.from_config(config)


def test_body_over_the_limit_is_413_declared_or_streamed(start_daemon: StartDaemon) -> None:
    running = start_daemon(_with_daemon(max_body_bytes=2048))
    big = b'{"model":"default","messages":[{"role":"user","content":"' + b"x" * 4000 + b'"}]}'
    declared = httpx2.post(
        f"{running.url}/v1/chat/completions",
        content=big,
        headers=running.headers | {"content-type": "application/json"},
    )
    assert declared.status_code == 413
    assert "max_body_bytes" in declared.json()["error"]["message"]

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 512):
            yield big[start : start + 512]

    for path in ("/v1/chat/completions", "/v1/messages"):
        streamed = httpx2.post(
            f"{running.url}{path}",
            content=chunks(),
            headers=running.headers | {"content-type": "application/json"},
        )
        assert streamed.status_code == 413, streamed.text
        assert "max_body_bytes" in streamed.text
    anthropic_shape = httpx2.post(
        f"{running.url}/v1/messages",
        content=big,
        headers=running.headers | {"content-type": "application/json"},
    )
    assert anthropic_shape.json()["error"]["type"] == "request_too_large"
    files = {"file": ("a.wav", b"\0" * 4000, "audio/wav")}
    form = httpx2.post(
        f"{running.url}/v1/audio/transcriptions",
        data={"model": "whisper"},
        files=files,
        headers=running.headers,
    )
    assert form.status_code == 413


def test_no_cors_headers_unless_origins_are_configured(start_daemon: StartDaemon) -> None:
    plain = start_daemon(AppState.from_config(default_config()))
    origin = {"origin": "https://app.example"}
    response = httpx2.get(f"{plain.url}/v1/models", headers=plain.headers | origin)
    assert "access-control-allow-origin" not in response.headers
    preflight = httpx2.options(
        f"{plain.url}/v1/models",
        headers=origin | {"access-control-request-method": "GET"},
    )
    assert "access-control-allow-origin" not in preflight.headers

    allowed = start_daemon(_with_daemon(cors_origins=["https://app.example"]))
    response = httpx2.get(f"{allowed.url}/v1/models", headers=allowed.headers | origin)
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    assert "x-palyra-request-id" in response.headers["access-control-expose-headers"]
    preflight = httpx2.options(
        f"{allowed.url}/v1/chat/completions",
        headers=origin
        | {
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization,content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    other = httpx2.get(
        f"{allowed.url}/v1/models", headers=allowed.headers | {"origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in other.headers
