"""The whole OpenAI PKCE sign-in against a real authlib authorization server on loopback."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx2
import pytest
import sqlalchemy as sa
from oauth_server import (
    REDIRECT_URI,
    SESSION,
    Env,
    OAuthTestServer,
    browse,
    oauth_env,
    serving,
)

from palyra.auth import OAuthRefs, secret_ref
from palyra.auth.oauth import (
    OPENAI_OAUTH_CALLBACK_PATH,
    complete_openai_oauth_callback,
    oauth_attempt_status,
    start_openai_oauth_attempt,
)
from palyra.auth.oauth_attempts import AttemptStatus, oauth_attempts
from palyra.auth.oauth_config import OpenAIOAuthConfig
from palyra.auth.pkce import digest, open_verifier, pkce_challenge
from palyra.model import PalyraError
from palyra.providers.upstream.guard import GuardedTransport
from palyra.store import Store
from palyra.vault import SecretNotFound


@pytest.fixture
def oauth_server() -> Iterator[OAuthTestServer]:
    with serving() as state:
        yield state


@pytest.fixture
async def env(oauth_server: OAuthTestServer, store: Store, tmp_path: Path) -> AsyncIterator[Env]:
    async with oauth_env(oauth_server, store, tmp_path) as opened:
        yield opened


async def _attempt_row(store: Store, attempt_id: str) -> dict[str, object]:
    async with store.connect() as conn:
        row = (
            await conn.execute(
                sa.select(oauth_attempts).where(oauth_attempts.c.attempt_id == attempt_id)
            )
        ).one()
    return dict(row._mapping)


async def test_sign_in_persists_a_profile_with_tokens_in_the_vault(env: Env) -> None:
    attempt_id, url = await env.start(profile_id="openai-work")
    params = dict(parse_qsl(urlsplit(url).query))
    assert url.startswith(env.config.authorization_endpoint + "?")
    assert params["response_type"] == "code"
    assert params["client_id"] == env.server.client_id
    assert params["redirect_uri"] == REDIRECT_URI
    assert params["scope"] == "openid profile email offline_access"
    assert params["code_challenge_method"] == "S256"
    assert len(params["state"]) >= 22 and params["state"] != attempt_id
    row = await _attempt_row(env.store, attempt_id)
    assert params["state"] not in row.values()
    assert row["state_hash"] == digest(params["state"])
    # The verifier is stored sealed: only the state the browser brings back opens it.
    sealed = row["code_verifier"]
    assert sealed.startswith("v1.")
    verifier = open_verifier(sealed, params["state"])
    assert pkce_challenge(verifier) == params["code_challenge"]
    assert verifier not in sealed and verifier not in row.values()

    result = await env.callback(await browse(env.client, url))

    assert result.succeeded and result.http_status == 200
    assert result.profile_id == "openai-work"
    record = await env.registry.get("openai-work")
    assert isinstance(record.credential, OAuthRefs)
    assert record.credential.email == "ada@example.test"
    assert record.credential.account_id == "acct-42"
    assert record.credential.token_endpoint == env.server.token_url
    assert record.credential.expires_at is not None
    assert record.credential.expires_at.timestamp() == env.clock.now + 3600
    access = await env.vault.get(secret_ref("openai-work", "access_token"))
    refresh = await env.vault.get(secret_ref("openai-work", "refresh_token"))
    assert access in env.server.issued_access_tokens()
    assert refresh in env.server.issued_refresh_tokens()
    assert (await _attempt_row(env.store, attempt_id))["code_verifier"] == ""
    status = await oauth_attempt_status(env.store, attempt_id, SESSION, clock=env.clock)
    assert status.status is AttemptStatus.SUCCEEDED
    assert status.profile_id == "openai-work"


async def test_callback_path_is_the_console_route() -> None:
    assert OPENAI_OAUTH_CALLBACK_PATH == "/console/v1/auth/providers/openai/callback"


async def test_unknown_state_is_refused_and_the_attempt_stays_pending(env: Env) -> None:
    attempt_id, url = await env.start()
    query = await browse(env.client, url)
    result = await env.callback({**query, "state": "forged-state"})
    assert not result.succeeded and result.http_status == 400
    assert "state" in result.message
    assert env.server.token_hits == 0
    assert (await _attempt_row(env.store, attempt_id))["status"] == "pending"
    assert (await env.callback(query)).succeeded


async def test_replayed_callback_is_refused_and_changes_nothing(env: Env) -> None:
    _, url = await env.start()
    query = await browse(env.client, url)
    assert (await env.callback(query)).succeeded
    before = await env.registry.get("openai-oauth")
    access = await env.vault.get(before.credential.refs()[0])

    replay = await env.callback(query)

    assert not replay.succeeded and replay.http_status == 409
    assert "already used" in replay.message
    assert env.server.token_hits == 1
    after = await env.registry.get("openai-oauth")
    assert after.version == before.version
    assert await env.vault.get(after.credential.refs()[0]) == access


async def test_callback_from_another_session_is_refused(env: Env) -> None:
    attempt_id, url = await env.start()
    query = await browse(env.client, url)
    for session in ("someone-else", None):
        result = await env.callback(query, session=session)
        assert result.http_status == 403
    assert (await _attempt_row(env.store, attempt_id))["status"] == "pending"
    with pytest.raises(PalyraError, match="no OpenAI sign-in attempt"):
        await oauth_attempt_status(env.store, attempt_id, "someone-else", clock=env.clock)


async def test_expired_attempt_fails_without_an_exchange(env: Env) -> None:
    attempt_id, url = await env.start()
    query = await browse(env.client, url)
    env.clock.now += 601
    result = await env.callback(query)
    assert result.http_status == 410 and "expired" in result.message
    assert env.server.token_hits == 0
    status = await oauth_attempt_status(env.store, attempt_id, SESSION, clock=env.clock)
    assert status.status is AttemptStatus.FAILED


async def test_polling_fails_a_pending_attempt_after_ten_minutes(env: Env) -> None:
    attempt_id, _ = await env.start()
    view = await oauth_attempt_status(env.store, attempt_id, SESSION, clock=env.clock)
    assert view.status is AttemptStatus.PENDING and view.expires_at == env.clock.now + 600
    env.clock.now += 600
    view = await oauth_attempt_status(env.store, attempt_id, SESSION, clock=env.clock)
    assert view.status is AttemptStatus.FAILED and "expired" in view.message


async def test_access_denied_fails_the_attempt_with_a_clear_message(env: Env) -> None:
    attempt_id, url = await env.start()
    query = await browse(env.client, url)
    result = await env.callback(
        {"state": query["state"], "error": "access_denied", "error_description": "<b>no</b>"}
    )
    assert not result.succeeded
    assert "denied" in result.message and "<b>" not in result.html
    assert env.server.token_hits == 0
    view = await oauth_attempt_status(env.store, attempt_id, SESSION, clock=env.clock)
    assert view.status is AttemptStatus.FAILED
    assert (await env.callback(query)).http_status == 409


async def test_callback_without_code_keeps_the_attempt_pending(env: Env) -> None:
    attempt_id, url = await env.start()
    query = await browse(env.client, url)
    result = await env.callback({"state": query["state"]})
    assert result.http_status == 400 and "authorization code" in result.message
    assert (await _attempt_row(env.store, attempt_id))["status"] == "pending"


async def _assert_nothing_saved(env: Env, attempt_id: str) -> None:
    assert await env.registry.find("openai-oauth") is None
    with pytest.raises(SecretNotFound):
        await env.vault.get(secret_ref("openai-oauth", "refresh_token"))
    view = await oauth_attempt_status(env.store, attempt_id, SESSION, clock=env.clock)
    assert view.status is AttemptStatus.FAILED


async def test_token_response_without_refresh_token_fails_clearly(env: Env) -> None:
    env.server.omit_refresh_token = True
    attempt_id, url = await env.start()
    result = await env.callback(await browse(env.client, url))
    assert not result.succeeded
    assert "no refresh_token" in result.message and "offline_access" in result.message
    await _assert_nothing_saved(env, attempt_id)


async def test_token_endpoint_5xx_fails_the_attempt(env: Env) -> None:
    env.server.fail_token_status = 503
    attempt_id, url = await env.start()
    result = await env.callback(await browse(env.client, url))
    assert result.http_status == 502
    assert "HTTP 503" in result.message
    await _assert_nothing_saved(env, attempt_id)


async def test_wrong_verifier_is_rejected_by_the_server(env: Env) -> None:
    attempt_id, url = await env.start()
    async with env.store.begin() as conn:
        await conn.execute(
            sa.update(oauth_attempts)
            .where(oauth_attempts.c.attempt_id == attempt_id)
            .values(code_verifier="x" * 43)
        )
    result = await env.callback(await browse(env.client, url))
    assert not result.succeeded
    assert "invalid_grant" in result.message
    assert env.server.invalid_grants == 1
    await _assert_nothing_saved(env, attempt_id)


async def test_token_the_model_api_refuses_is_not_saved(env: Env) -> None:
    config = OpenAIOAuthConfig.for_issuer(
        env.server.base_url,
        client_id=env.server.client_id,
        validation_base_url=env.server.base_url + "/nowhere",
    )
    started = await start_openai_oauth_attempt(
        env.store, redirect_uri=REDIRECT_URI, session_id=SESSION, config=config, clock=env.clock
    )
    result = await env.callback(await browse(env.client, started.authorization_url))
    assert not result.succeeded and "HTTP 404" in result.message
    await _assert_nothing_saved(env, started.attempt_id)


async def test_signing_in_again_replaces_the_tokens_of_the_same_profile(env: Env) -> None:
    for _ in range(2):
        _, url = await env.start()
        assert (await env.callback(await browse(env.client, url))).succeeded
    record = await env.registry.get("openai-oauth")
    assert record.version == 2
    access = await env.vault.get(secret_ref("openai-oauth", "access_token"))
    assert access == env.server.issued_access_tokens()[-1]


async def test_no_token_or_state_reaches_logs_or_errors(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    # The test's "browser" (not Palyra) is outside the capture: its own client logs URLs.
    with caplog.at_level(logging.DEBUG):
        _, url = await env.start()
    query = await browse(env.client, url)
    with caplog.at_level(logging.DEBUG):
        results = [await env.callback(query), await env.callback(query)]
        env.server.fail_token_status = 500
        _, url2 = await env.start()
    query2 = await browse(env.client, url2)
    with caplog.at_level(logging.DEBUG):
        results.append(await env.callback(query2))
    secrets = [
        *env.server.issued_access_tokens(),
        *env.server.issued_refresh_tokens(),
        query["code"],
        query["state"],
        query2["code"],
        query2["state"],
    ]
    # The authorization server runs in this process too; its own logs are not Palyra's.
    palyra_logs = [
        r.getMessage() for r in caplog.records if not r.name.startswith(("authlib", "werkzeug"))
    ]
    shown = "\n".join(palyra_logs) + "".join(r.message + r.html + repr(r) for r in results)
    record = await env.registry.get("openai-oauth")
    shown += repr(record) + str(record.public_dict())
    leaked = [line for line in shown.splitlines() for s in secrets if s in line]
    assert secrets and not leaked, leaked[:3]


async def test_a_validation_url_that_resolves_to_a_private_address_fails_with_fixed_words(
    env: Env,
) -> None:
    """The sign-in client's guard refuses the name after resolving it; the attempt's message
    then names neither the host nor the address (the console shows it to whoever polls)."""

    async def resolve(host: str, port: int) -> list[str]:
        return ["10.20.30.40"]

    config = OpenAIOAuthConfig.for_issuer(
        env.server.base_url,
        client_id=env.server.client_id,
        validation_base_url="https://models.internal.example/v1",
    )
    started = await start_openai_oauth_attempt(
        env.store, redirect_uri=REDIRECT_URI, session_id=SESSION, config=config, clock=env.clock
    )
    guarded = GuardedTransport(httpx2.AsyncHTTPTransport(), False, resolver=resolve)
    async with httpx2.AsyncClient(transport=guarded) as client:
        result = await complete_openai_oauth_callback(
            env.store,
            env.registry,
            env.vault,
            query=await browse(env.client, started.authorization_url),
            session_id=SESSION,
            client=client,
            clock=env.clock,
        )
    assert not result.succeeded and result.http_status == 400
    assert result.message == (
        "OpenAI sign-in failed: the token endpoint or validation URL is not a public address, "
        "so it was not contacted; nothing was saved, start again with a public issuer"
    )
    await _assert_nothing_saved(env, started.attempt_id)
