"""Building the daemon's state from config: providers from the registry, models resolved."""

from __future__ import annotations

import pytest

from palyra.config.schema import (
    ModelConfig,
    ModelProviderRegistryConfig,
    PalyraConfig,
    ProviderConfig,
    default_config,
)
from palyra.daemon import AppState
from palyra.model import FailureClass, PalyraError
from palyra.providers.deterministic import DeterministicProvider
from palyra.providers.registry import build_provider


def config_with(providers: list[ProviderConfig], models: list[ModelConfig]) -> PalyraConfig:
    return PalyraConfig(
        model_provider=ModelProviderRegistryConfig(providers=providers, models=models)
    )


def test_registry_builds_a_deterministic_provider_with_the_configured_id() -> None:
    provider = build_provider(ProviderConfig(id="det-a", kind="deterministic"), None)
    assert isinstance(provider, DeterministicProvider)
    assert provider.id == "det-a"


def test_unwired_provider_kind_is_a_config_error_naming_it() -> None:
    cfg = ProviderConfig(id="openai-main", kind="openai", api_key="env:OPENAI_API_KEY")
    with pytest.raises(PalyraError) as info:
        build_provider(cfg, None)
    assert info.value.failure_class is FailureClass.CONFIG
    message = info.value.envelope.message
    assert 'provider "openai-main" has kind "openai"' in message
    assert "available kinds: deterministic" in message


def test_model_naming_a_missing_provider_is_a_config_error() -> None:
    config = config_with(
        [ProviderConfig(id="det", kind="deterministic")],
        [ModelConfig(id="fast", provider="opnai")],
    )
    with pytest.raises(PalyraError, match=r'model "fast" names provider "opnai".*known: det'):
        AppState.from_config(config)


async def test_resolve_maps_model_id_to_provider_and_upstream_name() -> None:
    state = AppState.from_config(default_config(), clock=lambda: 1234.9)
    target = state.resolve("default", "chat")
    assert (target.id, target.upstream_model, target.provider.id) == (
        "default",
        "deterministic",
        "deterministic",
    )
    assert state.started_at == 1234
    with pytest.raises(PalyraError) as info:
        state.resolve("whisper", "chat")
    assert info.value.failure_class is FailureClass.UNSUPPORTED_CAPABILITY
    await state.aclose()
