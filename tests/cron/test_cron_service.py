"""The operations both surfaces call, with a scheduler on simulated time: enabling counts from
now, run-now is an ad hoc claim the scheduler starts, cancel closes the row and stops the run
wherever it runs."""

from __future__ import annotations

from datetime import UTC, datetime

from sim_support import SimClock, SimExecutor, ok, quiesce

from palyra.cron.job_input import JobInput, Known
from palyra.cron.records import RunStatus, to_ms
from palyra.cron.scheduler import Scheduler, SchedulerSettings
from palyra.cron.service import CronService
from palyra.cron.store import CronStore
from palyra.model.context import Principal
from palyra.store import Store

START = datetime(2026, 3, 1, tzinfo=UTC)
MIN = 60_000
HOUR = 60 * MIN
ADMIN = Principal("admin_token", "tok_1")


async def known() -> Known:
    return Known(["agent"], lambda profile, agent: None)


async def setup(store: Store, duration_ms: int = MIN) -> tuple[CronService, Scheduler, SimClock]:
    cron = CronStore(store)
    await cron.ensure()
    clock = SimClock(to_ms(START))
    executor = SimExecutor(clock, lambda run, job: ok(duration_ms))
    settings = SchedulerSettings(heartbeat_ms=MIN, lease_ms=10 * MIN)
    sched = Scheduler(cron, executor, owner="a", settings=settings, clock=clock)
    service = CronService(cron, known, clock, changed=sched.notify, cancel_local=sched.cancel_local)
    return service, sched, clock


def hourly(**fields: object) -> JobInput:
    return JobInput(name="h", agent_id="agent", schedule="0 * * * *", prompt="go", **fields)  # type: ignore[arg-type]


async def drain(sched: Scheduler) -> None:
    executor = sched.executor
    assert isinstance(executor, SimExecutor)
    await quiesce(executor, [a.task for a in sched._active.values()])


async def test_enabling_counts_from_now_so_the_disabled_hours_are_no_misfire(store: Store) -> None:
    service, sched, clock = await setup(store)
    job = await service.add(hourly())
    await service.set_enabled("h", False)
    await clock.advance_to(to_ms(START) + 5 * HOUR + 10 * MIN)
    enabled = await service.set_enabled("h", True)
    assert enabled.next_run_at_ms == to_ms(START) + 6 * HOUR
    await sched.tick(clock.now)
    await drain(sched)
    # Nothing ran or was skipped for the five hours the job was off.
    assert await service.cron.list_runs(job_id=job.id) == []


async def test_run_now_is_started_by_the_scheduler_and_waits_for_a_running_one(
    store: Store,
) -> None:
    service, sched, clock = await setup(store, duration_ms=10 * MIN)
    job = await service.add(hourly())
    await clock.advance_to(to_ms(START) + HOUR)
    await sched.tick(clock.now)  # the 01:00 run starts and takes 10 minutes
    await drain(sched)
    extra = await service.run_now("h", ADMIN)
    await sched.tick(clock.now)
    assert (await service.run(extra.id)).status is RunStatus.QUEUED  # overlap skip: it waits
    await clock.advance_to(clock.now + 10 * MIN)
    await drain(sched)
    await sched.tick(clock.now)
    await drain(sched)
    started = await service.run(extra.id)
    assert started.status is RunStatus.RUNNING and started.principal == "admin_token:tok_1"
    await clock.advance_to(clock.now + 10 * MIN)
    await drain(sched)
    await sched.tick(clock.now)
    done = await service.cron.list_runs(job_id=job.id)
    assert sorted((r.reason or "", r.status.value) for r in done) == [
        ("", "succeeded"),
        ("run-now", "succeeded"),
    ]


async def test_cancel_stops_a_local_run_at_once_and_it_is_not_retried(store: Store) -> None:
    service, sched, clock = await setup(store, duration_ms=30 * MIN)
    job = await service.add(hourly(retries=3, backoff="0"))
    await clock.advance_to(to_ms(START) + HOUR)
    await sched.tick(clock.now)
    await drain(sched)
    [running] = await service.cron.list_runs(job_id=job.id)
    cancelled = await service.cancel(running.id)
    assert cancelled.status is RunStatus.CANCELLED
    await drain(sched)
    assert sched.active_runs == [] or all(a.task.done() for a in sched._active.values())
    await sched.tick(clock.now + 1)
    await sched.tick(clock.now + 2)
    runs = await service.cron.list_runs(job_id=job.id)
    assert [(r.status, r.reason) for r in runs] == [(RunStatus.CANCELLED, "cancelled by request")]


async def test_a_cancel_from_another_process_is_noticed_at_the_next_beat(store: Store) -> None:
    service, sched, clock = await setup(store, duration_ms=30 * MIN)
    job = await service.add(hourly())
    elsewhere = CronService(service.cron, known, clock)  # e.g. the CLI: no local scheduler
    await clock.advance_to(to_ms(START) + HOUR)
    await sched.tick(clock.now)
    await drain(sched)
    [running] = await service.cron.list_runs(job_id=job.id)
    await elsewhere.cancel(running.id)
    assert sched.active_runs == [running.id]  # not yet noticed
    await clock.advance_to(clock.now + MIN)
    await sched.tick(clock.now)  # the beat finds the row closed and stops the run
    await drain(sched)
    await sched.tick(clock.now)
    assert sched.active_runs == []
    [after] = await service.cron.list_runs(job_id=job.id)
    assert after.status is RunStatus.CANCELLED
