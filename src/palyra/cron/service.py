"""Job and run operations the CLI and the console API share, on a ``CronStore`` and a clock.

Both surfaces call these, so adding, enabling or running a job now means the same thing
whichever way it is asked (and whether or not a daemon is running: the store is the truth and a
scheduler notices changes at its next poll).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from palyra.cron.job_input import JobInput, JobInputError, Known, build_spec, first_run_ms
from palyra.cron.records import JobRecord, RunRecord, RunStatus, from_ms
from palyra.cron.store import CronStore
from palyra.model.context import Principal


class NotFound(LookupError):
    """A job or run that does not exist; the message names it and where to look."""


class Conflict(ValueError):
    """The request is valid but the state refuses it (a name taken, a run already closed)."""


@dataclass
class CronService:
    cron: CronStore
    known: Callable[[], Awaitable[Known]]
    clock_ms: Callable[[], int]
    # Called after a change a running scheduler should see at once (the daemon wires notify()).
    changed: Callable[[], None] = lambda: None
    # Ends a run this process executes (the daemon wires Scheduler.cancel_local).
    cancel_local: Callable[[str, str], bool] = lambda run_id, reason: False

    async def job(self, id_or_name: str) -> JobRecord:
        job = await self.cron.get_job(id_or_name)
        if job is None:
            raise NotFound(f"there is no cron job {id_or_name!r}; see: palyra cron list")
        return job

    async def add(self, given: JobInput) -> JobRecord:
        now = self.clock_ms()
        spec = build_spec(given, now=from_ms(now), known=await self.known())
        try:
            job = await self.cron.add_job(
                spec, next_run_at_ms=first_run_ms(spec.schedule, from_ms(now)), now_ms=now
            )
        except ValueError as exc:
            raise Conflict(str(exc)) from None
        self.changed()
        return job

    async def update(self, id_or_name: str, given: JobInput) -> JobRecord:
        """Changed fields only; a new schedule, zone or enabling counts from now."""
        job = await self.job(id_or_name)
        now = self.clock_ms()
        spec = build_spec(given, now=from_ms(now), known=await self.known(), base=job.spec)
        next_ms = job.next_run_at_ms
        rescheduled = given.schedule is not None or given.timezone is not None
        if rescheduled or (spec.enabled and not job.spec.enabled):
            next_ms = first_run_ms(spec.schedule, from_ms(now))
        try:
            updated = await self.cron.update_job(job.id, spec, next_run_at_ms=next_ms, now_ms=now)
        except ValueError as exc:
            raise Conflict(str(exc)) from None
        self.changed()
        return updated

    async def set_enabled(self, id_or_name: str, enabled: bool) -> JobRecord:
        """Enabling counts from now: the times that passed while it was off are not misfires."""
        job = await self.job(id_or_name)
        if job.spec.enabled == enabled:
            return job
        now = self.clock_ms()
        next_ms = first_run_ms(job.spec.schedule, from_ms(now)) if enabled else job.next_run_at_ms
        if enabled and next_ms is None:
            raise Conflict(
                f"cron job {job.name!r} has no future fire time ({job.spec.schedule.describe()});"
                " give it a new one with: palyra cron update --schedule"
            )
        spec = dataclasses.replace(job.spec, enabled=enabled)
        updated = await self.cron.update_job(job.id, spec, next_run_at_ms=next_ms, now_ms=now)
        self.changed()
        return updated

    async def delete(self, id_or_name: str) -> JobRecord:
        """The job goes; its runs stay in the history, and open ones are cancelled."""
        job = await self.job(id_or_name)
        await self.cron.delete_job(job.id)
        for run in await self.cron.list_runs(
            job_id=job.id, statuses=[RunStatus.QUEUED, RunStatus.RUNNING], limit=1000
        ):
            await self.cancel(run.id, reason="job deleted")
        self.changed()
        return job

    async def run_now(self, id_or_name: str, principal: Principal) -> RunRecord:
        """An extra run of the job, outside its schedule (also when the job is disabled); it
        waits for a running one unless the job's overlap policy is ``allow``."""
        job = await self.job(id_or_name)
        run = await self.cron.claim(
            job=job,
            scheduled_for_ms=None,
            attempt=1,
            status=RunStatus.QUEUED,
            principal=principal.name,
            owner=None,
            now_ms=self.clock_ms(),
            reason="run-now",
        )
        assert run is not None  # ad hoc claims have no time and never collide
        self.changed()
        return run

    async def start_run(
        self,
        agent_id: str,
        prompt: str,
        principal: Principal,
        auth_profile_id: str | None = None,
    ) -> RunRecord:
        """An ad hoc agent run (no job); the scheduler starts it."""
        known = await self.known()
        if agent_id not in known.agent_ids:
            have = ", ".join(known.agent_ids) or "none (add one to agents.toml)"
            raise JobInputError("agent", f"no agent {agent_id!r} in agents.toml (agents: {have})")
        if not prompt.strip():
            raise JobInputError("prompt", "is empty; say what the agent should do")
        if auth_profile_id:
            problem = known.profile_problem(auth_profile_id, agent_id)
            if problem is not None:
                raise JobInputError("profile", problem)
        run = await self.cron.claim(
            job=None,
            scheduled_for_ms=None,
            attempt=1,
            status=RunStatus.QUEUED,
            principal=principal.name,
            owner=None,
            now_ms=self.clock_ms(),
            agent_id=agent_id,
            auth_profile_id=auth_profile_id or None,
            prompt=prompt,
            reason="ad hoc",
        )
        assert run is not None
        self.changed()
        return run

    async def run(self, run_id: str) -> RunRecord:
        run = await self.cron.get_run(run_id)
        if run is None:
            raise NotFound(f"there is no run {run_id!r}; see: palyra cron logs")
        return run

    async def cancel(self, run_id: str, *, reason: str = "cancelled by request") -> RunRecord:
        """Close an open run; its owner (this process or another) stops it at its next beat."""
        run = await self.run(run_id)
        if run.status.finished:
            raise Conflict(f"run {run_id} already ended ({run.status.value}); nothing to cancel")
        await self.cron.finish(run_id, RunStatus.CANCELLED, now_ms=self.clock_ms(), reason=reason)
        self.cancel_local(run_id, reason)
        return await self.run(run_id)
