"""What the daemon holds while it runs: config, one provider per entry, limits and a clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx2

from palyra.config.schema import ModelConfig, PalyraConfig
from palyra.daemon.metrics import Metrics
from palyra.daemon.security import Authenticator
from palyra.model import DEFAULT_LIMITS, Capability, FailureClass, Limits, PalyraError
from palyra.providers.base import ModelProvider
from palyra.providers.registry import build_provider


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """A client's model id mapped to the configured entry and the provider that serves it."""

    config: ModelConfig
    provider: ModelProvider

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def upstream_model(self) -> str:
        return self.config.upstream_model


@dataclass
class AppState:
    """Everything a request handler needs; built once at start, closed once at shutdown."""

    config: PalyraConfig
    providers: dict[str, ModelProvider]
    limits: Limits = DEFAULT_LIMITS
    clock: Callable[[], float] = time.time
    started_at: int = field(default=0)
    # With no tokens configured the authenticator refuses every protected route.
    auth: Authenticator = field(default_factory=Authenticator)
    metrics: Metrics = field(default_factory=Metrics)

    @classmethod
    def from_config(
        cls,
        config: PalyraConfig,
        *,
        client: httpx2.AsyncClient | None = None,
        limits: Limits = DEFAULT_LIMITS,
        clock: Callable[[], float] = time.time,
    ) -> AppState:
        """Build every configured provider; a model naming a missing provider is a config error."""
        registry = config.model_provider
        providers = {p.id: build_provider(p, client) for p in registry.providers}
        for model in registry.models:
            if model.provider not in providers:
                known = ", ".join(providers) or "none"
                raise PalyraError.of(
                    FailureClass.CONFIG,
                    f'model "{model.id}" names provider "{model.provider}", which does not '
                    f"exist (known: {known}); fix [[model_provider.models]] in palyra.toml",
                )
        return cls(
            config=config,
            providers=providers,
            limits=limits,
            clock=clock,
            started_at=int(clock()),
        )

    @property
    def model_ids(self) -> list[str]:
        return [m.id for m in self.config.model_provider.models]

    def resolve(self, model_id: str, capability: Capability) -> ResolvedModel:
        """The configured model a client named, checked for the capability the endpoint needs."""
        entry = next((m for m in self.config.model_provider.models if m.id == model_id), None)
        if entry is None:
            raise PalyraError.of(
                FailureClass.NOT_FOUND,
                f'model "{model_id}" is not configured (known: {", ".join(self.model_ids)}); '
                "send one of those ids or add it to [[model_provider.models]] in palyra.toml",
                param="model",
                code="model_not_found",
            )
        if capability not in entry.capabilities:
            able = [m.id for m in self.config.model_provider.models if capability in m.capabilities]
            raise PalyraError.of(
                FailureClass.UNSUPPORTED_CAPABILITY,
                f'model "{model_id}" does not support {capability} (it has: '
                f"{', '.join(entry.capabilities)}); use one of: {', '.join(able) or 'none'}",
                param="model",
                code="model_not_supported",
            )
        return ResolvedModel(config=entry, provider=self.providers[entry.provider])

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()
