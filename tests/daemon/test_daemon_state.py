"""Building the daemon's state from config: a routing runtime, models resolved by id or alias."""

from __future__ import annotations

from pathlib import Path

import pytest

from palyra.config.schema import (
    ModelConfig,
    ModelProviderRegistryConfig,
    PalyraConfig,
    ProviderConfig,
    default_config,
)
from palyra.daemon import AppState
from palyra.daemon.state import needs_store
from palyra.model import ChatRequest, ChatResponse, FailureClass, PalyraError
from palyra.providers.base import Credential
from palyra.providers.deterministic import DeterministicProvider


def config_with(providers: list[ProviderConfig], models: list[ModelConfig]) -> PalyraConfig:
    return PalyraConfig(
        model_provider=ModelProviderRegistryConfig(
            providers=providers, models=models, default_chat_model=models[0].id
        )
    )


def test_model_naming_a_missing_provider_is_a_config_error() -> None:
    config = config_with(
        [ProviderConfig(id="det", kind="deterministic")],
        [ModelConfig(id="fast", provider="opnai")],
    )
    with pytest.raises(PalyraError, match=r'model "fast" names provider "opnai".*known: det'):
        AppState.from_config(config)


def test_openai_and_anthropic_providers_are_built_without_any_io() -> None:
    config = config_with(
        [
            ProviderConfig(id="oa", kind="openai", api_key="env:OA_KEY"),
            ProviderConfig(id="an", kind="anthropic", api_key="env:AN_KEY"),
        ],
        [ModelConfig(id="gpt", provider="oa"), ModelConfig(id="claude", provider="an")],
    )
    state = AppState.from_config(config)
    assert sorted(state.runtime.providers) == ["an", "oa"]
    assert state.model_ids == ["gpt", "claude"]


async def test_resolve_accepts_aliases_and_refuses_missing_capabilities() -> None:
    state = AppState.from_config(default_config(), clock=lambda: 1234.9)
    assert state.started_at == 1234
    entry = state.resolve("default", "chat")
    assert (entry.id, entry.provider, entry.upstream_model) == (
        "default",
        "deterministic",
        "deterministic",
    )
    with pytest.raises(PalyraError) as info:
        state.resolve("whisper", "chat")
    assert info.value.failure_class is FailureClass.UNSUPPORTED_CAPABILITY
    with pytest.raises(PalyraError) as missing:
        state.resolve("gpt-nine", "chat")
    assert missing.value.envelope.http_status == 404
    assert "known: default" in missing.value.envelope.message
    await state.aclose()


async def test_injected_provider_replaces_the_configured_one_in_the_router() -> None:
    class Shouting(DeterministicProvider):
        async def chat(
            self, request: ChatRequest, *, credential: Credential | None = None
        ) -> ChatResponse:
            answer = await super().chat(request)
            return answer.model_copy(update={"content": answer.content.upper()})

    state = AppState(config=default_config(), providers={"deterministic": Shouting()})
    request = ChatRequest.model_validate(
        {
            "model": "default",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        }
    )
    routed = await state.router.chat(request)
    assert routed.response.content == "YOU SAID: HI"
    assert routed.trail.header() == "deterministic/deterministic:ok"
    await state.aclose()


def test_injecting_an_unconfigured_provider_is_a_config_error() -> None:
    with pytest.raises(PalyraError, match="providers nope are not configured"):
        AppState(config=default_config(), providers={"nope": DeterministicProvider()})


def test_only_vault_keys_and_profiles_need_the_store() -> None:
    assert not needs_store(ProviderConfig(id="d", kind="deterministic"))
    assert not needs_store(ProviderConfig(id="o", kind="openai", api_key="env:K"))
    assert needs_store(ProviderConfig(id="o", kind="openai", api_key="vault:openai/key"))
    assert needs_store(ProviderConfig(id="o", kind="openai"))  # falls back to auth profiles


async def test_start_with_deterministic_only_opens_no_store(tmp_path: Path) -> None:
    state = AppState(config=default_config(), state_dir=tmp_path, refresh_oauth=True)
    await state.start()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # noqa: ASYNC240
    await state.aclose()


async def test_start_opens_the_vault_for_vault_keys_and_resolves_them(tmp_path: Path) -> None:
    config = config_with(
        [ProviderConfig(id="oa", kind="openai", api_key="vault:openai/key")],
        [ModelConfig(id="gpt", provider="oa")],
    )
    config = config.model_copy(
        update={
            "storage": config.storage.model_copy(
                update={"url": "sqlite+aiosqlite:///{state_dir}/p.db"}
            )
        }
    )
    state = AppState(config=config, state_dir=tmp_path, environ={})
    await state.start()
    assert (tmp_path / "vault.key").exists()
    provider = state.runtime.provider_config("oa")
    with pytest.raises(PalyraError, match='provider "oa" api_key') as info:
        await state.runtime.credentials.credentials_for(provider)
    assert info.value.failure_class is FailureClass.CONFIG
    await state.aclose()
