import asyncio
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from conftest import StoreTarget
from palyra.cron.ids import is_ulid, new_ulid
from palyra.cron.records import JobSpec, RunStatus, to_ms
from palyra.cron.schedule import parse_schedule
from palyra.cron.store import CRON_SCHEMA, DEFAULT_LEASE_MS, CronStore
from palyra.store import MigrationSet, Store, open_store

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
NOW_MS = to_ms(NOW)


def spec(name: str = "daily-report", **overrides: object) -> JobSpec:
    values: dict[str, object] = {
        "name": name,
        "prompt": "Summarise yesterday",
        "agent_id": "reporter",
        "schedule": parse_schedule("30 2 * * *", timezone="Europe/Berlin", now=NOW),
    }
    values.update(overrides)
    return JobSpec(**values)  # type: ignore[arg-type]


async def test_jobs_round_trip_and_names_are_unique(store: Store) -> None:
    cron = CronStore(store)
    await cron.ensure()
    job = await cron.add_job(
        spec(auth_profile_id="openai-work"), next_run_at_ms=NOW_MS + 1000, now_ms=NOW_MS
    )
    assert is_ulid(job.id)
    again = await cron.get_job("daily-report")
    assert again == job
    assert again.spec.schedule.to_json() == {
        "kind": "cron",
        "expression": "30 2 * * *",
        "timezone": "Europe/Berlin",
    }
    with pytest.raises(ValueError, match="'daily-report' already exists"):
        await cron.add_job(spec(), next_run_at_ms=None, now_ms=NOW_MS)
    assert [j.id for j in await cron.list_jobs()] == [job.id]


async def test_due_jobs_and_compare_and_set_advance(store: Store) -> None:
    cron = CronStore(store)
    await cron.ensure()
    due = await cron.add_job(spec("due"), next_run_at_ms=NOW_MS - 1, now_ms=NOW_MS)
    await cron.add_job(spec("later"), next_run_at_ms=NOW_MS + 60_000, now_ms=NOW_MS)
    await cron.add_job(spec("off", enabled=False), next_run_at_ms=NOW_MS - 1, now_ms=NOW_MS)
    assert [j.name for j in await cron.due_jobs(NOW_MS)] == ["due"]
    assert await cron.next_due_ms() == NOW_MS - 1
    assert await cron.advance(
        due.id, expected_next_ms=NOW_MS - 1, next_run_at_ms=NOW_MS + 5, last_scheduled_ms=NOW_MS - 1
    )
    # A second scheduler that read the old value loses the compare and set.
    assert not await cron.advance(
        due.id, expected_next_ms=NOW_MS - 1, next_run_at_ms=NOW_MS + 9, last_scheduled_ms=NOW_MS - 1
    )
    assert (await cron.get_job(due.id)).next_run_at_ms == NOW_MS + 5  # type: ignore[union-attr]


async def test_a_scheduled_time_is_claimed_once(store: Store) -> None:
    cron = CronStore(store)
    await cron.ensure()
    job = await cron.add_job(spec(), next_run_at_ms=NOW_MS, now_ms=NOW_MS)
    first = await cron.claim(
        job=job,
        scheduled_for_ms=NOW_MS,
        attempt=1,
        status=RunStatus.RUNNING,
        principal="system:daemon",
        owner="a",
        now_ms=NOW_MS,
    )
    second = await cron.claim(
        job=job,
        scheduled_for_ms=NOW_MS,
        attempt=1,
        status=RunStatus.RUNNING,
        principal="system:daemon",
        owner="b",
        now_ms=NOW_MS,
    )
    assert first is not None and second is None
    assert first.agent_id == "reporter" and first.owner == "a"
    # A retry is another attempt of the same time: its own claim.
    retry = await cron.claim(
        job=job,
        scheduled_for_ms=NOW_MS,
        attempt=2,
        status=RunStatus.QUEUED,
        principal="system:daemon",
        owner=None,
        now_ms=NOW_MS,
    )
    assert retry is not None
    # Ad hoc runs (no job, no time) never clash.
    for _ in range(2):
        assert await cron.claim(
            job=None,
            scheduled_for_ms=None,
            attempt=1,
            status=RunStatus.RUNNING,
            principal="admin",
            owner="a",
            now_ms=NOW_MS,
            agent_id="reporter",
        )


async def test_two_stores_racing_for_the_same_times_get_one_run_each(
    store_target: StoreTarget,
) -> None:
    """Two independent engines on one database (as two processes would have) race 20 due times."""
    a = await open_store(store_target.url, schema=store_target.schema)
    b = await open_store(store_target.url, schema=store_target.schema)
    try:
        ca, cb = CronStore(a), CronStore(b)
        await ca.ensure()
        await cb.ensure()
        job = await ca.add_job(spec(), next_run_at_ms=NOW_MS, now_ms=NOW_MS)
        times = [NOW_MS + i * 1000 for i in range(20)]

        async def race(cron: CronStore, owner: str) -> list[int]:
            won = []
            for t in times:
                run = await cron.claim(
                    job=job,
                    scheduled_for_ms=t,
                    attempt=1,
                    status=RunStatus.RUNNING,
                    principal="system:daemon",
                    owner=owner,
                    now_ms=t,
                )
                if run is not None:
                    won.append(t)
            return won

        won_a, won_b = await asyncio.gather(race(ca, "a"), race(cb, "b"))
        assert sorted(won_a + won_b) == times
        assert not set(won_a) & set(won_b)
        assert len(await ca.list_runs(job_id=job.id, limit=100)) == 20
    finally:
        await a.aclose()
        await b.aclose()


async def test_finish_is_once_and_expired_leases_are_found(store: Store) -> None:
    cron = CronStore(store)
    await cron.ensure()
    job = await cron.add_job(spec(), next_run_at_ms=NOW_MS, now_ms=NOW_MS)
    run = await cron.claim(
        job=job,
        scheduled_for_ms=NOW_MS,
        attempt=1,
        status=RunStatus.RUNNING,
        principal="system:daemon",
        owner="a",
        now_ms=NOW_MS,
        lease_ms=1000,
    )
    assert run is not None and run.lease_until_ms == NOW_MS + 1000
    assert await cron.count_open(job.id) == (1, 0)
    assert await cron.expired_leases(NOW_MS + 1000) == []
    assert [r.id for r in await cron.expired_leases(NOW_MS + 1001)] == [run.id]
    assert await cron.heartbeat(run.id, owner="a", now_ms=NOW_MS + 10, lease_ms=1000)
    assert not await cron.heartbeat(run.id, owner="b", now_ms=NOW_MS + 10, lease_ms=1000)
    assert await cron.expired_leases(NOW_MS + 1001) == []
    # A recoverer that read the run as expired before the owner renewed loses the close.
    assert not await cron.finish(
        run.id, RunStatus.INTERRUPTED, now_ms=NOW_MS + 1005, lease_expired_at_ms=NOW_MS + 1005
    )
    assert await cron.finish(
        run.id,
        RunStatus.INTERRUPTED,
        now_ms=NOW_MS + 1011,
        reason="owner stopped",
        lease_expired_at_ms=NOW_MS + 1011,
    )
    # The owner coming back late cannot overwrite the recoverer's verdict.
    assert not await cron.finish(run.id, RunStatus.SUCCEEDED, now_ms=NOW_MS + 1030)
    closed = await cron.get_run(run.id)
    assert (
        closed is not None and closed.status is RunStatus.INTERRUPTED and closed.duration_ms == 1011
    )
    assert await cron.count_open(job.id) == (0, 0)


async def test_queued_run_starts_once(store: Store) -> None:
    cron = CronStore(store)
    await cron.ensure()
    job = await cron.add_job(spec(), next_run_at_ms=NOW_MS, now_ms=NOW_MS)
    run = await cron.claim(
        job=job,
        scheduled_for_ms=NOW_MS,
        attempt=1,
        status=RunStatus.QUEUED,
        principal="system:daemon",
        owner=None,
        now_ms=NOW_MS,
    )
    assert run is not None
    assert await cron.start_queued(run.id, owner="a", now_ms=NOW_MS + 1)
    assert not await cron.start_queued(run.id, owner="b", now_ms=NOW_MS + 1)


async def test_events_in_order_after_a_sequence_number(store: Store) -> None:
    cron = CronStore(store)
    await cron.ensure()
    run = await cron.claim(
        job=None,
        scheduled_for_ms=None,
        attempt=1,
        status=RunStatus.RUNNING,
        principal="admin",
        owner="a",
        now_ms=NOW_MS,
        agent_id="x",
        prompt="hi",
    )
    assert run is not None and await cron.run_prompt(run.id) == "hi"
    for seq, kind in enumerate(["run_started", "model_delta", "run_completed"]):
        await cron.append_event(run.id, seq, kind, {"n": seq}, now_ms=NOW_MS + seq)
    assert [e.type for e in await cron.events(run.id)] == [
        "run_started",
        "model_delta",
        "run_completed",
    ]
    tail = await cron.events(run.id, after_seq=0)
    assert [e.to_json()["n"] for e in tail] == [1, 2]


def test_ulids_sort_by_time() -> None:
    a = new_ulid(1_000, 2**79)
    b = new_ulid(1_001, 0)
    assert a < b and is_ulid(a) and len(a) == 26
    with pytest.raises(ValueError, match="48 bits"):
        new_ulid(2**48)


async def test_upgrading_v1_gives_running_runs_the_v1_lease(store: Store) -> None:
    """A database made by cron schema v1 (no lease column) is upgraded in place: rows kept,
    a running run gets heartbeat + 30 s, the lease v1 implied."""
    v1 = MigrationSet("cron", CRON_SCHEMA.migrations[:1])
    await store.migrate(v1)
    async with store.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO runs (id, attempt, status, principal, created_at_ms, heartbeat_at_ms)"
                " VALUES ('r1', 1, 'running', 'system:daemon', 5, 7), "
                "('r2', 1, 'succeeded', 'system:daemon', 5, 7)"
            )
        )
    cron = CronStore(store)
    await cron.ensure()
    running = await cron.get_run("r1")
    done = await cron.get_run("r2")
    assert running is not None and running.lease_until_ms == 7 + DEFAULT_LEASE_MS
    assert done is not None and done.lease_until_ms is None
