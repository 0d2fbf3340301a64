"""Contract validators: bad shapes are refused at construction with a message naming the fix."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from palyra.model import (
    ChatRequest,
    ImagePart,
    Message,
    NamedToolChoice,
    ResponseFormat,
    Role,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    ToolSpec,
)


def _user() -> list[Message]:
    return [Message.text("user", "hi")]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of 'url' or 'data'"),
        (
            {"url": "https://x.test/a.png", "data": "aGk=", "media_type": "image/png"},
            "exactly one of 'url' or 'data'",
        ),
        ({"data": "aGk="}, "needs 'media_type'"),
        ({"url": "https://x.test/a.png", "width": 0}, "greater than or equal to 1"),
        ({"url": "https://x.test/a.png", "detail": "ultra"}, "'auto', 'low' or 'high'"),
    ],
)
def test_bad_images_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ImagePart(**kwargs)


@pytest.mark.parametrize(
    "url", ["data:image/png,iVBORw0KGgo=", "data:;base64,iVBORw0KGgo=", "data:base64,xyz"]
)
def test_malformed_data_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="data:<media type>;base64,<data>"):
        ImagePart.from_data_url(url)


def test_data_url_keeps_media_type_parameters_out() -> None:
    image = ImagePart.from_data_url("data:image/jpeg;charset=x;base64,/9j/4AAQ")
    assert (image.media_type, image.data) == ("image/jpeg", "/9j/4AAQ")


@pytest.mark.parametrize("role", [Role.USER, Role.SYSTEM, Role.DEVELOPER, Role.TOOL])
def test_a_tool_call_only_appears_in_an_assistant_message(role: Role) -> None:
    with pytest.raises(ValidationError, match="only appear in an assistant message"):
        Message(role=role, content=[ToolCallPart(id="c", name="f")])


@pytest.mark.parametrize("role", [Role.USER, Role.ASSISTANT, Role.SYSTEM])
def test_a_tool_result_only_appears_in_a_tool_message(role: Role) -> None:
    with pytest.raises(ValidationError, match="only appear in a tool message"):
        Message(role=role, content=[ToolResultPart(tool_call_id="c")])


@pytest.mark.parametrize("role", [Role.ASSISTANT, Role.SYSTEM, Role.DEVELOPER])
def test_images_only_appear_in_user_or_tool_messages(role: Role) -> None:
    with pytest.raises(ValidationError, match="an image can only appear in a user message"):
        Message(role=role, content=[ImagePart(url="https://x.test/a.png")])


def test_parts_are_discriminated_by_type_from_plain_json() -> None:
    message = Message.model_validate(
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "calling"},
                {"type": "tool_call", "id": "c1", "name": "f", "arguments": "{}"},
            ],
        }
    )
    assert isinstance(message.content[0], TextPart)
    assert message.tool_calls == [ToolCallPart(id="c1", name="f", arguments="{}")]
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        Message.model_validate({"role": "user", "content": [{"type": "video"}]})


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Message.model_validate({"role": "user", "content": [], "colour": "blue"})


def test_tool_choice_must_name_a_declared_tool() -> None:
    with pytest.raises(ValidationError, match="tool_choice names 'missing', which is not in tools"):
        ChatRequest(
            model="m",
            messages=_user(),
            tools=[ToolSpec(name="present")],
            tool_choice=NamedToolChoice(name="missing"),
        )


def test_tool_choice_required_needs_a_tool() -> None:
    with pytest.raises(ValidationError, match="'required' needs at least one tool"):
        ChatRequest(model="m", messages=_user(), tool_choice="required")


def test_duplicate_tool_names_are_refused() -> None:
    with pytest.raises(ValidationError, match="tool name 'f' is declared twice"):
        ChatRequest(model="m", messages=_user(), tools=[ToolSpec(name="f"), ToolSpec(name="f")])


@pytest.mark.parametrize("name", ["", "has space", "dot.ted", "x" * 65])
def test_tool_names_follow_the_api_pattern(name: str) -> None:
    with pytest.raises(ValidationError, match=r"should match pattern"):
        ToolSpec(name=name)


def test_json_schema_response_format_needs_a_schema() -> None:
    with pytest.raises(ValidationError, match="'json_schema' needs a 'json_schema'"):
        ResponseFormat(type="json_schema")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"messages": []}, "at least 1 item"),
        ({"model": ""}, "at least 1 character"),
        ({"temperature": 2.5}, "less than or equal to 2"),
        ({"top_p": -0.1}, "greater than or equal to 0"),
        ({"max_output_tokens": 0}, "greater than or equal to 1"),
        ({"stop": ["s"] * 17}, "at most 16 items"),
    ],
)
def test_request_fields_have_ranges(kwargs: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = {"model": "m", "messages": _user(), **kwargs}
    with pytest.raises(ValidationError, match=message):
        ChatRequest(**fields)


def test_request_helpers_read_images_json_and_tool_history() -> None:
    image = ImagePart(url="https://x.test/a.png")
    request = ChatRequest(
        model="m",
        messages=[
            Message(role=Role.USER, content=[TextPart(text="see"), image]),
            Message.tool_result("c1", "done"),
        ],
        response_format=ResponseFormat(type="json_object"),
    )
    assert request.images == [image]
    assert request.wants_json and request.has_tool_history
    assert not ChatRequest(model="m", messages=_user()).wants_json


def test_tool_arguments_parse_or_survive_as_raw_text() -> None:
    assert ToolCallPart(id="c", name="f", arguments='{"a": 1}').arguments_json() == {"a": 1}
    assert ToolCallPart(id="c", name="f", arguments="  ").arguments_json() == {}
    assert ToolCallPart(id="c", name="f", arguments="{broken").arguments_json() == {
        "raw": "{broken"
    }


def test_tool_result_content_is_text_for_providers() -> None:
    assert ToolResultPart(tool_call_id="c", content={"a": [1]}).content_text() == '{"a":[1]}'
    assert ToolResultPart(tool_call_id="c", content="plain").content_text() == "plain"
