"""OpenAI answers -> neutral types: chat completions, embeddings, transcriptions and models."""

from __future__ import annotations

import base64
import struct
from typing import Any

import pytest

from palyra.model import ChatResponse, FailureClass, PalyraError, ToolCallPart, Usage
from palyra.providers.openai import (
    parse_openai_chat_response,
    parse_openai_embeddings_response,
    parse_openai_models,
    parse_openai_transcription,
)
from palyra.providers.openai.response import (
    _tool_calls,
    content_text,
    finish_reason,
    usage_from_openai,
)

# Shape of the Chat Completions object as OpenAI documents it.
TEXT_COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4.1-2025-04-14",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello! How can I assist you today?",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 19,
        "completion_tokens": 10,
        "total_tokens": 29,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_123",
}

TOOL_COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-abc123",
    "object": "chat.completion",
    "created": 1699896916,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_abc123",
                        "type": "function",
                        "function": {
                            "name": "get_current_weather",
                            "arguments": '{\n"location": "Boston, MA"\n}',
                        },
                    },
                    {
                        "id": "call_def456",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": '{"tz":"EST"}'},
                    },
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 2082,
        "completion_tokens": 17,
        "total_tokens": 2099,
        "prompt_tokens_details": {"cached_tokens": 1920},
        "completion_tokens_details": {"reasoning_tokens": 64},
    },
}


def _with(choice_message: dict[str, Any], finish: str | None = "stop") -> dict[str, Any]:
    return {
        "id": "x",
        "model": "m",
        "choices": [{"index": 0, "message": choice_message, "finish_reason": finish}],
    }


def test_text_completion_maps_text_usage_and_identity() -> None:
    response = parse_openai_chat_response(TEXT_COMPLETION, provider="openai-main")
    assert response.id == "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT"
    assert response.model == "gpt-4.1-2025-04-14"
    assert response.content == "Hello! How can I assist you today?"
    assert response.finish_reason == "stop"
    assert response.usage == Usage(input_tokens=19, output_tokens=10, source="provider")
    assert response.provider == "openai-main"
    assert response.created == 1741569952
    assert response.system_fingerprint == "fp_123"


def test_tool_completion_keeps_every_call_cached_and_reasoning_tokens() -> None:
    response = parse_openai_chat_response(TOOL_COMPLETION)
    assert response.content == ""
    assert response.tool_calls == [
        ToolCallPart(
            id="call_abc123", name="get_current_weather", arguments='{\n"location": "Boston, MA"\n}'
        ),
        ToolCallPart(id="call_def456", name="get_time", arguments='{"tz":"EST"}'),
    ]
    assert response.finish_reason == "tool_calls"
    assert response.usage == Usage(
        input_tokens=2082,
        output_tokens=17,
        cached_input_tokens=1920,
        reasoning_tokens=64,
        source="provider",
    )


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool_calls"),
        ("function_call", "tool_calls"),
        ("content_filter", "content_filter"),
        (None, "stop"),
        ("something_new", "stop"),
    ],
)
def test_finish_reason_mapping(wire: str | None, expected: str) -> None:
    body = _with({"role": "assistant", "content": "x"}, wire)
    assert parse_openai_chat_response(body).finish_reason == expected


@pytest.mark.parametrize(
    ("wire", "expected"),
    [("stop", "tool_calls"), ("length", "length"), ("content_filter", "content_filter")],
)
def test_forced_call_answered_with_stop_is_tool_calls_unless_cut_off(
    wire: str, expected: str
) -> None:
    """OpenAI says ``stop`` for a named/required tool_choice call; ``length`` still wins."""
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    }
    assert parse_openai_chat_response(_with(message, wire)).finish_reason == expected


def test_missing_finish_reason_with_calls_means_tool_calls() -> None:
    message = {
        "role": "assistant",
        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f"}}],
    }
    response = parse_openai_chat_response(_with(message, None))
    assert response.finish_reason == "tool_calls"
    assert response.tool_calls == [ToolCallPart(id="c", name="f", arguments="{}")]


def test_text_given_as_parts_is_joined() -> None:
    message = {
        "role": "assistant",
        "content": [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}],
    }
    assert parse_openai_chat_response(_with(message)).content == "Hello"


def test_refusal_becomes_the_text() -> None:
    message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
    assert parse_openai_chat_response(_with(message)).content == "I can't help with that."


def test_legacy_function_call_becomes_a_tool_call() -> None:
    message = {"role": "assistant", "function_call": {"name": "f", "arguments": '{"a":1}'}}
    response = parse_openai_chat_response(_with(message, "function_call"))
    assert response.tool_calls == [ToolCallPart(id="call_x_0", name="f", arguments='{"a":1}')]
    assert response.finish_reason == "tool_calls"


def test_missing_usage_is_a_zero_estimate_labelled_estimated() -> None:
    usage = parse_openai_chat_response(_with({"role": "assistant", "content": "x"})).usage
    assert usage == Usage(source="estimated")


@pytest.mark.parametrize(
    "body",
    [{}, {"choices": []}, {"choices": "x"}, {"choices": [{"index": 0}]}],
    ids=["no-choices", "empty-choices", "choices-not-list", "no-message"],
)
def test_answer_without_a_message_is_malformed(body: dict[str, Any]) -> None:
    with pytest.raises(PalyraError) as caught:
        parse_openai_chat_response(body, provider="p1")
    assert caught.value.envelope.failure_class is FailureClass.MALFORMED_RESPONSE
    assert "p1" in caught.value.envelope.message


def test_embeddings_are_ordered_by_index() -> None:
    body = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 1, "embedding": [0.5, 0.25]},
            {"object": "embedding", "index": 0, "embedding": [1, -2.0]},
        ],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }
    response = parse_openai_embeddings_response(body)
    assert response.vectors == [[1.0, -2.0], [0.5, 0.25]]
    assert response.model == "text-embedding-3-small"
    assert response.usage == Usage(input_tokens=8, source="provider")


def test_base64_embeddings_decode_little_endian_float32() -> None:
    values = [0.5, -1.25, 3.0]
    encoded = base64.b64encode(struct.pack("<3f", *values)).decode()
    body = {"data": [{"index": 0, "embedding": encoded}], "model": "m"}
    assert parse_openai_embeddings_response(body).vectors == [values]


@pytest.mark.parametrize(
    "embedding",
    ["not base64!", base64.b64encode(b"abc").decode(), {"x": 1}],
    ids=["bad-base64", "partial-float", "object"],
)
def test_bad_embedding_is_malformed(embedding: object) -> None:
    with pytest.raises(PalyraError) as caught:
        parse_openai_embeddings_response({"data": [{"index": 0, "embedding": embedding}]})
    assert caught.value.envelope.failure_class is FailureClass.MALFORMED_RESPONSE


def test_verbose_json_transcription_keeps_segments_words_duration_language() -> None:
    body = (
        b'{"task":"transcribe","language":"english","duration":8.47,"text":"The beach was quiet.",'
        b'"segments":[{"id":0,"seek":0,"start":0.0,"end":3.32,"text":" The beach",'
        b'"tokens":[50364],"temperature":0.0}],'
        b'"words":[{"word":"The","start":0.0,"end":0.24},{"word":"beach","start":0.24,"end":0.6}]}'
    )
    response = parse_openai_transcription(body, "verbose_json")
    assert response.text == "The beach was quiet."
    assert response.language == "english"
    assert response.duration_s == 8.47
    assert [(s.id, s.start, s.end, s.text) for s in response.segments] == [
        (0, 0.0, 3.32, " The beach")
    ]
    assert [(w.word, w.start, w.end) for w in response.words] == [
        ("The", 0.0, 0.24),
        ("beach", 0.24, 0.6),
    ]


def test_json_transcription_is_just_text() -> None:
    response = parse_openai_transcription(b'{"text":"hello"}', "json")
    assert (response.text, response.segments, response.duration_s) == ("hello", [], None)


@pytest.mark.parametrize(
    ("fmt", "body"),
    [
        ("text", "hello world\n"),
        ("srt", "1\n00:00:00,000 --> 00:00:01,000\nhello\n"),
        ("vtt", "WEBVTT\n\n00:00.000 --> 00:01.000\nhello\n"),
    ],
)
def test_plain_transcription_formats_keep_the_body(fmt: Any, body: str) -> None:
    assert parse_openai_transcription(body.encode(), fmt).text == body


def test_json_transcription_without_text_is_malformed() -> None:
    with pytest.raises(PalyraError) as caught:
        parse_openai_transcription(b"[1]", "json")
    assert caught.value.envelope.failure_class is FailureClass.MALFORMED_RESPONSE


def test_models_list_maps_ids_owners_and_created() -> None:
    body = {
        "object": "list",
        "data": [
            {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"},
            {"id": "llama3", "object": "model"},
            {"object": "model"},
        ],
    }
    models = parse_openai_models(body, provider="local")
    assert [(m.id, m.provider, m.owned_by, m.created) for m in models] == [
        ("gpt-4o", "local", "system", 1715367049),
        ("llama3", "local", None, None),
    ]


def test_models_without_data_is_malformed() -> None:
    with pytest.raises(PalyraError) as caught:
        parse_openai_models({"object": "list"}, provider="local")
    assert caught.value.envelope.failure_class is FailureClass.MALFORMED_RESPONSE


# -- the shortcuts in parse_openai_chat_response agree with the plain reading -------------------


def _reference_chat_response(body: dict[str, Any], provider: str | None) -> ChatResponse:
    """The plain reading, step by step: what the parser's shortcuts must reproduce."""
    choice = body["choices"][0]
    message = choice["message"]
    response_id = str(body.get("id") or "")
    calls = _tool_calls(message, response_id)
    text = content_text(message.get("content")) or content_text(message.get("refusal"))
    usage = body.get("usage")
    created = body.get("created")
    fingerprint = body.get("system_fingerprint")
    return ChatResponse(
        id=response_id,
        model=str(body.get("model") or ""),
        content=text,
        tool_calls=calls,
        finish_reason=finish_reason(choice.get("finish_reason"), has_tool_calls=bool(calls)),
        usage=usage_from_openai(usage) if isinstance(usage, dict) else Usage(source="estimated"),
        provider=provider,
        created=created if isinstance(created, int) else None,
        system_fingerprint=fingerprint if isinstance(fingerprint, str) else None,
    )


MESSAGES: list[dict[str, Any]] = [
    {"role": "assistant", "content": "plain"},
    {"role": "assistant", "content": ""},
    {"role": "assistant", "content": None, "refusal": "no"},
    {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "x", "text": "b"}]},
    {"role": "assistant", "content": None, "tool_calls": []},
    {"role": "assistant", "content": None, "tool_calls": None},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}, "junk"],
    },
    {"role": "assistant", "function_call": {"name": "legacy", "arguments": '{"a":1}'}},
    {"role": "assistant", "content": 7},
]
USAGES: list[object] = [
    None,
    "not an object",
    {"prompt_tokens": 3, "completion_tokens": 4},
    {"prompt_tokens": -1, "completion_tokens": True, "prompt_tokens_details": None},
    {
        "prompt_tokens": 30,
        "completion_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 20},
        "completion_tokens_details": {"reasoning_tokens": 2},
    },
    {"prompt_tokens": 1, "prompt_tokens_details": "junk", "completion_tokens_details": []},
]
EXTRAS: list[dict[str, Any]] = [
    {},
    {"id": "r1", "model": "m", "created": 5, "system_fingerprint": "fp"},
    {"id": None, "model": 3, "created": "yesterday", "system_fingerprint": 9},
]


@pytest.mark.parametrize("extra", EXTRAS)
@pytest.mark.parametrize("usage", USAGES)
@pytest.mark.parametrize("message", MESSAGES)
@pytest.mark.parametrize("reason", ["stop", "length", None, "odd"])
def test_the_parser_agrees_with_the_plain_reading(
    message: dict[str, Any], usage: object, extra: dict[str, Any], reason: str | None
) -> None:
    body: dict[str, Any] = {
        "choices": [{"index": 0, "message": message, "finish_reason": reason}],
        **extra,
    }
    if usage is not None:
        body["usage"] = usage
    parsed = parse_openai_chat_response(body, provider="p")
    expected = _reference_chat_response(body, "p")
    assert parsed == expected
    assert parsed.model_fields_set == expected.model_fields_set
    assert parsed.usage.model_fields_set == expected.usage.model_fields_set
