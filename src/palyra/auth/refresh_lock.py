"""One OAuth refresh per profile at a time across every process and replica on one store.

A refresh token is single-use when the server rotates it: two replicas refreshing at once means
one of them presents a spent token (``invalid_grant``, and with reuse detection the server may
revoke the whole grant). So the refresh runs under a lock the store's users share:

- PostgreSQL: a transaction-scoped advisory lock keyed by the profile id, on a connection of its
  own. It is released when the refresh ends, and by the server if the holder dies.
- SQLite (one host): an exclusive ``flock`` on a lock file of the profile beside the database
  file, released when the holder closes it or dies. A SQLite write transaction cannot be the
  lock: the refresh itself writes (the vault, the profile) through other connections, which
  would wait for that very transaction.

Under the lock the refresher reads the profile again, so the waiters find it refreshed and use
the new token instead of refreshing it once more.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import sqlalchemy as sa

from palyra.store import Store

POLL_S = 0.02


def advisory_key(profile_id: str) -> int:
    """A signed 64-bit key for ``pg_advisory_xact_lock``, stable across processes."""
    digest = hashlib.sha256(f"palyra oauth refresh:{profile_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class StoreRefreshLock:
    """The :class:`~palyra.auth.refresh.RefreshLock` for everything sharing ``store``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __repr__(self) -> str:
        return f"StoreRefreshLock({self.store.url!r})"

    @contextlib.asynccontextmanager
    async def hold(self, profile_id: str) -> AsyncIterator[None]:
        if self.store.dialect == "postgresql":
            async with self.store.engine.connect() as conn, conn.begin():
                await conn.execute(
                    sa.select(sa.func.pg_advisory_xact_lock(advisory_key(profile_id)))
                )
                yield
            return
        async with _file_lock(self._lock_file(profile_id)):
            yield

    def _lock_file(self, profile_id: str) -> Path:
        database = self.store.engine.url.database
        assert database  # a SQLite store always names its file
        name = hashlib.sha256(profile_id.encode()).hexdigest()[:24]
        return Path(f"{database}.locks") / f"oauth-refresh-{name}.lock"


@contextlib.asynccontextmanager
async def _file_lock(path: Path) -> AsyncIterator[None]:
    """An exclusive ``flock`` (per open file, so it also excludes other tasks of this process),
    waited for without blocking the event loop."""
    path.parent.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(POLL_S)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
