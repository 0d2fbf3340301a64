"""The usage ledger's writer: a bounded in-memory queue, drained in batches off the hot path.

``record`` is what a request pays: one length check and one list append, never an await, never
an exception. A background task wakes every ``flush_interval_s`` (0.5 s by default), prices the
queued requests, builds their rows and inserts them in one transaction. So a crash (kill -9,
power loss) loses at most the requests that finished in the last ``flush_interval_s`` plus the
time one batch takes to write: under a second at the default. A clean shutdown flushes
everything. A full queue (the database stalled, or a burst beyond ``queue_size`` per interval)
drops the new fact and counts it in ``dropped`` (and ``palyra_usage_dropped_total``); a batch
the database refused goes back to the queue as far as it has room, and is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from palyra.pricing import PricingTable
from palyra.store import Store
from palyra.usage.facts import UsageFact, fact_cost, rows_of
from palyra.usage.ledger_schema import usage_ledger

log = logging.getLogger("palyra.usage")

PRUNE_EVERY_S = 3600.0
_DAY_S = 86_400.0
Priced = Callable[[UsageFact, str | None, str | None, int | None], None]
"""Told of each fact as it is priced: (fact, provider id, upstream model, cost or None)."""


_COLUMNS = [c.name for c in usage_ledger.columns if c.name != "id"]
_PLACEHOLDERS = {
    "sqlite": ", ".join("?" for _ in _COLUMNS),
    "postgresql": ", ".join(f"${i}" for i in range(1, len(_COLUMNS) + 1)),
}


async def _insert(conn: AsyncConnection, dialect: str, rows: list[dict[str, Any]]) -> None:
    """One executemany of plain tuples on the driver (half the CPU of SQLAlchemy's per-row
    parameter processing, which the writer would pay per request); Core for other dialects."""
    marks = _PLACEHOLDERS.get(dialect)
    if marks is None:
        await conn.execute(sa.insert(usage_ledger), rows)
        return
    # Table and column names are this module's own constants; values go as parameters.
    sql = f"INSERT INTO {usage_ledger.name} ({', '.join(_COLUMNS)}) VALUES ({marks})"  # noqa: S608
    await conn.exec_driver_sql(sql, [tuple(row[c] for c in _COLUMNS) for row in rows])


class UsageLedger:
    """See the module docstring. ``start`` in the serving loop, ``aclose`` at shutdown."""

    def __init__(
        self,
        store: Store | Callable[[], Awaitable[Store]],
        pricing: PricingTable,
        provider_kinds: Mapping[str, str],
        *,
        flush_interval_s: float = 0.5,
        queue_size: int = 10_000,
        retention_days: float = 90.0,
        clock: Callable[[], float] = time.time,
        on_priced: Priced | None = None,
    ) -> None:
        # A store, or how to open it: on the first batch, so a daemon that answers nothing
        # creates no database.
        self._store = store if isinstance(store, Store) else None
        self._open = None if isinstance(store, Store) else store
        self._pricing = pricing
        self._kinds = dict(provider_kinds)
        self._interval = flush_interval_s
        self._max = queue_size
        self._retention_s = retention_days * _DAY_S
        self._clock = clock
        self._on_priced = on_priced
        self._queue: list[UsageFact] = []
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._pruned_at = 0.0
        self.dropped = 0
        self.written = 0

    def record(self, fact: UsageFact) -> None:
        """Queue one finished request; drops (and counts) it when the queue is full."""
        queue = self._queue
        if len(queue) >= self._max:
            self.dropped += 1
            return
        queue.append(fact)

    async def store(self) -> Store:
        """The ledger's store, opened now if it was not yet."""
        if self._store is None:
            assert self._open is not None
            self._store = await self._open()
        return self._store

    @property
    def pending(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="palyra-usage-ledger")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except Exception as exc:  # the ledger must never take the daemon down
                log.warning(
                    "usage ledger: a batch could not be written (%s); it is retried",
                    exc.__class__.__name__,
                )

    async def flush(self) -> int:
        """Write everything queued now; returns how many requests were written."""
        async with self._lock:
            batch, self._queue = self._queue, []
            if not batch:
                await self._maybe_prune()
                return 0
            rows: list[dict[str, Any]] = []
            for fact in batch:
                rows.extend(rows_of(fact, self._pricing, self._kinds))
            try:
                store = await self.store()
                async with store.begin() as conn:
                    await _insert(conn, store.dialect, rows)
            except Exception:
                room = max(0, self._max - len(self._queue))
                self.dropped += max(0, len(batch) - room)
                self._queue = batch[:room] + self._queue
                raise
            self.written += len(batch)
            if self._on_priced is not None:
                for fact in batch:
                    self._on_priced(fact, *fact_cost(fact, self._pricing, self._kinds))
            await self._maybe_prune()
            return len(batch)

    async def _maybe_prune(self) -> None:
        now = self._clock()
        if self._store is None or self._retention_s <= 0 or now - self._pruned_at < PRUNE_EVERY_S:
            return
        self._pruned_at = now
        cutoff = int((now - self._retention_s) * 1000)
        async with self._store.begin() as conn:
            await conn.execute(sa.delete(usage_ledger).where(usage_ledger.c.at_ms < cutoff))

    async def aclose(self) -> None:
        """Stop the writer and flush what is queued (a failure is logged, not raised)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await self.flush()
        except Exception as exc:
            log.warning(
                "usage ledger: %d requests could not be written at shutdown (%s)",
                len(self._queue),
                exc.__class__.__name__,
            )
