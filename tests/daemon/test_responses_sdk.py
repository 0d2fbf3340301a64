"""The daemon's Responses API driven by the official ``openai`` SDK over real HTTP.

Every test runs against four backends: the deterministic provider, an OpenAI upstream on Chat
Completions, one on its Responses API (a model with ``api = "responses"``) and an Anthropic
upstream (the last three the fake upstream on loopback), so a Responses client is served by any
model through the neutral contract.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import openai
import orjson
import pytest
from pydantic import BaseModel

from palyra.config.schema import (
    ModelConfig,
    ModelProviderRegistryConfig,
    PalyraConfig,
    ProviderConfig,
    ResponsesConfig,
    default_config,
)
from palyra.daemon import AppState
from palyra.daemon.security.policy import Authenticator
from palyra.daemon.security.tokens_store import TokenKind, generate_token
from palyra.testing import FakeUpstream, Fault, FaultKind, openai_responses

# Fixture types from tests/daemon/conftest.py (not importable without a tests package).
RunningDaemon = Any
StartDaemon = Any

KEY_ENV = "PALYRA_RESPONSES_SDK_KEY"
KEY = "sk-responses-sdk-upstream-key"
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
BACKENDS = ["deterministic", "openai", "openai-responses", "anthropic"]


def upstream_config(kind: str, base_url: str, upstream_model: str, **extra: Any) -> PalyraConfig:
    provider = ProviderConfig(id="up", kind=kind, base_url=base_url, api_key=f"env:{KEY_ENV}")
    model = ModelConfig(
        id="default",
        provider="up",
        model=upstream_model,
        capabilities=["chat", "tools", "json", "vision"],
        **extra,
    )
    return PalyraConfig(
        model_provider=ModelProviderRegistryConfig(providers=[provider], models=[model])
    )


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeUpstream(api_keys={KEY}) as upstream:
        yield upstream


Configure = Callable[[FakeUpstream], PalyraConfig]
CONFIGS: dict[str, Configure] = {
    "deterministic": lambda fake: default_config(),
    "openai": lambda fake: upstream_config("openai", fake.openai_base_url, "gpt-4o-mini"),
    "openai-responses": lambda fake: upstream_config(
        "openai", fake.openai_base_url, "gpt-5-mini", api="responses"
    ),
    "anthropic": lambda fake: upstream_config(
        "anthropic", fake.anthropic_base_url, "claude-haiku-4-5"
    ),
}


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def served(backend: str, fake: FakeUpstream, start_daemon: StartDaemon) -> RunningDaemon:
    return start_daemon(CONFIGS[backend](fake))


@pytest.fixture
def sdk(served: RunningDaemon) -> openai.OpenAI:
    return served.openai_client()  # type: ignore[no-any-return]


def test_create_answers_text_with_usage_and_echoes_the_request(sdk: openai.OpenAI) -> None:
    response = sdk.responses.create(
        model="default", input="hello daemon", instructions="be kind", temperature=0.5
    )
    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.output_text == "You said: hello daemon"
    assert response.instructions == "be kind"
    assert response.temperature == 0.5
    assert response.usage is not None
    assert response.usage.output_tokens == 4
    assert response.usage.input_tokens >= 2
    assert response.usage.total_tokens == response.usage.input_tokens + 4
    assert response.usage.input_tokens_details.cached_tokens == 0
    assert response.usage.output_tokens_details.reasoning_tokens == 0
    [item] = response.output
    assert item.type == "message" and item.id.startswith("msg_")


def test_tool_call_then_function_call_output_second_turn(sdk: openai.OpenAI) -> None:
    first = sdk.responses.create(
        model="default", input='call get_weather {"city": "Oslo"}', tools=[WEATHER]
    )
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather"
    assert call.arguments == '{"city":"Oslo"}'
    assert call.status == "completed"
    assert first.tools[0].name == "get_weather"  # type: ignore[union-attr]
    # The client sends the whole conversation back itself (as agent loops do with store=false).
    history: list[Any] = [{"role": "user", "content": 'call get_weather {"city": "Oslo"}'}]
    history += [item.model_dump(exclude_none=True) for item in first.output]
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": "sunny"})
    second = sdk.responses.create(model="default", input=history, tools=[WEATHER], store=False)
    assert second.output_text == "Tool get_weather returned: sunny"


def test_previous_response_id_continues_the_stored_conversation(sdk: openai.OpenAI) -> None:
    first = sdk.responses.create(
        model="default", input='call get_weather {"city": "Oslo"}', tools=[WEATHER]
    )
    [call] = [item for item in first.output if item.type == "function_call"]
    second = sdk.responses.create(
        model="default",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "rainy"}],
        tools=[WEATHER],
    )
    assert second.previous_response_id == first.id
    assert second.output_text == "Tool get_weather returned: rainy"
    third = sdk.responses.create(model="default", previous_response_id=second.id, input="thanks")
    assert third.output_text == "You said: thanks"


class City(BaseModel):
    city: str
    population: int


CITY_SCHEMA = City.model_json_schema()


def test_structured_output_through_text_format(
    sdk: openai.OpenAI, backend: str, fake: FakeUpstream
) -> None:
    if backend == "anthropic":
        # Anthropic has no response format: the schema reaches the model as an instruction
        # (which the fake does not follow, as a real model would).
        sdk.responses.create(
            model="default",
            input="tell me about Oslo",
            text={"format": {"type": "json_schema", "name": "City", "schema": CITY_SCHEMA}},
        )
        system = fake.requests[-1].body["system"]
        assert '"population"' in str(system) and 'named "City"' in str(system)
        return
    parsed = sdk.responses.parse(model="default", input="tell me about Oslo", text_format=City)
    assert isinstance(parsed.output_parsed, City)
    assert parsed.text.format.type == "json_schema"  # type: ignore[union-attr]
    if backend == "openai":
        sent = fake.requests[-1].body["response_format"]
        assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "City"
    if backend == "openai-responses":
        sent = fake.requests[-1].body["text"]["format"]
        assert sent["type"] == "json_schema" and sent["name"] == "City"
    plain = sdk.responses.create(
        model="default", input="hi", text={"format": {"type": "json_object"}}
    )
    assert plain.output_text.startswith("{") and plain.text.format.type == "json_object"  # type: ignore[union-attr]


def test_retrieve_and_delete_a_stored_response(sdk: openai.OpenAI) -> None:
    created = sdk.responses.create(model="default", input="keep this")
    fetched = sdk.responses.retrieve(created.id)
    assert fetched.model_dump() == created.model_dump()
    sdk.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError) as gone:
        sdk.responses.retrieve(created.id)
    assert created.id in gone.value.message
    with pytest.raises(openai.NotFoundError):
        sdk.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError) as chained:
        sdk.responses.create(model="default", previous_response_id=created.id, input="more")
    assert chained.value.body["param"] == "previous_response_id"  # type: ignore[index]


def test_store_false_is_not_stored(sdk: openai.OpenAI) -> None:
    created = sdk.responses.create(model="default", input="forget this", store=False)
    assert created.store is False
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(created.id)


def test_stream_yields_the_documented_sequence_and_the_final_response(
    sdk: openai.OpenAI,
) -> None:
    with sdk.responses.stream(model="default", input="stream me please") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    for kind in (
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ):
        assert kind in kinds
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert final.output_text == "You said: stream me please"
    assert final.usage is not None and final.usage.output_tokens == 5
    assert sdk.responses.retrieve(final.id).output_text == final.output_text


def test_stream_with_a_tool_call_and_its_second_turn(sdk: openai.OpenAI) -> None:
    with sdk.responses.stream(
        model="default", input='call get_weather {"city": "Oslo"}', tools=[WEATHER]
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    [call] = [item for item in final.output if item.type == "function_call"]
    assert call.arguments == '{"city":"Oslo"}'
    with sdk.responses.stream(
        model="default",
        previous_response_id=final.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "windy"}],
        tools=[WEATHER],
    ) as stream:
        second = stream.get_final_response()
    assert second.output_text == "Tool get_weather returned: windy"


def test_max_output_tokens_cuts_the_answer_as_incomplete(sdk: openai.OpenAI) -> None:
    words = " ".join(f"w{i}" for i in range(30))
    cut = sdk.responses.create(model="default", input=words, max_output_tokens=16)
    assert cut.status == "incomplete"
    assert cut.incomplete_details is not None
    assert cut.incomplete_details.reason == "max_output_tokens"
    assert cut.output_text == "You said: " + " ".join(f"w{i}" for i in range(14))
    assert cut.max_output_tokens == 16


def test_builtin_tools_pass_to_a_responses_upstream_and_are_refused_elsewhere(
    sdk: openai.OpenAI, backend: str, fake: FakeUpstream
) -> None:
    ask: dict[str, Any] = {
        "model": "default",
        "input": "search",
        "tools": [WEATHER, {"type": "web_search", "search_context_size": "low"}],
        "truncation": "auto",
        "text": {"verbosity": "low"},
    }
    if backend != "openai-responses":
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.responses.create(**ask)
        assert "web_search" in refused.value.message
        assert refused.value.body["param"] == "tools"  # type: ignore[index]
        ask.pop("tools")
        with pytest.raises(openai.BadRequestError) as also:
            sdk.responses.create(**ask)
        assert also.value.body["param"] == "truncation"  # type: ignore[index]
        return
    answer = sdk.responses.create(**ask)
    sent = fake.requests[-1].body
    assert sent["tools"][1] == {"type": "web_search", "search_context_size": "low"}
    assert sent["tools"][0]["name"] == "get_weather"
    assert sent["truncation"] == "auto"
    assert sent["text"] == {"verbosity": "low"}
    assert [t.type for t in answer.tools] == ["function", "web_search"]
    # The upstream's own web_search_call item comes back before the answer's message.
    search, message = answer.output
    assert search.type == "web_search_call" and search.action.query == "search"  # type: ignore[union-attr]
    assert message.type == "message" and answer.output_text == "You said: search"


def test_stored_responses_belong_to_the_token_that_made_them(
    start_daemon: StartDaemon,
) -> None:
    first, second = generate_token(TokenKind.CLIENT), generate_token(TokenKind.CLIENT)
    admin = generate_token(TokenKind.ADMIN)
    auth = Authenticator(
        fixed_tokens={first: TokenKind.CLIENT, second: TokenKind.CLIENT, admin: TokenKind.ADMIN}
    )
    daemon = start_daemon(AppState.from_config(default_config()), auth=auth)
    owner = openai.OpenAI(base_url=f"{daemon.url}/v1", api_key=first, max_retries=0)
    other = openai.OpenAI(base_url=f"{daemon.url}/v1", api_key=second, max_retries=0)
    created = owner.responses.create(model="default", input="mine")
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model="default", previous_response_id=created.id, input="x")
    assert owner.responses.retrieve(created.id).id == created.id


def test_bad_input_is_a_400_in_openai_shape(served: RunningDaemon) -> None:
    for body, param in (
        ({"model": "default"}, "input"),
        ({"model": "default", "input": 3}, "input"),
        ({"model": "default", "input": [{"type": "bogus"}]}, "input[0]"),
        ({"model": "default", "input": [{"role": "x"}]}, "input[0].role"),
        ({"model": "default", "input": "x", "background": True}, "background"),
        ({"model": "default", "input": "x", "frobnicate": 1}, "frobnicate"),
    ):
        answer = httpx2.post(f"{served.url}/v1/responses", json=body, headers=served.headers)
        assert answer.status_code == 400, body
        error = answer.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert error["param"] in (param, f"{param}.type"), (body, error)


@pytest.fixture
def responses_upstream(fake: FakeUpstream, start_daemon: StartDaemon) -> RunningDaemon:
    return start_daemon(CONFIGS["openai-responses"](fake))


def test_the_responses_api_upstream_gets_responses_bodies(
    responses_upstream: RunningDaemon, fake: FakeUpstream
) -> None:
    sdk = responses_upstream.openai_client()
    sdk.responses.create(model="default", input="hi", instructions="be brief", max_output_tokens=50)
    sent = fake.requests[-1]
    assert sent.path == "/v1/responses"
    assert sent.body["model"] == "gpt-5-mini"
    assert sent.body["store"] is False
    assert sent.body["input"] == [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
    ]
    assert sent.body["max_output_tokens"] == 50


@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_round_trips_through_a_responses_upstream_byte_for_byte(
    responses_upstream: RunningDaemon, fake: FakeUpstream, stream: bool
) -> None:
    sdk = responses_upstream.openai_client()
    ask: dict[str, Any] = {
        "model": "default",
        "input": 'call get_weather {"city": "Oslo"}',
        "tools": [WEATHER],
        "reasoning": {"effort": "low", "summary": "auto"},
    }
    if stream:
        with sdk.responses.stream(**ask) as events:
            kinds = [e.type for e in events]
            first = events.get_final_response()
        assert "response.reasoning_summary_text.delta" in kinds
    else:
        first = sdk.responses.create(**ask)
    assert fake.requests[-1].body["reasoning"] == {"effort": "low", "summary": "auto"}
    reasoning, call = first.output
    assert reasoning.type == "reasoning" and call.type == "function_call"
    assert reasoning.summary[0].text.startswith("Thinking about: call get_weather")
    issued = openai_responses.encrypted(reasoning.summary[0].text)
    assert reasoning.encrypted_content is not None
    assert reasoning.encrypted_content.endswith(":" + issued)
    assert first.usage is not None and first.usage.output_tokens_details.reasoning_tokens > 0
    second = sdk.responses.create(
        model="default",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        tools=[WEATHER],
    )
    assert second.output_text == "Tool get_weather returned: sunny"
    replayed = [i for i in fake.requests[-1].body["input"] if i.get("type") == "reasoning"]
    # Exactly what the fake issued for the first turn's reasoning, id and encrypted content.
    summary = reasoning.summary[0].text
    assert replayed == [
        {
            "type": "reasoning",
            "id": replayed[0]["id"],
            "summary": [{"type": "summary_text", "text": summary}],
            "encrypted_content": openai_responses.encrypted(summary),
        }
    ]
    assert replayed[0]["id"].startswith("rs_fake")


@pytest.fixture
def claude_upstream(fake: FakeUpstream, start_daemon: StartDaemon) -> RunningDaemon:
    return start_daemon(CONFIGS["anthropic"](fake))


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("chained", [True, False])
def test_thinking_round_trips_to_an_anthropic_upstream_with_its_signature(
    claude_upstream: RunningDaemon, fake: FakeUpstream, stream: bool, chained: bool
) -> None:
    sdk = claude_upstream.openai_client()
    ask: dict[str, Any] = {
        "model": "default",
        "input": 'call get_weather {"city": "Oslo"}',
        "tools": [WEATHER],
        "reasoning": {"effort": "low", "summary": "auto"},
    }
    if stream:
        with sdk.responses.stream(**ask) as events:
            kinds = [e.type for e in events]
            first = events.get_final_response()
        assert "response.reasoning_summary_text.delta" in kinds
    else:
        first = sdk.responses.create(**ask)
    assert fake.requests[-1].body["thinking"]["type"] == "enabled"
    reasoning, call = first.output
    assert reasoning.type == "reasoning" and call.type == "function_call"
    assert reasoning.encrypted_content is not None and reasoning.summary
    result = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
    if chained:
        turn: dict[str, Any] = {"previous_response_id": first.id, "input": [result]}
    else:
        echoed = [item.model_dump(exclude_none=True) for item in first.output]
        turn = {"input": [{"role": "user", "content": ask["input"]}, *echoed, result]}
    second = sdk.responses.create(
        model="default", tools=[WEATHER], reasoning=ask["reasoning"], store=False, **turn
    )
    assert second.output_text == "Tool get_weather returned: sunny"
    assistant = fake.requests[-1].body["messages"][1]
    assert assistant["content"][0] == {
        "type": "thinking",
        "thinking": reasoning.summary[0].text,
        "signature": reasoning.encrypted_content,
    }
    # The fake refuses a thinking block whose signature does not match its text: the second
    # turn passing at all shows the signature came back byte for byte.


def test_a_failing_first_model_fails_over_and_the_trail_says_so(
    fake: FakeUpstream, start_daemon: StartDaemon
) -> None:
    config = PalyraConfig(
        model_provider=ModelProviderRegistryConfig(
            max_retries=0,
            providers=[
                ProviderConfig(
                    id="oa", kind="openai", base_url=fake.openai_base_url, api_key=f"env:{KEY_ENV}"
                ),
                ProviderConfig(
                    id="cl",
                    kind="anthropic",
                    base_url=fake.anthropic_base_url,
                    api_key=f"env:{KEY_ENV}",
                ),
            ],
            models=[
                ModelConfig(
                    id="default",
                    provider="oa",
                    model="gpt-5-mini",
                    api="responses",
                    fallbacks=["claude"],
                ),
                ModelConfig(id="claude", provider="cl", model="claude-haiku-4-5"),
            ],
        )
    )
    daemon = start_daemon(config)
    fake.faults.push(Fault(FaultKind.SERVER_ERROR, status=503, path="/v1/responses"))
    raw = daemon.openai_client().responses.with_raw_response.create(model="default", input="hi")
    assert raw.parse().output_text == "You said: hi"
    assert raw.headers["x-palyra-model"] == "claude"
    assert raw.headers["x-palyra-attempts"] == (
        "oa/gpt-5-mini:upstream_unavailable,cl/claude-haiku-4-5:ok"
    )
    assert [r.path for r in fake.requests] == ["/v1/responses", "/v1/messages"]


def test_a_stream_cut_mid_way_ends_with_an_error_event_and_stores_nothing(
    responses_upstream: RunningDaemon, fake: FakeUpstream
) -> None:
    fake.faults.push(Fault(FaultKind.STREAM_CUT, after_chunks=4, path="/v1/responses"))
    body = {"model": "default", "input": "one two three four five six", "stream": True}
    streamed = httpx2.post(
        f"{responses_upstream.url}/v1/responses", json=body, headers=responses_upstream.headers
    )
    frames = [b for b in streamed.content.split(b"\n\n") if b.strip()]
    last = orjson.loads(frames[-1].split(b"data: ", 1)[1])
    assert last["type"] == "error"
    assert last["code"] == "stream_interrupted"
    assert last["sequence_number"] == len(frames) - 1
    created = orjson.loads(frames[0].split(b"data: ", 1)[1])["response"]["id"]
    gone = httpx2.get(
        f"{responses_upstream.url}/v1/responses/{created}", headers=responses_upstream.headers
    )
    assert gone.status_code == 404


def test_retention_days_expires_stored_responses(start_daemon: StartDaemon) -> None:
    now = [1_800_000_000.0]
    config = default_config().model_copy(update={"responses": ResponsesConfig(retention_days=1)})
    state = AppState.from_config(config, clock=lambda: now[0])
    daemon = start_daemon(state)
    sdk = daemon.openai_client()
    created = sdk.responses.create(model="default", input="short-lived")
    assert created.created_at == 1_800_000_000
    now[0] += 86_400 - 60
    assert sdk.responses.retrieve(created.id).id == created.id
    now[0] += 120
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(created.id)


@pytest.mark.parametrize("stream", [False, True])
def test_logprobs_and_service_tier_reach_openai_upstreams_and_come_back(
    backend: str, sdk: openai.OpenAI, fake: FakeUpstream, stream: bool
) -> None:
    ask: dict[str, Any] = {
        "model": "default",
        "input": "rate these words",
        "include": ["message.output_text.logprobs"],
        "top_logprobs": 2,
        "service_tier": "flex",
    }
    if backend in ("anthropic", "deterministic"):  # neither has token probabilities
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.responses.create(**ask)
        assert "logprobs" in refused.value.message
        assert refused.value.body["param"] == "logprobs"  # type: ignore[index]
        return
    if stream:
        with sdk.responses.stream(**ask) as events:
            deltas = [e for e in events if e.type == "response.output_text.delta"]
            answer = events.get_final_response()
        assert all(d.logprobs for d in deltas)
        assert sum(len(d.logprobs) for d in deltas) == 5  # one token per word of the answer
    else:
        answer = sdk.responses.create(**ask)
    sent = fake.requests[-1].body
    assert sent["service_tier"] == "flex"
    if backend == "openai-responses":
        assert "message.output_text.logprobs" in sent["include"] and sent["top_logprobs"] == 2
    else:
        assert sent["logprobs"] is True and sent["top_logprobs"] == 2
    assert answer.service_tier == "flex"
    [message] = answer.output
    assert message.type == "message"
    scored = message.content[0].logprobs  # type: ignore[union-attr]
    assert [t.token.strip() for t in scored or []] == ["You", "said:", "rate", "these", "words"]
    assert all(len(t.top_logprobs) == 2 for t in scored or [])


@pytest.mark.parametrize("stream", [False, True])
def test_vendor_headers_reach_a_responses_upstream_and_rate_limits_come_back(
    responses_upstream: RunningDaemon, fake: FakeUpstream, stream: bool
) -> None:
    sdk = responses_upstream.openai_client()
    extra = {"openai-beta": "responses=v1", "openai-organization": "org-test"}
    if stream:
        with sdk.responses.with_streaming_response.create(
            model="default", input="hi", stream=True, extra_headers=extra
        ) as raw:
            headers = raw.headers
            b"".join(raw.iter_bytes())
    else:
        raw_whole = sdk.responses.with_raw_response.create(
            model="default", input="hi", extra_headers=extra
        )
        headers = raw_whole.headers
    sent = fake.requests[-1]
    assert sent.path == "/v1/responses"
    assert sent.headers["openai-beta"] == "responses=v1"
    assert sent.headers["openai-organization"] == "org-test"
    assert headers["x-ratelimit-remaining-requests"].isdigit()
    assert headers["x-palyra-model"] == "default"
