"""Hypothesis strategies that build valid values of the neutral contract."""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import strategies as st

from palyra.model import (
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    NamedToolChoice,
    ResponseFormat,
    Role,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    ToolSpec,
    Usage,
)

text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
tool_names = st.from_regex(r"\A[a-zA-Z0-9_-]{1,20}\Z")
identifiers = st.from_regex(r"\A[a-zA-Z0-9_]{1,16}\Z")
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
sizes = st.none() | st.integers(min_value=1, max_value=5000)

text_parts = st.builds(TextPart, text=text)
image_parts = st.one_of(
    st.builds(
        ImagePart,
        url=st.builds(lambda s: f"https://x.test/{s}.png", identifiers),
        detail=st.sampled_from([None, "auto", "low", "high"]),
        width=sizes,
        height=sizes,
    ),
    st.builds(
        ImagePart,
        data=st.binary(min_size=1, max_size=30).map(lambda b: base64.b64encode(b).decode()),
        media_type=st.sampled_from(["image/png", "image/jpeg", "image/webp"]),
        detail=st.sampled_from([None, "low", "high"]),
    ),
)
tool_call_parts = st.builds(
    ToolCallPart, id=identifiers, name=tool_names, arguments=text.filter(bool)
)
tool_result_parts = st.builds(
    ToolResultPart,
    tool_call_id=identifiers,
    content=text
    | st.lists(json_values, max_size=3)
    | st.dictionaries(text, json_values, max_size=3),
    is_error=st.booleans(),
)

_PARTS_BY_ROLE = {
    Role.SYSTEM: text_parts,
    Role.DEVELOPER: text_parts,
    Role.USER: text_parts | image_parts,
    Role.ASSISTANT: text_parts | tool_call_parts,
    Role.TOOL: tool_result_parts | text_parts | image_parts,
}


@st.composite
def messages(draw: st.DrawFn) -> Message:
    role = draw(st.sampled_from(list(Role)))
    return Message(
        role=role,
        content=draw(st.lists(_PARTS_BY_ROLE[role], max_size=4)),
        name=draw(st.none() | identifiers),
    )


tool_specs = st.builds(
    ToolSpec,
    name=tool_names,
    description=st.none() | text,
    parameters=st.dictionaries(text, json_values, max_size=3),
    strict=st.none() | st.booleans(),
)


@st.composite
def chat_requests(draw: st.DrawFn) -> ChatRequest:
    tools = draw(st.lists(tool_specs, max_size=4, unique_by=lambda t: t.name))
    choices: list[Any] = [None, "auto", "none"]
    if tools:
        choices += ["required", NamedToolChoice(name=draw(st.sampled_from(tools)).name)]
    return ChatRequest(
        model=draw(identifiers),
        messages=draw(st.lists(messages(), min_size=1, max_size=5)),
        tools=tools,
        tool_choice=draw(st.sampled_from(choices)),
        parallel_tool_calls=draw(st.none() | st.booleans()),
        max_output_tokens=draw(st.none() | st.integers(min_value=1, max_value=100_000)),
        temperature=draw(st.none() | st.floats(min_value=0, max_value=2)),
        top_p=draw(st.none() | st.floats(min_value=0, max_value=1)),
        stop=draw(st.lists(text, max_size=4)),
        response_format=draw(
            st.none()
            | st.builds(ResponseFormat, type=st.sampled_from(["text", "json_object"]))
            | st.builds(
                ResponseFormat,
                type=st.just("json_schema"),
                schema_name=st.none() | identifiers,
                json_schema=st.dictionaries(text, json_values, max_size=3),
                strict=st.none() | st.booleans(),
            )
        ),
        stream=draw(st.booleans()),
        user=draw(st.none() | identifiers),
        metadata=draw(st.dictionaries(identifiers, text, max_size=3)),
    )


usages = st.builds(
    Usage,
    input_tokens=st.integers(0, 10**6),
    output_tokens=st.integers(0, 10**6),
    cached_input_tokens=st.integers(0, 10**6),
    cache_creation_input_tokens=st.integers(0, 10**6),
    reasoning_tokens=st.integers(0, 10**6),
    source=st.sampled_from(["provider", "estimated"]),
)


@st.composite
def chat_responses(draw: st.DrawFn) -> ChatResponse:
    """Responses a stream can express (no provider/system_fingerprint: events do not carry them)."""
    calls = draw(st.lists(tool_call_parts, max_size=3))
    return ChatResponse(
        id=draw(identifiers),
        model=draw(identifiers),
        content=draw(text),
        tool_calls=calls,
        finish_reason=draw(st.sampled_from(["stop", "length", "tool_calls", "content_filter"])),
        usage=draw(usages),
        created=draw(st.none() | st.integers(0, 2**31)),
    )
