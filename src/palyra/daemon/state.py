"""What the daemon holds while it runs: config, the routing runtime, limits and a clock.

Every request goes through ``runtime.router``. The runtime is built (without I/O) when the state
is; ``start()`` then opens the store and vault, only when some provider's credential lives there,
so the built-in deterministic setup starts with no keys and no database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx2

from palyra.auth.credentials import ProfileCredentialSource
from palyra.auth.records import OAuthRefs
from palyra.auth.refresh import OAuthRefresher
from palyra.auth.registry import AuthProfileRegistry
from palyra.config.schema import ModelConfig, PalyraConfig, ProviderConfig
from palyra.daemon.agent_tasks import AgentTasks
from palyra.daemon.observe.metrics import Metrics
from palyra.daemon.observe.readiness import Probe
from palyra.daemon.security.policy import Authenticator
from palyra.daemon.server.workers import SnapshotFiles, WorkerSlot, publish_metrics
from palyra.daemon.usage_host import UsageHost, prepare_usage_store
from palyra.model import (
    DEFAULT_LIMITS,
    Capability,
    ErrorEnvelope,
    FailureClass,
    Limits,
    PalyraError,
)
from palyra.model.context import RequestContext
from palyra.model.forwarding import VENDOR_CLIENT_HEADERS
from palyra.paths import state_dir
from palyra.pricing import pricing_table
from palyra.pricing.routing_prices import TablePrices
from palyra.providers.base import Credential, ModelProvider
from palyra.routing.assembly import ClientFactory, Runtime, build_runtime
from palyra.routing.config_credentials import KEYED_KINDS, ConfigCredentialSource
from palyra.routing.router import CredentialSource, Router
from palyra.routing.task_class import TASK_HEADER
from palyra.sharedstate import RevocationListener, SharedStateLink
from palyra.store import Store, open_store
from palyra.store.responses import RESPONSES_SCHEMA, ResponseStore
from palyra.vault import KeyResolver, Vault, system_keyring

log = logging.getLogger("palyra.daemon")

OAUTH_REFRESH_INTERVAL_S = 60.0


def needs_store(provider: ProviderConfig) -> bool:
    """Whether this provider's credential lives in the vault or in auth profiles."""
    if provider.kind == "deterministic":
        return False
    if provider.api_key:
        return provider.api_key.startswith("vault:")
    return bool(provider.profile_ids()) or provider.kind in KEYED_KINDS


class DeferredCredentials:
    """The runtime's credential source; swapped for one backed by the vault in ``start()``.

    Until then (and for ever when no provider needs the store) it resolves ``env:`` and ``file:``
    references only.
    """

    def __init__(self, inner: CredentialSource | None = None) -> None:
        self.inner: CredentialSource = inner or ConfigCredentialSource(None)

    def __repr__(self) -> str:
        return f"DeferredCredentials({self.inner!r})"

    # Plain methods handing back the inner source's coroutines: the router awaits those directly
    # instead of through one more coroutine layer each, on every routed request.
    def credentials_for(
        self, provider: ProviderConfig, *, context: RequestContext | None = None
    ) -> Coroutine[Any, Any, list[Credential]]:
        return self.inner.credentials_for(provider, context=context)

    def report(
        self, provider_id: str, profile_id: str | None, envelope: ErrorEnvelope | None
    ) -> Coroutine[Any, Any, None]:
        return self.inner.report(provider_id, profile_id, envelope)


def _with_providers(runtime: Runtime, injected: Mapping[str, ModelProvider]) -> Runtime:
    """The runtime with some providers replaced (tests and embedders bring their own)."""
    unknown = sorted(set(injected) - set(runtime.providers))
    if unknown:
        raise PalyraError.of(
            FailureClass.CONFIG,
            f"providers {', '.join(unknown)} are not configured (known: "
            f"{', '.join(runtime.providers)}); add them to [[model_provider.providers]]",
        )
    providers = {**runtime.providers, **injected}
    router = Router(
        runtime.registry,
        providers,
        runtime.credentials,
        runtime.settings,
        runtime.clock,
        random.Random(),
        runtime.breakers,
        runtime.leases,
        runtime.health,
        groups=runtime.router.groups,
        agent_tasks=runtime.router.agent_tasks,
        balancer=runtime.router.balancer,
    )
    return replace(runtime, providers=providers, router=router)


@dataclass
class AppState:
    """Everything a request handler needs; built once at start, closed once at shutdown.

    ``providers`` replaces configured providers of the same id (the rest are built from config).
    """

    config: PalyraConfig
    providers: dict[str, ModelProvider] = field(default_factory=dict)
    limits: Limits = DEFAULT_LIMITS
    clock: Callable[[], float] = time.time
    started_at: int = field(default=0)
    # With no tokens configured the authenticator refuses every protected route.
    auth: Authenticator = field(default_factory=Authenticator)
    metrics: Metrics = field(default_factory=Metrics)
    client_factory: ClientFactory | None = None
    state_dir: Path | None = None
    environ: Mapping[str, str] | None = None
    # ``palyra serve`` turns this on (in worker 0 only, with several workers): refresh OAuth
    # profiles ahead of expiry while running.
    refresh_oauth: bool = False
    # Set in each worker process of ``palyra serve --workers N`` (N > 1): metrics are shared.
    worker: WorkerSlot | None = None
    # ``palyra serve`` turns this on (in worker 0 only): run the cron scheduler in this process.
    run_scheduler: bool = False
    # Further ``GET /readyz`` checks (name, probe), e.g. the shared Redis when configured.
    readiness_probes: list[tuple[str, Probe]] = field(default_factory=list)
    runtime: Runtime = field(init=False, repr=False)
    # The Redis link of ``[storage] redis_url`` (None without it: all state is per process).
    shared: SharedStateLink | None = field(default=None, init=False, repr=False)
    usage: UsageHost = field(init=False, repr=False)
    _credentials: DeferredCredentials = field(init=False, repr=False)
    _store: Store | None = field(default=None, init=False, repr=False)
    _oauth_client: httpx2.AsyncClient | None = field(default=None, init=False, repr=False)
    _refresh_task: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _publish_task: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _revocations: RevocationListener | None = field(default=None, init=False, repr=False)
    _responses: ResponseStore | None = field(default=None, init=False, repr=False)
    _responses_db: Store | None = field(default=None, init=False, repr=False)
    _responses_lock: asyncio.Lock | None = field(default=None, init=False, repr=False)
    # Client header names (lowercased, as ASGI gives them) some provider may pass on.
    forward_names: frozenset[bytes] = field(default=frozenset(), init=False, repr=False)

    def __post_init__(self) -> None:
        self._credentials = DeferredCredentials()
        self.shared = SharedStateLink.from_url(self.config.storage.redis_url)
        prices = TablePrices(pricing_table(self.config.pricing))
        if self.client_factory is None:
            runtime = build_runtime(
                self.config, credentials=self._credentials, shared=self.shared, prices=prices
            )
        else:
            runtime = build_runtime(
                self.config,
                credentials=self._credentials,
                client_factory=self.client_factory,
                shared=self.shared,
                prices=prices,
            )
        self.runtime = _with_providers(runtime, self.providers) if self.providers else runtime
        self.runtime.router.agent_tasks = AgentTasks(
            lambda: self.state_dir or state_dir(), self.config
        )
        self.providers = self.runtime.providers
        self.usage = UsageHost(
            self.config, self.runtime.registry, self.metrics, self.shared, self.clock
        )
        allowed = {n for p in self.config.model_provider.providers for n in p.forward_headers}
        # ``x-palyra-task`` rides along in the same pass, for routing groups (never sent on).
        wanted = VENDOR_CLIENT_HEADERS | allowed | {TASK_HEADER}
        self.forward_names = frozenset(n.encode("latin-1") for n in wanted)

    @classmethod
    def from_config(
        cls,
        config: PalyraConfig,
        *,
        limits: Limits = DEFAULT_LIMITS,
        clock: Callable[[], float] = time.time,
        client_factory: ClientFactory | None = None,
    ) -> AppState:
        """The state for ``config``; a model naming a missing provider is a config error."""
        return cls(
            config=config,
            limits=limits,
            clock=clock,
            started_at=int(clock()),
            client_factory=client_factory,
        )

    @property
    def router(self) -> Router:
        return self.runtime.router

    @property
    def model_ids(self) -> list[str]:
        return self.runtime.registry.model_ids

    def resolve(self, name: str, capability: Capability) -> ModelConfig:
        """The configured model a client named (id or alias), checked for the endpoint's
        capability; unknown names are a 404 listing the configured ids."""
        registry = self.runtime.registry
        entry = registry.resolve(name)
        if capability not in entry.capabilities and not (
            registry.group(name) is not None and registry.can(name, capability)
        ):
            able = [m.id for m in self.config.model_provider.models if capability in m.capabilities]
            raise PalyraError.of(
                FailureClass.UNSUPPORTED_CAPABILITY,
                f'model "{name}" does not support {capability} (it has: '
                f"{', '.join(entry.capabilities)}); use one of: {', '.join(able) or 'none'}",
                param="model",
                code="model_not_supported",
            )
        return entry

    async def response_store(self) -> ResponseStore:
        """The stored Responses, its database opened (and migrated) on first use, so a daemon
        whose clients never store a response never opens one."""
        if self._responses is not None:
            return self._responses
        if self._responses_lock is None:
            self._responses_lock = asyncio.Lock()
        async with self._responses_lock:
            if self._responses is None:
                db = await open_store(
                    self.config.storage.url,
                    state_dir=self.state_dir or state_dir(),
                    migrations=(RESPONSES_SCHEMA,),
                )
                self._responses_db = db
                self._responses = ResponseStore(
                    db, retention_days=self.config.responses.retention_days, clock=self.clock
                )
        return self._responses

    async def start(self) -> None:
        """Open the store and vault when a provider needs them; with ``refresh_oauth``, refresh
        OAuth profiles in the background. A vault that cannot open is logged, not fatal: only
        the providers that need it fail, each with a config error naming it."""
        health = self.runtime.health
        self.metrics.set_breaker_source(
            lambda: {h.scope: h.breaker for h in health.snapshot() if h.breaker is not None}
        )
        shared = self.shared
        if shared is not None:
            self.metrics.set_shared_state_source(lambda: shared.degraded)
            self._revocations = RevocationListener(
                shared, revoked=self.auth.forget_token, missed=self.auth.forget_all
            )
            self._revocations.start()
        self.metrics.set_limit_source(self.runtime.leases.figures)
        if self.worker is not None:
            self._share_metrics(self.worker)
        await self.usage.start(self.state_dir)
        if not any(needs_store(p) for p in self.config.model_provider.providers):
            return
        states = self.state_dir or state_dir()
        environ = dict(os.environ if self.environ is None else self.environ)
        try:
            self._store = await open_store(self.config.storage.url, state_dir=states)
            vault, registry = await _open_vault(self._store, states, environ)
        except PalyraError as exc:
            log.warning(
                "the vault is not available (%s); providers using vault: keys or auth profiles "
                "will fail until it is",
                exc.envelope.message,
            )
            await self._close_store()
            self._credentials.inner = ConfigCredentialSource(
                None,
                clock=self.runtime.clock,
                environ=environ,
                vault_problem=exc.envelope.message,
            )
            return
        self._oauth_client = httpx2.AsyncClient(timeout=30.0)
        refresher = OAuthRefresher(registry, vault, client=self._oauth_client, clock=time.time)
        profiles = ProfileCredentialSource(
            registry, refresher=refresher.access_token, environ=environ
        )
        self._credentials.inner = ConfigCredentialSource(
            vault, profiles=profiles, clock=self.runtime.clock, environ=environ
        )
        if self.refresh_oauth and any(
            isinstance(r.credential, OAuthRefs) for r in await registry.all()
        ):
            self._refresh_task = asyncio.create_task(
                refresher.run_background(OAUTH_REFRESH_INTERVAL_S), name="palyra-oauth-refresh"
            )

    def _share_metrics(self, worker: WorkerSlot) -> None:
        files = SnapshotFiles(worker.run_dir)
        self.metrics.worker = worker.index
        self.metrics.peers = lambda: files.peers(worker.index)
        self._publish_task = asyncio.create_task(
            publish_metrics(self.metrics, files, worker.index), name="palyra-metrics-publish"
        )

    async def _close_store(self) -> None:
        if self._store is not None:
            await self._store.aclose()
            self._store = None

    async def aclose(self) -> None:
        """Stop the refresher, close the runtime (providers and their clients), then the store;
        a worker writes its final metrics snapshot. The usage ledger is flushed first."""
        await self.usage.aclose()
        if self._publish_task is not None:
            self._publish_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publish_task
            self._publish_task = None
            if self.worker is not None:
                try:
                    SnapshotFiles(self.worker.run_dir).write(
                        self.worker.index, self.metrics.snapshot()
                    )
                except OSError as exc:
                    log.warning("cannot write the final metrics snapshot: %s", exc)
        if self._refresh_task is not None:
            self._refresh_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh_task
            self._refresh_task = None
        await self.runtime.aclose()
        if self._oauth_client is not None:
            await self._oauth_client.aclose()
            self._oauth_client = None
        await self._close_store()
        if self._responses_db is not None:
            await self._responses_db.aclose()
            self._responses_db = self._responses = None
        if self._revocations is not None:
            await self._revocations.aclose()
            self._revocations = None
        if self.shared is not None:
            await self.shared.aclose()


async def _open_vault(
    store: Store, states: Path, environ: dict[str, str]
) -> tuple[Vault, AuthProfileRegistry]:
    """The vault (its tables migrated, its master key chosen) and the migrated profile registry."""
    keys = KeyResolver(states, environ=environ, keyring=system_keyring())
    vault = await Vault.open(store, keys)
    registry = AuthProfileRegistry(store, vault)
    await registry.migrate()
    return vault, registry


async def prepare_store(config: PalyraConfig, *, states: Path, environ: Mapping[str, str]) -> None:
    """The store work ``start()`` does, done once before several workers start: tables migrated,
    the vault's master key chosen and recorded, so workers never race to do it. Failures are
    left for each worker's ``start()`` to report."""
    await prepare_usage_store(config, states)
    if not any(needs_store(p) for p in config.model_provider.providers):
        return
    try:
        store = await open_store(config.storage.url, state_dir=states)
    except PalyraError:
        return
    try:
        await _open_vault(store, states, dict(environ))
    except PalyraError:
        pass
    finally:
        await store.aclose()
