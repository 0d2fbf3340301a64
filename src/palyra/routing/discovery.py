"""Model discovery and unbilled probes: what each provider's ``list_models`` reports.

Listing models is an authenticated call that costs no tokens, so it doubles as the credential
and reachability probe behind ``palyra models test``. Listings are cached per provider with a
TTL (failures for a shorter time), and one provider failing never hides the others.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from palyra.config.schema import ModelConfig
from palyra.model import ErrorEnvelope, FailureClass, ModelInfo, PalyraError
from palyra.routing.assembly import Runtime
from palyra.routing.clock import Clock

DEFAULT_TTL_S = 300.0
DEFAULT_ERROR_TTL_S = 30.0


@dataclass(frozen=True, slots=True)
class ProviderListing:
    """One provider's answer: its models, or the error it failed with."""

    provider_id: str
    kind: str
    models: list[ModelInfo] = field(default_factory=list)
    error: ErrorEnvelope | None = None
    latency_s: float = 0.0
    fetched_at: float = 0.0
    supported: bool = True  # False: this kind cannot list models, so nothing was asked

    @property
    def ok(self) -> bool:
        return self.error is None

    def lists(self, upstream_model: str) -> bool | None:
        """Whether the upstream reports this model; ``None`` when it could not be asked."""
        if self.error is not None or not self.supported:
            return None
        return any(m.id == upstream_model for m in self.models)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """``palyra models test`` for one configured model."""

    model: ModelConfig
    listing: ProviderListing

    @property
    def ok(self) -> bool:
        return self.listing.ok

    @property
    def listed(self) -> bool | None:
        return self.listing.lists(self.model.upstream_model)


@dataclass(slots=True)
class _Entry:
    listing: ProviderListing
    expires_at: float


class ModelDiscovery:
    """Configured models plus what each provider reports, cached for ``ttl_s`` seconds."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        error_ttl_s: float = DEFAULT_ERROR_TTL_S,
        clock: Clock | None = None,
    ) -> None:
        self._runtime = runtime
        self._ttl_s = ttl_s
        self._error_ttl_s = min(error_ttl_s, ttl_s)
        self._clock = clock or runtime.clock
        self._cache: dict[str, _Entry] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def configured(self) -> list[ModelConfig]:
        return list(self._runtime.settings.models)

    async def listing(self, provider_id: str, *, refresh: bool = False) -> ProviderListing:
        """One provider's models; concurrent callers share a single upstream call."""
        lock = self._locks.setdefault(provider_id, asyncio.Lock())
        async with lock:
            entry = self._cache.get(provider_id)
            if not refresh and entry is not None and entry.expires_at > self._clock.now():
                return entry.listing
            fetched = await self._fetch(provider_id)
            ttl = self._ttl_s if fetched.ok else self._error_ttl_s
            self._cache[provider_id] = _Entry(fetched, fetched.fetched_at + ttl)
            return fetched

    async def discover(self, *, refresh: bool = False) -> list[ProviderListing]:
        """Every configured provider's listing, in config order, fetched concurrently."""
        ids = [p.id for p in self._runtime.settings.providers]
        return list(await asyncio.gather(*(self.listing(i, refresh=refresh) for i in ids)))

    async def probe(self, model_ids: list[str] | None = None) -> list[ProbeResult]:
        """A fresh listing for each named model's provider (each provider asked once)."""
        registry = self._runtime.registry
        models = [registry.resolve(m) for m in model_ids] if model_ids else self.configured
        provider_ids = list(dict.fromkeys(m.provider for m in models))
        fresh = await asyncio.gather(*(self.listing(p, refresh=True) for p in provider_ids))
        by_provider = dict(zip(provider_ids, fresh, strict=True))
        return [ProbeResult(m, by_provider[m.provider]) for m in models]

    async def _fetch(self, provider_id: str) -> ProviderListing:
        runtime = self._runtime
        pcfg = runtime.provider_config(provider_id)
        provider = runtime.providers[provider_id]
        started = self._clock.now()

        def done(
            models: list[ModelInfo] | None = None,
            error: ErrorEnvelope | None = None,
            supported: bool = True,
        ) -> ProviderListing:
            now = self._clock.now()
            return ProviderListing(
                provider_id,
                pcfg.kind,
                models=models or [],
                error=error,
                latency_s=now - started,
                fetched_at=now,
                supported=supported,
            )

        if not provider.capabilities.list_models:
            return done(supported=False)
        timeout_s = (pcfg.timeout_ms or runtime.settings.request_timeout_ms) / 1000
        try:
            creds = await runtime.credentials.credentials_for(pcfg)
            async with self._clock.timeout(timeout_s):
                models = await provider.list_models(credential=creds[0] if creds else None)
        except TimeoutError:
            return done(
                error=ErrorEnvelope.of(
                    FailureClass.TIMEOUT,
                    f'provider "{provider_id}" did not list its models within {timeout_s:g}s; '
                    "check that its base_url answers, or raise timeout_ms on the provider",
                    provider=provider_id,
                )
            )
        except PalyraError as exc:
            return done(error=exc.envelope)
        return done(models=models)
