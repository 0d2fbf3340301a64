"""``build_runtime``: a ready ``Router`` and everything it leans on, from one ``PalyraConfig``.

The daemon, the CLI and library users build routing the same way here, so a provider entry in
palyra.toml means the same thing everywhere. Each HTTP provider gets its own pooled client
(``palyra.providers.registry.upstream_client_for``); the runtime owns and closes them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

import httpx2

from palyra.config.provider_rules import responses_models_of
from palyra.config.schema import ModelProviderRegistryConfig, PalyraConfig, ProviderConfig
from palyra.model import FailureClass, PalyraError
from palyra.providers.base import ModelProvider
from palyra.providers.registry import build_provider, needs_client, upstream_client_for
from palyra.providers.upstream.limits import UpstreamLimits
from palyra.routing.breaker import BreakerStore, CircuitBreakers, InMemoryBreakerStore
from palyra.routing.breaker_redis import RedisBreakerStore
from palyra.routing.clock import Clock, SystemClock, WallClock
from palyra.routing.config_credentials import ConfigCredentialSource
from palyra.routing.groups import GroupRouter, PriceSource
from palyra.routing.health import HealthTracker
from palyra.routing.leases import LeaseManager
from palyra.routing.leases_redis import RedisLeaseManager
from palyra.routing.registry import ModelRegistry
from palyra.routing.router import CredentialSource, Router
from palyra.sharedstate import SharedStateLink
from palyra.vault import Vault

ClientFactory = Callable[[ProviderConfig, float], httpx2.AsyncClient]
"""``(provider config, timeout in seconds) -> client``; tests may inject their own."""


@dataclass
class Runtime:
    """A router with its registry, providers, breakers, leases and health; ``aclose`` when done."""

    config: PalyraConfig
    registry: ModelRegistry
    providers: dict[str, ModelProvider]
    credentials: CredentialSource
    breakers: CircuitBreakers
    leases: LeaseManager
    health: HealthTracker
    clock: Clock
    router: Router
    clients: dict[str, httpx2.AsyncClient] = field(default_factory=dict)

    @property
    def settings(self) -> ModelProviderRegistryConfig:
        return self.config.model_provider

    def provider_config(self, provider_id: str) -> ProviderConfig:
        return self.registry.provider(provider_id)

    async def aclose(self) -> None:
        """Close providers, then the HTTP clients this runtime created for them."""
        for provider in self.providers.values():
            await provider.aclose()
        await _close_clients(self.clients)
        if isinstance(self.leases, RedisLeaseManager):
            await self.leases.aclose()

    async def __aenter__(self) -> Runtime:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def _close_clients(clients: dict[str, httpx2.AsyncClient]) -> None:
    for client in clients.values():
        await client.aclose()
    clients.clear()


def _check_models(mp: ModelProviderRegistryConfig) -> None:
    known = {p.id for p in mp.providers}
    for model in mp.models:
        if model.provider not in known:
            raise PalyraError.of(
                FailureClass.CONFIG,
                f'model "{model.id}" names provider "{model.provider}", which does not exist '
                f"(known: {', '.join(sorted(known)) or 'none'}); fix [[model_provider.models]] "
                "in palyra.toml",
            )


def build_runtime(
    config: PalyraConfig,
    *,
    breaker_store: BreakerStore | None = None,
    vault: Vault | None = None,
    credentials: CredentialSource | None = None,
    profiles: CredentialSource | None = None,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    client_factory: ClientFactory | None = None,
    shared: SharedStateLink | None = None,
    prices: PriceSource | None = None,
) -> Runtime:
    """Everything routing needs, built from ``config``; raises ``PalyraError`` (``config``).

    With ``shared`` (the ``[storage] redis_url`` link) breakers and leases live in Redis, the
    breakers timed on the wall clock (or ``clock`` when given) so that every replica reads a
    cooldown's end alike.
    ``credentials`` replaces the default :class:`ConfigCredentialSource` entirely; ``profiles``
    is the auth-profile source that default source falls back to. Nothing is left open when
    building fails part-way. ``prices`` is what ``cheapest`` routing groups compare (else
    every price is unknown).
    """
    mp = config.model_provider
    _check_models(mp)
    registry = ModelRegistry.from_config(mp)
    chosen_clock = clock
    clock = clock or SystemClock()
    breaker_clock: Clock = WallClock() if shared is not None and chosen_clock is None else clock
    clients: dict[str, httpx2.AsyncClient] = {}
    providers: dict[str, ModelProvider] = {}
    limits = UpstreamLimits(mp.max_upstream_body_bytes, mp.max_upstream_event_bytes)
    try:
        for pcfg in mp.providers:
            client = None
            if needs_client(pcfg):
                timeout_s = (pcfg.timeout_ms or mp.request_timeout_ms) / 1000
                client = clients[pcfg.id] = (
                    client_factory(pcfg, timeout_s)
                    if client_factory is not None
                    else upstream_client_for(pcfg, timeout_s=timeout_s, limits=limits)
                )
            responses = responses_models_of(pcfg, mp.models)
            providers[pcfg.id] = build_provider(pcfg, client, responses, mp.models)
    except BaseException:
        clients.clear()  # none has made a request yet, so no connection is left open
        raise
    source = credentials or ConfigCredentialSource(vault, profiles=profiles, clock=clock)
    if breaker_store is None:
        breaker_store = (
            RedisBreakerStore(shared, mp.breaker, breaker_clock)
            if shared is not None
            else InMemoryBreakerStore()
        )
    breakers = CircuitBreakers(mp.breaker, breaker_store, breaker_clock)
    leases = LeaseManager(clock) if shared is None else RedisLeaseManager(clock, shared)
    # Health times are shown as wall-clock times: the offset from the routing clock, read once.
    health = HealthTracker(wall_offset_s=time.time() - clock.now())
    rng = rng or random.Random()
    router = Router(
        registry,
        providers,
        source,
        mp,
        clock,
        rng,
        breakers,
        leases,
        health,
        groups=GroupRouter(registry, leases, health, clock, rng, prices),
    )
    return Runtime(
        config=config,
        registry=registry,
        providers=providers,
        credentials=source,
        breakers=breakers,
        leases=leases,
        health=health,
        clock=clock,
        router=router,
        clients=clients,
    )
