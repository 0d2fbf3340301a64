"""Anthropic thinking, redacted thinking and stop sequences -> neutral answers and events,
whole and streamed, signatures exactly as sent."""

from __future__ import annotations

from typing import Any

import orjson

from palyra.model import (
    MessageEnd,
    RedactedThinking,
    RedactedThinkingPart,
    SignatureDelta,
    StreamAccumulator,
    TextDelta,
    ThinkingDelta,
    ThinkingPart,
)
from palyra.providers.anthropic import AnthropicStreamParser, parse_anthropic_message

SIGNATURE = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds+/=="
REDACTED = "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"

MESSAGE: dict[str, Any] = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [
        {"type": "thinking", "thinking": "Two plus two.", "signature": SIGNATURE},
        {"type": "redacted_thinking", "data": REDACTED},
        {"type": "text", "text": "4"},
    ],
    "stop_reason": "stop_sequence",
    "stop_sequence": "\n\nHuman:",
    "usage": {"input_tokens": 10, "output_tokens": 5},
}


def frame(kind: str, **data: Any) -> tuple[str, str]:
    return kind, orjson.dumps({"type": kind, **data}).decode()


STREAM = [
    frame("message_start", message={**MESSAGE, "content": [], "stop_reason": None}),
    frame(
        "content_block_start",
        index=0,
        content_block={"type": "thinking", "thinking": "", "signature": ""},
    ),
    frame("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "Two "}),
    frame(
        "content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "plus two."}
    ),
    frame(
        "content_block_delta", index=0, delta={"type": "signature_delta", "signature": SIGNATURE}
    ),
    frame("content_block_stop", index=0),
    frame(
        "content_block_start",
        index=1,
        content_block={"type": "redacted_thinking", "data": REDACTED},
    ),
    frame("content_block_stop", index=1),
    frame("content_block_start", index=2, content_block={"type": "text", "text": ""}),
    frame("content_block_delta", index=2, delta={"type": "text_delta", "text": "4"}),
    frame("content_block_stop", index=2),
    frame(
        "message_delta",
        delta={"stop_reason": "stop_sequence", "stop_sequence": "\n\nHuman:"},
        usage={"output_tokens": 5},
    ),
    frame("message_stop"),
]


def test_whole_message_keeps_thinking_signatures_and_the_stop_sequence() -> None:
    response = parse_anthropic_message(MESSAGE)
    assert response.reasoning == [
        ThinkingPart(thinking="Two plus two.", signature=SIGNATURE),
        RedactedThinkingPart(data=REDACTED),
    ]
    assert (response.content, response.finish_reason, response.stop_sequence) == (
        "4",
        "stop_sequence",
        "\n\nHuman:",
    )


def test_stream_gives_thinking_and_signature_deltas_and_the_stop_sequence() -> None:
    parser = AnthropicStreamParser()
    events = [e for kind, data in STREAM for e in parser.feed(kind, data)]
    reasoning = [
        e for e in events if isinstance(e, ThinkingDelta | SignatureDelta | RedactedThinking)
    ]
    assert reasoning == [
        ThinkingDelta(index=0, thinking="Two "),
        ThinkingDelta(index=0, thinking="plus two."),
        SignatureDelta(index=0, signature=SIGNATURE),
        RedactedThinking(index=1, data=REDACTED),
    ]
    assert TextDelta(text="4") in events
    assert events[-1] == MessageEnd(finish_reason="stop_sequence", stop_sequence="\n\nHuman:")


def test_streamed_and_whole_answers_agree() -> None:
    parser = AnthropicStreamParser()
    acc = StreamAccumulator().extend(e for kind, data in STREAM for e in parser.feed(kind, data))
    streamed, whole = acc.response(), parse_anthropic_message(MESSAGE)
    assert (streamed.reasoning, streamed.content, streamed.stop_sequence) == (
        whole.reasoning,
        whole.content,
        whole.stop_sequence,
    )
