"""A scripted ``ModelProvider`` and a credential source for routing tests, on simulated time."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import ClassVar

from palyra.config.schema import ModelProviderRegistryConfig, ProviderConfig
from palyra.model import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ErrorEnvelope,
    FailureClass,
    Message,
    MessageEnd,
    MessageStart,
    ModelInfo,
    PalyraError,
    StreamEvent,
    TextDelta,
    TokenCount,
    TranscriptionRequest,
    TranscriptionResponse,
)
from palyra.model.context import RequestContext
from palyra.providers.base import Credential, ProviderCapabilities
from palyra.routing import (
    CircuitBreakers,
    HealthTracker,
    InMemoryBreakerStore,
    LeaseManager,
    ManualClock,
    ModelRegistry,
    Router,
)


@dataclass(frozen=True)
class Reply:
    text: str = "hello"
    latency_s: float = 0.0


@dataclass(frozen=True)
class Fail:
    failure_class: FailureClass
    retry_after_s: float | None = None
    latency_s: float = 0.0


@dataclass(frozen=True)
class Events:
    """A stream: these text deltas (each after ``gap_s``), then ``then`` raised, or a clean end."""

    texts: tuple[str, ...] = ("hel", "lo")
    then: Fail | None = None
    gap_s: float = 0.0


Outcome = Reply | Fail | Events


@dataclass
class Call:
    method: str
    model: str
    profile_id: str | None
    at: float


@dataclass
class ScriptedProvider:
    """Each call pops the next scripted outcome; when the script is empty ``default()`` decides."""

    id: str
    clock: ManualClock
    script: list[Outcome] = field(default_factory=list)
    default: Callable[[], Outcome] = Reply
    calls: list[Call] = field(default_factory=list)

    kind: ClassVar[str] = "scripted"
    capabilities: ClassVar[ProviderCapabilities] = ProviderCapabilities(
        embeddings=True, transcription=True
    )

    def _next(self, method: str, model: str, credential: Credential | None) -> Outcome:
        self.calls.append(
            Call(method, model, credential.profile_id if credential else None, self.clock.now())
        )
        return self.script.pop(0) if self.script else self.default()

    def _error(self, fail: Fail, model: str) -> PalyraError:
        return PalyraError(
            ErrorEnvelope.of(
                fail.failure_class,
                f"scripted {fail.failure_class.value} from {self.id}",
                retry_after_s=fail.retry_after_s,
                provider=self.id,
                model=model,
            )
        )

    async def chat(
        self, request: ChatRequest, *, credential: Credential | None = None
    ) -> ChatResponse:
        outcome = self._next("chat", request.model, credential)
        await self.clock.sleep(outcome.latency_s if not isinstance(outcome, Events) else 0.0)
        if isinstance(outcome, Fail):
            raise self._error(outcome, request.model)
        text = outcome.text if isinstance(outcome, Reply) else "".join(outcome.texts)
        return ChatResponse(id=f"r{len(self.calls)}", model=request.model, content=text)

    async def stream_chat(
        self, request: ChatRequest, *, credential: Credential | None = None
    ) -> AsyncIterator[StreamEvent]:
        outcome = self._next("stream", request.model, credential)
        if isinstance(outcome, Fail):
            await self.clock.sleep(outcome.latency_s)
            raise self._error(outcome, request.model)
        events = outcome if isinstance(outcome, Events) else Events((outcome.text,))
        yield MessageStart(id=f"s{len(self.calls)}", model=request.model)
        for text in events.texts:
            await self.clock.sleep(events.gap_s)
            yield TextDelta(text=text)
        if events.then is not None:
            await self.clock.sleep(events.then.latency_s)
            raise self._error(events.then, request.model)
        yield MessageEnd(finish_reason="stop")

    async def embed(
        self, request: EmbeddingRequest, *, credential: Credential | None = None
    ) -> EmbeddingResponse:
        outcome = self._next("embed", request.model, credential)
        if isinstance(outcome, Fail):
            raise self._error(outcome, request.model)
        return EmbeddingResponse(model=request.model, vectors=[[1.0, 0.0] for _ in request.inputs])

    async def transcribe(
        self, request: TranscriptionRequest, *, credential: Credential | None = None
    ) -> TranscriptionResponse:
        outcome = self._next("transcribe", request.model, credential)
        if isinstance(outcome, Fail):
            raise self._error(outcome, request.model)
        return TranscriptionResponse(text="transcribed")

    async def list_models(self, *, credential: Credential | None = None) -> list[ModelInfo]:
        return []

    async def count_tokens(
        self, request: ChatRequest, *, credential: Credential | None = None
    ) -> TokenCount:
        return TokenCount(input_tokens=1, estimated=True)

    async def aclose(self) -> None:
        return None


@dataclass
class ProfileCredentials:
    """Profiles per provider id, in rotation order; remembers every report it gets."""

    profiles: dict[str, list[str]] = field(default_factory=dict)
    reports: list[tuple[str, str | None, FailureClass | None]] = field(default_factory=list)

    async def credentials_for(
        self, provider: ProviderConfig, *, context: RequestContext | None = None
    ) -> list[Credential]:
        return [
            Credential(secret=f"sk-{p}", profile_id=p) for p in self.profiles.get(provider.id, [])
        ]

    async def report(
        self, provider_id: str, profile_id: str | None, envelope: ErrorEnvelope | None
    ) -> None:
        self.reports.append((provider_id, profile_id, envelope.failure_class if envelope else None))


def build_router(
    cfg: ModelProviderRegistryConfig,
    providers: dict[str, ScriptedProvider],
    clock: ManualClock,
    *,
    credentials: ProfileCredentials | None = None,
    seed: int = 7,
) -> Router:
    return Router(
        ModelRegistry.from_config(cfg),
        providers,
        credentials or ProfileCredentials(),
        cfg,
        clock,
        random.Random(seed),
        CircuitBreakers(cfg.breaker, InMemoryBreakerStore(), clock),
        LeaseManager(clock),
        HealthTracker(),
    )


def chat_request(model: str = "default", text: str = "hi") -> ChatRequest:
    return ChatRequest(model=model, messages=[Message.text("user", text)])
