"""Same format, lossless: a client body parsed at our edge and built for an upstream of the same
API is the body the client sent (modulo ``model``, and ``stream_options`` where Palyra asks for
usage), unknown fields included at the top and on messages; across formats an unknown top-level
field is refused naming it, and unknown message fields are left out by rule."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from palyra.daemon.surfaces.anthropic.messages_format import BODY_KEYS as ANTHROPIC_KEYS
from palyra.daemon.surfaces.anthropic.messages_format import parse_messages_request
from palyra.daemon.surfaces.openai.chat_format import BODY_KEYS as OPENAI_KEYS
from palyra.daemon.surfaces.openai.chat_format import parse_chat_request
from palyra.model import FailureClass, PalyraError
from palyra.providers.anthropic import build_anthropic_messages_payload
from palyra.providers.openai import build_openai_chat_payload

NAME = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20
).filter(lambda t: t.strip() == t and t.strip())
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**31), 2**31) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAME, inner, max_size=3),
    max_leaves=6,
)


def extras(known: frozenset[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Fields no wire format of ours models (a new vendor parameter, say)."""
    return st.dictionaries(NAME.filter(lambda n: n not in known), JSON, max_size=3)


MESSAGE_EXTRAS = extras(frozenset({"role", "content", "name", "tool_calls", "tool_call_id"}))


@st.composite
def openai_messages(draw: st.DrawFn) -> list[dict[str, Any]]:
    messages = []
    for role in draw(st.lists(st.sampled_from(["system", "user", "assistant"]), max_size=3)):
        messages.append({"role": role, "content": draw(TEXT), **draw(MESSAGE_EXTRAS)})
    user = {"role": "user", "content": draw(TEXT)}
    if draw(st.booleans()):
        user["name"] = draw(NAME)
    messages.append({**user, **draw(MESSAGE_EXTRAS)})
    return messages


TOOL = {
    "type": "function",
    "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
}


@st.composite
def openai_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "m", "messages": draw(openai_messages())}
    options = {
        "temperature": st.floats(0, 2, allow_nan=False),
        "top_p": st.floats(0, 1, allow_nan=False),
        "max_completion_tokens": st.integers(1, 10**6),
        "stop": st.lists(TEXT, min_size=1, max_size=4),
        "seed": st.integers(-(2**31), 2**31),
        "presence_penalty": st.floats(-2, 2, allow_nan=False),
        "frequency_penalty": st.floats(-2, 2, allow_nan=False),
        "logit_bias": st.dictionaries(
            st.integers(0, 10**5).map(str), st.integers(-100, 100), min_size=1
        ),
        "service_tier": st.sampled_from(["auto", "default", "flex", "scale", "priority"]),
        "store": st.booleans(),
        "user": TEXT,
        "metadata": st.dictionaries(NAME, TEXT, min_size=1, max_size=3),
        "reasoning_effort": st.sampled_from(["none", "minimal", "low", "medium", "high", "xhigh"]),
        "prediction": TEXT.map(lambda t: {"type": "content", "content": t}),
        "n": st.just(1),
        "stream": st.just(True),
    }
    for key, strategy in options.items():
        if draw(st.booleans()):
            body[key] = draw(strategy)
    if draw(st.booleans()):
        body["logprobs"] = True
        if draw(st.booleans()):
            body["top_logprobs"] = draw(st.integers(0, 20))
    if draw(st.booleans()):
        body["tools"] = [TOOL]
        body["tool_choice"] = draw(
            st.sampled_from(
                ["auto", "none", "required", {"type": "function", "function": {"name": "lookup"}}]
            )
        )
        body["parallel_tool_calls"] = draw(st.booleans())
    body.update(draw(extras(OPENAI_KEYS)))
    return body


@st.composite
def anthropic_bodies(draw: st.DrawFn) -> dict[str, Any]:
    turns = draw(st.integers(0, 2)) * 2 + 1  # user, (assistant, user)*
    messages = [
        {
            "role": "user" if i % 2 == 0 else "assistant",
            "content": [{"type": "text", "text": draw(TEXT)}],
            **draw(extras(frozenset({"role", "content"}))),
        }
        for i in range(turns)
    ]
    body: dict[str, Any] = {
        "model": "m",
        "max_tokens": draw(st.integers(1, 10**5)),
        "messages": messages,
    }
    options = {
        "system": TEXT,
        "temperature": st.floats(0, 1, allow_nan=False),
        "top_p": st.floats(0, 1, allow_nan=False),
        "top_k": st.integers(1, 500),
        "stop_sequences": st.lists(TEXT, min_size=1, max_size=4),
        "metadata": TEXT.map(lambda t: {"user_id": t}),
        "service_tier": st.sampled_from(["auto", "standard_only"]),
        "stream": st.just(True),
    }
    for key, strategy in options.items():
        if draw(st.booleans()):
            body[key] = draw(strategy)
    if draw(st.booleans()):
        body["tools"] = [{"name": "lookup", "input_schema": {"type": "object", "properties": {}}}]
        body["tool_choice"] = draw(
            st.sampled_from([{"type": "auto"}, {"type": "any"}, {"type": "tool", "name": "lookup"}])
        )
    body.update(draw(extras(ANTHROPIC_KEYS)))
    return body


def without_usage_option(payload: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The upstream body less the ``stream_options`` Palyra adds to get a stream's usage."""
    if "stream_options" not in body:
        payload.pop("stream_options", None)
    return payload


@settings(max_examples=300, deadline=None)
@given(openai_bodies())
def test_openai_to_openai_sends_the_clients_body(body: dict[str, Any]) -> None:
    payload = build_openai_chat_payload(parse_chat_request(body).request)
    assert without_usage_option(payload, body) == body


@settings(max_examples=300, deadline=None)
@given(anthropic_bodies())
def test_anthropic_to_anthropic_sends_the_clients_body(body: dict[str, Any]) -> None:
    payload = build_anthropic_messages_payload(parse_messages_request(body))
    assert payload == body


def test_an_unknown_top_level_field_is_refused_across_formats_naming_it() -> None:
    openai_body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "web_search_options": {},
        "safety_identifier": "h",
    }
    with pytest.raises(PalyraError) as info:
        build_anthropic_messages_payload(parse_chat_request(openai_body).request)
    assert info.value.failure_class is FailureClass.UNSUPPORTED_CAPABILITY
    assert info.value.envelope.param == "web_search_options"
    assert "web_search_options, safety_identifier" in info.value.envelope.message
    anthropic_body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}],
        "context_management": {"edits": []},
    }
    with pytest.raises(PalyraError) as info:
        build_openai_chat_payload(parse_messages_request(anthropic_body))
    assert info.value.envelope.param == "context_management"


def test_unknown_message_fields_are_left_out_across_formats() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi", "x_note": 1}]}
    payload = build_anthropic_messages_payload(parse_chat_request(body).request)
    assert payload["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]


def test_an_answers_unmodelled_fields_reach_a_client_of_its_api_only() -> None:
    from palyra.daemon.surfaces.anthropic.messages_format import message_json
    from palyra.daemon.surfaces.openai.chat_format import chat_completion
    from palyra.providers.anthropic import parse_anthropic_message
    from palyra.providers.openai.response import parse_openai_chat_response

    claude = parse_anthropic_message(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "c",
            "content": [{"type": "text", "text": "hi"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 1, "output_tokens": 1},
            "container": {"id": "cnt_1", "expires_at": "2026-01-01T00:00:00Z"},
            "context_management": {"applied_edits": []},
        }
    )
    same = message_json(claude)
    assert same["container"] == {"id": "cnt_1", "expires_at": "2026-01-01T00:00:00Z"}
    assert same["context_management"] == {"applied_edits": []}
    other = chat_completion(claude, created=1)
    assert "container" not in other and "context_management" not in other

    gpt = parse_openai_chat_response(
        {
            "id": "c1",
            "object": "chat.completion",
            "created": 1,
            "model": "g",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "hi",
                        "annotations": [{"type": "url_citation"}],
                    },
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            "obfuscation": "xyz",
        }
    )
    same = chat_completion(gpt, created=1)
    assert same["obfuscation"] == "xyz"
    assert same["choices"][0]["message"]["annotations"] == [{"type": "url_citation"}]
    other = message_json(gpt)
    assert "obfuscation" not in other and "annotations" not in str(other)


def test_stream_events_the_contract_does_not_know_reach_an_anthropic_client_in_order() -> None:
    from palyra.daemon.surfaces.anthropic.messages_format import MessageEventEncoder
    from palyra.daemon.surfaces.openai.chat_format import ChunkEncoder
    from palyra.model import ExtensionEvent
    from palyra.providers.anthropic import AnthropicStreamParser

    parser = AnthropicStreamParser(provider="an")
    wire = [
        ("ping", '{"type": "ping"}'),  # before message_start: nothing to keep it for
        (
            "message_start",
            '{"type":"message_start","message":{"id":"msg_1","model":"c","usage":{"input_tokens":3}}}',
        ),
        ("ping", '{"type": "ping"}'),
        (
            "content_block_start",
            '{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}',
        ),
        ("new_thing", '{"type": "new_thing", "detail": {"x": 1}}'),
        (
            "content_block_delta",
            '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}',
        ),
    ]
    events = [e for name, data in wire for e in parser.feed(name, data)]
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["MessageStart", "ExtensionEvent", "ExtensionEvent", "TextDelta"]
    unknown = [e for e in events if isinstance(e, ExtensionEvent)]
    assert [(e.event, e.data) for e in unknown] == [
        ("ping", {"type": "ping"}),
        ("new_thing", {"type": "new_thing", "detail": {"x": 1}}),
    ]
    claude = MessageEventEncoder(fallback_id="x", model="c", estimate_input=lambda: 0)
    frames = b"".join(claude.encode(e) for e in events)
    assert frames.index(b"event: ping") < frames.index(b"event: new_thing") < frames.index(b'"hi"')
    assert b'event: new_thing\ndata: {"type":"new_thing","detail":{"x":1}}\n\n' in frames
    gpt = ChunkEncoder(fallback_id="x", model="c", created=1, include_usage=False)
    assert all(gpt.encode(e) == b"" for e in unknown)
