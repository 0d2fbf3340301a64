"""The one table from a provider ``kind`` to the code that builds it; a new provider is one entry."""

from __future__ import annotations

from collections.abc import Callable

import httpx2

from palyra.config.schema import ProviderConfig
from palyra.model import FailureClass, PalyraError
from palyra.providers.base import ModelProvider
from palyra.providers.deterministic import DeterministicProvider

ProviderFactory = Callable[[ProviderConfig, httpx2.AsyncClient | None], ModelProvider]


def _deterministic(cfg: ProviderConfig, client: httpx2.AsyncClient | None) -> ModelProvider:
    return DeterministicProvider(id=cfg.id)


PROVIDER_FACTORIES: dict[str, ProviderFactory] = {
    "deterministic": _deterministic,
}


def build_provider(cfg: ProviderConfig, client: httpx2.AsyncClient | None) -> ModelProvider:
    """The provider for one ``[[model_provider.providers]]`` entry, or a ``config`` error."""
    factory = PROVIDER_FACTORIES.get(cfg.kind)
    if factory is None:
        known = ", ".join(sorted(PROVIDER_FACTORIES))
        raise PalyraError.of(
            FailureClass.CONFIG,
            f'provider "{cfg.id}" has kind "{cfg.kind}", which this build cannot run yet '
            f"(available kinds: {known}); change its kind or remove it from "
            "[[model_provider.providers]] in palyra.toml",
            provider=cfg.id,
        )
    return factory(cfg, client)
