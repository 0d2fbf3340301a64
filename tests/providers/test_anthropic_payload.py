"""Neutral ChatRequest -> Anthropic Messages payload, one mapping per test or table row."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from palyra.model import (
    ChatRequest,
    FailureClass,
    ImagePart,
    Message,
    NamedToolChoice,
    PalyraError,
    ResponseFormat,
    Role,
    TextPart,
    ToolCallPart,
    ToolSpec,
)
from palyra.providers.anthropic import (
    PLACEHOLDER_USER_TEXT,
    build_anthropic_count_tokens_payload,
    build_anthropic_messages_payload,
)

WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)
TIME = ToolSpec(name="get_time")


def req(*messages: Message, **kwargs: Any) -> ChatRequest:
    return ChatRequest(model="claude-x", messages=list(messages), **kwargs)


def user(text: str) -> Message:
    return Message.text(Role.USER, text)


def calls(*pairs: tuple[str, str], text: str | None = None) -> Message:
    parts: list[Any] = [TextPart(text=text)] if text else []
    parts += [ToolCallPart(id=i, name="get_weather", arguments=a) for i, a in pairs]
    return Message(role=Role.ASSISTANT, content=parts)


def test_minimal_request_sets_model_max_tokens_and_one_user_turn() -> None:
    payload = build_anthropic_messages_payload(req(user("hi")))
    assert payload == {
        "model": "claude-x",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    }


@pytest.mark.parametrize(
    ("max_output_tokens", "default", "expected"),
    [(None, 4096, 4096), (None, 1000, 1000), (77, 4096, 77)],
)
def test_max_tokens_is_always_set(
    max_output_tokens: int | None, default: int, expected: int
) -> None:
    request = req(user("hi"), max_output_tokens=max_output_tokens)
    payload = build_anthropic_messages_payload(request, default_max_tokens=default)
    assert payload["max_tokens"] == expected


def test_system_and_developer_text_lifted_and_joined_with_blank_lines() -> None:
    request = req(
        Message.text(Role.SYSTEM, "Be brief."),
        Message.text(Role.DEVELOPER, "   "),
        user("hi"),
        Message.text(Role.DEVELOPER, "Use metric units."),
    )
    payload = build_anthropic_messages_payload(request)
    assert payload["system"] == "Be brief.\n\nUse metric units."
    assert [m["role"] for m in payload["messages"]] == ["user"]
    assert "Be brief." not in orjson.dumps(payload["messages"]).decode()


def test_consecutive_same_role_messages_merge_into_one_turn() -> None:
    request = req(user("a"), user("b"), Message.text(Role.ASSISTANT, "c"), user("d"))
    payload = build_anthropic_messages_payload(request)
    assert payload["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "c"}]},
        {"role": "user", "content": [{"type": "text", "text": "d"}]},
    ]


def test_parallel_tool_results_share_one_user_message_followed_by_user_text() -> None:
    request = req(
        user("weather in Oslo and Rome?"),
        calls(("call_1", '{"city":"Oslo"}'), ("call_2", '{"city":"Rome"}'), text="Checking."),
        Message.tool_result("call_1", "3C"),
        Message.tool_result("call_2", {"temp": 21}, is_error=True),
        user("and be quick"),
        tools=[WEATHER],
    )
    turns = build_anthropic_messages_payload(request)["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Oslo"}},
        {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}},
    ]
    assert turns[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "3C"},
        {
            "type": "tool_result",
            "tool_use_id": "call_2",
            "content": '{"temp":21}',
            "is_error": True,
        },
        {"type": "text", "text": "and be quick"},
    ]


def test_user_text_before_tool_results_is_moved_after_them() -> None:
    request = req(
        user("go"),
        calls(("c1", "{}")),
        user("also this"),
        Message.tool_result("c1", "done"),
        tools=[WEATHER],
    )
    last = build_anthropic_messages_payload(request)["messages"][-1]
    assert [b["type"] for b in last["content"]] == ["tool_result", "text"]


@pytest.mark.parametrize(
    ("arguments", "expected_input"),
    [
        ('{"city":"Oslo"}', {"city": "Oslo"}),
        ("", {}),
        ("{not json", {"raw": "{not json"}),
        ("[1, 2]", {"raw": "[1, 2]"}),
    ],
)
def test_tool_use_input_is_an_object_even_for_bad_arguments(
    arguments: str, expected_input: dict[str, Any]
) -> None:
    request = req(user("go"), calls(("c1", arguments)), Message.tool_result("c1", "ok"))
    block = build_anthropic_messages_payload(request)["messages"][1]["content"][0]
    assert block["input"] == expected_input


def test_tool_ids_with_foreign_characters_are_made_safe_on_both_sides() -> None:
    request = req(user("go"), calls(("call:1.a", "{}")), Message.tool_result("call:1.a", "ok"))
    turns = build_anthropic_messages_payload(request)["messages"]
    assert turns[1]["content"][0]["id"] == "call_1_a"
    assert turns[2]["content"][0]["tool_use_id"] == "call_1_a"


@pytest.mark.parametrize(
    ("image", "source"),
    [
        (
            ImagePart(data="aGk=", media_type="image/png"),
            {"type": "base64", "media_type": "image/png", "data": "aGk="},
        ),
        (
            ImagePart(url="https://example.com/cat.jpg"),
            {"type": "url", "url": "https://example.com/cat.jpg"},
        ),
        (
            ImagePart(url="data:image/webp;base64,aGk="),
            {"type": "base64", "media_type": "image/webp", "data": "aGk="},
        ),
    ],
)
def test_images_become_base64_or_url_sources(image: ImagePart, source: dict[str, str]) -> None:
    request = req(Message(role=Role.USER, content=[TextPart(text="what?"), image]))
    content = build_anthropic_messages_payload(request)["messages"][0]["content"]
    assert content[1] == {"type": "image", "source": source}


def test_unsupported_image_type_is_a_clear_invalid_request() -> None:
    image = ImagePart(data="aGk=", media_type="image/bmp")
    with pytest.raises(PalyraError) as info:
        build_anthropic_messages_payload(req(Message(role=Role.USER, content=[image])))
    assert info.value.failure_class is FailureClass.INVALID_REQUEST
    assert "image/bmp" in str(info.value) and "image/png" in str(info.value)


def test_tools_carry_input_schema_description_and_strict() -> None:
    request = req(
        user("hi"),
        tools=[WEATHER, ToolSpec(name="raw", parameters={"properties": {}}, strict=True)],
    )
    assert build_anthropic_messages_payload(request)["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
        {"name": "raw", "input_schema": {"type": "object", "properties": {}}, "strict": True},
    ]


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        (None, None, None),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("auto", None, {"type": "auto"}),
        ("auto", True, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (NamedToolChoice(name="get_time"), None, {"type": "tool", "name": "get_time"}),
        (
            NamedToolChoice(name="get_time"),
            False,
            {"type": "tool", "name": "get_time", "disable_parallel_tool_use": True},
        ),
        ("none", None, {"type": "none"}),
        ("none", False, {"type": "none"}),
    ],
)
def test_tool_choice_mapping(choice: Any, parallel: bool | None, expected: Any) -> None:
    request = req(
        user("hi"), tools=[WEATHER, TIME], tool_choice=choice, parallel_tool_calls=parallel
    )
    assert build_anthropic_messages_payload(request).get("tool_choice") == expected


def test_tool_choice_is_left_out_without_tools() -> None:
    payload = build_anthropic_messages_payload(req(user("hi"), tool_choice="none"))
    assert "tool_choice" not in payload and "tools" not in payload


def test_sampling_stop_user_and_stream_fields() -> None:
    request = req(
        user("hi"),
        stop=["END", "\n\n"],
        temperature=0.3,
        top_p=0.9,
        user="user-42",
        stream=True,
        metadata={"trace": "t1"},
    )
    payload = build_anthropic_messages_payload(request)
    assert payload["stop_sequences"] == ["END", "\n\n"]
    assert payload["temperature"] == 0.3
    assert payload["top_p"] == 0.9
    assert payload["metadata"] == {"user_id": "user-42"}
    assert payload["stream"] is True


def test_temperature_above_anthropic_maximum_is_sent_as_one() -> None:
    payload = build_anthropic_messages_payload(req(user("hi"), temperature=1.7))
    assert payload["temperature"] == 1.0


def test_overlong_user_id_is_refused_with_the_limit() -> None:
    with pytest.raises(PalyraError) as info:
        build_anthropic_messages_payload(req(user("hi"), user="u" * 600))
    assert info.value.envelope.param == "user" and "512" in str(info.value)


def test_json_object_mode_adds_a_system_instruction() -> None:
    request = req(
        Message.text(Role.SYSTEM, "Be brief."),
        user("hi"),
        response_format=ResponseFormat(type="json_object"),
    )
    system = build_anthropic_messages_payload(request)["system"]
    assert system.startswith("Be brief.\n\n")
    assert "valid JSON object" in system


def test_json_schema_mode_puts_the_schema_into_the_system_prompt() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}}
    request = req(
        user("hi"),
        response_format=ResponseFormat(
            type="json_schema", schema_name="result", json_schema=schema
        ),
    )
    system = build_anthropic_messages_payload(request)["system"]
    assert '"result"' in system
    assert orjson.loads(system.rsplit("\n", 1)[1]) == schema


def test_conversation_starting_with_assistant_gets_a_placeholder_user_turn() -> None:
    request = req(
        Message.text(Role.SYSTEM, "s"), Message.text(Role.ASSISTANT, "Hello!"), user("hi")
    )
    turns = build_anthropic_messages_payload(request)["messages"]
    assert turns[0] == {
        "role": "user",
        "content": [{"type": "text", "text": PLACEHOLDER_USER_TEXT}],
    }
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]


def test_blank_text_is_dropped_and_final_assistant_prefill_is_right_stripped() -> None:
    request = req(user("  "), user("hi"), Message.text(Role.ASSISTANT, "The answer is "))
    turns = build_anthropic_messages_payload(request)["messages"]
    assert turns == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "The answer is"}]},
    ]


@pytest.mark.parametrize(
    ("messages", "named"),
    [
        ([user("go"), calls(("c1", "{}")), user("never mind")], "'c1' has no tool result"),
        ([user("go"), calls(("c1", "{}"))], "'c1' in the last assistant message"),
        ([user("go"), Message.tool_result("ghost", "x")], "'ghost'"),
    ],
)
def test_unpaired_tool_calls_and_results_fail_before_sending(
    messages: list[Message], named: str
) -> None:
    with pytest.raises(PalyraError) as info:
        build_anthropic_messages_payload(req(*messages))
    assert info.value.failure_class is FailureClass.INVALID_REQUEST
    assert named in str(info.value)


def test_count_tokens_payload_keeps_only_what_counting_reads() -> None:
    request = req(
        Message.text(Role.SYSTEM, "s"),
        user("hi"),
        tools=[WEATHER],
        tool_choice="auto",
        temperature=0.5,
        stream=True,
        max_output_tokens=10,
    )
    payload = build_anthropic_count_tokens_payload(request)
    assert set(payload) == {"model", "messages", "system", "tools", "tool_choice"}
