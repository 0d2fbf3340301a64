"""Reasoning parts, documents and cache markers: where they may appear and what they need."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from palyra.model import (
    CacheControl,
    ChatRequest,
    DocumentPart,
    Message,
    ReasoningConfig,
    RedactedThinkingPart,
    Role,
    StreamAccumulator,
    ThinkingPart,
)
from palyra.model.events import (
    MessageEnd,
    MessageStart,
    RedactedThinking,
    SignatureDelta,
    TextDelta,
    ThinkingDelta,
)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of 'data' \\(base64\\), 'url', 'text' or 'file_id'"),
        ({"url": "https://x.test/a.pdf", "text": "x"}, "exactly one of"),
        ({"data": "JVBERi0="}, "needs 'media_type'"),
    ],
)
def test_document_needs_exactly_one_source(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DocumentPart(**kwargs)


@pytest.mark.parametrize("role", [Role.USER, Role.SYSTEM, Role.TOOL])
def test_reasoning_only_in_assistant_messages(role: Role) -> None:
    with pytest.raises(ValidationError, match="reasoning \\(thinking\\) can only appear"):
        Message(role=role, content=[ThinkingPart(thinking="x", signature="s")])


def test_documents_only_in_user_or_tool_messages() -> None:
    with pytest.raises(ValidationError, match="a document can only appear in a user message"):
        Message(role=Role.ASSISTANT, content=[DocumentPart(text="x")])


def test_cache_ttl_is_five_minutes_or_an_hour() -> None:
    with pytest.raises(ValidationError):
        CacheControl(ttl="2h")  # type: ignore[arg-type]


def test_top_k_and_budget_bounds() -> None:
    messages = [Message.text("user", "hi")]
    with pytest.raises(ValidationError, match="top_k"):
        ChatRequest(model="m", messages=messages, top_k=-1)
    with pytest.raises(ValidationError, match="budget_tokens"):
        ReasoningConfig(budget_tokens=0)


def test_stream_accumulator_keeps_reasoning_parts_in_order_with_signatures() -> None:
    acc = StreamAccumulator().extend(
        [
            MessageStart(id="m", model="c"),
            ThinkingDelta(index=0, thinking="Let me "),
            ThinkingDelta(index=0, thinking="see."),
            SignatureDelta(index=0, signature="sig=="),
            RedactedThinking(index=1, data="opaque"),
            TextDelta(text="Hi"),
            MessageEnd(finish_reason="stop_sequence", stop_sequence="END"),
        ]
    )
    response = acc.response()
    assert response.reasoning == [
        ThinkingPart(thinking="Let me see.", signature="sig=="),
        RedactedThinkingPart(data="opaque"),
    ]
    assert (response.content, response.finish_reason, response.stop_sequence) == (
        "Hi",
        "stop_sequence",
        "END",
    )
