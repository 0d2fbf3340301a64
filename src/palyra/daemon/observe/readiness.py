"""``GET /readyz``: whether this replica can serve, for a load balancer to route by.

``/healthz`` says the process is alive; readiness says what it needs is there: the store
reachable and migrated, the vault's master key present and able to open a canary secret, and
any further probe the daemon adds. A failing check names itself and the fix; no check's text
ever holds a secret (URLs are shown with the password hidden).

Redis (when configured) is checked and reported, but an unreachable Redis leaves the replica
ready, listed under ``degraded``: every replica degrades to per-process state without it, so a
load balancer that took them all out over it would turn a degradation into an outage.
"""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from palyra.config.schema import PalyraConfig
from palyra.model import PalyraError
from palyra.paths import state_dir
from palyra.store import MigrationSet, Store, open_store
from palyra.store.schema_status import newer_problem, pending_problem, schema_status
from palyra.vault import KeyResolver, Vault, VaultRef, system_keyring
from palyra.vault.errors import SecretNotFound, VaultNotCreated

if TYPE_CHECKING:
    from palyra.sharedstate import SharedStateLink

CHECK_TIMEOUT_S = 5.0
CANARY_REF = VaultRef("global", "palyra-readiness-canary")
"""A random value with no use but being decrypted: it proves this replica's master key opens
what another replica sealed."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    required: bool = True  # a failing check that is not required degrades, it does not 503

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "ok": self.ok, "required": self.required, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    checks: tuple[CheckResult, ...]

    @property
    def ready(self) -> bool:
        return all(c.ok or not c.required for c in self.checks)

    @property
    def reason(self) -> str | None:
        """The first failing required check, as ``name: detail``."""
        failed = next((c for c in self.checks if not c.ok and c.required), None)
        return None if failed is None else f"{failed.name}: {failed.detail}"

    @property
    def degraded(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.ok and not c.required]

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {"status": "ready" if self.ready else "not ready"}
        if not self.ready:
            body["reason"] = self.reason
        if self.degraded:
            body["degraded"] = self.degraded
        body["checks"] = [c.to_json() for c in self.checks]
        return body


Probe = Callable[[], Awaitable[CheckResult]]
"""A further readiness check (e.g. Redis); it must answer within ``CHECK_TIMEOUT_S``."""


@dataclass
class Readiness:
    """The checks over one store connection pool, opened at the first check and kept."""

    config: PalyraConfig
    states: Path | None  # None: the default state dir, looked up at the first check
    schemas: Sequence[MigrationSet]
    environ: Mapping[str, str] | None = None
    probes: list[tuple[str, Probe]] = field(default_factory=list)
    timeout_s: float = CHECK_TIMEOUT_S
    _store: Store | None = field(default=None, init=False, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    async def check(self) -> ReadinessReport:
        results: list[CheckResult] = []
        store_result, store = await self._timed("store", self._check_store)
        results.append(store_result)
        if store is None:
            results.append(CheckResult("vault", False, "not checked: the store is not usable"))
        else:
            vault_result, _ = await self._timed("vault", lambda: self._check_vault(store))
            results.append(vault_result)
        for name, probe in self.probes:
            result, _ = await self._timed(name, functools.partial(_wrap, probe))
            results.append(result)
        return ReadinessReport(tuple(results))

    async def _timed(
        self, name: str, run: Callable[[], Awaitable[tuple[CheckResult, Store | None]]]
    ) -> tuple[CheckResult, Store | None]:
        try:
            return await asyncio.wait_for(run(), self.timeout_s)
        except TimeoutError:
            return CheckResult(name, False, f"no answer within {self.timeout_s:g} s"), None

    async def _open(self) -> Store:
        async with self._lock:
            if self._store is None:
                self._store = await open_store(self.config.storage.url, state_dir=self._states())
            return self._store

    async def _check_store(self) -> tuple[CheckResult, Store | None]:
        try:
            store = await self._open()
            statuses = await schema_status(store, self.schemas)
        except PalyraError as exc:
            await self._drop_store()
            return CheckResult("store", False, exc.envelope.message), None
        except (OSError, ConnectionError) as exc:
            await self._drop_store()
            return CheckResult("store", False, f"cannot reach the database: {exc}"), None
        except Exception as exc:  # a driver error from a database that went away
            await self._drop_store()
            return CheckResult("store", False, f"the database failed: {type(exc).__name__}"), None
        problem = newer_problem(statuses, store.url) or pending_problem(statuses, store.url)
        if problem is not None:
            return CheckResult("store", False, problem), None  # the vault check would migrate
        return CheckResult("store", True, f"{store.url} reachable, schema up to date"), store

    async def _check_vault(self, store: Store) -> tuple[CheckResult, Store | None]:
        environ = dict(os.environ if self.environ is None else self.environ)
        keys = KeyResolver(self._states(), environ=environ, keyring=system_keyring())
        try:
            vault = await Vault.open(store, keys, create=False)
        except VaultNotCreated:
            return CheckResult("vault", True, "no secrets stored yet"), None
        except PalyraError as exc:
            return CheckResult("vault", False, exc.envelope.message), None
        try:
            await _open_canary(vault)
        except PalyraError as exc:
            return CheckResult("vault", False, exc.envelope.message), None
        return CheckResult("vault", True, f"key {vault.key_id} from {vault.key_source}"), None

    def _states(self) -> Path:
        return self.states or state_dir()

    async def _drop_store(self) -> None:
        """A store that failed is reopened at the next check (the database may be back)."""
        async with self._lock:
            if self._store is not None:
                await self._store.aclose()
                self._store = None

    async def aclose(self) -> None:
        await self._drop_store()


async def _open_canary(vault: Vault) -> None:
    """Decrypt the canary, sealing one first if no replica has yet."""
    try:
        await vault.get(CANARY_REF)
    except SecretNotFound:
        await vault.put(CANARY_REF, secrets.token_urlsafe(24))
        await vault.get(CANARY_REF)


def redis_probe(link: SharedStateLink) -> Probe:
    """The shared Redis: answering, or down with this replica on per-process state."""

    async def probe() -> CheckResult:
        try:
            seconds = await link.ping()
        except link.errors as exc:
            return CheckResult(
                "redis",
                False,
                f"{link.shown} does not answer ({type(exc).__name__}); breakers, cooldowns, "
                "leases, rate windows and revocations are per process until it does",
                required=False,
            )
        if link.degraded:
            return CheckResult(
                "redis",
                False,
                f"{link.shown} answers again; this replica returns to shared state within a second",
                required=False,
            )
        detail = f"{link.shown} answers in {seconds * 1000:.1f} ms"
        return CheckResult("redis", True, detail, required=False)

    return probe


async def _wrap(probe: Probe) -> tuple[CheckResult, Store | None]:
    return await probe(), None
