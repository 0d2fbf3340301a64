"""Which task class a request to a ``task`` routing group is, and where that came from.

First found: the ``x-palyra-task`` header the client sent, the caller's context (an agent run,
or a client token that declares one), the agent a client token is bound to, a background run
(cron), else nothing (the group's ``default_task`` applies). An unknown class in the header is
the client's mistake: a 400 naming the header and the classes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import cast

from palyra.model import FailureClass, PalyraError
from palyra.model.context import RequestContext, TaskClass, task_class_problem

TASK_HEADER = "x-palyra-task"

TaskLookup = Callable[[str], TaskClass | None]
"""``agent id -> its task class``: how routing learns an agent-bound token's task."""


def task_of(
    headers: Mapping[str, str] | None,
    context: RequestContext | None,
    *,
    background: bool,
    agent_tasks: TaskLookup | None = None,
) -> tuple[TaskClass | None, str | None]:
    """``(task class, source)``; ``(None, None)`` when nothing names one."""
    sent = headers.get(TASK_HEADER) if headers else None
    if sent is not None:
        name = sent.strip().lower()
        problem = task_class_problem(name)
        if problem is not None:
            raise PalyraError.of(
                FailureClass.INVALID_REQUEST,
                f"{TASK_HEADER}: {problem}; send one of those or leave the header out",
                param=TASK_HEADER,
                code="invalid_task_class",
            )
        return cast("TaskClass", name), "header"
    if context is not None:
        if context.task is not None:
            return context.task, "agent" if context.agent_id else "token"
        if context.agent_id and agent_tasks is not None:
            found = agent_tasks(context.agent_id)
            if found is not None:
                return found, "agent"
    if background:
        return "background", "background-run"
    return None, None
