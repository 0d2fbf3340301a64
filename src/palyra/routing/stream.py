"""A routed stream: failover only before the first event; afterwards a failure is an error.

Once an event has reached the caller the answer cannot be restarted elsewhere without showing the
caller two beginnings, so a later failure becomes ``stream_interrupted`` instead of a silently
truncated answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel

from palyra.model import (
    ChatRequest,
    ErrorEnvelope,
    ErrorEvent,
    FailureClass,
    MessageStart,
    PalyraError,
    StreamEvent,
)
from palyra.providers.base import Credential, ModelProvider
from palyra.routing.registry import Target, required_capabilities
from palyra.routing.trail import AttemptTrail

if TYPE_CHECKING:
    from palyra.routing.router import InFlight, Router, Run


def with_model(value: M, model: str) -> M:
    """``value`` with ``model`` set: itself when it names that model already (the neutral models
    are frozen, so sharing is safe), else a copy."""
    if getattr(value, "model", None) == model:
        return value
    return value.model_copy(update={"model": model})


Opened = tuple[StreamEvent, AsyncIterator[StreamEvent]]
INCOMPLETE = "the answer is incomplete"
M = TypeVar("M", bound=BaseModel)


async def _close(events: AsyncIterator[StreamEvent]) -> None:
    close = getattr(events, "aclose", None)
    if close is not None:
        await close()


class RoutedStream:
    """``async for event in stream`` yields neutral events; ``stream.trail`` tells where they
    came from. Iterate it once."""

    def __init__(self, router: Router, request: ChatRequest, run: Run) -> None:
        self._router = router
        self._request = request
        self._run = run
        self._iterated = False

    @property
    def trail(self) -> AttemptTrail:
        return self._run.trail

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        if self._iterated:
            raise RuntimeError("a routed stream can be iterated only once")
        self._iterated = True
        return self._events()

    async def _open(
        self, provider: ModelProvider, target: Target, cred: Credential | None
    ) -> Opened:
        """Start the upstream stream and wait for its first event (the failover boundary)."""
        upstream = with_model(self._request, target.upstream_model)
        events = provider.stream_chat(upstream, credential=cred).__aiter__()
        try:
            first = await anext(events)
        except StopAsyncIteration:
            raise PalyraError.of(
                FailureClass.MALFORMED_RESPONSE,
                f'model "{target.model_id}" on provider "{target.provider_id}" ended its stream '
                "before sending anything",
                provider=target.provider_id,
                model=target.model_id,
            ) from None
        except BaseException:
            await _close(events)
            raise
        if isinstance(first, ErrorEvent):
            await _close(events)
            raise PalyraError(first.error)
        return first, events

    async def _events(self) -> AsyncIterator[StreamEvent]:
        router, run = self._router, self._run
        (first, events), call = await router.route(
            run, self._request.model, required_capabilities(self._request), self._open
        )
        settled = False
        try:
            if isinstance(first, MessageStart):
                first = with_model(first, call.target.model_id)
            yield first
            while True:
                budget = router.attempt_budget(run, call.target.provider_id)
                try:
                    async with router.clock.timeout(budget):
                        event = await anext(events)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    settled = True
                    await self._interrupt(call, router.timeout_error(run, call))
                except PalyraError as exc:
                    settled = True
                    await self._interrupt(call, exc.envelope)
                if isinstance(event, ErrorEvent):
                    settled = True
                    await self._interrupt(call, event.error)
                yield event
            settled = True
            await router.settle(run, call, None)
            run.trail.finished_at = router.clock.now()
        finally:
            if not settled:
                await router.abandon(run, call)
            await _close(events)

    async def _interrupt(self, call: InFlight, cause: ErrorEnvelope) -> None:
        """Record the upstream failure, then raise ``stream_interrupted`` to the caller."""
        router, run = self._router, self._run
        await router.settle(run, call, cause)
        run.trail.finished_at = router.clock.now()
        target = call.target
        # Providers end their own interruption messages with this; said once, at the end.
        detail = cause.message.removesuffix(f"; {INCOMPLETE}")
        if cause.failure_class is not FailureClass.STREAM_INTERRUPTED:
            detail = f"{cause.failure_class.value}: {detail}"
        raise PalyraError(
            ErrorEnvelope.of(
                FailureClass.STREAM_INTERRUPTED,
                f'the stream from model "{target.model_id}" on provider "{target.provider_id}" '
                f"broke after it had started ({detail}); {INCOMPLETE}, send the request again",
                provider=target.provider_id,
                model=target.model_id,
                code=cause.failure_class.value,
            )
        )
