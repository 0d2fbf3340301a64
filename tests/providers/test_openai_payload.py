"""Neutral requests -> OpenAI Chat Completions, embeddings and transcription payloads."""

from __future__ import annotations

from typing import Any

import pytest

from palyra.model import (
    ChatRequest,
    EmbeddingRequest,
    ImagePart,
    Message,
    NamedToolChoice,
    Prediction,
    ResponseFormat,
    Role,
    TextPart,
    ToolCallPart,
    ToolSpec,
    TranscriptionRequest,
)
from palyra.providers.openai import (
    OpenAIQuirks,
    build_openai_chat_payload,
    build_openai_embeddings_payload,
    build_openai_transcription_form,
    schema_instruction,
)

WEATHER = ToolSpec(
    name="get_weather",
    description="Weather",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
    strict=True,
)
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


def _req(*messages: Message, **fields: Any) -> ChatRequest:
    return ChatRequest.model_validate({"model": "gpt-x", "messages": list(messages), **fields})


def _u(text: str = "hi") -> Message:
    return Message.text(Role.USER, text)


MESSAGE_CASES: list[tuple[str, Message, OpenAIQuirks, list[dict[str, Any]]]] = [
    ("user text collapses", _u("hello"), OpenAIQuirks(), [{"role": "user", "content": "hello"}]),
    (
        "system stays system",
        Message.text(Role.SYSTEM, "s"),
        OpenAIQuirks(),
        [{"role": "system", "content": "s"}],
    ),
    (
        "developer kept",
        Message.text(Role.DEVELOPER, "d"),
        OpenAIQuirks(),
        [{"role": "developer", "content": "d"}],
    ),
    (
        "developer mapped to system by quirk",
        Message.text(Role.DEVELOPER, "d"),
        OpenAIQuirks(developer_role=False),
        [{"role": "system", "content": "d"}],
    ),
    (
        "two text parts stay parts",
        Message(role=Role.USER, content=[TextPart(text="a"), TextPart(text="b")]),
        OpenAIQuirks(),
        [
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            }
        ],
    ),
    (
        "empty user content is an empty string",
        Message(role=Role.USER, content=[]),
        OpenAIQuirks(),
        [{"role": "user", "content": ""}],
    ),
    (
        "image by url with detail",
        Message(
            role=Role.USER,
            content=[TextPart(text="see"), ImagePart(url="https://x/a.png", detail="low")],
        ),
        OpenAIQuirks(),
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "see"},
                    {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "low"}},
                ],
            }
        ],
    ),
    (
        "inline image becomes a data url, alone still a list",
        Message(role=Role.USER, content=[ImagePart(data="aGk=", media_type="image/png")]),
        OpenAIQuirks(),
        [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGk="}}
                ],
            }
        ],
    ),
    (
        "assistant with only calls has null content",
        Message(
            role=Role.ASSISTANT, content=[ToolCallPart(id="c1", name="f", arguments='{"a":1}')]
        ),
        OpenAIQuirks(),
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"a":1}'},
                    }
                ],
            }
        ],
    ),
    (
        "assistant text and calls in one turn keep both",
        Message(
            role=Role.ASSISTANT,
            content=[TextPart(text="checking"), ToolCallPart(id="c1", name="f")],
        ),
        OpenAIQuirks(),
        [
            {
                "role": "assistant",
                "content": "checking",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            }
        ],
    ),
    (
        "empty assistant is an empty string",
        Message(role=Role.ASSISTANT, content=[]),
        OpenAIQuirks(),
        [{"role": "assistant", "content": ""}],
    ),
    (
        "tool results become one tool message each",
        Message(
            role=Role.TOOL,
            content=[
                Message.tool_result("c1", "ok").content[0],
                Message.tool_result("c2", {"t": 3}).content[0],
            ],
        ),
        OpenAIQuirks(),
        [
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
            {"role": "tool", "tool_call_id": "c2", "content": '{"t":3}'},
        ],
    ),
    (
        "error tool result says so in the text",
        Message.tool_result("c1", "no such city", is_error=True),
        OpenAIQuirks(),
        [{"role": "tool", "tool_call_id": "c1", "content": "Error: no such city"}],
    ),
    (
        "image returned by a tool follows as a user turn",
        Message(
            role=Role.TOOL,
            content=[
                Message.tool_result("c1", "see image").content[0],
                ImagePart(url="https://x/p.png"),
            ],
        ),
        OpenAIQuirks(),
        [
            {"role": "tool", "tool_call_id": "c1", "content": "see image"},
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "https://x/p.png"}}],
            },
        ],
    ),
    (
        "name passed",
        Message(role=Role.USER, content=[TextPart(text="x")], name="ann"),
        OpenAIQuirks(),
        [{"role": "user", "content": "x", "name": "ann"}],
    ),
    (
        "name dropped by quirk",
        Message(role=Role.USER, content=[TextPart(text="x")], name="ann"),
        OpenAIQuirks(message_names=False),
        [{"role": "user", "content": "x"}],
    ),
]


@pytest.mark.parametrize(
    ("message", "quirks", "expected"),
    [c[1:] for c in MESSAGE_CASES],
    ids=[c[0] for c in MESSAGE_CASES],
)
def test_message_mapping(
    message: Message, quirks: OpenAIQuirks, expected: list[dict[str, Any]]
) -> None:
    assert build_openai_chat_payload(_req(message), quirks)["messages"] == expected


FIELD_CASES: list[tuple[str, dict[str, Any], OpenAIQuirks, dict[str, Any]]] = [
    (
        "tools with strict",
        {"tools": [WEATHER]},
        OpenAIQuirks(),
        {
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "description": "Weather",
                        "parameters": WEATHER.parameters,
                        "strict": True,
                    },
                }
            ]
        },
    ),
    (
        "strict dropped by quirk",
        {"tools": [WEATHER]},
        OpenAIQuirks(strict_schemas=False),
        {
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "description": "Weather",
                        "parameters": WEATHER.parameters,
                    },
                }
            ]
        },
    ),
    (
        "tool choice auto",
        {"tools": [WEATHER], "tool_choice": "auto"},
        OpenAIQuirks(),
        {"tool_choice": "auto"},
    ),
    (
        "tool choice none",
        {"tools": [WEATHER], "tool_choice": "none"},
        OpenAIQuirks(),
        {"tool_choice": "none"},
    ),
    (
        "tool choice required",
        {"tools": [WEATHER], "tool_choice": "required"},
        OpenAIQuirks(),
        {"tool_choice": "required"},
    ),
    (
        "tool choice named",
        {"tools": [WEATHER], "tool_choice": NamedToolChoice(name="get_weather")},
        OpenAIQuirks(),
        {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
    ),
    (
        "tool choice none without tools is omitted (OpenAI rejects it)",
        {"tool_choice": "none"},
        OpenAIQuirks(),
        {"tool_choice": None, "tools": None},
    ),
    (
        "tool choice auto without tools is omitted",
        {"tool_choice": "auto", "parallel_tool_calls": True},
        OpenAIQuirks(),
        {"tool_choice": None, "parallel_tool_calls": None},
    ),
    (
        "parallel off",
        {"tools": [WEATHER], "parallel_tool_calls": False},
        OpenAIQuirks(),
        {"parallel_tool_calls": False},
    ),
    (
        "parallel on",
        {"tools": [WEATHER], "parallel_tool_calls": True},
        OpenAIQuirks(),
        {"parallel_tool_calls": True},
    ),
    (
        "parallel omitted by quirk",
        {"tools": [WEATHER], "parallel_tool_calls": False},
        OpenAIQuirks(parallel_tool_calls=False),
        {"parallel_tool_calls": None},
    ),
    (
        "parallel omitted without tools",
        {"parallel_tool_calls": True},
        OpenAIQuirks(),
        {"parallel_tool_calls": None},
    ),
    (
        "response format text",
        {"response_format": ResponseFormat(type="text")},
        OpenAIQuirks(),
        {"response_format": {"type": "text"}},
    ),
    (
        "response format json object",
        {"response_format": ResponseFormat(type="json_object")},
        OpenAIQuirks(),
        {"response_format": {"type": "json_object"}},
    ),
    (
        "json object as any-object schema by quirk",
        {"response_format": ResponseFormat(type="json_object")},
        OpenAIQuirks(response_format_json_object=False),
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "json_object", "schema": {"type": "object"}},
            }
        },
    ),
    (
        "json schema strict",
        {
            "response_format": ResponseFormat(
                type="json_schema", schema_name="thing", json_schema=SCHEMA, strict=True
            )
        },
        OpenAIQuirks(),
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "thing", "schema": SCHEMA, "strict": True},
            }
        },
    ),
    (
        "json schema gets a default name",
        {"response_format": ResponseFormat(type="json_schema", json_schema=SCHEMA)},
        OpenAIQuirks(),
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": SCHEMA},
            }
        },
    ),
    (
        "max completion tokens",
        {"max_output_tokens": 50},
        OpenAIQuirks(),
        {"max_completion_tokens": 50, "max_tokens": None},
    ),
    (
        "max tokens by quirk",
        {"max_output_tokens": 50},
        OpenAIQuirks(max_completion_tokens=False),
        {"max_tokens": 50, "max_completion_tokens": None},
    ),
    ("temperature", {"temperature": 0.0}, OpenAIQuirks(), {"temperature": 0.0}),
    ("top p", {"top_p": 0.3}, OpenAIQuirks(), {"top_p": 0.3}),
    ("stop", {"stop": ["a", "b"]}, OpenAIQuirks(), {"stop": ["a", "b"]}),
    ("no stop when empty", {}, OpenAIQuirks(), {"stop": None, "stream": None, "tools": None}),
    ("user", {"user": "u1"}, OpenAIQuirks(), {"user": "u1"}),
    ("metadata", {"metadata": {"k": "v"}}, OpenAIQuirks(), {"metadata": {"k": "v"}}),
    (
        "metadata dropped by quirk",
        {"metadata": {"k": "v"}},
        OpenAIQuirks(metadata=False),
        {"metadata": None},
    ),
    ("seed", {"seed": 42}, OpenAIQuirks(), {"seed": 42}),
    (
        "penalties",
        {"presence_penalty": 0.5, "frequency_penalty": -1.0},
        OpenAIQuirks(),
        {"presence_penalty": 0.5, "frequency_penalty": -1.0},
    ),
    (
        "logit bias",
        {"logit_bias": {"50256": -100}},
        OpenAIQuirks(),
        {"logit_bias": {"50256": -100}},
    ),
    (
        "logprobs",
        {"logprobs": True, "top_logprobs": 2},
        OpenAIQuirks(),
        {"logprobs": True, "top_logprobs": 2},
    ),
    ("one choice", {"n": 1}, OpenAIQuirks(), {"n": 1}),
    ("service tier", {"service_tier": "priority"}, OpenAIQuirks(), {"service_tier": "priority"}),
    ("store", {"store": False}, OpenAIQuirks(), {"store": False}),
    (
        "prediction as text",
        {"prediction": Prediction(content="x = 1")},
        OpenAIQuirks(),
        {"prediction": {"type": "content", "content": "x = 1"}},
    ),
    (
        "prediction as parts",
        {"prediction": Prediction(content=[TextPart(text="a"), TextPart(text="b")])},
        OpenAIQuirks(),
        {
            "prediction": {
                "type": "content",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            }
        },
    ),
    (
        "no options when unset",
        {},
        OpenAIQuirks(),
        {k: None for k in ("seed", "n", "logprobs", "logit_bias", "service_tier", "store")},
    ),
    (
        "stream asks for usage",
        {"stream": True},
        OpenAIQuirks(),
        {"stream": True, "stream_options": {"include_usage": True}},
    ),
    (
        "stream without usage option by quirk",
        {"stream": True},
        OpenAIQuirks(stream_usage=False),
        {"stream": True, "stream_options": None},
    ),
]


@pytest.mark.parametrize(
    ("fields", "quirks", "expected"),
    [c[1:] for c in FIELD_CASES],
    ids=[c[0] for c in FIELD_CASES],
)
def test_request_field_mapping(
    fields: dict[str, Any], quirks: OpenAIQuirks, expected: dict[str, Any]
) -> None:
    payload = build_openai_chat_payload(_req(_u(), **fields), quirks)
    for key, value in expected.items():
        if value is None:
            assert key not in payload, key
        else:
            assert payload[key] == value, key


def test_json_schema_without_server_support_becomes_json_object_and_instruction() -> None:
    request = _req(
        Message.text(Role.SYSTEM, "sys"),
        _u(),
        response_format=ResponseFormat(type="json_schema", json_schema=SCHEMA, strict=True),
    )
    payload = build_openai_chat_payload(request, OpenAIQuirks(response_format_json_schema=False))
    assert payload["response_format"] == {"type": "json_object"}
    assert payload["messages"][0] == {"role": "system", "content": schema_instruction(SCHEMA)}
    assert payload["messages"][1:] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "hi"},
    ]


def test_payload_keeps_message_order_and_model() -> None:
    request = _req(Message.text(Role.SYSTEM, "s"), _u("a"), Message.text(Role.ASSISTANT, "b"))
    payload = build_openai_chat_payload(request)
    assert payload["model"] == "gpt-x"
    assert [m["role"] for m in payload["messages"]] == ["system", "user", "assistant"]


def test_non_streaming_payload_has_no_stream_fields() -> None:
    payload = build_openai_chat_payload(_req(_u()))
    assert set(payload) == {"model", "messages"}


def test_embeddings_payload_sends_whole_batch_and_options() -> None:
    request = EmbeddingRequest(
        model="text-embedding-3-small",
        inputs=["a", "b", "c"],
        dimensions=256,
        encoding_format="base64",
        user="u",
    )
    assert build_openai_embeddings_payload(request) == {
        "model": "text-embedding-3-small",
        "input": ["a", "b", "c"],
        "encoding_format": "base64",
        "dimensions": 256,
        "user": "u",
    }


def test_embeddings_payload_omits_unset_options() -> None:
    payload = build_openai_embeddings_payload(EmbeddingRequest(model="m", inputs=["a"]))
    assert payload == {"model": "m", "input": ["a"], "encoding_format": "float"}


def test_transcription_form_has_every_field_and_repeats_granularities() -> None:
    request = TranscriptionRequest(
        model="whisper-1",
        audio=b"RIFF....",
        filename="clip.wav",
        media_type="audio/wav",
        language="de",
        prompt="Namen: Zoë",
        response_format="verbose_json",
        timestamp_granularities=["segment", "word"],
        temperature=0.2,
    )
    fields, files = build_openai_transcription_form(request)
    assert fields == {
        "model": "whisper-1",
        "response_format": "verbose_json",
        "language": "de",
        "prompt": "Namen: Zoë",
        "temperature": "0.2",
        "timestamp_granularities[]": ["segment", "word"],
    }
    assert files == {"file": ("clip.wav", b"RIFF....", "audio/wav")}


def test_transcription_form_minimal() -> None:
    fields, _ = build_openai_transcription_form(TranscriptionRequest(model="w", audio=b"x"))
    assert fields == {"model": "w", "response_format": "json"}


class _LoudText(TextPart):
    """A TextPart subclass: the plain-text shortcut must not treat it differently."""


@pytest.mark.parametrize(
    "parts",
    [
        [TextPart(text="one")],
        [_LoudText(text="sub")],
        [TextPart(text="a"), TextPart(text="b")],
        [ImagePart(url="https://x/a.png")],
        [TextPart(text="see"), ImagePart(url="https://x/a.png", detail="low")],
        [],
    ],
    ids=["one-text", "subclass", "two-texts", "image", "text-and-image", "empty"],
)
@pytest.mark.parametrize("name", [None, "ann"])
def test_user_content_takes_the_same_form_with_or_without_the_shortcut(
    parts: list[TextPart | ImagePart], name: str | None
) -> None:
    message = Message.model_construct(role=Role.USER, content=parts, name=name, tool_calls=[])
    (wire,) = build_openai_chat_payload(_req(message))["messages"]
    if len(parts) == 1 and isinstance(parts[0], TextPart):
        content: Any = parts[0].text
    elif parts:
        content = [
            {"type": "text", "text": p.text}
            if isinstance(p, TextPart)
            else {
                "type": "image_url",
                "image_url": {"url": p.as_url(), **({"detail": p.detail} if p.detail else {})},
            }
            for p in parts
        ]
    else:
        content = ""
    assert wire == {"role": "user", "content": content, **({"name": name} if name else {})}


def test_more_than_one_choice_is_asked_for_as_sent() -> None:
    """Every choice comes back (ChatResponse.other_choices), so n goes to the upstream."""
    assert build_openai_chat_payload(_req(_u(), n=3))["n"] == 3
