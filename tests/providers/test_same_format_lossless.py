"""Same format, lossless: a client body parsed at our edge and built for an upstream of the same
API is the body the client sent (modulo ``model``, and ``stream_options`` where Palyra asks for
usage), unknown fields included at the top, on messages, on content blocks and on tools, and
blocks and tools of types the contract does not model; across formats an unknown top-level field
is refused naming it, and unknown message, block and tool fields are left out by rule."""

from __future__ import annotations

from typing import Any

import orjson
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
# Part types neither API's contract models (a newer vendor type, say), with fields of their own.
FOREIGN_TYPES = NAME.filter(
    lambda n: (
        n
        not in {"text", "image", "image_url", "file", "document", "tool_use", "tool_result"}
        | {"thinking", "redacted_thinking", "refusal"}
    )
)


@st.composite
def openai_text(draw: st.DrawFn) -> dict[str, Any]:
    """A text part, now and then with fields of an OpenAI-compatible server's own."""
    return {"type": "text", "text": draw(TEXT), **draw(extras(frozenset({"type", "text"})))}


@st.composite
def openai_content(draw: st.DrawFn, role: str) -> str | list[dict[str, Any]]:
    if draw(st.booleans()):
        return draw(TEXT)
    parts = draw(st.lists(openai_text(), min_size=1, max_size=3))
    if role == "user" and draw(st.booleans()):
        foreign = {"type": draw(FOREIGN_TYPES), **draw(extras(frozenset({"type"})))}
        parts.insert(draw(st.integers(0, len(parts))), foreign)
    return parts


@st.composite
def openai_messages(draw: st.DrawFn) -> list[dict[str, Any]]:
    messages = []
    for role in draw(st.lists(st.sampled_from(["system", "user", "assistant"]), max_size=3)):
        content = draw(openai_content(role))
        messages.append({"role": role, "content": content, **draw(MESSAGE_EXTRAS)})
    user = {"role": "user", "content": draw(openai_content("user"))}
    if draw(st.booleans()):
        user["name"] = draw(NAME)
    messages.append({**user, **draw(MESSAGE_EXTRAS)})
    return messages


TOOL = {
    "type": "function",
    "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
}


@st.composite
def openai_tool(draw: st.DrawFn) -> dict[str, Any]:
    """A function tool, with fields of the tool's and of the function's own now and then."""
    function = {
        **TOOL["function"],
        **draw(extras(frozenset({"name", "description", "parameters", "strict"}))),
    }
    if draw(st.booleans()):
        function["strict"] = draw(st.booleans())
    return {"type": "function", "function": function, **draw(extras(frozenset({"type"})))}


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
        body["tools"] = [draw(openai_tool())]
        body["tool_choice"] = draw(
            st.sampled_from(
                ["auto", "none", "required", {"type": "function", "function": {"name": "lookup"}}]
            )
        )
        body["parallel_tool_calls"] = draw(st.booleans())
    body.update(draw(extras(OPENAI_KEYS)))
    return body


# Cache markers the contract models, and variants it does not (carried as sent all the same).
MARKERS = st.sampled_from(
    [
        {"type": "ephemeral"},
        {"type": "ephemeral", "ttl": "5m"},
        {"type": "ephemeral", "ttl": "1h"},
        {"type": "ephemeral", "ttl": "24h"},
        {"type": "ephemeral", "scope": "org"},
        {"type": "persistent"},
    ]
)


@st.composite
def anthropic_text(draw: st.DrawFn) -> dict[str, Any]:
    """A text block, now and then marked for caching or with fields the contract does not model
    (``citations`` on a text block of an earlier answer, a newer field)."""
    block: dict[str, Any] = {"type": "text", "text": draw(TEXT)}
    if draw(st.booleans()):
        block["cache_control"] = draw(MARKERS)
    if draw(st.booleans()):
        block["citations"] = [{"type": "char_location", "cited_text": draw(TEXT)}]
    block.update(draw(extras(frozenset({"type", "text", "cache_control", "citations"}))))
    return block


@st.composite
def anthropic_content(draw: st.DrawFn) -> list[dict[str, Any]]:
    blocks = draw(st.lists(anthropic_text(), min_size=1, max_size=3))
    if draw(st.booleans()):
        foreign = {"type": draw(FOREIGN_TYPES), **draw(extras(frozenset({"type"})))}
        blocks.insert(draw(st.integers(0, len(blocks))), foreign)
    return blocks


@st.composite
def anthropic_tool(draw: st.DrawFn) -> dict[str, Any]:
    """A custom tool with fields the contract does not model now and then, or a server tool."""
    if draw(st.booleans()):
        return {
            "type": draw(st.sampled_from(["web_search_20250305", "code_execution_20250825"])),
            "name": "lookup",
            **draw(extras(frozenset({"type", "name"}))),
        }
    tool: dict[str, Any] = {"name": "lookup", "input_schema": {"type": "object", "properties": {}}}
    if draw(st.booleans()):
        tool["type"] = "custom"
    if draw(st.booleans()):
        tool["cache_control"] = draw(MARKERS)
    if draw(st.booleans()):
        tool["input_examples"] = [{"q": draw(TEXT)}]
    known = frozenset({"type", "name", "description", "strict", "input_schema", "cache_control"})
    tool.update(draw(extras(known | {"input_examples"})))
    return tool


@st.composite
def anthropic_bodies(draw: st.DrawFn) -> dict[str, Any]:
    turns = draw(st.integers(0, 2)) * 2 + 1  # user, (assistant, user)*
    messages = [
        {
            "role": "user" if i % 2 == 0 else "assistant",
            "content": draw(anthropic_content()),
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
        "system": TEXT | st.lists(anthropic_text(), min_size=1, max_size=2),
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
        body["tools"] = [draw(anthropic_tool())]
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


def test_block_and_tool_extras_are_left_out_across_formats() -> None:
    anthropic_body = {
        "model": "m",
        "max_tokens": 5,
        "system": [{"type": "text", "text": "sys", "cache_control": {"type": "persistent"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "q", "x_note": 1}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "a", "citations": [{"type": "char_location"}]},
                    {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search"},
                ],
            },
            {"role": "user", "content": "more"},
        ],
        "tools": [
            {
                "name": "lookup",
                "input_schema": {"type": "object"},
                "input_examples": [{"q": "x"}],
                "defer_loading": True,
            }
        ],
    }
    payload = build_openai_chat_payload(parse_messages_request(anthropic_body))
    assert payload["messages"] == [
        {"role": "system", "content": [{"type": "text", "text": "sys"}]},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": "more"},
    ]
    assert payload["tools"] == [
        {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    ]
    openai_body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "q", "cache_control": {}}]}
        ],
        "tools": [{**TOOL, "x_tool": 1, "function": {**TOOL["function"], "x_fn": 2}}],
    }
    payload = build_anthropic_messages_payload(parse_chat_request(openai_body).request)
    assert payload["messages"] == [{"role": "user", "content": [{"type": "text", "text": "q"}]}]
    assert payload["tools"] == [
        {"name": "lookup", "input_schema": {"type": "object", "properties": {}}}
    ]


def test_a_block_only_its_api_reads_is_refused_in_user_content_across_formats() -> None:
    search = {"type": "search_result", "source": "s", "title": "t", "content": []}
    anthropic_body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": [search, {"type": "text", "text": "q"}]}],
    }
    with pytest.raises(PalyraError) as info:
        build_openai_chat_payload(parse_messages_request(anthropic_body))
    assert info.value.failure_class is FailureClass.UNSUPPORTED_CAPABILITY
    assert "'search_result' from the anthropic_messages API" in info.value.envelope.message
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    openai_body = {"model": "m", "messages": [{"role": "user", "content": [audio]}]}
    with pytest.raises(PalyraError) as info:
        build_anthropic_messages_payload(parse_chat_request(openai_body).request)
    assert "'input_audio' from the openai_chat API" in info.value.envelope.message
    # Same format, the block reaches the upstream whole, in its place.
    assert build_openai_chat_payload(parse_chat_request(openai_body).request)["messages"] == [
        {"role": "user", "content": [audio]}
    ]


def test_a_server_tool_is_refused_across_formats_naming_it() -> None:
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "q"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 2}],
    }
    request = parse_messages_request(body)
    assert build_anthropic_messages_payload(request)["tools"] == body["tools"]
    with pytest.raises(PalyraError) as info:
        build_openai_chat_payload(request)
    assert info.value.envelope.param == "tools[0].type"
    assert "'web_search' is a 'web_search_20250305' tool" in info.value.envelope.message


def test_server_tool_blocks_are_left_out_for_an_openai_client() -> None:
    """An OpenAI client cannot offer a server tool, but an Anthropic-compatible server may add
    such blocks on its own: the client gets the answer's text, whole and streamed."""
    from palyra.daemon.surfaces.openai.chat_format import ChunkEncoder, chat_completion
    from palyra.model import ExtensionEvent
    from palyra.providers.anthropic import AnthropicStreamParser, parse_anthropic_message
    from palyra.testing import anthropic_messages
    from palyra.testing.conversation import Conversation, plan_reply

    reply = plan_reply(
        Conversation(model="c", last_user_text="q"), scripted=None, call_id=lambda i: f"c{i}"
    )
    whole = anthropic_messages.message(reply, id="msg_1", model="c", search="web_search", query="q")
    answer = chat_completion(parse_anthropic_message(whole), created=1)
    assert answer["choices"][0]["message"]["content"] == "You said: q"
    assert "citations" not in str(answer) and "server_tool_use" not in str(answer)
    parser = AnthropicStreamParser()
    encoder = ChunkEncoder(fallback_id="x", model="c", created=1, include_usage=False)
    wire = anthropic_messages.events(
        reply, id="msg_1", model="c", words_per_chunk=2, search="web_search", query="q"
    )
    events = [e for name, data in wire for e in parser.feed(name, orjson.dumps(data).decode())]
    assert any(isinstance(e, ExtensionEvent) for e in events)  # kept, for an Anthropic client
    frames = b"".join(encoder.encode(e) for e in events)
    assert b"server_tool_use" not in frames and b"citation" not in frames
    assert frames.count(b'"content":"') >= 2 and b"You said: " in frames
