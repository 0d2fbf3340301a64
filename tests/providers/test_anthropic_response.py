"""Anthropic Message / models / count_tokens bodies -> neutral types."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from palyra.model import ChatResponse, FailureClass, PalyraError, ThinkingPart, ToolCallPart, Usage
from palyra.providers.anthropic import (
    parse_anthropic_message,
    parse_anthropic_models,
    parse_anthropic_token_count,
)
from palyra.providers.anthropic.response import usage_from_anthropic

# Shape of a real tool-use answer (Anthropic docs, "Tool use" example), with cache usage.
TOOL_MESSAGE: dict[str, Any] = {
    "id": "msg_01Aq9w938a90dw8q",
    "type": "message",
    "role": "assistant",
    "model": "claude-opus-4-6",
    "content": [
        {"type": "thinking", "thinking": "The user wants weather.", "signature": "sig"},
        {"type": "text", "text": "I'll check "},
        {"type": "text", "text": "both cities."},
        {
            "type": "tool_use",
            "id": "toolu_01A09q90qw90lq917835lq9",
            "name": "get_weather",
            "input": {"location": "San Francisco, CA", "unit": "celsius"},
        },
        {"type": "tool_use", "id": "toolu_02", "name": "get_time", "input": {}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 472,
        "output_tokens": 91,
        "cache_read_input_tokens": 2048,
        "cache_creation_input_tokens": 100,
    },
}


def test_tool_use_message_parses_text_calls_finish_and_cache_usage() -> None:
    response = parse_anthropic_message(TOOL_MESSAGE, provider="anth")
    assert response.id == "msg_01Aq9w938a90dw8q"
    assert response.model == "claude-opus-4-6"
    assert response.content == "I'll check both cities."
    assert response.reasoning == [ThinkingPart(thinking="The user wants weather.", signature="sig")]
    assert response.tool_calls == [
        ToolCallPart(
            id="toolu_01A09q90qw90lq917835lq9",
            name="get_weather",
            arguments=orjson.dumps({"location": "San Francisco, CA", "unit": "celsius"}).decode(),
        ),
        ToolCallPart(id="toolu_02", name="get_time", arguments="{}"),
    ]
    assert response.finish_reason == "tool_calls"
    assert response.usage == Usage(
        input_tokens=472 + 2048 + 100,
        output_tokens=91,
        cached_input_tokens=2048,
        cache_creation_input_tokens=100,
        source="provider",
    )
    assert response.provider == "anth"


@pytest.mark.parametrize(
    ("stop_reason", "has_calls", "expected"),
    [
        ("end_turn", False, "stop"),
        ("stop_sequence", False, "stop_sequence"),
        ("pause_turn", False, "stop"),
        ("max_tokens", False, "length"),
        ("tool_use", True, "tool_calls"),
        ("refusal", False, "content_filter"),
        (None, False, "stop"),
        (None, True, "tool_calls"),
        ("something_new", False, "stop"),
    ],
)
def test_stop_reason_maps_to_finish_reason(
    stop_reason: str | None, has_calls: bool, expected: str
) -> None:
    content: list[dict[str, Any]] = [{"type": "text", "text": "x"}]
    if has_calls:
        content.append({"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}})
    body = {"id": "m", "model": "c", "content": content, "stop_reason": stop_reason, "usage": {}}
    assert parse_anthropic_message(body).finish_reason == expected


def test_missing_usage_is_labelled_estimated_not_passed_off_as_provider() -> None:
    body = {"id": "m", "model": "c", "content": [], "stop_reason": "end_turn"}
    assert parse_anthropic_message(body).usage.source == "estimated"


@pytest.mark.parametrize(
    "body",
    [
        {"model": "c", "content": []},
        {"id": "m", "content": "text"},
        {"id": "m", "content": ["not a block"]},
        {"id": "m", "content": [{"type": "tool_use", "input": {}}]},
    ],
)
def test_malformed_message_is_malformed_response(body: dict[str, Any]) -> None:
    with pytest.raises(PalyraError) as info:
        parse_anthropic_message(body)
    assert info.value.failure_class is FailureClass.MALFORMED_RESPONSE


MODELS_PAGE: dict[str, Any] = {
    "data": [
        {
            "type": "model",
            "id": "claude-opus-4-6",
            "display_name": "Claude Opus 4.6",
            "created_at": "2026-02-05T00:00:00Z",
            "max_input_tokens": 200000,
            "max_tokens": 128000,
            "capabilities": {"image_input": {"supported": True}},
        },
        {
            "type": "model",
            "id": "claude-text-only",
            "display_name": "Text",
            "created_at": "2025-01-01T00:00:00Z",
            "capabilities": {"image_input": {"supported": False}},
        },
    ],
    "has_more": True,
    "first_id": "claude-opus-4-6",
    "last_id": "claude-text-only",
}


def test_models_page_parses_ids_windows_capabilities_and_next_cursor() -> None:
    models, after = parse_anthropic_models(MODELS_PAGE, provider="anth")
    assert after == "claude-text-only"
    first, second = models
    assert (first.id, first.provider, first.display_name) == (
        "claude-opus-4-6",
        "anth",
        "Claude Opus 4.6",
    )
    assert first.created == 1770249600
    assert (first.context_window, first.max_output_tokens) == (200000, 128000)
    assert "vision" in first.capabilities and "tools" in first.capabilities
    assert "vision" not in second.capabilities
    assert second.context_window is None


def test_last_models_page_has_no_cursor() -> None:
    _, after = parse_anthropic_models({**MODELS_PAGE, "has_more": False}, provider="anth")
    assert after is None


def test_token_count_is_exact() -> None:
    count = parse_anthropic_token_count({"input_tokens": 14})
    assert (count.input_tokens, count.estimated) == (14, False)


@pytest.mark.parametrize("body", [{}, {"input_tokens": "14"}, {"input_tokens": -1}])
def test_bad_token_count_is_malformed(body: dict[str, Any]) -> None:
    with pytest.raises(PalyraError) as info:
        parse_anthropic_token_count(body)
    assert info.value.failure_class is FailureClass.MALFORMED_RESPONSE


@pytest.mark.parametrize(
    "usage",
    [
        None,
        "junk",
        {"input_tokens": 5, "output_tokens": 2},
        {
            "input_tokens": 5,
            "output_tokens": 2,
            "cache_read_input_tokens": 30,
            "cache_creation_input_tokens": 7,
        },
        {"input_tokens": -3, "output_tokens": True, "cache_read_input_tokens": "x"},
    ],
)
@pytest.mark.parametrize("model", [None, "claude-x", 3])
@pytest.mark.parametrize("stop", ["end_turn", "tool_use", "max_tokens", None, "odd"])
def test_one_pass_validation_builds_what_two_steps_built(
    usage: object, model: object, stop: object
) -> None:
    """The answer is validated with its usage nested: the same response as building the usage
    first and the response around it."""
    body: dict[str, Any] = {"id": "m1", "content": TOOL_MESSAGE["content"], "stop_reason": stop}
    if usage is not None:
        body["usage"] = usage
    if model is not None:
        body["model"] = model
    parsed = parse_anthropic_message(body, provider="a")
    expected = ChatResponse(
        id="m1",
        model=str(model or ""),
        reasoning=parsed.reasoning,
        content=parsed.content,
        tool_calls=parsed.tool_calls,
        finish_reason=parsed.finish_reason,
        usage=usage_from_anthropic(usage) if isinstance(usage, dict) else Usage(source="estimated"),
        provider="a",
    )
    assert parsed == expected
    assert parsed.model_fields_set == expected.model_fields_set
    assert parsed.usage.model_fields_set == expected.usage.model_fields_set
