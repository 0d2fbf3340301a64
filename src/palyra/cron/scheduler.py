"""The scheduler: finds due jobs, claims their runs in the store, runs them, and closes them.

Every decision goes through the store first: a run exists only once its row is inserted under the
unique (job, time, attempt) key, so any number of schedulers (workers, replicas, a restarted
daemon) may tick over the same jobs and each scheduled time still runs once. A run's owner holds
it under a lease that each heartbeat renews; a run whose lease runs out (its process or replica
died) is closed as ``interrupted`` by whichever scheduler notices first, and retried only if the
job's retry policy says so, under the next attempt number. A run whose row was closed by
someone else (a cancel, a ``replace`` overlap, a recoverer) is cancelled by its owner at the next
beat.

``tick(now_ms)`` is the whole algorithm, on a time passed in, so tests drive it on simulated time;
``run_forever`` only adds sleeping and waking.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from palyra.cron.policies import (
    MisfirePolicy,
    OverlapAction,
    OverlapPolicy,
    decide_overlap,
    jitter_offset,
    plan_misfire,
    should_retry,
)
from palyra.cron.records import JobRecord, RunRecord, RunStatus, from_ms, to_ms
from palyra.cron.store import DEFAULT_LEASE_MS, CronStore
from palyra.model.context import SYSTEM_DAEMON_PRINCIPAL

log = logging.getLogger("palyra.cron")

EventSink = Callable[[str, dict[str, Any]], Awaitable[None]]
DUE_BATCH = 64
# Past fire times of one job walked per pass before the expired part of a backlog is jumped.
MAX_DUE_WALK = 2000


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How an execution ended, as the executor saw it."""

    status: RunStatus
    reason: str | None = None
    error_category: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


class Executor(Protocol):
    """Runs one claimed run to its end; the scheduler owns its row, timing and cancellation."""

    async def execute(
        self, run: RunRecord, job: JobRecord | None, emit: EventSink
    ) -> RunOutcome: ...


def process_owner_id() -> str:
    """``host:pid:random``: unique per process, and tells a dead local owner from a live one."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead_here(owner: str | None) -> bool:
    """True when ``owner`` was a process on this host that no longer exists."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass
class _Active:
    run: RunRecord
    job: JobRecord | None
    task: asyncio.Task[RunOutcome]
    started_ms: int
    max_runtime_ms: int | None
    stop: RunOutcome | None = None  # set when the scheduler ends it (timeout, cancel, replace)
    ended_ms: int | None = None  # when the execution ended (it is recorded at the next tick)


@dataclass
class SchedulerSettings:
    heartbeat_ms: int = 2_000
    lease_ms: int = DEFAULT_LEASE_MS  # a run not renewed for this long is taken as abandoned
    misfire_grace_ms: int = 30_000  # a time this late is still "on time", not a misfire
    poll_ms: int = 1_000  # how often changes made elsewhere (CLI, other replicas) are looked for


@dataclass
class Scheduler:
    cron: CronStore
    executor: Executor
    owner: str = field(default_factory=process_owner_id)
    settings: SchedulerSettings = field(default_factory=SchedulerSettings)
    principal: str = SYSTEM_DAEMON_PRINCIPAL.name
    on_finished: Callable[[RunRecord], Awaitable[None]] | None = None
    clock: Callable[[], int] = field(default=lambda: round(time.time() * 1000))

    def __post_init__(self) -> None:
        self._active: dict[str, _Active] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._recovered = False
        self._stale_checked_ms = -(2**62)

    # --- the algorithm --------------------------------------------------------------------------

    async def tick(self, now_ms: int) -> int | None:
        """One pass over the store at ``now_ms``; answers when the next pass is needed (ms)."""
        if not self._recovered:
            await self._recover_dead_local(now_ms)
            self._recovered = True
        await self._reap(now_ms)
        await self._beat_and_enforce(now_ms)
        if now_ms - self._stale_checked_ms >= self.settings.heartbeat_ms:
            self._stale_checked_ms = now_ms
            await self._recover_stale(now_ms)
        await self._start_queued(now_ms)  # a run already waiting goes before a newly due one
        wake_at: int | None = None
        due = await self.cron.due_jobs(now_ms, limit=DUE_BATCH)
        for job in due:
            pending = await self._fire_due(job, now_ms)
            if pending is not None:
                wake_at = pending if wake_at is None else min(wake_at, pending)
        if len(due) == DUE_BATCH:
            wake_at = now_ms  # more due jobs than one batch: go again at once
        await self._start_queued(now_ms)
        # Times already past are jobs waiting out jitter or runs waiting for an overlap: their
        # own wake-ups are above; the poll covers changes made elsewhere.
        nxt = await self.cron.next_wake_ms(now_ms)
        if nxt is not None:
            wake_at = nxt if wake_at is None else min(wake_at, nxt)
        if self._active:
            beat = now_ms + self.settings.heartbeat_ms
            wake_at = beat if wake_at is None else min(wake_at, beat)
        return wake_at

    async def _fire_due(self, job: JobRecord, now_ms: int) -> int | None:
        """Handle every fire time of ``job`` up to now; answers a later jittered time still pending."""
        first = job.next_run_at_ms
        assert first is not None
        schedule = job.spec.schedule
        due: list[int] = []
        cursor: int | None = first
        while cursor is not None and cursor <= now_ms:
            if len(due) == MAX_DUE_WALK:
                # A long downtime of a frequent job: what lies before the catch-up window would
                # only be skipped as expired; jump to the window's edge instead of storing it all.
                horizon = (
                    now_ms - job.spec.catch_up_window_s * 1000 - self.settings.misfire_grace_ms
                )
                resumed = schedule.next_after(from_ms(max(horizon, cursor)))
                log.warning(
                    "cron job %s: fire times from %s to %s are older than its catch-up window "
                    "and were passed over (downtime)",
                    job.name,
                    from_ms(cursor).isoformat(),
                    from_ms(horizon).isoformat(),
                )
                cursor = to_ms(resumed) if resumed is not None else None
                if cursor is None or cursor > now_ms:
                    break
            due.append(cursor)
            nxt = schedule.next_after(from_ms(cursor))
            cursor = to_ms(nxt) if nxt is not None else None
        next_ms = cursor
        jitter_ms = round(jitter_offset(job.id, from_ms(due[-1]), job.spec.jitter_s) * 1000)
        late_ms = now_ms - due[-1] - jitter_ms
        on_time = due[-1] if late_ms <= self.settings.misfire_grace_ms else None
        if on_time is not None and len(due) == 1 and now_ms < on_time + jitter_ms:
            return on_time + jitter_ms  # not yet: wait out this time's jitter
        missed = [t for t in due if t != on_time]
        to_run: list[int] = []
        skipped: list[tuple[int, str]] = []
        if missed:
            if on_time is not None and job.spec.misfire is MisfirePolicy.RUN_ONCE:
                skipped += [(t, "misfire_coalesced") for t in missed]
            else:
                plan = plan_misfire(
                    [from_ms(t) for t in missed],
                    now=from_ms(now_ms),
                    policy=job.spec.misfire,
                    catch_up_window=timedelta(seconds=job.spec.catch_up_window_s),
                    max_catch_up=job.spec.max_catch_up,
                )
                to_run += [to_ms(t) for t in plan.run]
                skipped += [(to_ms(t), reason) for t, reason in plan.skipped]
        if on_time is not None:
            to_run.append(on_time)
        # Claim the outcome of every time before moving the job on: a crash in between leaves the
        # job due again, and the claims already made keep the retried pass from doubling anything.
        for t, reason in sorted(skipped):
            await self._claim(job, t, now_ms, RunStatus.SKIPPED, reason=reason)
        # A catch-up of several times runs them one after another: the first goes through the
        # overlap policy, the rest wait in the queue behind it.
        for index, t in enumerate(sorted(to_run)):
            if index == 0:
                await self._admit(job, t, now_ms)
            else:
                await self._claim(job, t, now_ms, RunStatus.QUEUED, reason="catch-up")
        await self.cron.advance(
            job.id, expected_next_ms=first, next_run_at_ms=next_ms, last_scheduled_ms=due[-1]
        )
        return None

    async def _admit(self, job: JobRecord, scheduled_ms: int, now_ms: int) -> None:
        """Claim one due time under the job's overlap policy."""
        running, queued = await self.cron.count_open(job.id)
        action = decide_overlap(job.spec.overlap, running=running, queued=queued)
        if action is OverlapAction.SKIP:
            await self._claim(job, scheduled_ms, now_ms, RunStatus.SKIPPED, reason="overlap")
            return
        if action is OverlapAction.QUEUE:
            await self._claim(job, scheduled_ms, now_ms, RunStatus.QUEUED)
            return
        if action is OverlapAction.REPLACE:
            for old in await self.cron.list_runs(job_id=job.id, statuses=[RunStatus.RUNNING]):
                await self.cron.finish(
                    old.id, RunStatus.CANCELLED, now_ms=now_ms, reason="replaced"
                )
                local = self._active.get(old.id)
                if local is not None:
                    self._end_locally(local, RunOutcome(RunStatus.CANCELLED, "replaced"))
        run = await self._claim(job, scheduled_ms, now_ms, RunStatus.RUNNING)
        if run is not None:
            self._spawn(run, job, now_ms)

    async def _claim(
        self,
        job: JobRecord,
        scheduled_ms: int | None,
        now_ms: int,
        status: RunStatus,
        *,
        attempt: int = 1,
        reason: str | None = None,
        not_before_ms: int | None = None,
    ) -> RunRecord | None:
        """Claim (job, time, attempt) as the scheduler; a queued run has no owner until it starts."""
        return await self.cron.claim(
            job=job,
            scheduled_for_ms=scheduled_ms,
            attempt=attempt,
            status=status,
            principal=self.principal,
            owner=None if status is RunStatus.QUEUED else self.owner,
            now_ms=now_ms,
            reason=reason,
            not_before_ms=not_before_ms,
            lease_ms=self.settings.lease_ms,
        )

    async def _start_queued(self, now_ms: int) -> None:
        for run in await self.cron.ready_queued(now_ms):
            job = await self.cron.get_job(run.job_id) if run.job_id else None
            if job is not None and run.attempt == 1:
                running, _ = await self.cron.count_open(job.id)
                if running and job.spec.overlap is not OverlapPolicy.ALLOW:
                    continue  # queue_one: wait for the running one to end
            if await self.cron.start_queued(
                run.id, owner=self.owner, now_ms=now_ms, lease_ms=self.settings.lease_ms
            ):
                started = await self.cron.get_run(run.id)
                if started is not None:
                    self._spawn(started, job, now_ms)

    # --- runs we own ----------------------------------------------------------------------------

    def _spawn(self, run: RunRecord, job: JobRecord | None, now_ms: int) -> None:
        max_ms = round(job.spec.max_runtime_s * 1000) if job is not None else None
        counter = itertools.count()

        async def emit(type_: str, data: dict[str, Any]) -> None:
            await self.cron.append_event(run.id, next(counter), type_, data, now_ms=self.clock())

        task = asyncio.get_running_loop().create_task(
            self.executor.execute(run, job, emit), name=f"palyra-run-{run.id}"
        )
        active = _Active(run, job, task, now_ms, max_ms)
        self._active[run.id] = active

        def ended(_: asyncio.Task[RunOutcome]) -> None:
            active.ended_ms = self.clock()
            self._wake.set()

        task.add_done_callback(ended)

    def _end_locally(self, active: _Active, outcome: RunOutcome) -> None:
        if active.stop is None:
            active.stop = outcome
        active.task.cancel()

    async def _beat_and_enforce(self, now_ms: int) -> None:
        for active in list(self._active.values()):
            if active.task.done():
                continue
            if (
                active.max_runtime_ms is not None
                and now_ms - active.started_ms >= active.max_runtime_ms
            ):
                self._end_locally(
                    active,
                    RunOutcome(
                        RunStatus.TIMED_OUT,
                        f"max runtime {active.max_runtime_ms / 1000:g}s reached",
                        "timeout",
                    ),
                )
                continue
            if not await self.cron.heartbeat(
                active.run.id, owner=self.owner, now_ms=now_ms, lease_ms=self.settings.lease_ms
            ):
                # Closed by someone else (cancel, replace, a recoverer): stop working on it.
                self._end_locally(active, RunOutcome(RunStatus.CANCELLED, "closed elsewhere"))

    async def _reap(self, now_ms: int) -> None:
        """Record every finished local execution; schedule a retry when the policy says so."""
        for run_id, active in list(self._active.items()):
            if not active.task.done():
                continue
            del self._active[run_id]
            outcome = active.stop or _outcome_of(active.task)
            closed = await self.cron.finish(
                run_id,
                outcome.status,
                now_ms=active.ended_ms if active.ended_ms is not None else now_ms,
                reason=outcome.reason,
                error_category=outcome.error_category,
                input_tokens=outcome.input_tokens,
                output_tokens=outcome.output_tokens,
            )
            if closed:
                await self._maybe_retry(active.run, active.job, outcome, now_ms)
            if self.on_finished is not None:
                record = await self.cron.get_run(run_id)
                if record is not None:
                    await self.on_finished(record)

    async def _maybe_retry(
        self, run: RunRecord, job: JobRecord | None, outcome: RunOutcome, now_ms: int
    ) -> None:
        if job is None or outcome.status not in (
            RunStatus.FAILED,
            RunStatus.TIMED_OUT,
            RunStatus.INTERRUPTED,
        ):
            return
        category = outcome.error_category or (
            "interrupted" if outcome.status is RunStatus.INTERRUPTED else "unknown"
        )
        delay = should_retry(job.spec.retry, attempt=run.attempt, category=category)
        if delay is None:
            return
        await self._claim(
            job,
            run.scheduled_for_ms,
            now_ms,
            RunStatus.QUEUED,
            attempt=run.attempt + 1,
            not_before_ms=now_ms + round(delay * 1000),
            reason=f"retry of attempt {run.attempt} ({category})",
        )

    # --- recovery -------------------------------------------------------------------------------

    async def _recover_stale(self, now_ms: int) -> None:
        for run in await self.cron.expired_leases(now_ms):
            if run.id in self._active:
                continue
            await self._interrupt(
                run, now_ms, "its owner stopped renewing its lease", lease_expired=True
            )

    async def _recover_dead_local(self, now_ms: int) -> None:
        """At start-up: runs of a dead process on this host need not wait for heartbeats to age."""
        for run in await self.cron.list_runs(statuses=[RunStatus.RUNNING], limit=10_000):
            if owner_is_dead_here(run.owner):
                await self._interrupt(run, now_ms, "its process ended while it ran")

    async def _interrupt(
        self, run: RunRecord, now_ms: int, why: str, *, lease_expired: bool = False
    ) -> None:
        """Close another owner's run as interrupted (once: whoever closes it retries it)."""
        if not await self.cron.finish(
            run.id,
            RunStatus.INTERRUPTED,
            now_ms=now_ms,
            reason=why,
            error_category="interrupted",
            lease_expired_at_ms=now_ms if lease_expired else None,
        ):
            return
        log.warning("run %s of job %s was interrupted: %s", run.id, run.job_id, why)
        job = await self.cron.get_job(run.job_id) if run.job_id else None
        await self._maybe_retry(
            run, job, RunOutcome(RunStatus.INTERRUPTED, why, "interrupted"), now_ms
        )

    # --- control --------------------------------------------------------------------------------

    def notify(self) -> None:
        """Something changed (a job was added, a run requested): look again now."""
        self._wake.set()

    def cancel_local(self, run_id: str, reason: str) -> bool:
        active = self._active.get(run_id)
        if active is None:
            return False
        self._end_locally(active, RunOutcome(RunStatus.CANCELLED, reason))
        self.notify()
        return True

    @property
    def active_runs(self) -> list[str]:
        return list(self._active)

    async def run_forever(self) -> None:
        """Tick, then sleep until the next due time, a change, or the poll interval."""
        await self.cron.ensure()
        mark = await self.cron.change_mark()
        while not self._stopping:
            now = self.clock()
            try:
                wake_at = await self.tick(now)
            except Exception:
                log.exception("cron scheduler pass failed; trying again in 1 s")
                wake_at = now + 1000
            delay_ms = self.settings.poll_ms if wake_at is None else max(0, wake_at - self.clock())
            delay_ms = min(delay_ms, self.settings.poll_ms)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay_ms / 1000)
            latest = await self.cron.change_mark()
            if latest != mark:
                mark = latest

    async def aclose(self) -> None:
        """Stop ticking and end the runs this process owns as ``interrupted`` (with retry)."""
        self._stopping = True
        self._wake.set()
        for active in list(self._active.values()):
            self._end_locally(
                active, RunOutcome(RunStatus.INTERRUPTED, "daemon shutting down", "interrupted")
            )
        if self._active:
            await asyncio.gather(*(a.task for a in self._active.values()), return_exceptions=True)
            await self._reap(self.clock())


def _outcome_of(task: asyncio.Task[RunOutcome]) -> RunOutcome:
    if task.cancelled():
        return RunOutcome(RunStatus.CANCELLED, "cancelled")
    exc = task.exception()
    if exc is not None:
        log.error("a run's executor raised %s", type(exc).__name__)
        return RunOutcome(RunStatus.FAILED, f"executor error: {type(exc).__name__}", "internal")
    return task.result()
