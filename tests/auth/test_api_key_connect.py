"""API-key connect against the real fake upstream on loopback: only a validated key is stored."""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from palyra.auth import AuthProfileRegistry, ProfileError, ProfileHealth, secret_ref
from palyra.auth.api_key import connect_anthropic_api_key, connect_openai_api_key, models_url
from palyra.model import ErrorEnvelope, FailureClass, PalyraError
from palyra.providers.upstream.guard import make_upstream_client
from palyra.store import Store
from palyra.testing import FakeUpstream, Fault, FaultKind
from palyra.vault import KeyResolver, Vault

GOOD = "sk-good-key-7f3a9c1e5b"
ROTATED = "sk-rotated-key-2d8e4b6a"
BAD = "sk-bad-key-0c1d2e3f4a"


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(api_keys=frozenset({GOOD, ROTATED})) as upstream:
        yield upstream


@pytest.fixture
async def registry(store: Store, tmp_path: Path) -> AsyncIterator[AuthProfileRegistry]:
    """On SQLite and on PostgreSQL (conftest's ``store``)."""
    key = base64.b64encode(os.urandom(32)).decode()
    vault = await Vault.open(store, KeyResolver(tmp_path, environ={"PALYRA_VAULT_KEY": key}))
    yield AuthProfileRegistry(store, vault)


async def assert_nothing_stored(registry: AuthProfileRegistry) -> None:
    assert (await registry.list()).items == []
    assert await registry.vault.list() == []


async def test_valid_openai_key_is_stored_and_readable_through_the_vault(
    fake: FakeUpstream, registry: AuthProfileRegistry
) -> None:
    record = await connect_openai_api_key(
        registry, profile_id="OpenAI-Main", api_key=GOOD + "\n", base_url=fake.openai_base_url
    )
    assert (record.profile_id, record.provider, record.scope) == ("openai-main", "openai", "global")
    assert record.credential.refs() == ["profile:openai-main/api_key"]
    assert record.base_url == fake.openai_base_url
    assert await registry.vault.get(secret_ref("openai-main", "api_key")) == GOOD
    check = fake.requests[-1]
    assert (check.method, check.path) == ("GET", "/v1/models")
    assert check.headers["authorization"] == f"Bearer {GOOD}"


async def test_valid_anthropic_key_uses_x_api_key_and_v1_models(
    fake: FakeUpstream, registry: AuthProfileRegistry
) -> None:
    record = await connect_anthropic_api_key(
        registry,
        profile_id="claude",
        api_key=GOOD,
        base_url=fake.anthropic_base_url,
        scope="agent:ops",
        display_name="Team Claude",
    )
    assert (record.provider, record.scope, record.display_name) == (
        "anthropic",
        "agent:ops",
        "Team Claude",
    )
    check = fake.requests[-1]
    assert check.path == "/v1/models"
    assert check.headers["x-api-key"] == GOOD
    assert check.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in check.headers
    assert await registry.vault.get(secret_ref("claude", "api_key")) == GOOD


def test_models_url_keeps_v1_exactly_once() -> None:
    assert models_url("openai", "https://api.openai.com/v1") == "https://api.openai.com/v1/models"
    assert models_url("anthropic", "https://api.anthropic.com") == (
        "https://api.anthropic.com/v1/models"
    )
    assert models_url("anthropic", "https://proxy.example/v1") == "https://proxy.example/v1/models"


async def test_reconnecting_rotates_the_key_and_heals_the_profile(
    fake: FakeUpstream, registry: AuthProfileRegistry
) -> None:
    first = await connect_openai_api_key(
        registry, profile_id="main", api_key=GOOD, base_url=fake.openai_base_url
    )
    await registry.record_failure("main", ErrorEnvelope.of(FailureClass.AUTH_INVALID, "no"))
    await registry.record_failure("main", ErrorEnvelope.of(FailureClass.AUTH_INVALID, "no"))
    rotated = await connect_openai_api_key(
        registry, profile_id="main", api_key=ROTATED, base_url=fake.openai_base_url
    )
    assert rotated.version == first.version + 1
    assert (rotated.health, rotated.failure_count) == (ProfileHealth.OK, 0)
    assert await registry.vault.get(secret_ref("main", "api_key")) == ROTATED
    assert [str(m.ref) for m in await registry.vault.list()] == ["profile:main/api_key"]


@pytest.mark.parametrize(
    ("fault", "failure_class", "phrase"),
    [
        (None, FailureClass.AUTH_INVALID, "rejected the API key (HTTP 401)"),
        (Fault(FaultKind.RATE_LIMIT), FailureClass.RATE_LIMITED, "rate-limited the key check"),
        (
            Fault(FaultKind.SERVER_ERROR, status=503),
            FailureClass.UPSTREAM_UNAVAILABLE,
            "is unavailable (HTTP 503)",
        ),
    ],
)
async def test_refused_key_checks_store_nothing_and_say_why(
    fake: FakeUpstream,
    registry: AuthProfileRegistry,
    fault: Fault | None,
    failure_class: FailureClass,
    phrase: str,
) -> None:
    if fault is not None:
        fake.faults.push(fault)
    key = BAD if fault is None else GOOD
    with pytest.raises(PalyraError) as caught:
        await connect_openai_api_key(
            registry, profile_id="p", api_key=key, base_url=fake.openai_base_url
        )
    message = caught.value.envelope.message
    assert caught.value.failure_class is failure_class
    assert message.startswith(f"OpenAI at {fake.openai_base_url} ")
    assert phrase in message and "nothing was stored" in message
    assert key not in message
    await assert_nothing_stored(registry)


async def test_anthropic_401_names_the_provider_and_the_fix(
    fake: FakeUpstream, registry: AuthProfileRegistry
) -> None:
    with pytest.raises(PalyraError) as caught:
        await connect_anthropic_api_key(
            registry, profile_id="c", api_key=BAD, base_url=fake.anthropic_base_url
        )
    assert caught.value.envelope.message == (
        f"Anthropic at {fake.anthropic_base_url} rejected the API key (HTTP 401): it is invalid "
        f"or lacks access to {fake.anthropic_base_url}/v1/models; nothing was stored; check the "
        "key and run again: palyra auth anthropic api-key --profile c"
    )
    await assert_nothing_stored(registry)


async def test_a_hanging_upstream_times_out_and_stores_nothing(
    fake: FakeUpstream, registry: AuthProfileRegistry
) -> None:
    fake.faults.push(Fault(FaultKind.HANG))
    client = make_upstream_client(allow_private=False, timeout_s=0.2)
    try:
        with pytest.raises(PalyraError) as caught:
            await connect_openai_api_key(
                registry,
                profile_id="p",
                api_key=GOOD,
                base_url=fake.openai_base_url,
                client=client,
            )
    finally:
        await client.aclose()
    assert caught.value.failure_class is FailureClass.TIMEOUT
    assert "did not answer the key check (GET " in caught.value.envelope.message
    await assert_nothing_stored(registry)


async def test_an_unreachable_server_is_a_connection_error(
    registry: AuthProfileRegistry,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(PalyraError) as caught:
        await connect_openai_api_key(
            registry, profile_id="p", api_key=GOOD, base_url=f"http://127.0.0.1:{port}/v1"
        )
    assert caught.value.failure_class is FailureClass.CONNECTION
    assert f"cannot reach OpenAI at http://127.0.0.1:{port}/v1" in caught.value.envelope.message
    await assert_nothing_stored(registry)


async def test_bad_inputs_are_refused_before_any_request(
    fake: FakeUpstream, registry: AuthProfileRegistry
) -> None:
    with pytest.raises(ProfileError, match="API key for profile p is empty"):
        await connect_openai_api_key(
            registry, profile_id="p", api_key="  ", base_url=fake.openai_base_url
        )
    with pytest.raises(PalyraError, match="uses plain http"):
        await connect_openai_api_key(
            registry, profile_id="p", api_key=GOOD, base_url="http://api.example.com/v1"
        )
    for pasted in ("sk-caf\u00e9-key", "sk-one two", "sk-tab\tkey", "sk-bell\x07"):
        with pytest.raises(ProfileError, match="paste the key itself") as caught:
            await connect_openai_api_key(
                registry, profile_id="p", api_key=pasted, base_url=fake.openai_base_url
            )
        assert pasted not in str(caught.value)
    assert fake.requests == []
    await assert_nothing_stored(registry)


async def test_a_profile_of_another_provider_is_not_overwritten(
    fake: FakeUpstream, registry: AuthProfileRegistry
) -> None:
    await connect_anthropic_api_key(
        registry, profile_id="shared", api_key=GOOD, base_url=fake.anthropic_base_url
    )
    with pytest.raises(ProfileError, match="already exists as a anthropic api_key profile"):
        await connect_openai_api_key(
            registry, profile_id="shared", api_key=ROTATED, base_url=fake.openai_base_url
        )
    assert await registry.vault.get(secret_ref("shared", "api_key")) == GOOD


async def test_a_failed_record_write_removes_the_new_secret(
    fake: FakeUpstream, registry: AuthProfileRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken_create(record: object) -> None:
        raise PalyraError.of(FailureClass.INTERNAL, "disk full")

    monkeypatch.setattr(registry, "create", broken_create)
    with pytest.raises(PalyraError, match="disk full"):
        await connect_openai_api_key(
            registry, profile_id="p", api_key=GOOD, base_url=fake.openai_base_url
        )
    await assert_nothing_stored(registry)
