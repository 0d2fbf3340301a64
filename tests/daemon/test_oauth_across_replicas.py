"""A sign-in started on one daemon completes on another: two daemons (own engines, vault
objects and console services, one store and master key) against the authlib server; the
callback lands on the replica that did not start it, as behind a load balancer."""

from __future__ import annotations

import base64
import os
import sys
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

sys.path.append(str(Path(__file__).resolve().parents[1] / "auth"))
from oauth_server import OAuthTestServer, serving

# Fixture types from tests/daemon/conftest.py (not importable without a tests package).
StartDaemon = Any
C = "/console/v1"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/shared.db"
    url: str = request.getfixturevalue("postgres_database")
    return url


async def test_an_attempt_started_on_one_replica_completes_on_another(
    start_daemon: StartDaemon,
    shared_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PALYRA_VAULT_KEY", base64.b64encode(os.urandom(32)).decode())
    admin = generate_token(TokenKind.ADMIN)
    config = default_config().model_copy(update={"storage": StorageConfig(url=shared_url)})
    daemons = []
    for name in ("a", "b"):
        states = tmp_path / name
        states.mkdir(mode=0o700)
        state = AppState.from_config(config)
        state.state_dir = states
        auth = Authenticator(
            store_url=shared_url, state_dir=states, fixed_tokens={admin: TokenKind.ADMIN}
        )
        daemons.append(start_daemon(state, auth=auth))
    a, b = daemons
    headers = {"authorization": f"Bearer {admin}"}
    with serving() as server:
        await _sign_in_across(server, a.url, b.url, headers)


async def _sign_in_across(
    server: OAuthTestServer, a_url: str, b_url: str, headers: dict[str, str]
) -> None:
    body = {
        "profile_id": "openai-work",
        "issuer": server.base_url,
        "client_id": server.client_id,
        "validate_url": server.api_base_url,
    }
    async with (
        httpx2.AsyncClient(base_url=a_url, timeout=15) as on_a,
        httpx2.AsyncClient(base_url=b_url, timeout=15) as on_b,
    ):
        started = await on_a.post(
            f"{C}/auth/providers/openai/oauth/start", json=body, headers=headers
        )
        assert started.status_code == 201, started.text
        payload = started.json()
        server.redirect_uris.add(payload["redirect_uri"])
        authorize = await on_a.get(payload["authorization_url"])
        assert authorize.status_code == 302, authorize.text
        query = dict(parse_qsl(urlsplit(authorize.headers["location"]).query))
        # The browser's cookie from replica a, its callback delivered to replica b.
        on_b.cookies.update(on_a.cookies)
        page = await on_b.get(OPENAI_OAUTH_CALLBACK_PATH, params=query)
        assert page.status_code == 200, page.text
        assert "OpenAI Connected" in page.text
        assert server.code_grants == 1

        status = await on_a.get(
            f"{C}/auth/providers/openai/oauth/{payload['attempt_id']}", headers=headers
        )
        assert status.json()["status"] == "succeeded"
        # The same callback replayed on a is refused: the code was exchanged once.
        replay = await on_a.get(OPENAI_OAUTH_CALLBACK_PATH, params=query)
        assert replay.status_code != 200
        assert server.code_grants == 1
        for client in (on_a, on_b):
            profile = await client.get(f"{C}/auth/profiles/openai-work", headers=headers)
            assert profile.json()["credential"]["kind"] == "oauth"
        # A refresh on b is what a sees next.
        refreshed = await on_b.post(f"{C}/auth/profiles/openai-work/refresh", headers=headers)
        assert refreshed.status_code == 200 and refreshed.json()["result"] == "refreshed"
        seen_on_a = await on_a.get(f"{C}/auth/profiles/openai-work", headers=headers)
        assert (
            seen_on_a.json()
            == (await on_b.get(f"{C}/auth/profiles/openai-work", headers=headers)).json()
        )
        assert server.refresh_grants == 1
