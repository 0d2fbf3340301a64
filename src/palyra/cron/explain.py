"""``cron explain``: a job's next fire times in its zone, and what became of its recent ones.

Pure: the job, its runs (from the runs table) and the time are passed in. Every recent fire time
is accounted for: the run(s) recorded under it with their status and reason, or why none is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from palyra.cron.matcher import load_zone
from palyra.cron.records import JobRecord, RunRecord, from_ms, to_ms
from palyra.cron.schedule import CronSchedule

RECENT_LOOKBACK = timedelta(days=2)


@dataclass(frozen=True, slots=True)
class PastTime:
    at_ms: int
    outcome: str  # e.g. "succeeded", "skipped (overlap)", "not recorded: ..."
    runs: tuple[RunRecord, ...]


@dataclass(frozen=True, slots=True)
class Explanation:
    job: JobRecord
    zone: str
    next_times: tuple[datetime, ...]
    recent: tuple[PastTime, ...]
    extra_runs: tuple[RunRecord, ...]  # run-now runs (no scheduled time)
    note: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "job": self.job.name,
            "schedule": self.job.spec.schedule.describe(),
            "zone": self.zone,
            "enabled": self.job.spec.enabled,
            "note": self.note,
            "next": [t.isoformat() for t in self.next_times],
            "recent": [
                {
                    "scheduled_for": _local(p.at_ms, self.zone).isoformat(),
                    "outcome": p.outcome,
                    "runs": [r.id for r in p.runs],
                }
                for p in self.recent
            ],
            "run_now": [r.to_json() for r in self.extra_runs],
        }

    def lines(self) -> list[str]:
        s = self.job.spec
        out = [f"job {s.name}: {s.schedule.describe()}, {'enabled' if s.enabled else 'DISABLED'}"]
        out.append(
            f"policies: overlap={s.overlap.value} misfire={s.misfire.value} "
            f"retries={s.retry.attempts - 1} jitter={s.jitter_s:g}s max-runtime={s.max_runtime_s:g}s"
        )
        if self.note:
            out.append(self.note)
        out.append(f"next fire times ({self.zone}):")
        out += [f"  {t.isoformat()}" for t in self.next_times] or ["  none"]
        out.append("recent fire times:")
        if not self.recent:
            out.append("  none in the last 2 days")
        for p in self.recent:
            out.append(f"  {_local(p.at_ms, self.zone).isoformat()}  {p.outcome}")
        for r in self.extra_runs:
            out.append(
                f"  run-now {r.id} at {_local(r.created_at_ms, self.zone).isoformat()}  "
                f"{_describe(r)}"
            )
        return out


def _zone(job: JobRecord) -> str:
    schedule = job.spec.schedule
    return schedule.matcher.timezone if isinstance(schedule, CronSchedule) else "UTC"


def _tz(name: str) -> tzinfo:
    return UTC if name.upper() == "UTC" else load_zone(name)


def _local(ms: int, zone: str) -> datetime:
    return from_ms(ms).astimezone(_tz(zone)).replace(microsecond=0)


def _describe(run: RunRecord) -> str:
    text = run.status.value
    if run.attempt > 1:
        text = f"attempt {run.attempt} {text}"
    if run.reason:
        text += f" ({run.reason})"
    return text


def explain(
    job: JobRecord, runs: Sequence[RunRecord], *, now_ms: int, count: int = 5
) -> Explanation:
    zone = _zone(job)
    schedule = job.spec.schedule
    now = from_ms(now_ms)
    upcoming: list[datetime] = []
    cursor = (
        max(now, from_ms(job.next_run_at_ms) - timedelta(milliseconds=1))
        if (job.next_run_at_ms is not None and job.spec.enabled)
        else now
    )
    while len(upcoming) < count:
        nxt = schedule.next_after(cursor)
        if nxt is None:
            break
        upcoming.append(nxt.astimezone(_tz(zone)))
        cursor = nxt
    by_time: dict[int, list[RunRecord]] = {}
    extra: list[RunRecord] = []
    for run in runs:
        if run.scheduled_for_ms is None:
            extra.append(run)
        else:
            by_time.setdefault(run.scheduled_for_ms, []).append(run)
    start = max(from_ms(job.created_at_ms), now - RECENT_LOOKBACK)
    past: list[int] = []
    cursor = start
    while True:
        nxt = schedule.next_after(cursor)
        if nxt is None or nxt > now:
            break
        past.append(to_ms(nxt))
        cursor = nxt
        if len(past) > 10_000:
            past = past[-1000:]
    times = sorted(set(past[-10:]) | {t for t in by_time if t >= to_ms(start)})[-10:]
    recent: list[PastTime] = []
    for t in times:
        rows = tuple(sorted(by_time.get(t, []), key=lambda r: r.attempt))
        if rows:
            outcome = ", then ".join(_describe(r) for r in rows)
        elif job.next_run_at_ms is not None and t >= job.next_run_at_ms:
            outcome = "due; no scheduler has picked it up yet (is the daemon running?)"
        elif job.last_scheduled_ms is None or t > job.last_scheduled_ms:
            outcome = "not recorded: the job was disabled or re-scheduled at that time"
        else:
            outcome = "not recorded: the job was disabled, re-scheduled or edited at that time"
        recent.append(PastTime(t, outcome, rows))
    note = None
    if not job.spec.enabled:
        note = "the job is disabled: nothing runs until: palyra cron enable " + job.name
    elif job.next_run_at_ms is None:
        note = "the job has no future fire time"
    elif job.next_run_at_ms < now_ms:
        note = "a fire time is overdue: no scheduler is running, or it is busy"
    extra.sort(key=lambda r: r.created_at_ms)
    return Explanation(job, zone, tuple(upcoming), tuple(recent), tuple(extra[-5:]), note)
