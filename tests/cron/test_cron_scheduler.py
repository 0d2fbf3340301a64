"""The scheduler on simulated time against a real store (SQLite, and PostgreSQL where configured)."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sim_support import Script, SimClock, SimExecutor, fail, ok, quiesce, settle

from conftest import StoreTarget
from palyra.cron.policies import MisfirePolicy, OverlapPolicy, RetryPolicy
from palyra.cron.records import JobRecord, JobSpec, RunRecord, RunStatus, to_ms
from palyra.cron.schedule import parse_schedule
from palyra.cron.scheduler import RunOutcome, Scheduler, SchedulerSettings
from palyra.cron.store import CronStore
from palyra.store import Store, open_store

START = datetime(2026, 3, 1, tzinfo=UTC)
MIN = 60_000
HOUR = 60 * MIN
SETTINGS = SchedulerSettings(heartbeat_ms=5 * MIN, lease_ms=20 * MIN, misfire_grace_ms=30_000)


@dataclass
class World:
    cron: CronStore
    clock: SimClock
    executor: SimExecutor
    schedulers: list[Scheduler] = field(default_factory=list)

    def scheduler(self, owner: str = "a") -> Scheduler:
        sched = Scheduler(
            self.cron, self.executor, owner=owner, settings=SETTINGS, clock=self.clock
        )
        self.schedulers.append(sched)
        return sched

    async def add(self, schedule: str, *, zone: str = "UTC", **overrides: object) -> JobRecord:
        values: dict[str, object] = {
            "name": f"job{len(await self.cron.list_jobs())}",
            "prompt": "go",
            "agent_id": "agent",
            "schedule": parse_schedule(schedule, timezone=zone, now=START),
            "max_runtime_s": 6 * 3600.0,
            "catch_up_window_s": 6 * 3600,
        }
        values.update(overrides)
        spec = JobSpec(**values)  # type: ignore[arg-type]
        first = spec.schedule.next_after(datetime.fromtimestamp(self.clock.now / 1000, UTC))
        return await self.cron.add_job(
            spec, next_run_at_ms=to_ms(first) if first else None, now_ms=self.clock.now
        )

    async def settle(self, sched: Scheduler) -> None:
        await quiesce(self.executor, [a.task for a in sched._active.values()])

    async def run_until(self, sched: Scheduler, end_ms: int, max_step: int = 10 * MIN) -> int:
        """Event-driven: tick, then jump to the next wake-up (a due time, a run ending, a beat)."""
        ticks = 0
        while self.clock.now < end_ms:
            wake = await sched.tick(self.clock.now)
            await self.settle(sched)
            ticks += 1
            candidates = [end_ms, self.clock.now + max_step]
            if wake is not None:
                candidates.append(wake)
            waiter = self.clock.next_waiter()
            if waiter is not None:
                candidates.append(waiter)
            await self.clock.advance_to(max(self.clock.now + 1, min(candidates)))
            await self.settle(sched)
        await sched.tick(self.clock.now)
        await self.settle(sched)
        return ticks

    async def runs(self, job: JobRecord) -> list[RunRecord]:
        return sorted(
            await self.cron.list_runs(job_id=job.id, limit=100_000),
            key=lambda r: (r.scheduled_for_ms or 0, r.attempt),
        )


async def world(store: Store, script: Script) -> World:
    cron = CronStore(store)
    await cron.ensure()
    clock = SimClock(to_ms(START))
    return World(cron, clock, SimExecutor(clock, script))


def kill(sched: Scheduler) -> None:
    """A SIGKILL: the process's tasks stop and nothing it would have written is written."""
    for run_id in sched.active_runs:
        sched._active[run_id].task.cancel()
    sched._active.clear()


async def test_a_due_job_runs_once_and_moves_on(store: Store) -> None:
    w = await world(store, lambda run, job: ok(MIN))
    job = await w.add("0 * * * *")
    sched = w.scheduler()
    await w.run_until(sched, to_ms(START) + 3 * HOUR + 30 * MIN)
    runs = await w.runs(job)
    assert [(r.scheduled_for_ms, r.status) for r in runs] == [
        (to_ms(START) + h * HOUR, RunStatus.SUCCEEDED) for h in (1, 2, 3)
    ]
    assert all(r.principal == "system:daemon" and r.agent_id == "agent" for r in runs)
    assert runs[0].duration_ms == MIN and runs[0].input_tokens == 10
    events = await w.cron.events(runs[0].id)
    assert [e.type for e in events] == ["run_started", "run_completed"]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        # Hourly; the runs of 01:00 .. 04:00 last 90 minutes, later ones 10.
        (
            OverlapPolicy.SKIP,
            ["succeeded", "skipped:overlap", "succeeded", "skipped:overlap", "succeeded"],
        ),
        (
            OverlapPolicy.QUEUE_ONE,
            ["succeeded", "succeeded", "succeeded", "succeeded", "skipped:overlap"],
        ),
        (OverlapPolicy.REPLACE, ["cancelled:replaced"] * 4 + ["succeeded"]),
        (OverlapPolicy.ALLOW, ["succeeded"] * 5),
    ],
)
async def test_overlap_policies(store: Store, policy: OverlapPolicy, expected: list[str]) -> None:
    base = to_ms(START)

    def script(run: RunRecord, job: JobRecord | None) -> tuple[int, RunOutcome]:
        return ok(90 * MIN if run.scheduled_for_ms <= base + 4 * HOUR else 10 * MIN)  # type: ignore[operator]

    w = await world(store, script)
    job = await w.add("0 * * * *", overlap=policy)
    await w.run_until(w.scheduler(), base + 9 * HOUR)
    runs = [r for r in await w.runs(job) if r.scheduled_for_ms <= base + 5 * HOUR]  # type: ignore[operator]
    got = [r.status.value + (f":{r.reason}" if r.reason else "") for r in runs]
    assert got == expected
    # Never two at once unless the policy allows it; queued runs keep their order.
    spans = sorted((r.started_at_ms, r.finished_at_ms) for r in runs if r.started_at_ms)
    overlapping = any(a_end > b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))  # type: ignore[operator]
    assert overlapping is (policy is OverlapPolicy.ALLOW)
    started = [
        r.scheduled_for_ms
        for r in sorted(runs, key=lambda r: r.started_at_ms or 0)
        if r.started_at_ms
    ]
    assert started == sorted(started)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (MisfirePolicy.SKIP, {"skipped:misfire": 4, "succeeded": 0}),
        (MisfirePolicy.RUN_ONCE, {"skipped:misfire_coalesced": 3, "succeeded": 1}),
        (MisfirePolicy.RUN_ALL, {"skipped:misfire_over_limit": 2, "succeeded": 2}),
    ],
)
async def test_misfire_after_downtime(
    store: Store, policy: MisfirePolicy, expected: dict[str, int]
) -> None:
    w = await world(store, lambda run, job: ok(MIN))
    job = await w.add("0 * * * *", misfire=policy, max_catch_up=2)
    sched = w.scheduler()
    await w.run_until(sched, to_ms(START) + HOUR + 30 * MIN)  # 01:00 runs on time
    kill(sched)
    await w.clock.advance_to(to_ms(START) + 5 * HOUR + 30 * MIN)  # down for 02:00 .. 05:00
    await w.run_until(w.scheduler("b"), to_ms(START) + 5 * HOUR + 40 * MIN)
    runs = await w.runs(job)
    assert runs[0].status is RunStatus.SUCCEEDED  # on time, before the downtime
    later = Counter(
        r.status.value + (f":{r.reason}" if r.status is RunStatus.SKIPPED else "") for r in runs[1:]
    )
    assert {k: later.get(k, 0) for k in expected} == expected
    assert len(runs) == 5  # 01:00 .. 05:00, each exactly once


async def test_on_time_is_never_a_misfire(store: Store) -> None:
    w = await world(store, lambda run, job: ok(MIN))
    job = await w.add("*/10 * * * *", misfire=MisfirePolicy.SKIP)
    await w.run_until(w.scheduler(), to_ms(START) + HOUR + 5 * MIN)
    runs = await w.runs(job)
    assert len(runs) == 6 and {r.status for r in runs} == {RunStatus.SUCCEEDED}


async def test_misfire_older_than_the_window_never_runs(store: Store) -> None:
    w = await world(store, lambda run, job: ok(MIN))
    job = await w.add(
        "0 * * * *", misfire=MisfirePolicy.RUN_ALL, max_catch_up=10, catch_up_window_s=2 * 3600
    )
    await w.clock.advance_to(to_ms(START) + 4 * HOUR + 10 * MIN)  # nobody ran 01:00 .. 04:00
    await w.run_until(w.scheduler(), to_ms(START) + 4 * HOUR + 20 * MIN)
    got = [(r.scheduled_for_ms, r.status.value, r.reason) for r in await w.runs(job)]
    base = to_ms(START)
    assert got == [
        (base + 1 * HOUR, "skipped", "misfire_expired"),
        (base + 2 * HOUR, "skipped", "misfire_expired"),
        (base + 3 * HOUR, "succeeded", None),
        (base + 4 * HOUR, "succeeded", "catch-up"),
    ]


async def test_retry_after_failure_and_no_retry_when_not_retryable(store: Store) -> None:
    def script(run: RunRecord, job: JobRecord | None) -> tuple[int, RunOutcome]:
        assert job is not None
        if job.name == "flaky":
            return fail(MIN) if run.attempt == 1 else ok(MIN)
        return fail(MIN, category="config")

    w = await world(store, script)
    flaky = await w.add(
        "0 * * * *", name="flaky", retry=RetryPolicy(attempts=3, backoff_s=(120.0,))
    )
    broken = await w.add(
        "0 * * * *", name="broken", retry=RetryPolicy(attempts=3, backoff_s=(120.0,))
    )
    await w.run_until(w.scheduler(), to_ms(START) + HOUR + 30 * MIN)
    f = await w.runs(flaky)
    assert [(r.attempt, r.status) for r in f] == [(1, RunStatus.FAILED), (2, RunStatus.SUCCEEDED)]
    assert f[1].started_at_ms - f[0].finished_at_ms >= 120_000  # type: ignore[operator]
    assert f[0].error_category == "upstream"
    assert [(r.attempt, r.status) for r in await w.runs(broken)] == [(1, RunStatus.FAILED)]


async def test_max_runtime_ends_a_run_as_timed_out(store: Store) -> None:
    w = await world(store, lambda run, job: ok(3 * HOUR))
    job = await w.add("0 * * * *", max_runtime_s=600.0)
    await w.run_until(w.scheduler(), to_ms(START) + HOUR + 30 * MIN)
    run = (await w.runs(job))[0]
    assert run.status is RunStatus.TIMED_OUT and run.reason == "max runtime 600s reached"
    assert 600_000 <= run.duration_ms <= 660_000  # type: ignore[operator]


async def test_a_run_left_by_a_dead_scheduler_is_interrupted_and_retried(store: Store) -> None:
    w = await world(store, lambda run, job: ok(10 * MIN))
    job = await w.add("0 * * * *", retry=RetryPolicy(attempts=2, backoff_s=(0.0,)))
    first = w.scheduler("a")
    await w.run_until(first, to_ms(START) + HOUR + 2 * MIN)
    kill(first)  # mid-run
    second = w.scheduler("b")
    await w.run_until(second, to_ms(START) + HOUR + 50 * MIN)
    runs = await w.runs(job)
    assert [(r.attempt, r.status, r.owner) for r in runs] == [
        (1, RunStatus.INTERRUPTED, "a"),
        (2, RunStatus.SUCCEEDED, "b"),
    ]
    assert runs[0].reason == "its owner stopped renewing its lease"


async def test_a_cancelled_run_stops_at_its_owners_next_beat(store: Store) -> None:
    w = await world(store, lambda run, job: ok(2 * HOUR))
    job = await w.add("0 * * * *")
    sched = w.scheduler()
    await w.run_until(sched, to_ms(START) + HOUR + MIN)
    run = (await w.runs(job))[0]
    assert await w.cron.finish(run.id, RunStatus.CANCELLED, now_ms=w.clock.now, reason="by admin")
    await w.run_until(sched, to_ms(START) + HOUR + 10 * MIN)
    assert sched.active_runs == []
    final = (await w.runs(job))[0]
    assert final.status is RunStatus.CANCELLED and final.reason == "by admin"


async def test_jitter_delays_within_its_bound(store: Store) -> None:
    w = await world(store, lambda run, job: ok(MIN))
    await w.add("0 * * * *", jitter_s=300.0)
    await w.run_until(w.scheduler(), to_ms(START) + 12 * HOUR + 10 * MIN)
    delays = [start - scheduled for _, scheduled, start in w.executor.started]
    assert len(delays) == 12
    assert all(0 <= d <= 300_000 + 10_000 for d in delays)
    assert len(set(delays)) > 1


async def test_two_schedulers_on_one_database_run_each_time_once(store_target: StoreTarget) -> None:
    a_store = await open_store(store_target.url, schema=store_target.schema)
    b_store = await open_store(store_target.url, schema=store_target.schema)
    try:
        clock = SimClock(to_ms(START))
        executor = SimExecutor(clock, lambda run, job: ok(30_000))
        a_cron, b_cron = CronStore(a_store), CronStore(b_store)
        await a_cron.ensure()
        await b_cron.ensure()
        w = World(a_cron, clock, executor)
        job = await w.add("* * * * *", overlap=OverlapPolicy.ALLOW)
        a = Scheduler(a_cron, executor, owner="a", settings=SETTINGS, clock=clock)
        b = Scheduler(b_cron, executor, owner="b", settings=SETTINGS, clock=clock)
        for _ in range(60):
            await clock.advance_to(clock.now + 60_000)
            await asyncio.gather(a.tick(clock.now), b.tick(clock.now))
            await settle()
        await clock.advance_to(clock.now + 60_000)
        await a.tick(clock.now)
        await b.tick(clock.now)
        runs = await w.runs(job)
        times = [r.scheduled_for_ms for r in runs if r.attempt == 1]
        assert len(times) == len(set(times)) >= 60
        assert Counter(r.owner for r in runs).keys() <= {"a", "b"}
        assert len(executor.started) == len(times)  # nothing executed twice
    finally:
        await a_store.aclose()
        await b_store.aclose()


# --- the long simulation -------------------------------------------------------------------------


@pytest.fixture
def sim_db(tmp_path: Path) -> Iterator[Path]:
    """A SQLite file on tmpfs when there is one: ten thousand ticks of fsyncs cost minutes on disk."""
    shm = Path("/dev/shm")
    where = shm if shm.is_dir() and os.access(shm, os.W_OK) else tmp_path
    db = where / f"palyra-sim-{os.getpid()}-{tmp_path.name}.db"
    yield db
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


async def test_ten_thousand_ticks_with_restarts_across_both_dst_changes(sim_db: Path) -> None:
    """Mar 2026 .. Jan 2027 in Berlin and New York: every fire time gets exactly one row.

    Restarts kill the scheduler in the middle of runs (downtimes of 0 s to 3 h, and one of five
    months); jobs at 02:30 and 01:30 local time cross both DST changes in both zones.
    """
    store = await open_store(f"sqlite+aiosqlite:///{sim_db}")
    rng = random.Random(7)
    settings = SchedulerSettings(heartbeat_ms=HOUR, lease_ms=3 * HOUR, misfire_grace_ms=30_000)

    def script(run: RunRecord, job: JobRecord | None) -> tuple[int, RunOutcome]:
        assert job is not None
        r = random.Random(f"{job.name}{run.scheduled_for_ms}{run.attempt}")
        if job.name == "berlin-0230":
            return ok(10 * MIN)
        if job.name == "ny-0130":
            return fail(5 * MIN) if run.attempt == 1 and r.random() < 0.2 else ok(5 * MIN)
        if job.name == "berlin-6h":
            return ok(7 * HOUR if r.random() < 0.2 else 20 * MIN)
        return ok(5 * HOUR if r.random() < 0.2 else 10 * MIN)  # ny-4h

    try:
        w = await world(store, script)
        jobs = [
            await w.add(
                "30 2 * * *",
                zone="Europe/Berlin",
                name="berlin-0230",
                misfire=MisfirePolicy.RUN_ONCE,
                jitter_s=60.0,
            ),
            await w.add(
                "30 1 * * *",
                zone="America/New_York",
                name="ny-0130",
                misfire=MisfirePolicy.RUN_ALL,
                retry=RetryPolicy(attempts=2, backoff_s=(60.0,)),
            ),
            await w.add(
                "0 */6 * * *",
                zone="Europe/Berlin",
                name="berlin-6h",
                overlap=OverlapPolicy.SKIP,
                misfire=MisfirePolicy.SKIP,
                max_runtime_s=8 * 3600.0,
            ),
            await w.add(
                "15 */4 * * *",
                zone="America/New_York",
                name="ny-4h",
                overlap=OverlapPolicy.QUEUE_ONE,
                misfire=MisfirePolicy.RUN_ONCE,
            ),
        ]

        def scheduler(owner: str) -> Scheduler:
            sched = Scheduler(w.cron, w.executor, owner=owner, settings=settings, clock=w.clock)
            w.schedulers.append(sched)
            return sched

        end = to_ms(datetime(2027, 1, 10, tzinfo=UTC))
        long_gap = (
            to_ms(datetime(2026, 5, 1, tzinfo=UTC)),
            to_ms(datetime(2026, 10, 1, tzinfo=UTC)),
        )
        sched = scheduler("s0")
        ticks = 0
        restarts = 0
        while w.clock.now < end and ticks < 10_000:
            wake = await sched.tick(w.clock.now)
            await w.settle(sched)
            ticks += 1
            in_gap = long_gap[0] <= w.clock.now < long_gap[1]
            if in_gap or (rng.random() < 0.01 and sched.active_runs):  # restart mid-run
                kill(sched)
                down = (
                    long_gap[1] - w.clock.now
                    if in_gap
                    else rng.choice([0, 2 * MIN, 45 * MIN, 3 * HOUR])
                )
                await w.clock.advance_to(w.clock.now + down)
                sched = scheduler(f"s{len(w.schedulers)}")
                restarts += 1
                continue
            step = [w.clock.now + 6 * HOUR]
            if wake is not None:
                step.append(wake)
            waiter = w.clock.next_waiter()
            if waiter is not None:
                step.append(waiter)
            await w.clock.advance_to(max(w.clock.now + 1, min(step)))
            await w.settle(sched)
        assert ticks == 10_000 or w.clock.now >= end
        await sched.tick(w.clock.now)
        last = w.clock.now
        assert last > to_ms(datetime(2026, 11, 2, tzinfo=UTC)), "the run must pass both DST changes"
        assert restarts >= 10

        executed = Counter(rid for rid, _, _ in w.executor.started)
        assert max(executed.values()) == 1, "a run executed twice"
        statuses: Counter[RunStatus] = Counter()
        for job in jobs:
            expected = []
            cursor = START
            while True:
                nxt = job.spec.schedule.next_after(cursor)
                if nxt is None or to_ms(nxt) > last - settings.misfire_grace_ms - 60_000:
                    break
                expected.append(to_ms(nxt))
                cursor = nxt
            runs = await w.runs(job)
            statuses.update(r.status for r in runs)
            firsts = [r.scheduled_for_ms for r in runs if r.attempt == 1]
            assert len(firsts) == len(set(firsts)), f"{job.name}: a time ran twice"
            missing = sorted(set(expected) - set(firsts))
            assert missing == [], f"{job.name}: {len(missing)} times never recorded"
            if job.name in ("berlin-0230", "ny-0130"):
                zone = job.spec.schedule.matcher.zone  # type: ignore[union-attr]
                days = Counter(datetime.fromtimestamp(t / 1000, zone).date() for t in firsts)  # type: ignore[operator]
                assert max(days.values()) == 1, f"{job.name}: twice on one local day"
            spans = sorted(
                (r.started_at_ms, r.finished_at_ms)
                for r in runs
                if r.started_at_ms and r.finished_at_ms
            )
            for (_, a_end), (b_start, _) in itertools.pairwise(spans):
                assert a_end <= b_start, f"{job.name}: two runs at once"  # type: ignore[operator]
            for r in runs:
                if r.status is RunStatus.SKIPPED:
                    assert r.reason in {
                        "overlap",
                        "misfire",
                        "misfire_coalesced",
                        "misfire_over_limit",
                        "misfire_expired",
                    }
            gap_rows = [
                r
                for r in runs
                if long_gap[0] + 6 * 3600_000
                < (r.scheduled_for_ms or 0)
                < long_gap[1] - 6 * 3600_000
            ]
            assert gap_rows and all(r.reason == "misfire_expired" for r in gap_rows)
        assert statuses[RunStatus.INTERRUPTED] >= 1
        assert statuses[RunStatus.SUCCEEDED] > 500
    finally:
        await store.aclose()
