"""OAuth refresh against the real authlib server: due-ness, single-flight under a 50-caller
race, rotation, invalid_grant, backoff, the sibling-rotation race and the background loop."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import httpx2
import pytest
from oauth_server import Env, OAuthTestServer, oauth_env, serving

from conftest import StoreTarget
from palyra.auth import AuthProfileRegistry, OAuthRefs, ProfileHealth, secret_ref
from palyra.auth.oauth_tokens import OAuthTokenError, refresh_access_token
from palyra.auth.refresh import (
    InProcessRefreshLock,
    OAuthRefresher,
    RefreshResult,
    refresh_openai_profile,
)
from palyra.model import FailureClass, PalyraError
from palyra.store import Store, open_store
from palyra.vault import KeyResolver, Vault

PID = "openai-oauth"
ACCESS = secret_ref(PID, "access_token")
REFRESH = secret_ref(PID, "refresh_token")
VAULT_KEY = base64.b64encode(b"refresh-tests-vault-key-32bytes!").decode()


@pytest.fixture
def oauth_server() -> Iterator[OAuthTestServer]:
    with serving() as state:
        yield state


@pytest.fixture
async def env(oauth_server: OAuthTestServer, store: Store, tmp_path: Path) -> AsyncIterator[Env]:
    async with oauth_env(oauth_server, store, tmp_path, vault_key=VAULT_KEY) as opened:
        await opened.sign_in(PID)
        opened.server.token_hits = 0
        yield opened


async def _refresh(env: Env, **kwargs: object) -> object:
    return await refresh_openai_profile(
        env.registry, env.vault, PID, client=env.client, clock=env.clock, **kwargs
    )


async def _works_at_model_api(env: Env, token: str) -> bool:
    response = await env.client.get(
        env.server.api_base_url + "/models", headers={"Authorization": f"Bearer {token}"}
    )
    return response.status_code == 200


async def test_a_token_far_from_expiry_is_not_refreshed(env: Env) -> None:
    outcome = await _refresh(env)
    assert outcome.result is RefreshResult.NOT_DUE  # type: ignore[attr-defined]
    assert env.server.token_hits == 0


async def test_a_token_within_five_minutes_of_expiry_is_refreshed(env: Env) -> None:
    old_access = await env.vault.get(ACCESS)
    env.clock.now += 3600 - 299
    outcome = await _refresh(env)
    assert outcome.result is RefreshResult.REFRESHED  # type: ignore[attr-defined]
    assert env.server.refresh_grants == 1
    new_access = await env.vault.get(ACCESS)
    assert new_access != old_access and await _works_at_model_api(env, new_access)
    record = await env.registry.get(PID)
    assert isinstance(record.credential, OAuthRefs)
    assert record.credential.expires_at is not None
    assert record.credential.expires_at.timestamp() == env.clock.now + 3600
    assert record.health is ProfileHealth.OK


async def test_fifty_callers_of_an_expired_token_cause_one_refresh(env: Env) -> None:
    env.server.token_delay_s = 0.05
    old_access = await env.vault.get(ACCESS)
    env.clock.now += 7200
    refresher = OAuthRefresher(env.registry, env.vault, client=env.client, clock=env.clock)

    tokens = await asyncio.gather(*(refresher.access_token(PID) for _ in range(50)))

    assert env.server.token_hits == 1
    assert env.server.invalid_grants == 0
    assert len(set(tokens)) == 1 and tokens[0] != old_access
    assert tokens[0] == await env.vault.get(ACCESS)
    assert await _works_at_model_api(env, tokens[0])


async def test_two_refreshers_sharing_a_lock_refresh_once(env: Env) -> None:
    env.server.token_delay_s = 0.05
    env.clock.now += 7200
    lock = InProcessRefreshLock()
    pair = [
        OAuthRefresher(env.registry, env.vault, client=env.client, clock=env.clock, lock=lock)
        for _ in range(2)
    ]
    tokens = await asyncio.gather(*(r.access_token(PID) for r in pair for _ in range(10)))
    assert env.server.token_hits == 1 and len(set(tokens)) == 1


async def test_refreshers_on_separate_stores_like_replicas_refresh_once(
    env: Env, store_target: StoreTarget, tmp_path: Path
) -> None:
    """Three refreshers, each on a store (engine, pool) of its own as replicas have, sharing
    nothing in memory: the store's lock lets one refresh, the others use its token."""
    env.server.token_delay_s = 0.3
    env.clock.now += 7200
    old_access = await env.vault.get(ACCESS)
    stores = [await open_store(store_target.url, schema=store_target.schema) for _ in range(3)]
    try:
        refreshers = []
        for replica in stores:
            keys = KeyResolver(state_dir=tmp_path, environ={"PALYRA_VAULT_KEY": VAULT_KEY})
            vault = await Vault.open(replica, keys, clock=env.clock)
            registry = AuthProfileRegistry(replica, vault, env.clock)
            refreshers.append(OAuthRefresher(registry, vault, client=env.client, clock=env.clock))
        tokens = await asyncio.gather(*(r.access_token(PID) for r in refreshers))
    finally:
        for replica in stores:
            await replica.aclose()
    assert env.server.refresh_grants == 1 and env.server.invalid_grants == 0
    assert len(set(tokens)) == 1 and tokens[0] != old_access
    assert tokens[0] == await env.vault.get(ACCESS)


async def test_rotated_refresh_token_is_stored_and_the_old_one_is_dead(env: Env) -> None:
    old_refresh = await env.vault.get(REFRESH)
    await _refresh(env, force=True)
    new_refresh = await env.vault.get(REFRESH)
    assert new_refresh != old_refresh
    assert new_refresh in env.server.issued_refresh_tokens()
    with pytest.raises(OAuthTokenError) as info:
        await refresh_access_token(
            env.client,
            token_endpoint=env.server.token_url,
            client_id=env.server.client_id,
            refresh_token=old_refresh,
        )
    assert info.value.category == "invalid_grant"


async def test_invalid_grant_marks_the_profile_needs_reauth(env: Env) -> None:
    refresh = await env.vault.get(REFRESH)
    env.server.tokens_by_refresh[refresh].revoked = True
    with pytest.raises(PalyraError) as info:
        await _refresh(env, force=True)
    assert info.value.failure_class is FailureClass.AUTH_INVALID
    assert "palyra auth openai login" in str(info.value)
    record = await env.registry.get(PID)
    assert record.health is ProfileHealth.NEEDS_REAUTH
    assert record.last_error_category == "refresh:auth_invalid"
    hits = env.server.token_hits
    with pytest.raises(PalyraError, match="needs a new sign-in"):
        await _refresh(env, force=True)
    assert env.server.token_hits == hits


async def test_failed_refreshes_back_off_exponentially(env: Env) -> None:
    env.server.fail_token_status = 503
    start = env.clock.now
    with pytest.raises(PalyraError):
        await _refresh(env, force=True)
    record = await env.registry.get(PID)
    assert record.health is ProfileHealth.COOLING_DOWN
    assert record.last_error_category == "refresh:upstream_unavailable"
    assert record.cooling_down_until is not None
    assert record.cooling_down_until.timestamp() == start + 15

    hits = env.server.token_hits
    with pytest.raises(PalyraError, match="backing off") as info:
        await _refresh(env, force=True)
    assert info.value.envelope.retry_after_s == 16.0
    assert env.server.token_hits == hits

    env.clock.now += 16
    with pytest.raises(PalyraError):
        await _refresh(env, force=True)
    record = await env.registry.get(PID)
    assert record.cooling_down_until is not None
    assert record.cooling_down_until.timestamp() == env.clock.now + 30

    env.server.fail_token_status = None
    env.clock.now += 31
    await _refresh(env, force=True)
    record = await env.registry.get(PID)
    assert record.health is ProfileHealth.OK and record.failure_count == 0
    assert record.last_error_category is None


async def test_invalid_grant_after_a_sibling_rotated_uses_the_siblings_token(
    env: Env,
) -> None:
    """Another replica (no shared lock) rotates the refresh token while this refresh is on its
    way; the server then refuses the old token, and the sibling's result is used."""
    env.server.reuse_detection = False
    sibling_ran = False

    async def sibling_first(request: httpx2.Request) -> httpx2.Response:
        nonlocal sibling_ran
        if not sibling_ran and request.url.path == "/oauth/token":
            sibling_ran = True
            await _refresh(env, force=True, lock=InProcessRefreshLock())
        async with httpx2.AsyncClient() as plain:
            return await plain.send(request)

    racing = httpx2.AsyncClient(transport=httpx2.MockTransport(sibling_first))
    outcome = await refresh_openai_profile(
        env.registry, env.vault, PID, client=racing, clock=env.clock, force=True
    )
    await racing.aclose()
    assert outcome.result is RefreshResult.ROTATED_ELSEWHERE
    assert env.server.invalid_grants == 1 and env.server.refresh_grants == 1
    record = await env.registry.get(PID)
    assert record.health is ProfileHealth.OK
    assert await _works_at_model_api(env, await env.vault.get(ACCESS))


async def test_background_loop_refreshes_due_profiles_until_cancelled(env: Env) -> None:
    passes = 0

    async def sleep(seconds: float) -> None:
        nonlocal passes
        assert seconds == 60
        passes += 1
        if passes == 1:
            env.clock.now += 3600 - 120  # now due
        if passes == 3:
            raise asyncio.CancelledError

    refresher = OAuthRefresher(
        env.registry, env.vault, client=env.client, clock=env.clock, sleep=sleep
    )
    with pytest.raises(asyncio.CancelledError):
        await refresher.run_background(60)
    assert passes == 3
    assert env.server.refresh_grants == 1
    record = await env.registry.get(PID)
    assert isinstance(record.credential, OAuthRefs)
    assert record.credential.expires_at is not None
    assert record.credential.expires_at - timedelta(seconds=3600) <= record.updated_at


async def test_background_pass_skips_profiles_that_need_reauth(env: Env) -> None:
    env.server.tokens_by_refresh[await env.vault.get(REFRESH)].revoked = True
    env.clock.now += 7200
    refresher = OAuthRefresher(env.registry, env.vault, client=env.client, clock=env.clock)
    assert await refresher.refresh_due() == []
    assert (await env.registry.get(PID)).health is ProfileHealth.NEEDS_REAUTH
    hits = env.server.token_hits
    assert await refresher.refresh_due() == []
    assert env.server.token_hits == hits


async def test_refresh_never_logs_or_raises_a_token(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    await _refresh(env, force=True)
    env.server.fail_token_status = 500
    env.clock.now += 3600
    for _ in range(2):
        try:
            await _refresh(env, force=True)
        except PalyraError as exc:
            errors.append(repr(exc) + str(exc) + exc.envelope.model_dump_json())
    secrets = env.server.issued_access_tokens() + env.server.issued_refresh_tokens()
    logs = [
        r.getMessage() for r in caplog.records if not r.name.startswith(("authlib", "werkzeug"))
    ]
    shown = "\n".join(logs + errors)
    assert errors and secrets
    assert not [s for s in secrets if s in shown]
