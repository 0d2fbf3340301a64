"""The one place a daemon request meets a provider; the routing layer will replace these calls."""

from __future__ import annotations

from collections.abc import AsyncIterator

from palyra.daemon.state import ResolvedModel
from palyra.model import ChatRequest, ChatResponse, StreamEvent


async def chat(target: ResolvedModel, request: ChatRequest) -> ChatResponse:
    return await target.provider.chat(request)


def stream_chat(target: ResolvedModel, request: ChatRequest) -> AsyncIterator[StreamEvent]:
    return target.provider.stream_chat(request)
