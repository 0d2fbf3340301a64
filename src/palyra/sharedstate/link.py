"""The link to Redis: one lazily connected client, its health, and the degrade rule.

Shared state makes replicas agree; it is never something a request depends on. While Redis is
unreachable, :meth:`SharedStateLink.client` answers None and every caller uses its per-process
state instead; one warning says so (per outage, not per request), the ``degraded`` flag (a
gauge on ``/metrics``) shows it, and a background ping switches back when Redis answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from palyra.config.storage_rules import redis_url_problem
from palyra.model import FailureClass, PalyraError

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("palyra.sharedstate")

# Every key starts with this (tests give each run its own, to share one Redis database).
NAMESPACE = "palyra"
# How often a degraded link pings Redis to see whether it is back.
RECHECK_S = 1.0
# A shared-state call is a few hundred microseconds on a LAN; one that takes this long is an
# outage, and the request falls back to per-process state instead of waiting on it.
SOCKET_TIMEOUT_S = 1.0


def _errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import RedisError

    return (RedisError, OSError, asyncio.TimeoutError)


def shown_url(url: str) -> str:
    """``url`` without its password (``***`` instead), for logs, doctor and errors."""
    parts = urlsplit(url.strip())
    if parts.password is None:
        return urlunsplit(parts)
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


class SharedStateLink:
    """Redis for the state replicas share (``[storage] redis_url``), degrading to per process.

    Callers follow one pattern::

        client = link.client()
        if client is not None:
            try:
                return await client.incr(key)
            except link.errors as exc:
                link.failed(exc)
        return local_fallback()
    """

    def __init__(
        self,
        url: str,
        *,
        recheck_s: float = RECHECK_S,
        socket_timeout_s: float = SOCKET_TIMEOUT_S,
        namespace: str = NAMESPACE,
    ) -> None:
        problem = redis_url_problem(url)
        if problem is not None:
            raise PalyraError.of(
                FailureClass.CONFIG, f"[storage] {problem} (in palyra.toml or PALYRA_STORAGE__)"
            )
        self.url = url.strip()
        self.shown = shown_url(self.url)
        self.errors = _errors()
        self.namespace = namespace
        self._recheck_s = recheck_s
        self._socket_timeout_s = socket_timeout_s
        self._client: Redis | None = None
        self._degraded = False
        self._watch: asyncio.Task[None] | None = None
        self._on_return: list[Callable[[], None]] = []
        self.outages = 0  # how many times it degraded since start (for tests and doctor)

    @classmethod
    def from_url(cls, url: str) -> SharedStateLink | None:
        """The link for ``[storage] redis_url``; None when it is empty (state is per process)."""
        return cls(url) if url.strip() else None

    def key(self, *parts: str) -> str:
        """A Redis key in this link's namespace: ``palyra:breaker:target:openai/gpt``."""
        return ":".join((self.namespace, *parts))

    @property
    def degraded(self) -> bool:
        """Whether callers are on per-process state now because Redis did not answer."""
        return self._degraded

    def client(self) -> Redis | None:
        """The Redis client (connected on first use), or None while Redis is unreachable."""
        if self._degraded:
            return None
        client = self._client
        if client is None:
            client = self._client = self._connect()
        return client

    def failed(self, exc: BaseException) -> None:
        """A call to Redis failed: degrade to per-process state (one warning per outage) and
        start watching for Redis to come back."""
        if self._degraded:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop to watch from: the next call simply tries Redis again
        self._degraded = True
        self.outages += 1
        log.warning(
            "shared state: Redis at %s is unreachable (%s: %s); breakers, cooldowns, leases, "
            "rate windows and token revocations are per process until it answers again",
            self.shown,
            type(exc).__name__,
            str(exc)[:200],
        )
        self._watch = loop.create_task(self._wait_for_return(), name="palyra-shared-state-recheck")

    def on_return(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` each time Redis answers again after an outage (e.g. to drop state
        that may have missed notices meanwhile)."""
        self._on_return.append(callback)

    async def ping(self) -> float:
        """Round-trip seconds of one PING; raises one of ``errors`` when Redis does not answer.
        Does not degrade the link (``palyra doctor`` asks, it does not serve)."""
        client = self._client or self._connect()
        self._client = client
        started = time.perf_counter()
        await client.ping()
        return time.perf_counter() - started

    async def aclose(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        if self._client is not None:
            with contextlib.suppress(*self.errors):
                await self._client.aclose()
            self._client = None

    def _connect(self) -> Redis:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # One immediate reconnect covers a connection the server closed while idle; more
        # retries (redis-py's default backs off for seconds) would hold requests during an
        # outage that the per-process fallback should absorb at once.
        return Redis.from_url(
            self.url,
            socket_timeout=self._socket_timeout_s,
            socket_connect_timeout=self._socket_timeout_s,
            retry=Retry(NoBackoff(), 1),
            health_check_interval=0,
        )

    async def _wait_for_return(self) -> None:
        while True:
            await asyncio.sleep(self._recheck_s)
            try:
                await self.ping()
            except self.errors:
                continue
            break
        self._degraded = False
        self._watch = None
        log.info("shared state: Redis at %s answers again; state is shared again", self.shown)
        for callback in self._on_return:
            callback()
