"""The Responses wire format as pure functions: request items in, Response objects out."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from palyra.daemon.surfaces.responses.request_format import parse_responses_request
from palyra.daemon.surfaces.responses.response_format import (
    Skeleton,
    output_messages,
    response_object,
)
from palyra.model import (
    ChatResponse,
    DocumentPart,
    PalyraError,
    ReasoningConfig,
    RedactedThinkingPart,
    Role,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
)

SKELETON = Skeleton("resp_abc", "m", 1, {"tools": [], "metadata": {}})


def _parse(**body: Any) -> Any:
    return parse_responses_request({"model": "m", **body})


def test_an_item_list_becomes_turns_with_reasoning_text_and_calls_in_one_assistant_turn() -> None:
    call = _parse(
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
            {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [{"type": "summary_text", "text": "thinking"}],
                "encrypted_content": "sig==",
            },
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "ok"}],
            },
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "done"},
        ]
    )
    user, assistant, tool = call.input
    assert user.role is Role.USER and user.content == [TextPart(text="hi")]
    assert assistant.role is Role.ASSISTANT
    assert assistant.content == [
        ThinkingPart(thinking="thinking", signature="sig=="),
        TextPart(text="ok"),
        ToolCallPart(id="c1", name="f", arguments="{}"),
    ]
    assert tool.content == [ToolResultPart(tool_call_id="c1", content="done")]


def test_reasoning_output_comes_back_as_the_same_parts_next_turn() -> None:
    answer = ChatResponse(
        id="x",
        model="m",
        reasoning=[ThinkingPart(thinking="t", signature="s1"), RedactedThinkingPart(data="d1")],
        content="hello",
        tool_calls=[ToolCallPart(id="c", name="f", arguments='{"a":1}')],
    )
    body = response_object(SKELETON, answer, completed_at=2)
    assert [item["type"] for item in body["output"]] == [
        "reasoning",
        "reasoning",
        "message",
        "function_call",
    ]
    [message] = output_messages(body["output"])
    assert message.content == [*answer.reasoning, TextPart(text="hello"), *answer.tool_calls]
    # A client that echoes the items back gets the same parts.
    echoed = _parse(input=body["output"])
    assert echoed.input[0].content == message.content


@pytest.mark.parametrize(
    ("reasoning", "neutral"),
    [
        (None, None),
        ({"effort": "high"}, ReasoningConfig(effort="high")),
        ({"effort": "low", "summary": "auto"}, ReasoningConfig(effort="low", display="summarized")),
        ({"effort": "none"}, ReasoningConfig(enabled=False)),
    ],
)
def test_reasoning_parameter_maps_to_the_neutral_config(
    reasoning: Any, neutral: ReasoningConfig | None
) -> None:
    call = _parse(input="hi", reasoning=reasoning)
    assert call.chat_request().reasoning == neutral


def test_input_file_parts_become_documents() -> None:
    call = _parse(
        input=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "input_file",
                        "filename": "a.pdf",
                        "file_data": "data:application/pdf;base64,JVBER",
                    },
                    {"type": "input_file", "file_url": "https://example.com/b.pdf"},
                ],
            }
        ]
    )
    first, second = call.input[0].content
    assert first == DocumentPart(data="JVBER", media_type="application/pdf", filename="a.pdf")
    assert second == DocumentPart(url="https://example.com/b.pdf")


def test_fields_only_a_responses_upstream_takes_become_its_extensions() -> None:
    call = _parse(
        input="x",
        tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
        truncation="auto",
        prompt_cache_key="k1",
        text={"verbosity": "high"},
        frobnicate=1,
    )
    assert call.builtin_tools == ["code_interpreter"]
    extensions = call.chat_request().extensions
    assert extensions is not None and extensions.owner == "openai_responses"
    assert extensions.fields == {
        "truncation": "auto",
        "prompt_cache_key": "k1",
        "frobnicate": 1,
        "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}],
        "text": {"verbosity": "high"},
    }
    assert _parse(input="x").chat_request().extensions is None


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x", "reasoning": {"effort": "huge"}}, "reasoning.effort"),
        ({"input": "x", "background": True}, "background"),
        ({"input": "x", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
        ({"input": "x", "tool_choice": {"name": "f"}}, "tool_choice"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
        ({"input": [{"role": "user", "content": [{"type": "input_file"}]}]}, "input[0].content[0]"),
        ({"input": "x", "conversation": "conv_1"}, "conversation"),
    ],
)
def test_refused_fields_name_themselves(body: dict[str, Any], param: str) -> None:
    with pytest.raises(PalyraError) as refused:
        _parse(**body).chat_request()
    assert refused.value.envelope.param == param
    assert refused.value.envelope.http_status == 400


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
FIELD_VALUES = {
    "input": JSON
    | st.lists(
        st.fixed_dictionaries(
            {
                "type": st.sampled_from(
                    ["message", "function_call", "function_call_output", "reasoning", "x"]
                ),
                "role": JSON,
                "content": JSON,
                "call_id": JSON,
                "name": JSON,
                "arguments": JSON,
                "output": JSON,
                "summary": JSON,
                "encrypted_content": JSON,
                "id": JSON,
            }
        ),
        max_size=3,
    ),
    "tools": JSON
    | st.lists(
        st.fixed_dictionaries(
            {
                "type": st.sampled_from(["function", "web_search", "x"]),
                "name": JSON,
                "parameters": JSON,
                "strict": JSON,
            }
        ),
        max_size=2,
    ),
    "tool_choice": JSON,
    "text": JSON
    | st.fixed_dictionaries(
        {
            "format": st.fixed_dictionaries(
                {
                    "type": st.sampled_from(["text", "json_object", "json_schema"]),
                    "name": JSON,
                    "schema": JSON,
                    "strict": JSON,
                }
            )
        }
    ),
    "reasoning": JSON,
    "max_output_tokens": JSON,
    "temperature": JSON,
    "top_p": JSON,
    "store": JSON,
    "stream": JSON,
    "parallel_tool_calls": JSON,
    "metadata": JSON,
    "instructions": JSON,
    "previous_response_id": JSON,
}


@given(
    body=st.fixed_dictionaries(
        {"model": st.just("m")}, optional={k: v for k, v in FIELD_VALUES.items()}
    )
)
@settings(max_examples=300, deadline=None)
def test_any_body_is_parsed_or_refused_with_a_400_never_a_crash(body: dict[str, Any]) -> None:
    try:
        parse_responses_request(body).chat_request()
    except PalyraError as exc:
        assert exc.envelope.http_status == 400, exc.envelope
