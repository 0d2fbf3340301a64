"""The daemon's side of usage accounting: builds the metering (limits, prices, windows in
Redis or in this process), opens the ledger's store at start, and closes it last at shutdown,
so the requests answered during shutdown are written too."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from palyra.config.schema import PalyraConfig
from palyra.daemon.observe.metrics import Metrics
from palyra.model import PalyraError
from palyra.paths import state_dir
from palyra.pricing import pricing_table
from palyra.routing.registry import ModelRegistry
from palyra.sharedstate import SharedStateLink
from palyra.store import Store, open_store
from palyra.usage import USAGE_SCHEMA, Metering, UsageLedger, spent
from palyra.usage.limiter import ScopeKind
from palyra.usage.redis_windows import RedisWindows
from palyra.usage.windows import MemoryWindows, Windows

log = logging.getLogger("palyra.daemon")


class UsageHost:
    """Owns the :class:`Metering` of one daemon process and its ledger's store."""

    def __init__(
        self,
        config: PalyraConfig,
        registry: ModelRegistry,
        metrics: Metrics,
        shared: SharedStateLink | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self._clock = clock
        self._store: Store | None = None
        self._states: Path | None = None
        windows: Windows = RedisWindows(shared) if shared is not None else MemoryWindows()
        self.metering = Metering(
            limits=config.limits,
            providers=config.model_provider.providers,
            resolve=registry.resolve,
            pricing=pricing_table(config.pricing),
            windows=windows,
            seed=self._seed,
            on_soft=lambda scope, name: metrics.budget_soft.inc((scope.kind, name)),
            clock=clock,
        )

    async def _seed(self, kind: ScopeKind, ident: str, since: float) -> tuple[int, int]:
        """What a token or agent spent since ``since``, from the ledger (0 without one: the
        budget then counts from this process's start)."""
        if self.metering.ledger is None or kind == "provider":
            return 0, 0
        column = "token_id" if kind == "token" else "agent_id"
        try:
            return await spent(
                await self._open(), column=column, value=ident, since_ms=int(since * 1000)
            )
        except Exception as exc:
            log.warning("usage: cannot read %s %s's spend (%s)", kind, ident, type(exc).__name__)
            return 0, 0

    async def _open(self) -> Store:
        if self._store is None:
            self._store = await open_store(
                self.config.storage.url,
                state_dir=self._states or state_dir(),
                migrations=(USAGE_SCHEMA,),
            )
        return self._store

    async def start(self, states: Path | None) -> None:
        """Start the ledger's writer (when ``[usage] ledger``); its store opens with the first
        batch, so a daemon that answers nothing creates no database. A store that cannot open
        is logged by the writer, and the batch retried."""
        usage = self.config.usage
        self._states = states
        if not usage.ledger:
            return
        metrics = self.metrics
        ledger = UsageLedger(
            self._open,
            self.metering.pricing,
            self.metering.provider_kinds,
            flush_interval_s=usage.flush_interval_s,
            queue_size=usage.queue_size,
            retention_days=usage.retention_days,
            clock=self._clock,
            on_priced=metrics.add_usage,
        )
        metrics.set_ledger_source(lambda: (ledger.dropped, ledger.pending))
        self.metering.ledger = ledger
        ledger.start()

    async def ledger_store(self) -> Store | None:
        """The ledger's store for reports (opened if needed); None without a ledger."""
        if self.metering.ledger is None:
            return None
        return await self._open()

    async def aclose(self) -> None:
        ledger = self.metering.ledger
        if ledger is not None:
            await ledger.aclose()
            self.metering.ledger = None
        if self._store is not None:
            await self._store.aclose()
            self._store = None


async def prepare_usage_store(config: PalyraConfig, states: Path) -> None:
    """Migrate the ledger's table once before several workers start (they would race)."""
    if not config.usage.ledger:
        return
    try:
        store = await open_store(config.storage.url, state_dir=states, migrations=(USAGE_SCHEMA,))
    except PalyraError:
        return
    await store.aclose()
