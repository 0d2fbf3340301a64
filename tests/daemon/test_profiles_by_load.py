"""Auth profiles of one provider spread by load, through the daemon with the official SDKs, against
the fake upstream (which counts rate limits per API key and says what is left in its answer
headers): round_robin, rate_limit from OpenAI's and from Anthropic's headers, and failover
to the next profile still on a 429."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest

from palyra.auth import ApiKeyRefs, AuthProfileRecord, AuthProfileRegistry, secret_ref
from palyra.config.schema import (
    ModelConfig,
    ModelProviderRegistryConfig,
    PalyraConfig,
    ProviderConfig,
    StorageConfig,
)
from palyra.daemon import AppState
from palyra.store import open_store
from palyra.testing import FakeUpstream, Fault, FaultKind
from palyra.vault import KeyResolver, Vault

StartDaemon = Any
KEYS = {"one": "sk-profile-one-0001", "two": "sk-profile-two-0002"}
ASK = [{"role": "user", "content": "hi"}]


async def _seed(tmp_path: Path, url: str, kind: str) -> None:
    store = await open_store(url, state_dir=tmp_path)
    try:
        vault = await Vault.open(store, KeyResolver(tmp_path))
        registry = AuthProfileRegistry(store, vault)
        now = datetime.now(UTC)
        for pid, key in KEYS.items():
            await registry.create(
                AuthProfileRecord(
                    profile_id=pid,
                    provider=kind,
                    display_name=pid,
                    credential=ApiKeyRefs(api_key_ref=str(secret_ref(pid, "api_key"))),
                    created_at=now,
                    updated_at=now,
                )
            )
            await vault.put(secret_ref(pid, "api_key"), key)
    finally:
        await store.aclose()


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_keys=frozenset(KEYS.values())) as upstream:
        yield upstream


@pytest.fixture
def start(
    start_daemon: StartDaemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeUpstream
) -> Any:
    monkeypatch.setenv("PALYRA_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("PALYRA_VAULT_KEY", base64.b64encode(os.urandom(32)).decode())
    url = f"sqlite+aiosqlite:///{tmp_path}/palyra.db"

    def go(selection: str, kind: str = "openai") -> Any:
        asyncio.run(_seed(tmp_path, url, kind))
        base = fake.openai_base_url if kind == "openai" else fake.anthropic_base_url
        provider = ProviderConfig(
            id="up",
            kind=kind,
            base_url=base,
            auth_profile_ids=list(KEYS),
            profile_selection=selection,
        )
        model = "gpt-4o-mini" if kind == "openai" else "claude-haiku-4-5"
        config = PalyraConfig(
            storage=StorageConfig(url=url),
            model_provider=ModelProviderRegistryConfig(
                default_chat_model="m",
                providers=[provider],
                models=[ModelConfig(id="m", provider="up", model=model)],
            ),
        )
        return start_daemon(AppState.from_config(config))

    return go


def keys_used(fake: FakeUpstream, count: int) -> list[str]:
    by_key = {f"Bearer {v}": k for k, v in KEYS.items()} | {v: k for k, v in KEYS.items()}
    used = []
    for request in fake.requests[-count:]:
        sent = request.headers.get("authorization") or request.headers.get("x-api-key", "")
        used.append(by_key[sent])
    return used


def test_round_robin_spreads_requests_over_the_profiles(fake: FakeUpstream, start: Any) -> None:
    client = start("round_robin").openai_client()
    for stream in (False, True, False, True, False, True):
        client.chat.completions.create(model="m", messages=ASK, stream=stream)  # type: ignore[call-overload]
    assert keys_used(fake, 6) == ["one", "two", "one", "two", "one", "two"]


def test_ordered_keeps_to_the_first_profile(fake: FakeUpstream, start: Any) -> None:
    client = start("ordered").openai_client()
    for _ in range(3):
        client.chat.completions.create(model="m", messages=ASK)
    assert keys_used(fake, 3) == ["one", "one", "one"]


def _spend_directly(fake: FakeUpstream, key: str, count: int, anthropic_api: bool) -> None:
    """Another client of the same key uses up part of its rate limit, behind Palyra's back."""
    with httpx2.Client(timeout=10) as http:
        for _ in range(count):
            if anthropic_api:
                reply = http.post(
                    f"{fake.anthropic_base_url}/v1/messages",
                    json={"model": "claude-haiku-4-5", "max_tokens": 8, "messages": ASK},
                    headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
                )
            else:
                reply = http.post(
                    f"{fake.openai_base_url}/chat/completions",
                    json={"model": "gpt-4o-mini", "messages": ASK},
                    headers={"authorization": f"Bearer {key}"},
                )
            assert reply.status_code == 200, reply.text


def test_rate_limit_sends_requests_to_the_profile_with_most_left(
    fake: FakeUpstream, start: Any
) -> None:
    fake.settings.rate_limit_rpm = 20
    client = start("rate_limit").openai_client()
    client.chat.completions.create(model="m", messages=ASK)  # both unread: one (19 of 20 left)
    _spend_directly(fake, KEYS["one"], 10, anthropic_api=False)  # one: 9 of 20 left
    for _ in range(2):  # two unread, then one and two tie at 19: one, which now says 8
        client.chat.completions.create(model="m", messages=ASK)
    for _ in range(5):  # two (19, 18, ... of 20) has more left than one (8 of 20)
        client.chat.completions.create(model="m", messages=ASK)
    used = keys_used(fake, 18)
    assert used[0] == "one" and used[1:11] == ["one"] * 10
    assert used[11:] == ["two", "one", "two", "two", "two", "two", "two"]


def test_rate_limit_reads_anthropic_headers_and_a_429_moves_to_the_other_profile(
    fake: FakeUpstream, start: Any
) -> None:
    fake.settings.rate_limit_rpm = 20
    daemon = start("rate_limit", "anthropic")
    client = anthropic.Anthropic(base_url=daemon.url, api_key=daemon.client_token, max_retries=0)

    def ask() -> None:
        client.messages.create(model="m", max_tokens=16, messages=ASK)  # type: ignore[arg-type]

    ask()  # one: 19 of 20
    _spend_directly(fake, KEYS["one"], 12, anthropic_api=True)
    ask()  # two (unread)
    ask()  # a tie at 19: one, which says 6 of 20
    ask()
    ask()  # two has more left
    assert keys_used(fake, 5 + 12)[-4:] == ["two", "one", "two", "two"]
    fake.faults.push(Fault(FaultKind.RATE_LIMIT, retry_after_s=30))
    ask()  # two is refused with a 429: one answers, and two counts as empty for 30 s
    ask()
    assert keys_used(fake, 3) == ["two", "one", "one"]
