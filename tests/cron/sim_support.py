"""Simulated time for the scheduler: a clock the test moves, and an executor whose runs take time on it."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from palyra.cron.records import JobRecord, RunRecord, RunStatus
from palyra.cron.scheduler import EventSink, RunOutcome


@dataclass
class SimClock:
    now: int
    _waiters: list[tuple[int, int, asyncio.Future[None]]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def __call__(self) -> int:
        return self.now

    def wait_until(self, when_ms: int) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (when_ms, next(self._ids), future))
        return future

    async def advance_to(self, when_ms: int) -> None:
        self.now = max(self.now, when_ms)
        while self._waiters and self._waiters[0][0] <= self.now:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)
        await settle()

    def next_waiter(self) -> int | None:
        while self._waiters and self._waiters[0][2].done():
            heapq.heappop(self._waiters)
        return self._waiters[0][0] if self._waiters else None


async def settle(rounds: int = 20) -> None:
    """Let every task that can make progress without simulated time passing do so."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def quiesce(executor: SimExecutor, tasks: list[asyncio.Task[object]]) -> None:
    """Wait (in real time: store calls run in threads) until every run is done or parked."""
    for _ in range(5000):
        await settle()
        busy = [
            t
            for t in tasks
            if not t.done() and t.get_name()[len("palyra-run-") :] not in executor.parked
        ]
        if not busy:
            return
        await asyncio.sleep(0.001)
    raise AssertionError("runs did not settle")


Script = Callable[[RunRecord, JobRecord | None], tuple[int, RunOutcome]]


@dataclass
class SimExecutor:
    """Each run takes the simulated time its script says, then ends as the script says."""

    clock: SimClock
    script: Script
    started: list[tuple[str, int, int]] = field(default_factory=list)  # (run id, scheduled, start)
    parked: set[str] = field(default_factory=set)  # runs waiting for simulated time to pass

    async def execute(self, run: RunRecord, job: JobRecord | None, emit: EventSink) -> RunOutcome:
        duration, outcome = self.script(run, job)
        self.started.append((run.id, run.scheduled_for_ms or 0, self.clock.now))
        await emit("run_started", {"agent_id": run.agent_id})
        self.parked.add(run.id)
        try:
            await self.clock.wait_until(self.clock.now + duration)
        finally:
            self.parked.discard(run.id)
        await emit("run_completed" if outcome.status is RunStatus.SUCCEEDED else "run_failed", {})
        return outcome


def ok(duration_ms: int) -> tuple[int, RunOutcome]:
    return duration_ms, RunOutcome(RunStatus.SUCCEEDED, input_tokens=10, output_tokens=5)


def fail(duration_ms: int, category: str = "upstream") -> tuple[int, RunOutcome]:
    return duration_ms, RunOutcome(RunStatus.FAILED, "upstream said no", category)


def as_dict(run: RunRecord) -> dict[str, Any]:
    return run.to_json()
