"""Pure translation between OpenAI Chat Completions JSON and the neutral contract."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletionChunk

from palyra.daemon.surfaces.openai.chat_format import (
    ChunkEncoder,
    chat_completion,
    parse_chat_request,
)
from palyra.model import (
    ChatResponse,
    ErrorEnvelope,
    ErrorEvent,
    FailureClass,
    ImagePart,
    Logprobs,
    Message,
    MessageEnd,
    MessageStart,
    NamedToolChoice,
    PalyraError,
    Role,
    TextDelta,
    TextPart,
    TokenLogprob,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallPart,
    ToolCallStart,
    ToolResultPart,
    TopLogprob,
    Usage,
    UsageEvent,
)


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}]} | extra


def test_every_role_and_content_shape_is_translated() -> None:
    parsed = parse_chat_request(
        body(
            messages=[
                {"role": "system", "content": "sys"},
                {"role": "developer", "content": [{"type": "text", "text": "dev"}]},
                {
                    "role": "user",
                    "name": "ann",
                    "content": [
                        {"type": "text", "text": "look"},
                        {"type": "image_url", "image_url": {"url": "https://x/a.png"}},
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/jpeg;base64,/9j/", "detail": "high"},
                        },
                    ],
                },
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
                },
                {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "ok"}]},
                {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
            ]
        )
    )
    system, developer, user, assistant, tool, refusal = parsed.request.messages
    assert (system.role, system.content) == (Role.SYSTEM, [TextPart(text="sys")])
    assert (developer.role, developer.text_content()) == (Role.DEVELOPER, "dev")
    assert user.name == "ann"
    assert user.content[1] == ImagePart(url="https://x/a.png")
    assert user.content[2] == ImagePart(data="/9j/", media_type="image/jpeg", detail="high")
    assert assistant.content == [ToolCallPart(id="c1", name="f", arguments='{"a":1}')]
    assert tool.content == [ToolResultPart(tool_call_id="c1", content="ok")]
    assert refusal.text_content() == "no"
    for message in parsed.request.messages:  # built unvalidated: validation would agree
        listed = {"content_list": True} if message.content_list else {}
        again = Message(
            role=message.role, content=list(message.content), name=message.name, **listed
        )
        assert again == message and again.model_fields_set == message.model_fields_set
        assert Message.model_validate(message.model_dump()) == message


def test_request_options_are_translated() -> None:
    tool = {
        "type": "function",
        "function": {"name": "f", "parameters": {"type": "object"}, "strict": True},
    }
    parsed = parse_chat_request(
        body(
            tools=[tool],
            tool_choice={"type": "function", "function": {"name": "f"}},
            parallel_tool_calls=False,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True},
            },
            max_tokens=10,
            max_completion_tokens=20,
            stop="END",
            temperature=0.5,
            stream=True,
            stream_options={"include_usage": True},
            seed=7,
        )
    )
    request = parsed.request
    assert request.tools[0].name == "f" and request.tools[0].strict is True
    assert request.tool_choice == NamedToolChoice(name="f")
    assert request.parallel_tool_calls is False
    assert request.response_format is not None
    assert request.response_format.schema_name == "out"
    assert request.response_format.json_schema == {"type": "object"}
    assert request.max_output_tokens == 20
    assert request.stop == ["END"]
    assert request.stream and parsed.include_usage


def test_max_tokens_and_stop_list_are_accepted() -> None:
    request = parse_chat_request(body(max_tokens=5, stop=["a", "b"])).request
    assert (request.max_output_tokens, request.stop) == (5, ["a", "b"])
    assert parse_chat_request(body(stream=True)).include_usage is False


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"messages": [{"role": "function", "content": "x"}]}, "messages[0].role is 'function'"),
        (
            {"messages": [{"role": "user", "content": [{"type": 5}]}]},
            "messages[0].content[0].type must be a string",
        ),
        (
            {"messages": [{"role": "system", "content": [{"type": "image_url"}]}]},
            "only 'text' parts are allowed",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "data:x"}}],
                    }
                ]
            },
            "a data URL image must be",
        ),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id must be"),
        (
            {"messages": [{"role": "assistant", "content": [{"type": "image_url"}]}]},
            "only 'text' parts are allowed",
        ),
        (
            {
                "messages": [
                    {"role": "tool", "tool_call_id": "c", "content": [{"type": "image_url"}]}
                ]
            },
            "only 'text' parts are allowed",
        ),
        ({"tool_choice": "sometimes"}, "tool_choice must be"),
        ({"tool_choice": "required"}, "tool_choice 'required' needs at least one tool"),
        ({"response_format": {"type": "yaml"}}, "response_format.type is 'yaml'"),
        ({"stop": [1]}, "stop must be a string or an array of strings"),
        ({"max_tokens": 0}, "max_tokens: Input should be greater than or equal to 1"),
        ({"tools": [{"type": "custom", "custom": {}}]}, "only 'function' tools"),
        ({"model": None}, "model: Input should be a valid string"),
        ({"presence_penalty": 3}, "presence_penalty: Input should be less than or equal to 2"),
        ({"top_logprobs": 2}, "top_logprobs needs logprobs: true"),
        ({"logit_bias": {"abc": 1}}, "logit_bias key 'abc' is not a token id"),
        ({"logit_bias": {"12": 101}}, "logit_bias['12'] is 101"),
        ({"service_tier": "gold"}, "service_tier: Input should be 'auto'"),
        ({"n": 0}, "n: Input should be greater than or equal to 1"),
        ({"prediction": {"type": "guess", "content": "x"}}, "prediction.type is 'guess'"),
        ({"prediction": {"type": "content", "content": 3}}, "prediction.content must be"),
    ],
)
def test_invalid_requests_name_the_field(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(PalyraError) as info:
        parse_chat_request(body(**extra))
    assert info.value.failure_class is FailureClass.INVALID_REQUEST
    assert message in info.value.envelope.message


def test_tool_call_answer_has_null_content() -> None:
    response = ChatResponse(
        id="r",
        model="m",
        tool_calls=[ToolCallPart(id="c", name="f", arguments="{}")],
        finish_reason="tool_calls",
        usage=Usage(input_tokens=3, output_tokens=2, cached_input_tokens=1),
    )
    out = chat_completion(response, created=99)
    assert out["created"] == 99
    message = out["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    ]
    assert out["usage"]["total_tokens"] == 5
    assert out["usage"]["prompt_tokens_details"] == {"cached_tokens": 1}


def decode(frame: bytes) -> dict[str, Any]:
    assert frame.startswith(b"data: ") and frame.endswith(b"\n\n")
    return orjson.loads(frame[6:-2])  # type: ignore[no-any-return]


def test_chunk_encoder_orders_role_tool_deltas_finish_and_usage() -> None:
    encoder = ChunkEncoder(fallback_id="fb", model="m0", created=5, include_usage=True)
    events = [
        MessageStart(id="r1", model="m1"),
        TextDelta(text="hi "),
        TextDelta(text=""),
        ToolCallStart(index=0, id="c", name="f"),
        ToolCallDelta(index=0, arguments='{"a"'),
        ToolCallDelta(index=0, arguments=":1}"),
        ToolCallEnd(index=0),
        UsageEvent(usage=Usage(input_tokens=1, output_tokens=2)),
        MessageEnd(finish_reason="tool_calls"),
    ]
    frames = [f for f in (encoder.encode(e) for e in events) if f]
    tail = encoder.finish()
    chunks = [decode(f) for f in frames]
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk, strict=True)
        assert (chunk["id"], chunk["model"], chunk["created"]) == ("r1", "m1", 5)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"content": "hi "},
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "c",
                    "type": "function",
                    "function": {"name": "f", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]},
        {},
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    usage_frame, done = tail.split(b"\n\n", 1)
    usage = orjson.loads(usage_frame[6:])
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 2
    assert done == b"data: [DONE]\n\n"


def test_chunk_encoder_error_event_and_no_usage_by_default() -> None:
    encoder = ChunkEncoder(fallback_id="fb", model="m", created=1, include_usage=False)
    envelope = ErrorEnvelope.of(FailureClass.TIMEOUT, "too slow")
    error = decode(encoder.encode(ErrorEvent(error=envelope)))
    assert error == {
        "error": {"message": "too slow", "type": "server_error", "param": None, "code": "timeout"}
    }
    assert encoder.finish() == b"data: [DONE]\n\n"


@settings(max_examples=200, deadline=None)
@given(
    role=st.sampled_from(["system", "developer", "user", "assistant"]),
    text=st.text(max_size=40),
    name=st.one_of(st.none(), st.text(max_size=8), st.integers()),
    tool_calls=st.sampled_from([{}, {"tool_calls": None}, {"tool_calls": []}]),
)
def test_a_plain_text_turn_parses_as_its_one_text_part_form(
    role: str, text: str, name: object, tool_calls: dict[str, Any]
) -> None:
    """The string shortcut gives exactly the message the general path builds from the same text
    sent as one ``text`` part (and both are the neutral message written out by hand)."""
    extra: dict[str, Any] = {} if name is None else {"name": name}
    as_string = {"role": role, "content": text, **extra, **tool_calls}
    as_parts = {"role": role, "content": [{"type": "text", "text": text}], **extra, **tool_calls}
    fast = parse_chat_request({"model": "m", "messages": [as_string]}).request
    general = parse_chat_request({"model": "m", "messages": [as_parts]}).request
    expected = Message(
        role=Role(role),
        content=[TextPart(text=text)],
        name=name if isinstance(name, str) else None,
    )
    # The same message, but sent as parts it goes on as parts (to an upstream of the same API).
    assert general.messages[0].content_list is True
    assert fast.model_copy(update={"messages": general.messages}) == general
    assert fast.messages[0] == general.messages[0].model_copy(update={"content_list": False})
    assert fast.messages == [expected]
    assert type(fast.messages[0]) is Message


def test_plain_text_turns_mix_with_general_ones() -> None:
    parsed = parse_chat_request(
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {
                    "role": "assistant",
                    "content": "calling",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "done"},
                {"role": "user", "content": "thanks"},
            ],
        }
    ).request
    assert [m.role for m in parsed.messages] == [
        Role.SYSTEM,
        Role.USER,
        Role.ASSISTANT,
        Role.TOOL,
        Role.USER,
    ]
    assert parsed.messages[2].tool_calls[0].id == "c1"
    assert parsed.messages[4].text_content() == "thanks"


def test_every_sampling_and_answer_option_reaches_the_neutral_request() -> None:
    parsed = parse_chat_request(
        body(
            seed=7,
            presence_penalty=0.5,
            frequency_penalty=-0.25,
            logit_bias={"50256": -100, "11": 2},
            logprobs=True,
            top_logprobs=3,
            n=1,
            service_tier="flex",
            store=True,
            prediction={"type": "content", "content": [{"type": "text", "text": "old code"}]},
            metadata={"team": "a"},
            user="u-1",
        )
    ).request
    assert (parsed.seed, parsed.presence_penalty, parsed.frequency_penalty) == (7, 0.5, -0.25)
    assert parsed.logit_bias == {"50256": -100, "11": 2}
    assert (parsed.logprobs, parsed.top_logprobs, parsed.n) == (True, 3, 1)
    assert (parsed.service_tier, parsed.store) == ("flex", True)
    assert parsed.prediction is not None
    assert parsed.prediction.content == [TextPart(text="old code")]
    assert (parsed.metadata, parsed.user) == ({"team": "a"}, "u-1")


def test_a_plain_request_sets_none_of_the_options() -> None:
    """The payload builders skip the options with one set test when none was set."""
    parsed = parse_chat_request(body()).request
    from palyra.providers.openai.payload import OPTION_FIELDS

    assert OPTION_FIELDS.isdisjoint(parsed.model_fields_set)


def test_logprobs_and_service_tier_reach_the_answer_and_its_chunks() -> None:
    logprobs = Logprobs(
        content=[
            TokenLogprob(
                token="Hi",
                logprob=-0.1,
                bytes=[72, 105],
                top_logprobs=[TopLogprob(token="Hi", logprob=-0.1, bytes=[72, 105])],
            )
        ]
    )
    response = ChatResponse(id="r", model="m", content="Hi", logprobs=logprobs, service_tier="flex")
    out = chat_completion(response, created=1)
    assert out["service_tier"] == "flex"
    assert out["choices"][0]["logprobs"] == {
        "content": [
            {
                "token": "Hi",
                "logprob": -0.1,
                "bytes": [72, 105],
                "top_logprobs": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105]}],
            }
        ],
        "refusal": None,
    }
    encoder = ChunkEncoder(fallback_id="x", model="m", created=1, include_usage=False)
    frames = [
        encoder.encode(MessageStart(id="r", model="m", service_tier="flex")),
        encoder.encode(TextDelta(text="Hi", logprobs=logprobs)),
    ]
    chunks = [ChatCompletionChunk.model_validate(orjson.loads(f[6:])) for f in frames]
    assert [c.service_tier for c in chunks] == ["flex", "flex"]
    assert chunks[1].choices[0].logprobs is not None
    content = chunks[1].choices[0].logprobs.content
    assert content is not None and content[0].token == "Hi"
