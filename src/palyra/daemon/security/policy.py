"""Who may call which route: the route policy, and the authenticator that checks bearer tokens.

Route policy (``required_access``): ``/healthz``, the OpenAI OAuth callback, the web console's
static pages (``/console``, ``/console/static/*``, ``/docs``: they hold no data) and its sign-in
are open; the console API (``/console/v1``) takes admin tokens only, or a console session made
from one (see :mod:`palyra.daemon.security.console_sessions`); ``/metrics`` takes a metrics, client or admin
token (a Prometheus scraper needs no console powers, and the figures hold no secrets; a metrics
token opens ``/metrics`` and nothing else, so a scraper need not hold a token that can call
models); everything else, ``/v1`` and unknown paths alike, takes client tokens only.

Validated tokens are cached in memory for ``cache_ttl_s`` (30 s by default), so the hot path does
no database query per request. A token revoked with ``palyra token revoke`` is therefore refused
by a running daemon within that TTL, not instantly; with ``[storage] redis_url`` the revocation is
announced on Redis and every replica drops the token at once (``forget_token``, see
:mod:`palyra.sharedstate.revocations`).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import orjson
from fastapi import Request
from fastapi.responses import Response

from palyra.auth.oauth import OPENAI_OAUTH_CALLBACK_PATH
from palyra.config.schema import LimitSpec
from palyra.daemon.security.console_sessions import (
    SESSIONS_SCHEMA,
    ConsoleSessions,
    MemorySessions,
    StoredSessions,
)
from palyra.daemon.security.tokens_store import TOKENS_SCHEMA, TokenKind, TokenStore, hash_token
from palyra.model import remember_secret
from palyra.model.context import Principal as ModelPrincipal
from palyra.model.context import RequestContext
from palyra.store import Store, open_store

DEFAULT_CACHE_TTL_S = 30.0
MAX_CACHED_TOKENS = 4096
CONSOLE_PREFIX = "/console/v1"
SIGN_IN_PATH = f"{CONSOLE_PREFIX}/sign-in"
CONSOLE_PAGES = frozenset({"/console", "/console/", "/docs"})
CONSOLE_STATIC_PREFIX = "/console/static/"
OPEN_PATHS = frozenset(
    {"/healthz", "/readyz", OPENAI_OAUTH_CALLBACK_PATH, SIGN_IN_PATH, *CONSOLE_PAGES}
)
ANTHROPIC_PREFIX = "/v1/messages"


class Access(StrEnum):
    OPEN = "open"
    CLIENT = "client"
    ADMIN = "admin"
    CLIENT_OR_ADMIN = "metrics, client or admin"  # /metrics


def required_access(path: str) -> Access:
    """The token a path needs; anything not listed needs a client token (deny by default)."""
    if path in OPEN_PATHS or path.startswith(CONSOLE_STATIC_PREFIX):
        return Access.OPEN
    if path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/"):
        return Access.ADMIN
    if path == "/metrics":
        return Access.CLIENT_OR_ADMIN
    return Access.CLIENT


def admits(access: Access, kind: TokenKind) -> bool:
    return _ADMITS[access, kind]


# Worked out once: comparing enum ``.value``s per request costs a descriptor call each.
_ADMITS: dict[tuple[Access, TokenKind], bool] = {
    (access, kind): access in (Access.OPEN, Access.CLIENT_OR_ADMIN) or access.value == kind.value
    for access in Access
    for kind in TokenKind
}


def is_anthropic_path(path: str) -> bool:
    return path == ANTHROPIC_PREFIX or path.startswith(ANTHROPIC_PREFIX + "/")


MODELS_PREFIX = "/v1/models"


def anthropic_caller(path: str, headers: Mapping[str, str]) -> bool:
    """Whether the caller speaks Anthropic's API: on its routes, or on the model routes both
    SDKs call, with the ``anthropic-version`` header Anthropic's SDK always sends."""
    if is_anthropic_path(path):
        return True
    return "anthropic-version" in headers and (
        path == MODELS_PREFIX or path.startswith(MODELS_PREFIX + "/")
    )


def presented_tokens(path: str, headers: Mapping[str, str]) -> list[str]:
    """The tokens a request offers: a bearer token, and ``x-api-key`` from Anthropic callers
    only (see :func:`anthropic_caller`)."""
    found = []
    scheme, _, value = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        found.append(value.strip())
    api_key = headers.get("x-api-key", "").strip()
    if api_key and anthropic_caller(path, headers):
        found.append(api_key)
    return found


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request is: the token's kind and, for stored tokens, its id and name."""

    kind: TokenKind
    source: str  # "store" or "config"
    token_id: str | None = None
    name: str | None = None
    # Who owns what this principal stores (stored responses): the token's id, or for a token
    # from the config a prefix of its SHA-256 (which cannot be turned back into the token).
    owner: str = ""
    agent_id: str | None = None  # a client token bound to an agent (``token create --agent``)
    # Built once when the token is validated (then cached with it): the hot path passes this
    # object to the router as it is, with no per-request work.
    context: RequestContext | None = None
    limits: LimitSpec | None = None  # a client token's limits (None: nothing limited)

    def public_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind.value,
            "source": self.source,
            "token_id": self.token_id,
            "name": self.name,
            "agent": self.agent_id,
        }


class Authenticator:
    """Checks tokens against fixed ones (from ``[daemon] client_tokens``) and the token store.

    Comparisons are ``hmac.compare_digest`` over SHA-256 digests, so no prefix of a valid token
    can be found by timing; the store is queried by digest, whose index timing says nothing
    about the token because the digest cannot be inverted.
    """

    def __init__(
        self,
        *,
        store_url: str | None = None,
        state_dir: Path | None = None,
        fixed_tokens: Mapping[str, TokenKind] | None = None,
        clock: Callable[[], float] = time.time,
        cache_ttl_s: float = DEFAULT_CACHE_TTL_S,
    ) -> None:
        self._store_url = store_url
        self._state_dir = state_dir
        self._fixed = [(hash_token(t), kind) for t, kind in (fixed_tokens or {}).items()]
        for token in fixed_tokens or {}:
            remember_secret(token)
        self._clock = clock
        self._ttl = cache_ttl_s
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._store: Store | None = None
        self.tokens: TokenStore | None = None
        self.sessions = ConsoleSessions(MemorySessions(), clock=clock)

    async def start(self) -> None:
        """Open the token store (in the serving event loop) when one is configured."""
        if self._store_url is not None and self._store is None:
            self._store = await open_store(
                self._store_url,
                state_dir=self._state_dir,
                migrations=(TOKENS_SCHEMA, SESSIONS_SCHEMA),
            )
            self.tokens = TokenStore(self._store, clock=self._clock)
            self.sessions = ConsoleSessions(StoredSessions(self._store), clock=self._clock)

    async def aclose(self) -> None:
        if self._store is not None:
            await self._store.aclose()
            self._store = None
            self.tokens = None
            self.sessions = ConsoleSessions(MemorySessions(), clock=self._clock)

    def forget_all(self) -> None:
        """Drop the cache, so revocations take effect on the next request."""
        self._cache.clear()

    def forget_token(self, token_id: str) -> None:
        """Drop one stored token from the cache (revoked, maybe on another replica)."""
        for digest, (principal, _) in list(self._cache.items()):
            if principal.token_id == token_id:
                del self._cache[digest]

    async def authenticate(self, token: str) -> Principal | None:
        """The principal a token belongs to, or None for an unknown, expired or revoked token."""
        digest = hash_token(token)
        cached = self._cache.get(digest)
        if cached is not None and self._clock() < cached[1]:
            return cached[0]
        principal = await self._authenticate_uncached(digest)
        if principal is not None:
            remember_secret(token)  # a cache miss, not the hot path
        return principal

    async def authenticate_digest(self, digest: str) -> Principal | None:
        """As :meth:`authenticate`, from the token's SHA-256 (a console session keeps only that)."""
        cached = self._cache.get(digest)
        if cached is not None and self._clock() < cached[1]:
            return cached[0]
        return await self._authenticate_uncached(digest)

    async def _authenticate_uncached(self, digest: str) -> Principal | None:
        now = self._clock()
        principal, valid_until = await self._validate(digest, now)
        if principal is None:
            self._cache.pop(digest, None)
            return None
        if len(self._cache) >= MAX_CACHED_TOKENS:
            self._cache.clear()
        self._cache[digest] = (principal, min(valid_until, now + self._ttl))
        return principal

    async def _validate(self, digest: str, now: float) -> tuple[Principal | None, float]:
        match: TokenKind | None = None
        for fixed_digest, kind in self._fixed:
            if hmac.compare_digest(fixed_digest, digest):
                match = kind
        if match is not None:
            owner = f"config:{digest[:32]}"
            return Principal(match, "config", owner=owner, context=_context(match, owner)), float(
                "inf"
            )
        if self.tokens is None:
            return None, now
        record = await self.tokens.find(digest)
        if record is None or not hmac.compare_digest(record.token_hash, digest):
            return None, now
        if record.status(int(now * 1000)) != "active":
            return None, now
        await self.tokens.touch(record.id)
        expires = float("inf") if record.expires_at_ms is None else record.expires_at_ms / 1000
        context = _context(record.kind, record.id, record.agent_id)
        principal = Principal(
            record.kind,
            "store",
            record.id,
            record.name,
            record.id,
            record.agent_id,
            context,
            record.limits,
        )
        return principal, expires


def _context(kind: TokenKind, ident: str, agent_id: str | None = None) -> RequestContext:
    who = ModelPrincipal("client_token" if kind is TokenKind.CLIENT else "admin_token", ident)
    return RequestContext(who, agent_id=agent_id)


async def whoami(request: Request) -> Response:
    """``GET /console/v1/whoami``: the caller's token kind, id and name (never the token)."""
    principal: Principal = request.state.principal
    return Response(orjson.dumps(principal.public_dict()), media_type="application/json")
