"""``ProfileCredentialSource``: routing's ``CredentialSource`` backed by auth profiles.

Profile secrets are read from the vault on every call and handed over inside ``Credential``
objects that live only as long as the request. A provider's ``api_key`` reference (``env:``,
``vault:``, ``file:``) is kept in memory for ``cache_ttl_s`` seconds (30 by default), exactly as
``palyra.routing.config_credentials.ConfigCredentialSource`` keeps it: a rotated secret is picked
up within that time, and at once after the upstream refused the key as invalid or expired. An
OAuth profile whose token is expiring or expired is refreshed first through the injected
``refresher`` (the OAuth module provides it).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from palyra.auth.policy import effective_health
from palyra.auth.records import GLOBAL_SCOPE, AuthProfileRecord, OAuthRefs, ProfileHealth
from palyra.auth.registry import AuthProfileRegistry
from palyra.auth.selection import select_profile
from palyra.config.schema import ProviderConfig
from palyra.model import ErrorEnvelope, FailureClass, PalyraError
from palyra.model.context import RequestContext
from palyra.providers.base import Credential
from palyra.routing.clock import Clock, SystemClock
from palyra.routing.config_credentials import DEFAULT_CACHE_TTL_S, STALE_KEY, SecretCache
from palyra.vault import resolve_secret_ref

Refresher = Callable[[str], Awaitable[str]]
"""``async (profile_id) -> fresh access token``; raises ``PalyraError`` when refresh fails."""

log = logging.getLogger(__name__)


class ProfileCredentialSource:
    """Ordered usable credentials for a provider; usage feedback goes back to the registry."""

    def __init__(
        self,
        registry: AuthProfileRegistry,
        *,
        refresher: Refresher | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        cache_ttl_s: float = DEFAULT_CACHE_TTL_S,
    ) -> None:
        self.registry = registry
        self._refresher = refresher
        self._environ = environ
        self._api_keys = SecretCache(clock or SystemClock(), cache_ttl_s)

    async def credentials_for(
        self, provider: ProviderConfig, *, context: RequestContext | None = None
    ) -> list[Credential]:
        """The context's pinned profile (when it is one of this provider's kind), else the
        provider's ``api_key`` reference, else its named profiles in order, else the registry's
        selection order for the context's agent; profiles that cannot be used now are skipped.
        Raises a ``config`` error listing every skip when none is left."""
        if provider.kind == "deterministic":
            return []
        agent_id = context.agent_id if context is not None else None
        if context is not None and context.auth_profile_id:
            pinned = await self._pinned(provider, context.auth_profile_id, agent_id)
            if pinned is not None:
                return pinned
        if provider.api_key:
            ref = provider.api_key
            secret = self._api_keys.fresh(provider.id, ref)
            if secret is None:
                secret = await self._api_keys.get(
                    provider.id,
                    ref,
                    lambda: resolve_secret_ref(ref, self.registry.vault, environ=self._environ),
                )
            return [Credential(secret)]
        named = provider.profile_ids()
        if named:
            found = await self.registry.find_many(named)
            records = [found.get(pid) for pid in named]
        else:
            everyone = await self.registry.all(provider=provider.kind)
            selection = select_profile(everyone, provider.kind, agent_id, self.registry.now())
            if not selection.candidates:
                return []
            by_id = {r.profile_id: r for r in everyone}
            records = [by_id.get(pid) for pid in selection.usable_ids()]
            named = selection.usable_ids()
            if not named:
                raise _nothing_usable(
                    provider.id, [f"{c.profile_id}: {c.reason}" for c in selection.candidates]
                )
        credentials: list[Credential] = []
        skipped: list[str] = []
        now = self.registry.now()
        for pid, record in zip(named, records, strict=True):
            reason = _unusable(record, pid, provider.kind, agent_id, now)
            if reason is not None:
                skipped.append(f"{pid}: {reason}")
                continue
            assert record is not None
            try:
                credentials.append(Credential(await self._secret(record), record.profile_id))
            except PalyraError as exc:
                skipped.append(f"{pid}: {exc.envelope.message}")
        if not credentials:
            raise _nothing_usable(provider.id, skipped)
        return credentials

    async def _pinned(
        self, provider: ProviderConfig, pid: str, agent_id: str | None
    ) -> list[Credential] | None:
        """The pinned profile alone; None when it belongs to another provider kind (a failover
        target of another kind then uses its own credentials)."""
        record = (await self.registry.find_many([pid])).get(pid)
        if record is not None and record.provider != provider.kind:
            return None
        reason = _unusable(record, pid, provider.kind, agent_id, self.registry.now())
        if reason is not None:
            raise _nothing_usable(provider.id, [f"{pid} (pinned by the request): {reason}"])
        assert record is not None
        return [Credential(await self._secret(record), record.profile_id)]

    async def _secret(self, record: AuthProfileRecord) -> str:
        cred = record.credential
        if not isinstance(cred, OAuthRefs):
            return await self.registry.vault.get(cred.api_key_ref)
        health = effective_health(record, self.registry.now())
        if health in (ProfileHealth.EXPIRING, ProfileHealth.EXPIRED):
            if self._refresher is None:
                if health is ProfileHealth.EXPIRED:
                    raise PalyraError.of(
                        FailureClass.AUTH_EXPIRED,
                        "the access token expired and no refresher is configured here; run: "
                        f"palyra auth openai refresh {record.profile_id}",
                    )
            else:
                try:
                    return await self._refresher(record.profile_id)
                except PalyraError as exc:
                    await self.registry.record_failure(
                        record.profile_id, exc.envelope, during_refresh=True
                    )
                    raise
        return await self.registry.vault.get(cred.access_token_ref)

    async def report(
        self, provider_id: str, profile_id: str | None, envelope: ErrorEnvelope | None
    ) -> None:
        """Feed an attempt's outcome to the registry; never fails the request it reports on. A
        provider ``api_key`` the upstream refused is forgotten, so the next call reads it again."""
        if profile_id is None:
            if envelope is not None and envelope.failure_class in STALE_KEY:
                self._api_keys.forget(provider_id)
            return
        try:
            if envelope is None:
                await self.registry.record_success(profile_id)
            else:
                await self.registry.record_failure(profile_id, envelope)
        except (PalyraError, OSError, SQLAlchemyError) as exc:
            log.warning(
                "could not record the outcome for auth profile %s (provider %s): %s",
                profile_id,
                provider_id,
                exc,
            )


def _unusable(
    record: AuthProfileRecord | None,
    pid: str,
    kind: str,
    agent_id: str | None,
    now: datetime,
) -> str | None:
    if record is None:
        command = "anthropic" if kind == "anthropic" else "openai"
        return f"no such profile; create it with: palyra auth {command} api-key --profile {pid}"
    if record.provider != kind:
        return f"it is a {record.provider} profile, not {kind}"
    if record.scope != GLOBAL_SCOPE and record.agent_id != agent_id:
        return f"scoped to {record.scope}, not usable for agent {agent_id or '(none)'}"
    health = effective_health(record, now)
    if health is ProfileHealth.NEEDS_REAUTH:
        return "needs re-auth; see: palyra auth profiles doctor"
    if health is ProfileHealth.COOLING_DOWN:
        assert record.cooling_down_until is not None
        return f"cooling down until {record.cooling_down_until.isoformat()}"
    return None


def _nothing_usable(provider_id: str, skipped: list[str]) -> PalyraError:
    details = "; ".join(skipped) or "no profiles"
    return PalyraError.of(
        FailureClass.CONFIG,
        f"provider {provider_id!r} has no usable auth profile ({details})",
        provider=provider_id,
    )


__all__ = ["ProfileCredentialSource", "Refresher"]
