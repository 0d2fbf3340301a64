"""Revoked-token notices on Redis pub/sub, so every replica refuses a revoked token at once.

Each daemon caches validated tokens for ``cache_ttl_s`` (30 s) to keep the store off the hot
path. ``palyra token revoke`` and the console's revoke publish the token's id; every replica's
listener drops it from its cache when the notice arrives (milliseconds). Notices are not
stored: a replica that was not subscribed (Redis away, or just starting) may have missed some,
so it forgets its whole cache each time it (re)subscribes. Without Redis the cache TTL stays
the bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from palyra.sharedstate.link import SharedStateLink

log = logging.getLogger("palyra.sharedstate")

CHANNEL = "token-revoked"
# How long one wait for a notice lasts before the loop looks again (it stops promptly then).
READ_WAIT_S = 0.5


async def publish_revoked(link: SharedStateLink, token_id: str, *, serving: bool = True) -> bool:
    """Tell every replica that ``token_id`` is revoked; False when Redis did not take it.

    ``serving`` False (the CLI) reports a failure to the caller only: a one-off command has no
    per-process state to fall back to, so the daemon's outage warning would mislead there."""
    client = link.client()
    if client is None:
        return False
    try:
        await client.publish(link.key(CHANNEL), token_id)
    except link.errors as exc:
        if serving:
            link.failed(exc)
        return False
    return True


class RevocationListener:
    """Calls ``revoked(token_id)`` for each notice, and ``missed()`` on each (re)subscription."""

    def __init__(
        self,
        link: SharedStateLink,
        *,
        revoked: Callable[[str], None],
        missed: Callable[[], None],
    ) -> None:
        self._link = link
        self._revoked = revoked
        self._missed = missed
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()  # set while a subscription is live (tests wait on it)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._listen(), name="palyra-token-revocations"
            )

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _listen(self) -> None:
        while True:
            client = self._link.client()
            if client is None:
                await asyncio.sleep(READ_WAIT_S / 5)
                continue
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._link.key(CHANNEL))
                self._missed()
                self.subscribed.set()
                while True:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=READ_WAIT_S
                    )
                    if message is not None and message.get("type") == "message":
                        data = message["data"]
                        self._revoked(data.decode() if isinstance(data, bytes) else str(data))
            except self._link.errors as exc:
                self.subscribed.clear()
                self._link.failed(exc)
            finally:
                with contextlib.suppress(*self._link.errors):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
