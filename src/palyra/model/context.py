"""Who is asking, for which agent, with which credential: the facts every surface hands the router.

Pure data, so routing (a lower layer) and agents, cron and the daemon (higher ones) share one type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PrincipalKind = Literal["client_token", "admin_token", "system", "local"]

TaskClass = Literal[
    "interactive", "background", "summary", "classification", "extraction", "vision"
]
TASK_CLASSES: tuple[TaskClass, ...] = (
    "interactive",
    "background",
    "summary",
    "classification",
    "extraction",
    "vision",
)
"""What a request is for, as a ``task`` routing group reads it: a person waiting
(``interactive``), scheduled or unattended work (``background``), or one of the auxiliary jobs."""


def task_class_problem(name: str) -> str | None:
    """Why ``name`` is not a task class (naming the known ones), or None when it is one."""
    if name in TASK_CLASSES:
        return None
    return f'unknown task class "{name}" (known: {", ".join(TASK_CLASSES)})'


@dataclass(frozen=True, slots=True)
class Principal:
    """An identity that requests are charged to and authorised as; ``name`` is its stable label."""

    kind: PrincipalKind
    id: str

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.id}"


SYSTEM_DAEMON_PRINCIPAL = Principal("system", "daemon")
"""Runs the daemon starts on its own (the cron scheduler): no client token stands behind them."""


@dataclass(frozen=True, slots=True)
class RequestContext:
    """One request's caller facts.

    ``auth_profile_id`` pins the credential; ``agent_id`` selects the agent's profiles;
    ``deadline`` is a wall-clock time (seconds since the epoch) by which the request must end;
    ``task`` is the task class its agent or client token declares (a ``task`` routing group reads
    it when the request sends no ``x-palyra-task`` header).
    """

    principal: Principal
    agent_id: str | None = None
    auth_profile_id: str | None = None
    session_id: str | None = None
    run_id: str | None = None
    channel: str = "http"
    deadline: float | None = None
    task: TaskClass | None = None
