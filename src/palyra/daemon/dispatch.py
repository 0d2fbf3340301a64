"""The one place a daemon request meets a provider; the routing layer will replace these calls."""

from __future__ import annotations

from collections.abc import AsyncIterator

from palyra.daemon.state import ResolvedModel
from palyra.model import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    StreamEvent,
    TokenCount,
    TranscriptionRequest,
    TranscriptionResponse,
)


async def chat(target: ResolvedModel, request: ChatRequest) -> ChatResponse:
    return await target.provider.chat(request)


def stream_chat(target: ResolvedModel, request: ChatRequest) -> AsyncIterator[StreamEvent]:
    return target.provider.stream_chat(request)


async def embed(target: ResolvedModel, request: EmbeddingRequest) -> EmbeddingResponse:
    return await target.provider.embed(request)


async def transcribe(target: ResolvedModel, request: TranscriptionRequest) -> TranscriptionResponse:
    return await target.provider.transcribe(request)


async def count_tokens(target: ResolvedModel, request: ChatRequest) -> TokenCount:
    return await target.provider.count_tokens(request)
