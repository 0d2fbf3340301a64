"""A cron job and a run as plain data: what the store keeps and the surfaces show."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from palyra.cron.policies import MisfirePolicy, OverlapPolicy, RetryPolicy
from palyra.cron.schedule import Schedule


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        return self not in (RunStatus.QUEUED, RunStatus.RUNNING)


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where a finished run's result goes besides the store: a webhook signed with a vault secret."""

    webhook_url: str | None = None
    secret_ref: str | None = None  # a secret reference (vault:..., env:...), never the secret


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a user says about a job; the store adds the id, times and next fire time."""

    name: str
    prompt: str
    agent_id: str
    schedule: Schedule
    auth_profile_id: str | None = None
    enabled: bool = True
    overlap: OverlapPolicy = OverlapPolicy.SKIP
    misfire: MisfirePolicy = MisfirePolicy.RUN_ONCE
    catch_up_window_s: int = 3600
    max_catch_up: int = 3
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    jitter_s: float = 0.0
    max_runtime_s: float = 600.0
    delivery: Delivery = field(default_factory=Delivery)


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: str
    spec: JobSpec
    next_run_at_ms: int | None
    last_scheduled_ms: int | None
    created_at_ms: int
    updated_at_ms: int

    @property
    def name(self) -> str:
        return self.spec.name

    def to_json(self) -> dict[str, Any]:
        s = self.spec
        return {
            "id": self.id,
            "name": s.name,
            "prompt": s.prompt,
            "agent_id": s.agent_id,
            "auth_profile_id": s.auth_profile_id,
            "schedule": s.schedule.to_json(),
            "enabled": s.enabled,
            "overlap": s.overlap.value,
            "misfire": s.misfire.value,
            "catch_up_window_s": s.catch_up_window_s,
            "max_catch_up": s.max_catch_up,
            "retry": {"attempts": s.retry.attempts, "backoff_s": list(s.retry.backoff_s)},
            "jitter_s": s.jitter_s,
            "max_runtime_s": s.max_runtime_s,
            "webhook_url": s.delivery.webhook_url,
            "webhook_secret_ref": s.delivery.secret_ref,
            "next_run_at": iso(self.next_run_at_ms),
            "created_at": iso(self.created_at_ms),
            "updated_at": iso(self.updated_at_ms),
        }


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: str
    job_id: str | None
    scheduled_for_ms: int | None
    attempt: int
    status: RunStatus
    reason: str | None
    error_category: str | None
    agent_id: str | None
    auth_profile_id: str | None
    principal: str
    owner: str | None
    created_at_ms: int
    started_at_ms: int | None
    finished_at_ms: int | None
    heartbeat_at_ms: int | None
    not_before_ms: int | None
    input_tokens: int | None
    output_tokens: int | None
    # Until when the owner holds the run; past it, any scheduler may close it as interrupted.
    lease_until_ms: int | None = None

    @property
    def duration_ms(self) -> int | None:
        if self.started_at_ms is None or self.finished_at_ms is None:
            return None
        return self.finished_at_ms - self.started_at_ms

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job_id": self.job_id,
            "scheduled_for": iso(self.scheduled_for_ms),
            "attempt": self.attempt,
            "status": self.status.value,
            "reason": self.reason,
            "error_category": self.error_category,
            "agent_id": self.agent_id,
            "auth_profile_id": self.auth_profile_id,
            "principal": self.principal,
            "created_at": iso(self.created_at_ms),
            "started_at": iso(self.started_at_ms),
            "finished_at": iso(self.finished_at_ms),
            "duration_ms": self.duration_ms,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
        }


@dataclass(frozen=True, slots=True)
class RunEventRecord:
    run_id: str
    seq: int
    type: str
    data: dict[str, Any]
    at_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "seq": self.seq,
            "type": self.type,
            "at": iso(self.at_ms),
            **self.data,
        }


def to_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return from_ms(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")
