"""``ConfigCredentialSource``: credentials from palyra.toml ``api_key`` refs, then auth profiles.

A provider's ``api_key`` reference (``env:``, ``vault:``, ``file:``) is resolved per call and the
value kept in memory for a few seconds only, so a burst of requests reads the vault once while a
rotated key is picked up quickly. Providers that name auth profiles are handed to an inner source
(``palyra.auth.credentials.ProfileCredentialSource`` or any other ``CredentialSource``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from palyra.config.schema import ProviderConfig
from palyra.model import ErrorEnvelope, FailureClass, PalyraError
from palyra.model.context import RequestContext
from palyra.providers.base import Credential
from palyra.routing.clock import Clock, SystemClock
from palyra.routing.router import CredentialSource
from palyra.vault import Vault, resolve_secret_ref

DEFAULT_CACHE_TTL_S = 30.0
# Kinds whose public APIs always need a key; a compatible local server may need none.
KEYED_KINDS = frozenset({"openai", "anthropic"})
# Failures that say the cached key itself is wrong, so the next call must read it afresh.
STALE_KEY = frozenset({FailureClass.AUTH_INVALID, FailureClass.AUTH_EXPIRED})


@dataclass(slots=True)
class _Cached:
    secret: str = field(repr=False)
    expires_at: float
    # The secret as a Credential, built at the first ``fresh_credential`` (frozen, so shared).
    credential: Credential | None = field(default=None, repr=False)


class SecretCache:
    """Resolved ``api_key`` references per (provider id, ref), each kept for ``ttl_s`` seconds.

    A burst of requests resolves a reference once; a rotated ``env:``, ``vault:`` or ``file:``
    secret is read again at the latest ``ttl_s`` after it was last read, and at once after
    ``forget`` (called when the upstream refused the key). Concurrent callers of one key share a
    single resolution; a failed resolution is not kept.
    """

    def __init__(self, clock: Clock, ttl_s: float) -> None:
        self._clock = clock
        self._ttl_s = ttl_s
        self._entries: dict[tuple[str, str], _Cached] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def fresh(self, provider_id: str, ref: str) -> str | None:
        """The cached secret while it is fresh, else None (then ``get`` resolves it)."""
        cached = self._entries.get((provider_id, ref))
        if cached is not None and cached.expires_at > self._clock.now():
            return cached.secret
        return None

    def fresh_credential(self, provider_id: str, ref: str) -> Credential | None:
        """``fresh`` as a ``Credential``, one per read of the reference rather than one per
        call (a Credential is a frozen dataclass, costly to build on every request)."""
        cached = self._entries.get((provider_id, ref))
        if cached is None or cached.expires_at <= self._clock.now():
            return None
        if cached.credential is None:
            cached.credential = Credential(cached.secret)
        return cached.credential

    async def get(self, provider_id: str, ref: str, resolve: Callable[[], Awaitable[str]]) -> str:
        """The cached secret while fresh, else what ``resolve()`` returns (then cached)."""
        key = (provider_id, ref)
        cached = self._entries.get(key)
        if cached is not None and cached.expires_at > self._clock.now():
            return cached.secret
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # one resolution per key, however many callers arrive at once
            cached = self._entries.get(key)
            if cached is not None and cached.expires_at > self._clock.now():
                return cached.secret
            secret = await resolve()
            self._entries[key] = _Cached(secret, self._clock.now() + self._ttl_s)
            return secret

    def forget(self, provider_id: str) -> None:
        """Drop the cached keys of one provider, so the next call reads its ref again."""
        for key in [k for k in self._entries if k[0] == provider_id]:
            del self._entries[key]


class ConfigCredentialSource:
    """The ``CredentialSource`` a daemon built from palyra.toml uses (see the module docstring).

    Order per provider: its ``api_key`` ref; else its auth profiles through ``profiles``; else,
    with ``profiles``, whatever that source selects for the provider's kind; else no credential
    (fine for local servers, a ``config`` error for openai and anthropic).
    """

    def __init__(
        self,
        vault: Vault | None = None,
        *,
        profiles: CredentialSource | None = None,
        clock: Clock | None = None,
        cache_ttl_s: float = DEFAULT_CACHE_TTL_S,
        environ: Mapping[str, str] | None = None,
        vault_problem: str | None = None,
    ) -> None:
        self._vault = vault
        self._profiles = profiles
        self._environ = environ
        self._cache = SecretCache(clock or SystemClock(), cache_ttl_s)
        # Why the vault (and the profiles in it) could not be opened, when that was tried.
        self._vault_problem = vault_problem

    def __repr__(self) -> str:
        return f"ConfigCredentialSource(cached={len(self._cache)}, profiles={self._profiles!r})"

    async def credentials_for(
        self, provider: ProviderConfig, *, context: RequestContext | None = None
    ) -> list[Credential]:
        if provider.kind == "deterministic":
            return []
        if self._profiles is not None and context is not None and context.auth_profile_id:
            # A pinned profile may stand in for the provider's own key: the profiles decide.
            return await self._profiles.credentials_for(provider, context=context)
        if context is not None and context.auth_profile_id and self._profiles is None:
            self._refuse_without_vault(provider, f"auth profile {context.auth_profile_id}")
        ref = provider.api_key
        if ref:
            credential = self._cache.fresh_credential(provider.id, ref)
            if credential is None:
                if self._vault is None and ref.startswith("vault:"):
                    self._refuse_without_vault(provider, f"api_key {ref}")
                credential = Credential(await self._api_key(provider, ref))
            return [credential]
        if self._profiles is not None:
            return await self._profiles.credentials_for(provider, context=context)
        if provider.profile_ids() or provider.kind in KEYED_KINDS:
            self._refuse_without_vault(provider, "auth profiles")
        if provider.profile_ids():
            raise PalyraError.of(
                FailureClass.CONFIG,
                f'provider "{provider.id}" uses auth profiles '
                f"({', '.join(provider.profile_ids())}) but no profile store is open here; run "
                "this where the Palyra store is available, or set api_key to an env:, vault: or "
                "file: reference in [[model_provider.providers]] of palyra.toml",
                provider=provider.id,
            )
        if provider.kind in KEYED_KINDS:
            raise PalyraError.of(
                FailureClass.CONFIG,
                f'provider "{provider.id}" (kind {provider.kind}) has no credential; set '
                'api_key = "env:NAME" (or vault:/file:) or auth_profile_id in '
                "[[model_provider.providers]] of palyra.toml",
                provider=provider.id,
            )
        return []

    def _refuse_without_vault(self, provider: ProviderConfig, what: str) -> None:
        """A 503 when the daemon tried to open the vault and could not: the fault is this
        daemon's set-up (on a new replica, usually a missing master key), not the request, and
        another candidate may still answer."""
        if self._vault_problem is None:
            return
        envelope = ErrorEnvelope.of(
            FailureClass.CONFIG,
            f'provider "{provider.id}" keeps its credential in the vault ({what}), but this '
            f"daemon could not open the vault: {self._vault_problem.rstrip('.')}. Every daemon "
            "and replica on one store needs the same master key; restart this one once it has "
            "it",
            provider=provider.id,
            http_status=503,
            code="vault_unavailable",
        )
        raise PalyraError(envelope.model_copy(update={"failover_allowed": True}))

    async def _api_key(self, provider: ProviderConfig, ref: str) -> str:
        async def resolve() -> str:
            try:
                return await resolve_secret_ref(ref, self._vault, environ=self._environ)
            except PalyraError as exc:
                raise PalyraError.of(
                    FailureClass.CONFIG,
                    f'provider "{provider.id}" api_key: {exc.envelope.message}',
                    provider=provider.id,
                ) from None

        return await self._cache.get(provider.id, ref, resolve)

    def forget(self, provider_id: str) -> None:
        """Drop the cached keys of one provider, so the next call reads its ref again."""
        self._cache.forget(provider_id)

    async def report(
        self, provider_id: str, profile_id: str | None, envelope: ErrorEnvelope | None
    ) -> None:
        if profile_id is None:
            if envelope is not None and envelope.failure_class in STALE_KEY:
                self.forget(provider_id)
            return
        if self._profiles is not None:
            await self._profiles.report(provider_id, profile_id, envelope)
