"""Keep OpenAI OAuth profiles alive: refresh access tokens before they expire.

Single-flight per profile: however many callers need a token while a refresh is running, one
request goes to the token endpoint and every caller gets its result. The refresh itself runs
under a :class:`RefreshLock`, by default the store's (:mod:`palyra.auth.refresh_lock`: an
advisory lock on PostgreSQL, a lock file beside SQLite), so processes and replicas sharing the
store refresh one at a time. Under the lock the record is read again, so a refresh that another
holder (in this process or another replica) just finished is not repeated: its token is used.

A rotated refresh token is written to the vault before the access token (a crash between the
two leaves a usable refresh token, never a lost one). When the endpoint says ``invalid_grant``,
the stored refresh token is read again first: if a sibling rotated it meanwhile, its result is
used instead of declaring the profile dead (the refresh race).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

import httpx2

from palyra.auth.oauth_profile import expiry
from palyra.auth.oauth_tokens import OAuthTokenError, refresh_access_token
from palyra.auth.policy import EXPIRING_WINDOW, refresh_command
from palyra.auth.records import (
    AuthProfileRecord,
    OAuthRefs,
    ProfileConflict,
    ProfileHealth,
)
from palyra.auth.refresh_lock import StoreRefreshLock
from palyra.auth.registry import AuthProfileRegistry
from palyra.model import FailureClass, PalyraError
from palyra.vault import Vault

log = logging.getLogger(__name__)

WallClock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RefreshLock(Protocol):
    """Mutual exclusion of refreshes per profile (the store's lock, or one process's)."""

    def hold(self, profile_id: str) -> AbstractAsyncContextManager[None]: ...


class InProcessRefreshLock:
    """One ``asyncio.Lock`` per profile id: enough when nothing else uses the store."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    @asynccontextmanager
    async def hold(self, profile_id: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(profile_id, asyncio.Lock())
        async with lock:
            yield


class RefreshResult(StrEnum):
    REFRESHED = "refreshed"
    NOT_DUE = "not_due"
    ROTATED_ELSEWHERE = "rotated_elsewhere"


@dataclass(frozen=True)
class RefreshOutcome:
    """What a refresh did; never carries a token."""

    profile_id: str
    result: RefreshResult
    expires_at: datetime | None


def _oauth(record: AuthProfileRecord) -> OAuthRefs:
    if not isinstance(record.credential, OAuthRefs):
        raise PalyraError.of(
            FailureClass.INVALID_REQUEST,
            f"profile {record.profile_id} is an {record.credential_kind} profile; only OAuth "
            "profiles can be refreshed",
        )
    return record.credential


def is_due(record: AuthProfileRecord, now: datetime) -> bool:
    """Due when the access token expires within the window (or already has)."""
    cred = _oauth(record)
    return cred.expires_at is not None and cred.expires_at <= now + EXPIRING_WINDOW


def _refusal(record: AuthProfileRecord, now: datetime) -> PalyraError | None:
    if record.health is ProfileHealth.NEEDS_REAUTH:
        return PalyraError.of(
            FailureClass.AUTH_INVALID,
            f"profile {record.profile_id} needs a new sign-in (its refresh token was refused); "
            f"run: palyra auth openai login --profile {record.profile_id}",
        )
    until = record.cooling_down_until
    if record.health is ProfileHealth.COOLING_DOWN and until is not None and until > now:
        wait = int((until - now).total_seconds()) + 1
        return PalyraError.of(
            FailureClass.AUTH_EXPIRED,
            f"profile {record.profile_id} is backing off after a failed refresh "
            f"({record.last_error_category}); retry in {wait} s with: {refresh_command(record)}",
            retry_after_s=float(wait),
        )
    return None


async def refresh_openai_profile(
    registry: AuthProfileRegistry,
    vault: Vault,
    profile_id: str,
    *,
    client: httpx2.AsyncClient,
    clock: WallClock,
    force: bool = False,
    lock: RefreshLock | None = None,
    record_failures: bool = True,
) -> RefreshOutcome:
    """Refresh one profile if due (or ``force``), under ``lock``; see the module docstring.

    ``record_failures=False`` leaves applying the failure policy (backoff, ``needs_reauth``)
    to the caller, for callers such as the routing credential source that record it already.
    """
    async with (lock or StoreRefreshLock(registry.store)).hold(profile_id):
        record = await registry.get(profile_id)
        cred = _oauth(record)
        now = datetime.fromtimestamp(clock(), tz=UTC)
        if not force and not is_due(record, now):
            return RefreshOutcome(record.profile_id, RefreshResult.NOT_DUE, cred.expires_at)
        refusal = _refusal(record, now)
        if refusal is not None:
            raise refusal
        sent = await vault.get(cred.refresh_token_ref)
        try:
            tokens = await refresh_access_token(
                client,
                token_endpoint=cred.token_endpoint,
                client_id=cred.client_id or "",
                refresh_token=sent,
            )
        except OAuthTokenError as exc:
            if exc.category == "invalid_grant":
                current = await registry.get(profile_id)
                if await vault.get(_oauth(current).refresh_token_ref) != sent:
                    return RefreshOutcome(
                        current.profile_id,
                        RefreshResult.ROTATED_ELSEWHERE,
                        _oauth(current).expires_at,
                    )
            if record_failures:
                await registry.record_failure(profile_id, exc.envelope, during_refresh=True)
            log.warning("OAuth refresh failed for profile %s (%s)", record.profile_id, exc.category)
            raise
        if tokens.refresh_token is not None:
            await vault.put(cred.refresh_token_ref, tokens.refresh_token)
        await vault.put(cred.access_token_ref, tokens.access_token)
        expires_at = expiry(tokens.expires_in, clock()) or cred.expires_at
        await _save_success(registry, record, expires_at)
        return RefreshOutcome(record.profile_id, RefreshResult.REFRESHED, expires_at)


async def _save_success(
    registry: AuthProfileRegistry, record: AuthProfileRecord, expires_at: datetime | None
) -> None:
    """New expiry and a clean health; an operator edit meanwhile wins its other fields."""
    for _ in range(3):
        changed = record.model_copy(
            update={
                "credential": _oauth(record).model_copy(update={"expires_at": expires_at}),
                "health": ProfileHealth.OK,
                "cooling_down_until": None,
                "last_error_category": None,
                "failure_count": 0,
            }
        )
        try:
            await registry.update(changed, expected_version=record.version)
            return
        except ProfileConflict:
            record = await registry.get(record.profile_id)
    raise PalyraError.of(
        FailureClass.INTERNAL,
        f"profile {record.profile_id} kept changing while its refreshed token was saved; the "
        "new tokens are in the vault, run the refresh again to record the new expiry",
    )


class OAuthRefresher:
    """Fresh access tokens for routing, and an optional background loop that refreshes ahead.

    ``access_token`` leaves the failure policy to its caller (the credential source records
    refresh failures itself); the background loop records them here.
    """

    def __init__(
        self,
        registry: AuthProfileRegistry,
        vault: Vault,
        *,
        client: httpx2.AsyncClient,
        clock: WallClock,
        lock: RefreshLock | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._registry = registry
        self._vault = vault
        self._client = client
        self._clock = clock
        self._lock = lock or StoreRefreshLock(registry.store)
        self._sleep = sleep
        self._inflight: dict[str, asyncio.Future[RefreshOutcome]] = {}

    def __repr__(self) -> str:
        return f"OAuthRefresher(registry={self._registry!r})"

    async def refresh(
        self, profile_id: str, *, force: bool = False, record_failures: bool = True
    ) -> RefreshOutcome:
        """Refresh (single-flight): joiners of a running refresh share its outcome."""
        running = self._inflight.get(profile_id)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[RefreshOutcome] = asyncio.get_running_loop().create_future()
        self._inflight[profile_id] = future
        try:
            outcome = await refresh_openai_profile(
                self._registry,
                self._vault,
                profile_id,
                client=self._client,
                clock=self._clock,
                force=force,
                lock=self._lock,
                record_failures=record_failures,
            )
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # retrieved: joiners may be none
            raise
        else:
            future.set_result(outcome)
            return outcome
        finally:
            del self._inflight[profile_id]

    async def access_token(self, profile_id: str) -> str:
        """The profile's access token, refreshed first when it is due."""
        record = await self._registry.get(profile_id)
        cred = _oauth(record)
        if is_due(record, datetime.fromtimestamp(self._clock(), tz=UTC)):
            await self.refresh(profile_id, record_failures=False)
        return await self._vault.get(cred.access_token_ref)

    async def refresh_due(self) -> list[RefreshOutcome]:
        """One pass: refresh every OpenAI OAuth profile that is due and not blocked."""
        outcomes: list[RefreshOutcome] = []
        now = datetime.fromtimestamp(self._clock(), tz=UTC)
        for record in await self._registry.all(provider="openai"):
            if not isinstance(record.credential, OAuthRefs) or not is_due(record, now):
                continue
            if _refusal(record, now) is not None:
                continue
            try:
                outcomes.append(await self.refresh(record.profile_id))
            except PalyraError:
                continue  # recorded on the profile (backoff or needs_reauth) and logged
        return outcomes

    async def run_background(self, interval_s: float) -> None:
        """Refresh due profiles every ``interval_s`` until cancelled; a failed pass is logged
        and the loop goes on."""
        while True:
            try:
                await self.refresh_due()
            except (PalyraError, OSError) as exc:
                log.warning("OAuth background refresh pass failed: %s", exc)
            await self._sleep(interval_s)
