"""``RunStream``: one agent run, its turn loop through the router, as a stream of ``RunEvent``.

A turn is one routed ``stream_chat`` call; tool calls the model makes are run and their results
sent back in the next turn. The run ends with exactly one terminal event: completed (the model
answered without calling a tool), failed (an upstream or config error, ``max_turns`` reached with
the model still calling tools, or ``budget_exhausted`` once the run spent more tokens than its
budget), cancelled (the caller set ``cancel``) or timed out (its time budget, or the context's
deadline, passed). The loop runs in its own task so cancellation and the time budget stop it
wherever it is waiting: on the upstream, or on a tool.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from palyra.agents.events import (
    MODEL_DELTA,
    RUN_CANCELLED,
    RUN_COMPLETED,
    RUN_FAILED,
    RUN_STARTED,
    RUN_TIMED_OUT,
    TOOL_CALL,
    TOOL_RESULT,
    TURN_COMPLETED,
    RunEvent,
    UsageTotals,
)
from palyra.agents.tools import Tool, ToolOutcome, allowed
from palyra.config.agents import AgentConfig
from palyra.model import (
    ChatRequest,
    FailureClass,
    Message,
    PalyraError,
    Role,
    TextDelta,
    TextPart,
    ToolCallPart,
)
from palyra.model.accumulate import StreamAccumulator
from palyra.model.context import RequestContext
from palyra.model.responses import Usage
from palyra.routing.router import Router
from palyra.routing.stream import RoutedStream
from palyra.usage.facts import UsageFact
from palyra.usage.limiter import Admission
from palyra.usage.metering import Metering

Emit = Callable[[RunEvent], None]

_TIMEOUT_SLACK_S = 0.05


@dataclass(frozen=True, slots=True)
class RunLimits:
    """How far one run may go; from the agent's ``max_turns``, ``time_budget_s``, ``token_budget``."""

    max_turns: int
    time_budget_s: float
    token_budget: int | None

    @classmethod
    def of(cls, agent: AgentConfig) -> RunLimits:
        return cls(agent.max_turns, agent.time_budget_s, agent.token_budget)


class RunStream:
    """Iterate once with ``async for``; see the module docstring."""

    def __init__(
        self,
        router: Router,
        agent: AgentConfig,
        prompt: str,
        context: RequestContext,
        tools: Sequence[Tool] = (),
        *,
        cancel: asyncio.Event | None = None,
        wall_clock: Callable[[], float] = time.time,
        attended: bool = False,
        metering: Metering | None = None,
    ) -> None:
        self._router = router
        self._metering = metering
        self._agent = agent
        self._prompt = prompt
        self._context = context
        self._tools = {t.spec.name: t for t in tools}
        self._cancel = cancel
        self._wall = wall_clock
        self._attended = attended
        self._limits = RunLimits.of(agent)
        self.usage = UsageTotals()
        self.turns = 0

    def __aiter__(self) -> AsyncIterator[RunEvent]:
        return self._events()

    def _budget_s(self) -> float:
        budget = self._limits.time_budget_s
        if self._context.deadline is not None:
            budget = min(budget, self._context.deadline - self._wall())
        return budget

    def _terminal(self, kind: str, reason: str, category: str | None, **extra: Any) -> RunEvent:
        data: dict[str, Any] = {
            "reason": reason,
            "error_category": category,
            "usage": self.usage.as_dict(),
            "turns": self.turns,
        }
        data.update(extra)
        return RunEvent(kind, data)

    async def _events(self) -> AsyncIterator[RunEvent]:
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + self._budget_s()
        queue: asyncio.Queue[RunEvent] = asyncio.Queue()
        producer = asyncio.create_task(self._turns(queue.put_nowait, ends_at))
        cancel_wait = asyncio.create_task(self._cancel.wait()) if self._cancel else None
        try:
            while True:
                getter = asyncio.create_task(queue.get())
                waiting = {getter} if cancel_wait is None else {getter, cancel_wait}
                done, _ = await asyncio.wait(
                    waiting,
                    timeout=max(0.0, ends_at - loop.time()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if getter in done:
                    event = getter.result()
                    yield event
                    if event.terminal:
                        return
                    continue
                getter.cancel()
                producer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await producer
                while not queue.empty():  # what the loop reported before it was stopped
                    event = queue.get_nowait()
                    if event.terminal:
                        yield event
                        return
                    yield event
                if cancel_wait is not None and cancel_wait in done:
                    yield self._terminal(
                        RUN_CANCELLED, "cancelled", None, message="the run was cancelled"
                    )
                else:
                    yield self._timed_out()
                return
        finally:
            for task in (producer, cancel_wait):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    def _timed_out(self) -> RunEvent:
        return self._terminal(
            RUN_TIMED_OUT,
            "time_budget",
            FailureClass.TIMEOUT.value,
            message=f"the run passed its time budget ({self._limits.time_budget_s:g}s"
            + (" or the request deadline)" if self._context.deadline is not None else ")"),
        )

    async def _turns(self, emit: Emit, ends_at: float) -> None:
        loop = asyncio.get_running_loop()
        agent = self._agent
        ctx = self._context
        emit(
            RunEvent(
                RUN_STARTED,
                {
                    "agent_id": agent.id,
                    "model": agent.model,
                    "run_id": ctx.run_id,
                    "principal": ctx.principal.name,
                    "auth_profile_id": ctx.auth_profile_id,
                    "channel": ctx.channel,
                    "tools": sorted(self._tools),
                },
            )
        )
        messages: list[Message] = []
        if agent.system_prompt:
            messages.append(Message.text(Role.SYSTEM, agent.system_prompt))
        messages.append(Message.text(Role.USER, self._prompt))
        specs = [t.spec for t in self._tools.values()]
        for turn in range(1, self._limits.max_turns + 1):
            self.turns = turn
            request = ChatRequest(model=agent.model, messages=messages, tools=specs, stream=True)
            admission = None
            if self._metering is not None:
                try:
                    admission = await self._metering.admit(
                        token_id=None, token_limits=None, agent_id=agent.id, model=agent.model
                    )
                except PalyraError as exc:
                    emit(self._refused(exc))
                    return
            started = loop.time()
            routed = None
            try:
                routed = self._router.stream_chat(
                    request,
                    deadline_s=max(0.001, ends_at - loop.time()),
                    background=ctx.channel == "cron",
                    context=ctx,
                )
                acc = StreamAccumulator()
                async for event in routed:
                    acc.add(event)
                    if isinstance(event, TextDelta) and event.text:
                        emit(RunEvent(MODEL_DELTA, {"turn": turn, "text": event.text}))
                response = acc.response()
            except PalyraError as exc:
                await self._account(turn, routed, None, admission, exc.failure_class.value, started)
                if exc.failure_class is FailureClass.TIMEOUT and (
                    ends_at - loop.time() <= _TIMEOUT_SLACK_S
                ):
                    emit(self._timed_out())
                    return
                emit(
                    self._terminal(
                        RUN_FAILED,
                        "model_error",
                        exc.failure_class.value,
                        message=exc.envelope.message,
                    )
                )
                return
            used = response.usage
            await self._account(turn, routed, used, admission, "ok", started)
            self.usage.input_tokens += used.input_tokens
            self.usage.output_tokens += used.output_tokens
            emit(
                RunEvent(
                    TURN_COMPLETED,
                    {
                        "turn": turn,
                        "usage": {
                            "input_tokens": used.input_tokens,
                            "output_tokens": used.output_tokens,
                        },
                        "finish_reason": response.finish_reason,
                        "model": response.model,
                        "attempts": routed.trail.header(),
                    },
                )
            )
            budget = self._limits.token_budget
            if budget is not None and self.usage.total > budget:
                emit(
                    self._terminal(
                        RUN_FAILED,
                        "budget_exhausted",
                        None,
                        message=f"the run used {self.usage.total} tokens, over its token_budget "
                        f"of {budget}",
                    )
                )
                return
            if not response.tool_calls:
                emit(self._terminal(RUN_COMPLETED, "completed", None, output=response.content))
                return
            parts: list[Any] = list(response.reasoning)
            if response.content:
                parts.append(TextPart(text=response.content))
            parts.extend(response.tool_calls)
            messages.append(Message(role=Role.ASSISTANT, content=parts))
            for call in response.tool_calls:
                emit(
                    RunEvent(
                        TOOL_CALL,
                        {
                            "turn": turn,
                            "id": call.id,
                            "name": call.name,
                            "arguments": call.arguments,
                        },
                    )
                )
                outcome, denied = await self._call(call)
                result: dict[str, Any] = {
                    "turn": turn,
                    "id": call.id,
                    "name": call.name,
                    "content": outcome.content,
                    "is_error": outcome.is_error,
                    "denied": denied,
                }
                if denied:
                    result["reason"] = outcome.content
                emit(RunEvent(TOOL_RESULT, result))
                messages.append(
                    Message.tool_result(call.id, outcome.content, is_error=outcome.is_error)
                )
        emit(
            self._terminal(
                RUN_FAILED,
                "max_turns",
                None,
                message=f"the model still called tools after max_turns = "
                f"{self._limits.max_turns} turns",
            )
        )

    def _refused(self, exc: PalyraError) -> RunEvent:
        """The terminal event of a turn the agent's limits refused."""
        exhausted = exc.envelope.code == "budget_exhausted"
        return self._terminal(
            RUN_FAILED,
            "budget_exhausted" if exhausted else "limit_reached",
            exc.failure_class.value,
            message=exc.envelope.message,
        )

    async def _account(
        self,
        turn: int,
        routed: RoutedStream | None,
        usage: Usage | None,
        admission: Admission | None,
        outcome: str,
        started: float,
    ) -> None:
        """Write the turn to the usage ledger and charge it to the agent's limits."""
        metering = self._metering
        if metering is None:
            return
        ctx = self._context
        principal = ctx.principal
        trail = None if routed is None else routed.trail
        metering.record(
            UsageFact(
                self._wall(),
                f"{ctx.run_id or 'run'}:{turn}",
                principal.id if principal.kind == "client_token" else None,
                self._agent.id,
                ctx.run_id,
                self._agent.model,
                trail,
                usage,
                None,
                outcome,
                asyncio.get_running_loop().time() - started,
            )
        )
        if admission is not None:
            await metering.settle(admission, usage, trail)

    async def _call(self, call: ToolCallPart) -> tuple[ToolOutcome, bool]:
        """Run one tool call; (outcome, denied). Errors become error outcomes the model reads."""
        tool = self._tools.get(call.name)
        if tool is None:
            return ToolOutcome(f'no tool "{call.name}" is offered to this agent', True), False
        if _needs_approval(tool.allow_name, self._agent.approval_required) and not self._attended:
            ctx = self._context
            return (
                ToolOutcome(
                    f'tool "{tool.allow_name}" needs approval and this run is unattended '
                    f"(channel {ctx.channel}, principal {ctx.principal.name}); it was not run",
                    True,
                ),
                True,
            )
        try:
            arguments = json.loads(call.arguments or "{}")
        except ValueError:
            return ToolOutcome(f'the arguments for "{call.name}" are not valid JSON', True), False
        if not isinstance(arguments, dict):
            return ToolOutcome(
                f'the arguments for "{call.name}" must be a JSON object', True
            ), False
        try:
            return await tool.call(arguments), False
        except PalyraError as exc:
            return ToolOutcome(
                f'tool "{tool.allow_name}" failed: {exc.envelope.message}', True
            ), False
        except Exception as exc:  # a tool's own bug must not end the run; the model is told
            return ToolOutcome(
                f'tool "{tool.allow_name}" failed: {type(exc).__name__}', True
            ), False


def _needs_approval(allow_name: str, approval_required: Iterable[str]) -> bool:
    return allowed(allow_name, approval_required)
