"""Exactly-once cron across replicas: three ``palyra serve`` processes share one PostgreSQL
database and each runs the scheduler; the agent runs call a real fake upstream on loopback.

A job fires every second for a minute: every scheduled second runs exactly once, on one of the
replicas, and the upstream sees one request per run. Meanwhile a slow one-time job is running
when its replica is killed with SIGKILL: another replica closes it as interrupted once its lease
runs out and, as the job's retry policy says, runs attempt 2, once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from palyra.cron.job_input import first_run_ms
from palyra.cron.policies import OverlapPolicy, RetryPolicy
from palyra.cron.records import JobSpec, RunRecord, RunStatus, from_ms, to_ms
from palyra.cron.schedule import parse_schedule
from palyra.cron.store import CronStore
from palyra.daemon.schemas import STORE_SCHEMAS
from palyra.store import open_store
from palyra.store.schema_status import upgrade_schema
from palyra.testing import FakeUpstream, Fault, FaultKind
from replica_support import Replica, Replicas

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

UPSTREAM_KEY = "sk-cron-replicas-upstream-0123456789"
TICK_SECONDS = 60
SLOW_DELAY_MS = 20_000  # the first attempt is still waiting for its answer when killed
LEASE_S = 2.0
CONFIG = """version = 1
[daemon]
client_tokens = ["env:PALYRA_CLIENT_TOKEN"]
[storage]
url = "{url}"
[cron]
heartbeat_s = 0.5
lease_s = {lease}
[model_provider]
default_chat_model = "fast"
[[model_provider.providers]]
id = "up"
kind = "openai"
base_url = "{base}"
api_key = "env:CRON_REPLICAS_UPSTREAM_KEY"
[[model_provider.models]]
id = "fast"
provider = "up"
model = "gpt-4o-mini"
[[model_provider.models]]
id = "slow"
provider = "up"
model = "gpt-4.1"
"""
AGENTS = """version = 1
[[agents]]
id = "ticker"
model = "fast"
[[agents]]
id = "sleeper"
model = "slow"
"""


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_keys={UPSTREAM_KEY}) as upstream:
        yield upstream


async def _setup(url: str) -> None:
    store = await open_store(url)
    try:
        await upgrade_schema(store, STORE_SCHEMAS)  # what `palyra db upgrade` does
    finally:
        await store.aclose()


async def _add_jobs(url: str, slow_at: datetime) -> tuple[str, str]:
    store = await open_store(url)
    try:
        cron = CronStore(store)
        now_ms = to_ms(datetime.now(UTC))
        now = from_ms(now_ms)  # as CronService does: times on the millisecond grid
        tick = parse_schedule("every 1s", now=now)
        once = parse_schedule(f"at {slow_at.strftime('%Y-%m-%dT%H:%M:%S')}", now=now)
        ticks = await cron.add_job(
            JobSpec("tick", "tick", "ticker", tick, overlap=OverlapPolicy.ALLOW),
            next_run_at_ms=first_run_ms(tick, now),
            now_ms=now_ms,
        )
        slow = await cron.add_job(
            JobSpec(
                "slow",
                "take your time",
                "sleeper",
                once,
                retry=RetryPolicy(attempts=2, backoff_s=(0.0,)),  # one retry
            ),
            next_run_at_ms=first_run_ms(once, now),
            now_ms=now_ms,
        )
        return ticks.id, slow.id
    finally:
        await store.aclose()


async def _runs(url: str, job_id: str) -> list[RunRecord]:
    store = await open_store(url)
    try:
        return await CronStore(store).list_runs(job_id=job_id, limit=100_000)
    finally:
        await store.aclose()


async def _stop_ticking(url: str, job_id: str) -> None:
    store = await open_store(url)
    try:
        cron = CronStore(store)
        job = await cron.get_job(job_id)
        assert job is not None
        spec = JobSpec(**{f: getattr(job.spec, f) for f in job.spec.__slots__} | {"enabled": False})
        await cron.update_job(job_id, spec, next_run_at_ms=None, now_ms=to_ms(datetime.now(UTC)))
    finally:
        await store.aclose()


def wait_for(what: str, check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _pid(owner: str | None) -> int:
    assert owner is not None
    return int(owner.split(":")[1])


def test_three_replicas_run_each_time_once_and_recover_a_killed_ones_run(
    postgres_database: str, tmp_path: Path, fake: FakeUpstream
) -> None:
    url = postgres_database
    asyncio.run(_setup(url))
    config = CONFIG.format(url=url, base=fake.openai_base_url, lease=LEASE_S)
    fake.faults.push(Fault(FaultKind.SLOW_FIRST_BYTE, delay_ms=SLOW_DELAY_MS, model="gpt-4.1"))
    env = {"CRON_REPLICAS_UPSTREAM_KEY": UPSTREAM_KEY}
    with Replicas(tmp_path / "replicas", config, count=3, env=env) as started:
        for replica in started:  # read by each replica's agent runtime at each run
            (replica.state_dir / "agents.toml").write_text(AGENTS)
        by_pid: dict[int, Replica] = {r.process.pid: r for r in started}

        began = time.time()
        slow_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=8)
        tick_id, slow_id = asyncio.run(_add_jobs(url, slow_at))

        def slow_running() -> bool:
            runs = asyncio.run(_runs(url, slow_id))
            assert not [r for r in runs if r.status.finished], runs
            return any(r.status is RunStatus.RUNNING for r in runs)

        wait_for("the slow run to start", slow_running, timeout_s=40)
        first = next(r for r in asyncio.run(_runs(url, slow_id)) if r.attempt == 1)
        victim = by_pid[_pid(first.owner)]
        time.sleep(1.0)  # well inside its upstream call
        victim.process.kill()
        victim.process.wait(timeout=10)
        killed_at = time.time()

        def retried() -> bool:
            runs = asyncio.run(_runs(url, slow_id))
            return any(r.attempt == 2 and r.status is RunStatus.SUCCEEDED for r in runs)

        wait_for("another replica to retry the killed run", retried, timeout_s=40)
        recovered_in = time.time() - killed_at
        time.sleep(max(0.0, began + TICK_SECONDS - time.time()))
        asyncio.run(_stop_ticking(url, tick_id))

        def ticks_settled() -> bool:
            runs = asyncio.run(_runs(url, tick_id))
            return all(r.status.finished for r in runs)

        wait_for("the last ticks to finish", ticks_settled, timeout_s=30)
        survivors = [r for r in started if r is not victim]

    ticks = asyncio.run(_runs(url, tick_id))
    slow_runs = sorted(asyncio.run(_runs(url, slow_id)), key=lambda r: r.attempt)
    requests = Counter(r.model for r in fake.requests if r.path == "/v1/chat/completions")

    # Every scheduled second from the first to the last ran exactly once: one row each, on a
    # one-second grid without a gap.
    times = sorted(r.scheduled_for_ms for r in ticks if r.scheduled_for_ms is not None)
    assert len(times) >= TICK_SECONDS - 10, len(times)
    assert len(set(times)) == len(times)
    assert times == list(range(times[0], times[-1] + 1000, 1000))
    assert {r.attempt for r in ticks} == {1}  # retries 0: nothing was run a second time
    statuses = Counter(r.status for r in ticks)
    interrupted = [r for r in ticks if r.status is RunStatus.INTERRUPTED]
    assert statuses[RunStatus.SUCCEEDED] + len(interrupted) == len(ticks), statuses
    assert all(_pid(r.owner) == victim.process.pid for r in interrupted)  # only the killed one's
    # One upstream request per run that started: never two for one scheduled time.
    assert statuses[RunStatus.SUCCEEDED] <= requests["gpt-4o-mini"] <= len(ticks)
    # The claims were spread over replicas (which one wins a second is a race, so one replica
    # may win none: exactly once is what matters, and it held above).
    owners = {_pid(r.owner) for r in [*ticks, *slow_runs]}
    assert len(owners) >= 2 and owners <= set(by_pid), (owners, set(by_pid))

    # The killed replica's run: closed by another replica once its lease ran out, then
    # retried as the policy says (2 attempts in all), once.
    assert [(r.attempt, r.status) for r in slow_runs] == [
        (1, RunStatus.INTERRUPTED),
        (2, RunStatus.SUCCEEDED),
    ]
    assert slow_runs[0].reason == "its owner stopped renewing its lease"
    assert _pid(slow_runs[0].owner) == victim.process.pid
    assert _pid(slow_runs[1].owner) in {r.process.pid for r in survivors}
    assert requests["gpt-4.1"] == 2  # the killed attempt's request and the retry's
    assert recovered_in < 20, recovered_in
