"""ProfileCredentialSource: what routing gets for a provider, and how reports change profiles."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from palyra.auth import (
    ApiKeyRefs,
    AuthProfileRecord,
    AuthProfileRegistry,
    OAuthRefs,
    ProfileHealth,
    secret_ref,
)
from palyra.auth.credentials import ProfileCredentialSource
from palyra.config.schema import ProviderConfig
from palyra.model import ErrorEnvelope, FailureClass, PalyraError
from palyra.model.context import Principal, RequestContext
from palyra.routing import ManualClock
from palyra.store import Store
from palyra.vault import KeyResolver, Vault, VaultRef


def for_agent(agent_id: str, profile: str | None = None) -> RequestContext:
    return RequestContext(Principal("local", "test"), agent_id=agent_id, auth_profile_id=profile)


class WallClock:
    t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def registry(store: Store, tmp_path: Path) -> AsyncIterator[AuthProfileRegistry]:
    """On SQLite and on PostgreSQL (conftest's ``store``)."""
    key = base64.b64encode(os.urandom(32)).decode()
    vault = await Vault.open(store, KeyResolver(tmp_path, environ={"PALYRA_VAULT_KEY": key}))
    yield AuthProfileRegistry(store, vault, WallClock())


async def add_key(
    registry: AuthProfileRegistry, pid: str, provider: str = "openai", scope: str = "global"
) -> None:
    now = registry.now()
    await registry.create(
        AuthProfileRecord(
            profile_id=pid,
            provider=provider,  # type: ignore[arg-type]
            display_name=pid,
            scope=scope,
            credential=ApiKeyRefs(api_key_ref=str(secret_ref(pid, "api_key"))),
            created_at=now,
            updated_at=now,
        )
    )
    await registry.vault.put(secret_ref(pid, "api_key"), f"key-of-{pid}")


async def add_oauth(registry: AuthProfileRegistry, pid: str, expires_in_s: float) -> None:
    now = registry.now()
    await registry.create(
        AuthProfileRecord(
            profile_id=pid,
            provider="openai",
            display_name=pid,
            credential=OAuthRefs(
                access_token_ref=str(secret_ref(pid, "access_token")),
                refresh_token_ref=str(secret_ref(pid, "refresh_token")),
                token_endpoint="https://auth.openai.com/oauth/token",
                expires_at=now + timedelta(seconds=expires_in_s),
            ),
            created_at=now,
            updated_at=now,
        )
    )
    await registry.vault.put(secret_ref(pid, "access_token"), f"stored-token-of-{pid}")
    await registry.vault.put(secret_ref(pid, "refresh_token"), f"refresh-of-{pid}")


def provider(**kw: object) -> ProviderConfig:
    return ProviderConfig(id="openai-main", kind="openai", **kw)  # type: ignore[arg-type]


async def test_named_profiles_in_config_order_skipping_unusable_ones(
    registry: AuthProfileRegistry,
) -> None:
    for pid in ("a", "b", "c"):
        await add_key(registry, pid)
    await registry.record_failure("b", ErrorEnvelope.of(FailureClass.QUOTA_EXHAUSTED, "x"))
    source = ProfileCredentialSource(registry)
    creds = await source.credentials_for(
        provider(auth_profile_id="c", auth_profile_ids=["b", "a"]),
    )
    assert [(c.profile_id, c.secret) for c in creds] == [("c", "key-of-c"), ("a", "key-of-a")]
    assert "key-of" not in repr(creds)


async def test_without_named_profiles_the_selection_order_is_used(
    registry: AuthProfileRegistry,
) -> None:
    await add_key(registry, "global-1")
    await add_key(registry, "ops-own", scope="agent:ops")
    await add_key(registry, "claude", provider="anthropic")
    source = ProfileCredentialSource(registry)
    for_ops = await source.credentials_for(provider(), context=for_agent("ops"))
    assert [c.profile_id for c in for_ops] == ["ops-own", "global-1"]
    assert [c.profile_id for c in await source.credentials_for(provider())] == ["global-1"]
    deterministic = ProviderConfig(id="d", kind="deterministic")
    assert await source.credentials_for(deterministic) == []


async def test_nothing_usable_is_a_config_error_listing_every_reason(
    registry: AuthProfileRegistry,
) -> None:
    await add_key(registry, "reauth")
    await add_key(registry, "claude", provider="anthropic")
    await add_key(registry, "dev-own", scope="agent:dev")
    for _ in range(2):
        await registry.record_failure("reauth", ErrorEnvelope.of(FailureClass.AUTH_INVALID, "x"))
    await registry.vault.delete(secret_ref("claude", "api_key"))
    source = ProfileCredentialSource(registry)
    config = provider(auth_profile_ids=["reauth", "claude", "dev-own", "ghost"])
    with pytest.raises(PalyraError) as caught:
        await source.credentials_for(config, context=for_agent("ops"))
    message = caught.value.envelope.message
    assert caught.value.failure_class is FailureClass.CONFIG
    assert message.startswith("provider 'openai-main' has no usable auth profile (reauth: needs")
    assert "claude: it is a anthropic profile, not openai" in message
    assert "dev-own: scoped to agent:dev, not usable for agent ops" in message
    assert "ghost: no such profile; create it with: palyra auth openai api-key --profile ghost" in (
        message
    )


async def test_api_key_reference_wins_and_is_resolved_per_call(
    registry: AuthProfileRegistry,
) -> None:
    source = ProfileCredentialSource(registry, environ={"OPENAI_KEY": "from-env"})
    creds = await source.credentials_for(provider(api_key="env:OPENAI_KEY"))
    assert [(c.profile_id, c.secret) for c in creds] == [(None, "from-env")]


async def test_expiring_oauth_profiles_are_refreshed_through_the_hook(
    registry: AuthProfileRegistry,
) -> None:
    await add_oauth(registry, "fresh", expires_in_s=3600)
    await add_oauth(registry, "soon", expires_in_s=60)
    refreshed: list[str] = []

    async def refresher(profile_id: str) -> str:
        refreshed.append(profile_id)
        return f"new-token-of-{profile_id}"

    source = ProfileCredentialSource(registry, refresher=refresher)
    creds = await source.credentials_for(
        provider(auth_profile_ids=["fresh", "soon"]),
    )
    assert [c.secret for c in creds] == ["stored-token-of-fresh", "new-token-of-soon"]
    assert refreshed == ["soon"]


async def test_a_failing_refresh_is_recorded_and_the_profile_skipped(
    registry: AuthProfileRegistry,
) -> None:
    await add_oauth(registry, "dead", expires_in_s=-5)
    await add_key(registry, "backup")

    async def refresher(profile_id: str) -> str:
        raise PalyraError.of(FailureClass.AUTH_INVALID, "invalid_grant")

    source = ProfileCredentialSource(registry, refresher=refresher)
    creds = await source.credentials_for(
        provider(auth_profile_ids=["dead", "backup"]),
    )
    assert [c.profile_id for c in creds] == ["backup"]
    dead = await registry.get("dead")
    assert (dead.health, dead.last_error_category) == (
        ProfileHealth.NEEDS_REAUTH,
        "refresh:auth_invalid",
    )
    no_hook = ProfileCredentialSource(registry)
    await registry.clear_cooldown("dead")
    with pytest.raises(PalyraError, match="no refresher is configured"):
        await no_hook.credentials_for(provider(auth_profile_id="dead"))


async def test_report_feeds_success_and_failure_and_never_raises(
    registry: AuthProfileRegistry,
) -> None:
    await add_key(registry, "p")
    source = ProfileCredentialSource(registry)
    await source.report("openai-main", "p", ErrorEnvelope.of(FailureClass.RATE_LIMITED, "slow"))
    assert (await registry.get("p")).health is ProfileHealth.COOLING_DOWN
    await source.report("openai-main", "p", None)
    assert (await registry.get("p")).health is ProfileHealth.OK
    await source.report("openai-main", None, None)
    await source.report("openai-main", "deleted", ErrorEnvelope.of(FailureClass.AUTH_INVALID, "x"))


async def test_api_key_reference_is_kept_for_the_ttl_then_read_again(
    registry: AuthProfileRegistry,
) -> None:
    env = {"OPENAI_KEY": "first"}
    clock = ManualClock()
    source = ProfileCredentialSource(registry, environ=env, clock=clock, cache_ttl_s=10)
    config = provider(api_key="env:OPENAI_KEY")
    assert [c.secret for c in await source.credentials_for(config)] == ["first"]
    env["OPENAI_KEY"] = "second"
    clock.advance(9.9)
    assert [c.secret for c in await source.credentials_for(config)] == ["first"]
    clock.advance(0.2)
    assert [c.secret for c in await source.credentials_for(config)] == ["second"]
    env["OPENAI_KEY"] = "third"
    clock.advance(9.9)  # the TTL counts from the last read
    assert [c.secret for c in await source.credentials_for(config)] == ["second"]


async def test_a_refused_api_key_is_read_again_at_once_and_other_failures_keep_it(
    registry: AuthProfileRegistry,
) -> None:
    env = {"A_KEY": "old-a", "B_KEY": "old-b"}
    source = ProfileCredentialSource(registry, environ=env, clock=ManualClock())
    a = ProviderConfig(id="a", kind="openai", api_key="env:A_KEY")
    b = ProviderConfig(id="b", kind="openai", api_key="env:B_KEY")

    async def secrets() -> list[str]:
        return [(await source.credentials_for(p))[0].secret for p in (a, b)]

    assert await secrets() == ["old-a", "old-b"]
    env.update(A_KEY="new-a", B_KEY="new-b")
    await source.report("a", None, ErrorEnvelope.of(FailureClass.RATE_LIMITED, "slow down"))
    await source.report("a", None, None)
    assert await secrets() == ["old-a", "old-b"]
    await source.report("a", None, ErrorEnvelope.of(FailureClass.AUTH_INVALID, "bad key"))
    assert await secrets() == ["new-a", "old-b"]
    env["B_KEY"] = "newer-b"
    await source.report("b", None, ErrorEnvelope.of(FailureClass.AUTH_EXPIRED, "expired"))
    assert await secrets() == ["new-a", "newer-b"]


async def test_a_failed_api_key_resolution_is_not_kept(registry: AuthProfileRegistry) -> None:
    env: dict[str, str] = {}
    source = ProfileCredentialSource(registry, environ=env, clock=ManualClock())
    config = provider(api_key="env:OPENAI_KEY")
    with pytest.raises(PalyraError, match="OPENAI_KEY"):
        await source.credentials_for(config)
    env["OPENAI_KEY"] = "set-now"
    assert [c.secret for c in await source.credentials_for(config)] == ["set-now"]


async def test_a_rotated_vault_api_key_is_picked_up_within_the_ttl(
    registry: AuthProfileRegistry,
) -> None:
    ref = VaultRef.parse("global/openai")
    await registry.vault.put(ref, "vault-one")
    clock = ManualClock()
    source = ProfileCredentialSource(registry, clock=clock, cache_ttl_s=30)
    config = provider(api_key="vault:global/openai")
    assert (await source.credentials_for(config))[0].secret == "vault-one"
    await registry.vault.put(ref, "vault-two")
    clock.advance(29)
    assert (await source.credentials_for(config))[0].secret == "vault-one"
    clock.advance(2)
    assert (await source.credentials_for(config))[0].secret == "vault-two"


async def test_a_context_profile_pins_the_credential_over_config_and_selection(
    registry: AuthProfileRegistry,
) -> None:
    for pid in ("a", "b"):
        await add_key(registry, pid)
    await add_key(registry, "ops-own", scope="agent:ops")
    await add_key(registry, "claude", provider="anthropic")
    source = ProfileCredentialSource(registry, environ={"OPENAI_KEY": "from-env"})
    named = provider(auth_profile_ids=["a", "b"])
    pinned = await source.credentials_for(named, context=for_agent("x", "b"))
    assert [(c.profile_id, c.secret) for c in pinned] == [("b", "key-of-b")]
    keyed = provider(api_key="env:OPENAI_KEY")
    pinned = await source.credentials_for(keyed, context=for_agent("ops", "ops-own"))
    assert [c.secret for c in pinned] == ["key-of-ops-own"]
    # A profile of another kind leaves this provider to its own credentials (failover targets).
    other = await source.credentials_for(named, context=for_agent("x", "claude"))
    assert [c.profile_id for c in other] == ["a", "b"]
    with pytest.raises(PalyraError) as caught:
        await source.credentials_for(named, context=for_agent("dev", "ops-own"))
    assert "ops-own (pinned by the request): scoped to agent:ops" in caught.value.envelope.message
    with pytest.raises(PalyraError) as caught:
        await source.credentials_for(named, context=for_agent("x", "ghost"))
    assert "ghost (pinned by the request): no such profile" in caught.value.envelope.message
