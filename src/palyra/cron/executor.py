"""The scheduler's real executor: one claimed run is one ``AgentRuntime.run`` with its events stored.

A scheduled run acts as ``SYSTEM_DAEMON_PRINCIPAL`` on channel ``cron``; an ad hoc run (from the
console) as the admin who started it, on channel ``console``. The job's auth profile pins the
credential (else the agent's applies, inside the runtime). Every event is stored in order; the
terminal one gives the run's status, error category and token totals.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from palyra.cron.records import JobRecord, RunRecord, RunStatus
from palyra.cron.scheduler import EventSink, RunOutcome
from palyra.cron.store import CronStore
from palyra.model.context import SYSTEM_DAEMON_PRINCIPAL, Principal, PrincipalKind, RequestContext

TERMINAL_STATUS = {
    "run_completed": RunStatus.SUCCEEDED,
    "run_failed": RunStatus.FAILED,
    "run_cancelled": RunStatus.CANCELLED,
    "run_timed_out": RunStatus.TIMED_OUT,
}
_KINDS: tuple[PrincipalKind, ...] = ("client_token", "admin_token", "system", "local")


class _Event(Protocol):
    @property
    def type(self) -> str: ...
    @property
    def data(self) -> dict[str, Any]: ...


class Runtime(Protocol):
    """What the executor needs of ``palyra.agents.AgentRuntime``."""

    def run(self, agent_id: str, prompt: str, context: RequestContext) -> AsyncIterator[_Event]: ...


def principal_from_name(name: str) -> Principal:
    kind, _, ident = name.partition(":")
    for known in _KINDS:
        if kind == known and ident:
            return Principal(known, ident)
    return SYSTEM_DAEMON_PRINCIPAL


class AgentExecutor:
    def __init__(
        self, runtime: Runtime, cron: CronStore, *, wall_clock: Callable[[], float] = time.time
    ) -> None:
        self.runtime = runtime
        self.cron = cron
        self._wall = wall_clock

    async def execute(self, run: RunRecord, job: JobRecord | None, emit: EventSink) -> RunOutcome:
        prompt = await self.cron.run_prompt(run.id) or (job.spec.prompt if job else "")
        agent_id = run.agent_id or (job.spec.agent_id if job else "")
        context = RequestContext(
            principal=principal_from_name(run.principal),
            agent_id=agent_id,
            auth_profile_id=run.auth_profile_id,
            run_id=run.id,
            channel="cron" if job is not None else "console",
            deadline=self._wall() + job.spec.max_runtime_s if job is not None else None,
        )
        outcome = RunOutcome(RunStatus.FAILED, "the run ended without a terminal event", "internal")
        # Read the stream to its end in this task (never return from inside the loop): an
        # agent's MCP sessions are closed by the generator, and anyio requires that to happen
        # in the task that opened them, not later in a garbage collector's aclose().
        events = self.runtime.run(agent_id, prompt, context)
        try:
            async for event in events:
                await emit(event.type, event.data)
                status = TERMINAL_STATUS.get(event.type)
                if status is not None:
                    usage = event.data.get("usage") or {}
                    outcome = RunOutcome(
                        status,
                        reason=_text(event.data.get("reason")),
                        error_category=_text(event.data.get("error_category")),
                        input_tokens=_int(usage.get("input_tokens")),
                        output_tokens=_int(usage.get("output_tokens")),
                    )
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()
        return outcome


def _text(value: object) -> str | None:
    return str(value) if value is not None else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) else None
