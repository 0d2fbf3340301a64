"""The cron scheduler inside the daemon: store, agent runtime, executor, webhooks, console service.

``palyra serve`` starts the scheduler in every replica (in worker 0 of each when it has several
workers): the run claims in the store make one replica fire each scheduled time, and the
lease on a running run (``[cron] heartbeat_s`` / ``lease_s``) lets another replica close or
retry a run whose replica died. Every worker can still serve ``/console/v1/cron`` and ``/console/v1/runs``:
those write the store, and the scheduler picks the change up at its next poll (at once in the
process that runs it). Opened lazily, so a daemon whose console never touches cron and that runs
no scheduler never opens the tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from palyra.agents import AgentRuntime
from palyra.config.agents import agents_path, load_agents
from palyra.config.problems import ConfigError
from palyra.cron.executor import AgentExecutor
from palyra.cron.job_input import Known
from palyra.cron.known import known_names, profile_scopes
from palyra.cron.records import RunRecord
from palyra.cron.scheduler import Scheduler, SchedulerSettings
from palyra.cron.service import CronService
from palyra.cron.store import CronStore
from palyra.cron.webhook import deliver
from palyra.model import PalyraError
from palyra.paths import state_dir
from palyra.providers.upstream.guard import make_upstream_client
from palyra.store import Store, open_store
from palyra.vault import KeyResolver, Vault
from palyra.vault.keys import system_keyring
from palyra.vault.secret_refs import resolve_secret_ref

if TYPE_CHECKING:
    from palyra.daemon.state import AppState

log = logging.getLogger("palyra.cron")
WEBHOOK_TIMEOUT_S = 10.0


@dataclass
class CronParts:
    store: Store
    cron: CronStore
    service: CronService
    scheduler: Scheduler
    agents: AgentRuntime
    vault: Vault | None


@dataclass
class CronHost:
    state: AppState
    run_scheduler: bool = False
    _parts: CronParts | None = field(default=None, init=False)
    _lock: asyncio.Lock | None = field(default=None, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)
    _deliveries: set[asyncio.Task[None]] = field(default_factory=set, init=False)

    @property
    def states(self) -> Path:
        return self.state.state_dir or state_dir()

    async def start(self) -> None:
        if not self.run_scheduler:
            return
        try:
            parts = await self.parts()
        except PalyraError as exc:
            log.error("the cron scheduler cannot start: %s", exc.envelope.message)
            return
        self._task = asyncio.create_task(parts.scheduler.run_forever(), name="palyra-cron")
        log.info("cron scheduler started (owner %s)", parts.scheduler.owner)

    async def parts(self) -> CronParts:
        if self._parts is not None:
            return self._parts
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            if self._parts is None:
                self._parts = await self._open()
        return self._parts

    async def service(self) -> CronService:
        return (await self.parts()).service

    async def _open(self) -> CronParts:
        states = self.states
        store = await open_store(self.state.config.storage.url, state_dir=states)
        cron = CronStore(store)
        await cron.ensure()
        vault = await self._vault(store, states)
        config = self.state.config
        path = agents_path(states)
        agents = AgentRuntime(
            self.state.router,
            lambda: load_agents(path, config),
            vault=vault,
            environ=self.state.environ,
            metering=self.state.usage.metering,
        )

        def clock_ms() -> int:
            return round(self.state.clock() * 1000)

        scheduler = Scheduler(
            cron,
            AgentExecutor(agents, cron, wall_clock=self.state.clock),
            settings=SchedulerSettings(
                heartbeat_ms=round(config.cron.heartbeat_s * 1000),
                lease_ms=round(config.cron.lease_s * 1000),
            ),
            on_finished=self._finished,
            clock=clock_ms,
        )

        async def known() -> Known:
            try:
                ids = [a.id for a in agents.agents()]
            except ConfigError:
                ids = []
            return known_names(ids, await profile_scopes(store))

        service = CronService(
            cron,
            known,
            clock_ms,
            changed=scheduler.notify,
            cancel_local=scheduler.cancel_local,
        )
        return CronParts(store, cron, service, scheduler, agents, vault)

    async def _vault(self, store: Store, states: Path) -> Vault | None:
        environ = dict(self.state.environ if self.state.environ is not None else os.environ)
        try:
            keys = KeyResolver(states, environ=environ, keyring=system_keyring())
            # On a shared (PostgreSQL) store a scheduler starting on a fresh replica must not
            # mint a master key that the other replicas would then lack: only a command that
            # stores a secret creates it there.
            create = store.dialect == "sqlite"
            return await Vault.open(store, keys, clock=self.state.clock, create=create)
        except PalyraError as exc:
            log.info("cron: no vault (%s); vault: references will fail", exc.envelope.message)
            return None

    async def _finished(self, run: RunRecord) -> None:
        """After a run is closed: deliver it to the job's webhook, in the background."""
        parts = self._parts
        if parts is None or run.job_id is None:
            return
        job = await parts.cron.get_job(run.job_id)
        if job is None or not job.spec.delivery.webhook_url or not job.spec.delivery.secret_ref:
            return
        task = asyncio.create_task(
            self._deliver(
                parts, run, job.spec.delivery.webhook_url, job.spec.delivery.secret_ref, job.name
            )
        )
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver(
        self, parts: CronParts, run: RunRecord, url: str, secret_ref: str, job_name: str
    ) -> None:
        try:
            await self._deliver_once(parts, run, url, secret_ref, job_name)
        except Exception as exc:  # a delivery never takes the scheduler down
            log.error("webhook delivery of run %s failed: %s", run.id, type(exc).__name__)

    async def _deliver_once(
        self, parts: CronParts, run: RunRecord, url: str, secret_ref: str, job_name: str
    ) -> None:
        events = await parts.cron.events(run.id, limit=100_000)
        terminal = next((e for e in reversed(events) if e.type.startswith("run_")), None)
        payload = {
            "job": {"id": run.job_id, "name": job_name},
            "run": run.to_json(),
            "output": terminal.data.get("output") if terminal is not None else None,
        }
        environ = self.state.environ

        async def secret() -> str:
            return await resolve_secret_ref(secret_ref, parts.vault, environ=environ)

        allow = self.state.config.cron.webhook_allow_private
        async with make_upstream_client(allow_private=allow, timeout_s=WEBHOOK_TIMEOUT_S) as client:
            result = await deliver(
                client,
                url,
                payload,
                delivery_id=run.id,
                secret=secret,
                clock=time.time,
                backoff_s=self.state.config.cron.webhook_backoff_s,
            )
        seq = (events[-1].seq + 1) if events else 0
        kind = "webhook_delivered" if result.delivered else "webhook_failed"
        await parts.cron.append_event(
            run.id, seq, kind, result.to_json(), now_ms=round(self.state.clock() * 1000)
        )

    async def aclose(self) -> None:
        if self._task is not None and self._parts is not None:
            await self._parts.scheduler.aclose()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._deliveries):
            task.cancel()
        if self._deliveries:
            await asyncio.gather(*self._deliveries, return_exceptions=True)
        if self._parts is not None:
            await self._parts.store.aclose()
            self._parts = None
