"""Credentials end to end: config refs resolved per call, and auth profiles rotated on 429."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from e2e_support import anthropic_provider, ask, openai_provider, two_model_config

from palyra.auth import ApiKeyRefs, AuthProfileRecord, AuthProfileRegistry, secret_ref
from palyra.auth.credentials import ProfileCredentialSource
from palyra.config.schema import ProviderConfig
from palyra.model import ErrorEnvelope, FailureClass, PalyraError
from palyra.model.context import Principal, RequestContext
from palyra.providers.base import Credential
from palyra.routing import ManualClock
from palyra.routing.assembly import build_runtime
from palyra.routing.config_credentials import ConfigCredentialSource, SecretCache
from palyra.store import open_store
from palyra.testing import FakeUpstream, Fault, FaultKind
from palyra.vault import KeyResolver, Vault, VaultRef

SECRET = "sk-never-shown-1234567890"
A1 = RequestContext(Principal("local", "test"), agent_id="a1")


def provider(api_key: str | None = "env:K", **extra: object) -> ProviderConfig:
    return ProviderConfig(id="p", kind="openai", api_key=api_key, **extra)  # type: ignore[arg-type]


@pytest.fixture
async def vault(tmp_path: Path) -> AsyncIterator[Vault]:
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path}/palyra.db")
    key = base64.b64encode(os.urandom(32)).decode()
    try:
        yield await Vault.open(store, KeyResolver(tmp_path, environ={"PALYRA_VAULT_KEY": key}))
    finally:
        await store.aclose()


async def test_env_key_is_cached_briefly_then_read_again() -> None:
    env = {"K": "first"}
    clock = ManualClock()
    source = ConfigCredentialSource(clock=clock, cache_ttl_s=10, environ=env)
    assert await source.credentials_for(provider()) == [Credential("first")]
    env["K"] = "second"
    clock.advance(9)
    assert (await source.credentials_for(provider()))[0].secret == "first"
    clock.advance(2)
    assert (await source.credentials_for(provider()))[0].secret == "second"


async def test_a_refused_key_is_forgotten_so_a_rotated_one_is_used_next() -> None:
    env = {"K": "old"}
    source = ConfigCredentialSource(clock=ManualClock(), environ=env)
    await source.credentials_for(provider())
    env["K"] = "new"
    await source.report("p", None, ErrorEnvelope.of(FailureClass.RATE_LIMITED, "slow down"))
    assert (await source.credentials_for(provider()))[0].secret == "old"
    await source.report("p", None, ErrorEnvelope.of(FailureClass.AUTH_INVALID, "bad key"))
    assert (await source.credentials_for(provider()))[0].secret == "new"


async def test_missing_env_var_is_a_config_error_naming_ref_and_provider() -> None:
    source = ConfigCredentialSource(environ={"OTHER": SECRET})
    with pytest.raises(PalyraError) as info:
        await source.credentials_for(provider("env:OPENAI_KEY"))
    message = info.value.envelope.message
    assert info.value.failure_class is FailureClass.CONFIG
    assert 'provider "p"' in message and "env:OPENAI_KEY" in message and "not set" in message
    assert SECRET not in message


async def test_vault_ref_reads_the_vault_and_a_missing_entry_names_the_fix(vault: Vault) -> None:
    await vault.put(VaultRef.parse("global/openai"), SECRET)
    source = ConfigCredentialSource(vault)
    found = await source.credentials_for(provider("vault:global/openai"))
    assert found == [Credential(SECRET)]
    assert SECRET not in repr(found) and SECRET not in repr(source)
    with pytest.raises(PalyraError) as info:
        await source.credentials_for(provider("vault:global/nope"))
    assert info.value.failure_class is FailureClass.CONFIG
    assert "palyra vault put global/nope" in info.value.envelope.message


async def test_vault_ref_without_an_open_vault_is_a_config_error() -> None:
    with pytest.raises(PalyraError) as info:
        await ConfigCredentialSource().credentials_for(provider("vault:global/x"))
    assert info.value.failure_class is FailureClass.CONFIG
    assert "vault:global/x" in info.value.envelope.message


async def test_without_any_key_public_kinds_fail_clearly_and_local_servers_go_keyless() -> None:
    source = ConfigCredentialSource(environ={})
    with pytest.raises(PalyraError) as info:
        await source.credentials_for(provider(None))
    assert "has no credential" in info.value.envelope.message
    local = ProviderConfig(id="ollama", kind="openai_compatible", base_url="http://127.0.0.1:1/v1")
    assert await source.credentials_for(local) == []
    with pytest.raises(PalyraError) as named:
        await source.credentials_for(provider(None, auth_profile_id="work"))
    assert "uses auth profiles (work)" in named.value.envelope.message


class RecordingProfiles:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str | None]] = []
        self.reports: list[tuple[str, str | None]] = []

    async def credentials_for(
        self, provider: ProviderConfig, *, context: RequestContext | None = None
    ) -> list[Credential]:
        self.asked.append((provider.id, context.agent_id if context else None))
        return [Credential("from-profile", "work")]

    async def report(
        self, provider_id: str, profile_id: str | None, envelope: ErrorEnvelope | None
    ) -> None:
        self.reports.append((provider_id, profile_id))


async def test_explicit_api_key_wins_and_profiles_serve_the_rest() -> None:
    inner = RecordingProfiles()
    source = ConfigCredentialSource(profiles=inner, environ={"K": "from-env"})
    assert await source.credentials_for(provider(), context=A1) == [Credential("from-env")]
    profiled = provider(None, auth_profile_id="work")
    assert await source.credentials_for(profiled, context=A1) == [
        Credential("from-profile", "work")
    ]
    await source.report("p", "work", None)
    await source.report("p", None, None)
    assert inner.asked == [("p", "a1")]
    assert inner.reports == [("p", "work")]


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_keys={"key-of-p1", "key-of-p2"}) as upstream:
        yield upstream


async def add_profile(registry: AuthProfileRegistry, pid: str, provider: str) -> None:
    now: datetime = registry.now()
    await registry.create(
        AuthProfileRecord(
            profile_id=pid,
            provider=provider,  # type: ignore[arg-type]
            display_name=pid,
            credential=ApiKeyRefs(api_key_ref=str(secret_ref(pid, "api_key"))),
            created_at=now,
            updated_at=now,
        )
    )
    await registry.vault.put(secret_ref(pid, "api_key"), f"key-of-{pid}")


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
async def test_first_profile_rate_limited_is_rotated_past_and_the_caller_sees_no_429(
    vault: Vault, fake: FakeUpstream, kind: str
) -> None:
    registry = AuthProfileRegistry(vault.store, vault)
    await add_profile(registry, "p1", kind)
    await add_profile(registry, "p2", kind)
    build = anthropic_provider if kind == "anthropic" else openai_provider
    base_url = fake.anthropic_base_url if kind == "anthropic" else fake.openai_base_url
    primary = build("main-provider", base_url).model_copy(
        update={"api_key": None, "auth_profile_ids": ["p1", "p2"]}
    )
    model = "claude-haiku-4-5" if kind == "anthropic" else "gpt-4o-mini"
    cfg = two_model_config(primary, None, primary_model=model)
    fake.faults.push(Fault(FaultKind.RATE_LIMIT, retry_after_s=60))
    async with build_runtime(cfg, vault=vault, profiles=ProfileCredentialSource(registry)) as rt:
        results = [await rt.router.chat(ask(f"q{i}")) for i in range(5)]
    first = results[0].trail.attempts
    assert [(a.profile_id, a.outcome) for a in first] == [("p1", "rate_limited"), ("p2", "ok")]
    assert all(r.response.content.startswith("You said: q") for r in results)
    keys = [
        r.headers.get("x-api-key") or r.headers.get("authorization", "").removeprefix("Bearer ")
        for r in fake.requests
    ]
    assert keys.count("key-of-p1") == 1  # the rate-limited key rests; p2 carries the rest
    assert keys.count("key-of-p2") == 5


async def test_concurrent_callers_share_one_resolution_and_failures_are_not_kept() -> None:
    clock = ManualClock()
    cache = SecretCache(clock, ttl_s=5)
    reads: list[str] = []

    async def resolve() -> str:
        reads.append("read")
        await asyncio.sleep(0)  # let the other callers pile up behind the first
        return f"secret-{len(reads)}"

    got = await asyncio.gather(*(cache.get("p", "env:K", resolve) for _ in range(10)))
    assert got == ["secret-1"] * 10 and len(reads) == 1
    assert cache.fresh("p", "env:K") == "secret-1" and cache.fresh("p", "env:OTHER") is None
    clock.advance(5)
    assert cache.fresh("p", "env:K") is None
    assert await cache.get("p", "env:K", resolve) == "secret-2"

    async def broken() -> str:
        raise PalyraError.of(FailureClass.CONFIG, "not set")

    with pytest.raises(PalyraError):
        await cache.get("q", "env:K", broken)
    assert cache.fresh("q", "env:K") is None and len(cache) == 1
    cache.forget("p")
    assert len(cache) == 0


async def test_fresh_credential_is_the_fresh_secret_shared_until_the_reference_is_read_again() -> (
    None
):
    clock = ManualClock()
    cache = SecretCache(clock, ttl_s=5)
    reads = iter(["secret-1", "secret-2"])

    async def resolve() -> str:
        return next(reads)

    assert cache.fresh_credential("p", "env:K") is None
    await cache.get("p", "env:K", resolve)
    first = cache.fresh_credential("p", "env:K")
    assert first is not None and first.secret == cache.fresh("p", "env:K") == "secret-1"
    assert first.profile_id is None and cache.fresh_credential("p", "env:K") is first
    clock.advance(5)
    assert cache.fresh_credential("p", "env:K") is None  # expires with its secret
    await cache.get("p", "env:K", resolve)
    second = cache.fresh_credential("p", "env:K")
    assert second is not None and second.secret == "secret-2"
    cache.forget("p")
    assert cache.fresh_credential("p", "env:K") is None
