"""The ``ModelProvider`` protocol: the one narrow seam between routing and any LLM API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, runtime_checkable

from palyra.model import (
    Capability,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelInfo,
    StreamEvent,
    TokenCount,
    TranscriptionRequest,
    TranscriptionResponse,
)
from palyra.model.known_secrets import remember_secret


@dataclass(frozen=True, slots=True)
class Credential:
    """A secret in memory for one call. ``profile_id`` names the auth profile it came from."""

    secret: str = field(repr=False)
    profile_id: str | None = None

    def __post_init__(self) -> None:
        remember_secret(self.secret)

    def __repr__(self) -> str:
        return f"Credential(profile_id={self.profile_id!r}, secret=<redacted>)"


@dataclass(frozen=True, slots=True)
class ProviderCapabilities:
    """What a provider kind can do; routing reads this without calling anything."""

    streaming: bool = True
    tools: bool = True
    vision: bool = True
    json_mode: bool = True
    embeddings: bool = False
    transcription: bool = False
    list_models: bool = True
    count_tokens: bool = False

    def supports(self, capability: Capability) -> bool:
        return {
            "chat": True,
            "tools": self.tools,
            "vision": self.vision,
            "json": self.json_mode,
            "embeddings": self.embeddings,
            "transcription": self.transcription,
        }[capability]


@runtime_checkable
class ModelProvider(Protocol):
    """A chat/embeddings/transcription backend.

    Every method raises :class:`palyra.model.PalyraError` on failure. ``stream_chat`` yields
    neutral events as the upstream sends them; a failure after the first event is raised too,
    and the caller (routing, daemon) decides whether that becomes ``stream_interrupted``.
    ``request.model`` is sent upstream as-is: routing maps client model ids to upstream names.
    ``credential`` overrides the provider's configured one for this call (profile rotation).
    """

    id: str
    kind: ClassVar[str]
    capabilities: ClassVar[ProviderCapabilities]

    async def chat(
        self, request: ChatRequest, *, credential: Credential | None = None
    ) -> ChatResponse: ...

    def stream_chat(
        self, request: ChatRequest, *, credential: Credential | None = None
    ) -> AsyncIterator[StreamEvent]: ...

    async def embed(
        self, request: EmbeddingRequest, *, credential: Credential | None = None
    ) -> EmbeddingResponse: ...

    async def transcribe(
        self, request: TranscriptionRequest, *, credential: Credential | None = None
    ) -> TranscriptionResponse: ...

    async def list_models(self, *, credential: Credential | None = None) -> list[ModelInfo]: ...

    async def count_tokens(
        self, request: ChatRequest, *, credential: Credential | None = None
    ) -> TokenCount: ...

    async def aclose(self) -> None: ...
