"""Cron jobs, runs and run events in the store; a run is claimed by inserting its row.

Exactly-once comes from the database, not from the process: a scheduled run's row has the unique
key (job id, scheduled time, attempt), so when two schedulers (threads, processes or replicas) find
the same time due, one insert wins and the other gets ``None`` from :meth:`CronStore.claim`. The
same holds on SQLite and PostgreSQL.

A running run is held under a lease (``lease_until_ms``) that its owner renews with each
heartbeat. Once the lease has run out, any scheduler may close the run as interrupted; that close
is conditional on the lease still being expired, so a slow owner that renewed in time keeps it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from palyra.cron.ids import new_ulid
from palyra.cron.policies import MisfirePolicy, OverlapPolicy, RetryPolicy
from palyra.cron.records import (
    Delivery,
    JobRecord,
    JobSpec,
    RunEventRecord,
    RunRecord,
    RunStatus,
)
from palyra.cron.schedule import schedule_from_json
from palyra.store import Migration, MigrationSet, Store

metadata = sa.MetaData()

cron_jobs = sa.Table(
    "cron_jobs",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("prompt", sa.Text, nullable=False),
    sa.Column("agent_id", sa.String(128), nullable=False),
    sa.Column("auth_profile_id", sa.String(128), nullable=True),
    sa.Column("schedule", sa.Text, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("overlap", sa.String(16), nullable=False),
    sa.Column("misfire", sa.String(16), nullable=False),
    sa.Column("catch_up_window_s", sa.Integer, nullable=False),
    sa.Column("max_catch_up", sa.Integer, nullable=False),
    sa.Column("retry_attempts", sa.Integer, nullable=False),
    sa.Column("retry_backoff", sa.Text, nullable=False),
    sa.Column("jitter_s", sa.Float, nullable=False),
    sa.Column("max_runtime_s", sa.Float, nullable=False),
    sa.Column("webhook_url", sa.Text, nullable=True),
    sa.Column("webhook_secret_ref", sa.Text, nullable=True),
    sa.Column("next_run_at_ms", sa.BigInteger, nullable=True),
    sa.Column("last_scheduled_ms", sa.BigInteger, nullable=True),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_cron_jobs_due", "enabled", "next_run_at_ms"),
)


def _runs_v1(meta: sa.MetaData) -> sa.Table:
    """``runs`` as migration 1 made it (migration 2 adds ``lease_until_ms``)."""
    return sa.Table(
        "runs",
        meta,
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("job_id", sa.String(26), nullable=True),
        sa.Column("scheduled_for_ms", sa.BigInteger, nullable=True),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("error_category", sa.String(32), nullable=True),
        sa.Column("agent_id", sa.String(128), nullable=True),
        sa.Column("auth_profile_id", sa.String(128), nullable=True),
        sa.Column("principal", sa.String(128), nullable=False),
        sa.Column("owner", sa.String(128), nullable=True),
        sa.Column("prompt", sa.Text, nullable=True),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("started_at_ms", sa.BigInteger, nullable=True),
        sa.Column("finished_at_ms", sa.BigInteger, nullable=True),
        sa.Column("heartbeat_at_ms", sa.BigInteger, nullable=True),
        sa.Column("not_before_ms", sa.BigInteger, nullable=True),
        sa.Column("input_tokens", sa.Integer, nullable=True),
        sa.Column("output_tokens", sa.Integer, nullable=True),
        # One row per (job, scheduled time, attempt): the claim. Ad hoc runs have NULLs, which
        # never clash.
        sa.UniqueConstraint("job_id", "scheduled_for_ms", "attempt", name="uq_runs_claim"),
        sa.Index("ix_runs_job_created", "job_id", "created_at_ms"),
        sa.Index("ix_runs_status", "status"),
    )


runs = _runs_v1(metadata)
runs.append_column(sa.Column("lease_until_ms", sa.BigInteger, nullable=True))

run_events = sa.Table(
    "run_events",
    metadata,
    sa.Column("run_id", sa.String(26), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
)


# A running run's lease unless the scheduler says otherwise; also the lease that runs running
# when a database is upgraded to v2 get (v1 took a run as dead after 30 s without a heartbeat).
DEFAULT_LEASE_MS = 30_000


def _create_v1(conn: Connection) -> None:
    v1 = sa.MetaData()
    for table in (cron_jobs, run_events):
        table.to_metadata(v1)
    _runs_v1(v1)
    v1.create_all(conn)


def _add_lease_v2(conn: Connection) -> None:
    conn.execute(sa.text("ALTER TABLE runs ADD COLUMN lease_until_ms BIGINT"))
    lease = sa.table(
        "runs", sa.column("status"), sa.column("heartbeat_at_ms"), sa.column("lease_until_ms")
    )
    conn.execute(
        sa.update(lease)
        .where(lease.c.status == RunStatus.RUNNING.value)
        .values(lease_until_ms=lease.c.heartbeat_at_ms + DEFAULT_LEASE_MS)
    )


CRON_SCHEMA = MigrationSet(
    "cron",
    [
        Migration(1, "create cron_jobs, runs, run_events", _create_v1),
        Migration(2, "lease column on runs", _add_lease_v2),
    ],
)


def _job_values(spec: JobSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "prompt": spec.prompt,
        "agent_id": spec.agent_id,
        "auth_profile_id": spec.auth_profile_id,
        "schedule": json.dumps(spec.schedule.to_json()),
        "enabled": spec.enabled,
        "overlap": spec.overlap.value,
        "misfire": spec.misfire.value,
        "catch_up_window_s": spec.catch_up_window_s,
        "max_catch_up": spec.max_catch_up,
        "retry_attempts": spec.retry.attempts,
        "retry_backoff": json.dumps(list(spec.retry.backoff_s)),
        "jitter_s": spec.jitter_s,
        "max_runtime_s": spec.max_runtime_s,
        "webhook_url": spec.delivery.webhook_url,
        "webhook_secret_ref": spec.delivery.secret_ref,
    }


def _job(row: RowMapping) -> JobRecord:
    spec = JobSpec(
        name=row["name"],
        prompt=row["prompt"],
        agent_id=row["agent_id"],
        auth_profile_id=row["auth_profile_id"],
        schedule=schedule_from_json(json.loads(row["schedule"])),
        enabled=bool(row["enabled"]),
        overlap=OverlapPolicy(row["overlap"]),
        misfire=MisfirePolicy(row["misfire"]),
        catch_up_window_s=int(row["catch_up_window_s"]),
        max_catch_up=int(row["max_catch_up"]),
        retry=RetryPolicy(
            attempts=int(row["retry_attempts"]),
            backoff_s=tuple(float(b) for b in json.loads(row["retry_backoff"])),
        ),
        jitter_s=float(row["jitter_s"]),
        max_runtime_s=float(row["max_runtime_s"]),
        delivery=Delivery(row["webhook_url"], row["webhook_secret_ref"]),
    )
    return JobRecord(
        id=row["id"],
        spec=spec,
        next_run_at_ms=row["next_run_at_ms"],
        last_scheduled_ms=row["last_scheduled_ms"],
        created_at_ms=row["created_at_ms"],
        updated_at_ms=row["updated_at_ms"],
    )


def _run(row: RowMapping) -> RunRecord:
    return RunRecord(
        id=row["id"],
        job_id=row["job_id"],
        scheduled_for_ms=row["scheduled_for_ms"],
        attempt=row["attempt"],
        status=RunStatus(row["status"]),
        reason=row["reason"],
        error_category=row["error_category"],
        agent_id=row["agent_id"],
        auth_profile_id=row["auth_profile_id"],
        principal=row["principal"],
        owner=row["owner"],
        created_at_ms=row["created_at_ms"],
        started_at_ms=row["started_at_ms"],
        finished_at_ms=row["finished_at_ms"],
        heartbeat_at_ms=row["heartbeat_at_ms"],
        not_before_ms=row["not_before_ms"],
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        lease_until_ms=row["lease_until_ms"],
    )


class CronStore:
    """Jobs, runs and events on one :class:`~palyra.store.Store` (SQLite or PostgreSQL)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def ensure(self) -> None:
        await self.store.migrate(CRON_SCHEMA)

    # --- jobs -----------------------------------------------------------------------------------

    async def add_job(self, spec: JobSpec, *, next_run_at_ms: int | None, now_ms: int) -> JobRecord:
        """Insert a job; a name already taken raises ``ValueError`` naming it."""
        job_id = new_ulid(now_ms)
        values = _job_values(spec) | {
            "id": job_id,
            "next_run_at_ms": next_run_at_ms,
            "last_scheduled_ms": None,
            "created_at_ms": now_ms,
            "updated_at_ms": now_ms,
        }
        try:
            async with self.store.begin() as conn:
                await conn.execute(sa.insert(cron_jobs).values(**values))
        except IntegrityError:
            raise ValueError(f"a cron job named {spec.name!r} already exists") from None
        job = await self.get_job(job_id)
        assert job is not None
        return job

    async def get_job(self, id_or_name: str) -> JobRecord | None:
        async with self.store.connect() as conn:
            row = (
                (
                    await conn.execute(
                        sa.select(cron_jobs).where(
                            sa.or_(cron_jobs.c.id == id_or_name, cron_jobs.c.name == id_or_name)
                        )
                    )
                )
                .mappings()
                .first()
            )
        return _job(row) if row else None

    async def list_jobs(self) -> list[JobRecord]:
        async with self.store.connect() as conn:
            rows = (
                (await conn.execute(sa.select(cron_jobs).order_by(cron_jobs.c.id))).mappings().all()
            )
        return [_job(r) for r in rows]

    async def update_job(
        self, job_id: str, spec: JobSpec, *, next_run_at_ms: int | None, now_ms: int
    ) -> JobRecord:
        """Replace a job's spec; its next run is recomputed by the caller from the new schedule."""
        try:
            async with self.store.begin() as conn:
                result = await conn.execute(
                    sa.update(cron_jobs)
                    .where(cron_jobs.c.id == job_id)
                    .values(
                        **_job_values(spec), next_run_at_ms=next_run_at_ms, updated_at_ms=now_ms
                    )
                )
        except IntegrityError:
            raise ValueError(f"a cron job named {spec.name!r} already exists") from None
        if result.rowcount == 0:
            raise KeyError(job_id)
        job = await self.get_job(job_id)
        assert job is not None
        return job

    async def delete_job(self, job_id: str) -> bool:
        """Delete a job; its runs stay in the history."""
        async with self.store.begin() as conn:
            result = await conn.execute(sa.delete(cron_jobs).where(cron_jobs.c.id == job_id))
        return bool(result.rowcount)

    async def due_jobs(self, now_ms: int, limit: int = 64) -> list[JobRecord]:
        async with self.store.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        sa.select(cron_jobs)
                        .where(
                            cron_jobs.c.enabled.is_(True),
                            cron_jobs.c.next_run_at_ms.is_not(None),
                            cron_jobs.c.next_run_at_ms <= now_ms,
                        )
                        .order_by(cron_jobs.c.next_run_at_ms, cron_jobs.c.id)
                        .limit(limit)
                    )
                )
                .mappings()
                .all()
            )
        return [_job(r) for r in rows]

    async def next_due_ms(self) -> int | None:
        """The earliest next run of any enabled job, for the scheduler's sleep."""
        async with self.store.connect() as conn:
            value = await conn.scalar(
                sa.select(sa.func.min(cron_jobs.c.next_run_at_ms)).where(
                    cron_jobs.c.enabled.is_(True)
                )
            )
        return int(value) if value is not None else None

    async def change_mark(self) -> tuple[int, int]:
        """(job count, latest update): it changes whenever a job is added, changed or removed."""
        async with self.store.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(sa.func.count(), sa.func.max(cron_jobs.c.updated_at_ms))
                )
            ).first()
        assert row is not None
        return int(row[0]), int(row[1] or 0)

    async def advance(
        self,
        job_id: str,
        *,
        expected_next_ms: int | None,
        next_run_at_ms: int | None,
        last_scheduled_ms: int,
    ) -> bool:
        """Move a job's next run on, only if no one else did (compare and set on the old value)."""
        condition = (
            cron_jobs.c.next_run_at_ms.is_(None)
            if expected_next_ms is None
            else cron_jobs.c.next_run_at_ms == expected_next_ms
        )
        async with self.store.begin() as conn:
            result = await conn.execute(
                sa.update(cron_jobs)
                .where(cron_jobs.c.id == job_id, condition)
                .values(next_run_at_ms=next_run_at_ms, last_scheduled_ms=last_scheduled_ms)
            )
        return bool(result.rowcount)

    # --- runs -----------------------------------------------------------------------------------

    async def claim(
        self,
        *,
        job: JobRecord | None,
        scheduled_for_ms: int | None,
        attempt: int,
        status: RunStatus,
        principal: str,
        owner: str | None,
        now_ms: int,
        agent_id: str | None = None,
        auth_profile_id: str | None = None,
        prompt: str | None = None,
        reason: str | None = None,
        not_before_ms: int | None = None,
        lease_ms: int = DEFAULT_LEASE_MS,
    ) -> RunRecord | None:
        """Insert a run row; None when that (job, time, attempt) was already claimed by anyone.
        A running claim holds a lease of ``lease_ms``."""
        run_id = new_ulid(now_ms)
        finished = status.finished
        values = {
            "id": run_id,
            "job_id": job.id if job else None,
            "scheduled_for_ms": scheduled_for_ms,
            "attempt": attempt,
            "status": status.value,
            "reason": reason,
            "agent_id": agent_id if agent_id is not None else (job.spec.agent_id if job else None),
            "auth_profile_id": auth_profile_id
            if auth_profile_id is not None
            else (job.spec.auth_profile_id if job else None),
            "principal": principal,
            "owner": owner,
            "prompt": prompt if prompt is not None else (job.spec.prompt if job else None),
            "created_at_ms": now_ms,
            "started_at_ms": now_ms if status is RunStatus.RUNNING else None,
            "finished_at_ms": now_ms if finished else None,
            "heartbeat_at_ms": now_ms if status is RunStatus.RUNNING else None,
            "lease_until_ms": now_ms + lease_ms if status is RunStatus.RUNNING else None,
            "not_before_ms": not_before_ms,
        }
        try:
            async with self.store.begin() as conn:
                await conn.execute(sa.insert(runs).values(**values))
        except IntegrityError:
            return None
        return await self.get_run(run_id)

    async def start_queued(
        self, run_id: str, *, owner: str, now_ms: int, lease_ms: int = DEFAULT_LEASE_MS
    ) -> bool:
        """A queued run becomes running, once: the first scheduler to flip it owns it."""
        async with self.store.begin() as conn:
            result = await conn.execute(
                sa.update(runs)
                .where(runs.c.id == run_id, runs.c.status == RunStatus.QUEUED.value)
                .values(
                    status=RunStatus.RUNNING.value,
                    owner=owner,
                    started_at_ms=now_ms,
                    heartbeat_at_ms=now_ms,
                    lease_until_ms=now_ms + lease_ms,
                )
            )
        return bool(result.rowcount)

    async def finish(
        self,
        run_id: str,
        status: RunStatus,
        *,
        now_ms: int,
        reason: str | None = None,
        error_category: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        lease_expired_at_ms: int | None = None,
    ) -> bool:
        """Close a run that is still open; a run already closed (by a recoverer) stays as it is.
        Without a ``reason`` the claim's own (``run-now``, ``catch-up``, a retry's) is kept.
        With ``lease_expired_at_ms`` only a running run whose lease ended before it is closed
        (a recoverer's close, which loses to an owner that renewed in time)."""
        condition: sa.ColumnElement[bool] = runs.c.status.in_(
            [RunStatus.QUEUED.value, RunStatus.RUNNING.value]
        )
        if lease_expired_at_ms is not None:
            condition = sa.and_(
                runs.c.status == RunStatus.RUNNING.value,
                runs.c.lease_until_ms < lease_expired_at_ms,
            )
        async with self.store.begin() as conn:
            result = await conn.execute(
                sa.update(runs)
                .where(runs.c.id == run_id, condition)
                .values(
                    status=status.value,
                    reason=runs.c.reason if reason is None else reason,
                    error_category=error_category,
                    finished_at_ms=now_ms,
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                )
            )
        return bool(result.rowcount)

    async def heartbeat(
        self, run_id: str, *, owner: str, now_ms: int, lease_ms: int = DEFAULT_LEASE_MS
    ) -> bool:
        """Renew the owner's lease; False when the run is no longer this owner's to run."""
        async with self.store.begin() as conn:
            result = await conn.execute(
                sa.update(runs)
                .where(
                    runs.c.id == run_id,
                    runs.c.owner == owner,
                    runs.c.status == RunStatus.RUNNING.value,
                )
                .values(heartbeat_at_ms=now_ms, lease_until_ms=now_ms + lease_ms)
            )
        return bool(result.rowcount)

    async def get_run(self, run_id: str) -> RunRecord | None:
        async with self.store.connect() as conn:
            row = (
                (await conn.execute(sa.select(runs).where(runs.c.id == run_id))).mappings().first()
            )
        return _run(row) if row else None

    async def run_prompt(self, run_id: str) -> str | None:
        async with self.store.connect() as conn:
            value = await conn.scalar(sa.select(runs.c.prompt).where(runs.c.id == run_id))
        return str(value) if value is not None else None

    async def list_runs(
        self, *, job_id: str | None = None, statuses: Sequence[RunStatus] = (), limit: int = 50
    ) -> list[RunRecord]:
        query = sa.select(runs).order_by(runs.c.created_at_ms.desc(), runs.c.id.desc()).limit(limit)
        if job_id is not None:
            query = query.where(runs.c.job_id == job_id)
        if statuses:
            query = query.where(runs.c.status.in_([s.value for s in statuses]))
        async with self.store.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_run(r) for r in rows]

    async def ready_queued(self, now_ms: int, limit: int = 64) -> list[RunRecord]:
        """Queued runs of jobs whose wait (a retry's backoff) is over, oldest first."""
        async with self.store.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        sa.select(runs)
                        .where(
                            runs.c.status == RunStatus.QUEUED.value,
                            sa.or_(runs.c.not_before_ms.is_(None), runs.c.not_before_ms <= now_ms),
                        )
                        .order_by(runs.c.created_at_ms, runs.c.id)
                        .limit(limit)
                    )
                )
                .mappings()
                .all()
            )
        return [_run(r) for r in rows]

    async def next_wake_ms(self, now_ms: int) -> int | None:
        """The earliest future moment a job falls due or a waiting run may start (one read)."""
        async with self.store.connect() as conn:
            job_next = await conn.scalar(
                sa.select(sa.func.min(cron_jobs.c.next_run_at_ms)).where(
                    cron_jobs.c.enabled.is_(True), cron_jobs.c.next_run_at_ms > now_ms
                )
            )
            run_next = await conn.scalar(
                sa.select(sa.func.min(runs.c.not_before_ms)).where(
                    runs.c.status == RunStatus.QUEUED.value, runs.c.not_before_ms > now_ms
                )
            )
        times = [int(t) for t in (job_next, run_next) if t is not None]
        return min(times) if times else None

    async def next_queued_ms(self) -> int | None:
        """When the earliest waiting queued run may start."""
        async with self.store.connect() as conn:
            value = await conn.scalar(
                sa.select(sa.func.min(sa.func.coalesce(runs.c.not_before_ms, 0))).where(
                    runs.c.status == RunStatus.QUEUED.value
                )
            )
        return int(value) if value is not None else None

    async def count_open(self, job_id: str) -> tuple[int, int]:
        """(running, queued) runs of a job."""
        async with self.store.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(runs.c.status, sa.func.count())
                    .where(
                        runs.c.job_id == job_id,
                        runs.c.status.in_([RunStatus.RUNNING.value, RunStatus.QUEUED.value]),
                    )
                    .group_by(runs.c.status)
                )
            ).all()
        counts = {status: int(n) for status, n in rows}
        return counts.get(RunStatus.RUNNING.value, 0), counts.get(RunStatus.QUEUED.value, 0)

    async def expired_leases(self, now_ms: int) -> list[RunRecord]:
        """Running runs whose lease ran out: their owner (a process or replica) stopped beating."""
        async with self.store.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        sa.select(runs).where(
                            runs.c.status == RunStatus.RUNNING.value,
                            runs.c.lease_until_ms < now_ms,
                        )
                    )
                )
                .mappings()
                .all()
            )
        return [_run(r) for r in rows]

    # --- events ---------------------------------------------------------------------------------

    async def append_event(
        self, run_id: str, seq: int, type_: str, data: dict[str, Any], *, now_ms: int
    ) -> None:
        async with self.store.begin() as conn:
            await conn.execute(
                sa.insert(run_events).values(
                    run_id=run_id, seq=seq, type=type_, data=json.dumps(data), at_ms=now_ms
                )
            )

    async def events(
        self, run_id: str, *, after_seq: int = -1, limit: int = 1000
    ) -> list[RunEventRecord]:
        async with self.store.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        sa.select(run_events)
                        .where(run_events.c.run_id == run_id, run_events.c.seq > after_seq)
                        .order_by(run_events.c.seq)
                        .limit(limit)
                    )
                )
                .mappings()
                .all()
            )
        return [
            RunEventRecord(r["run_id"], r["seq"], r["type"], json.loads(r["data"]), r["at_ms"])
            for r in rows
        ]
