"""The fake's ``/v1/responses``, driven by the official openai SDK as it would drive OpenAI."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from palyra.testing import FakeUpstream, ScriptedToolCall
from palyra.testing.openai_responses import encrypted

WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": False,
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(stream_chunk_tokens=2, cached_tokens=1) as running:
        yield running


@pytest.fixture
def client(fake: FakeUpstream) -> openai.OpenAI:
    fake.clear()
    return openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test", max_retries=0)


def test_text_answer_with_usage_and_cached_tokens(client: openai.OpenAI) -> None:
    response = client.responses.create(model="gpt-5-mini", input="hello fake", instructions="x")
    assert response.output_text == "You said: hello fake"
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (3, 4)
    assert response.usage.input_tokens_details.cached_tokens == 1


def test_scripted_function_call_streams_and_its_output_is_answered(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    fake.script_tool_calls(ScriptedToolCall("get_weather", {"city": "Bergen"}))
    with client.responses.stream(model="gpt-5-mini", input="weather?", tools=[WEATHER]) as stream:
        final = stream.get_final_response()
    [call] = final.output
    assert call.type == "function_call" and call.arguments == '{"city":"Bergen"}'
    second = client.responses.create(
        model="gpt-5-mini",
        input=[
            {"role": "user", "content": "weather?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": "{}",
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "rain"},
        ],
        tools=[WEATHER],
    )
    assert second.output_text == "Tool get_weather returned: rain"


def test_reasoning_items_are_issued_and_checked_when_sent_back(client: openai.OpenAI) -> None:
    first = client.responses.create(model="gpt-5-mini", input="ponder", reasoning={"effort": "low"})
    reasoning = first.output[0]
    assert reasoning.type == "reasoning"
    assert reasoning.encrypted_content == encrypted("Thinking about: ponder")
    item = reasoning.model_dump(exclude_none=True)
    again = client.responses.create(
        model="gpt-5-mini", input=[item, {"role": "user", "content": "ok"}]
    )
    assert again.output_text == "You said: ok"
    item["encrypted_content"] = "enc_tampered"
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="gpt-5-mini", input=[item])
    assert "could not be verified" in refused.value.message


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": [{"type": "function_call_output", "call_id": "nope", "output": "x"}]}, "input"),
        ({"input": "x", "max_output_tokens": 5}, "max_output_tokens"),
        ({"input": "x", "stop": ["a"]}, "stop"),
    ],
)
def test_bad_bodies_are_400s_naming_the_parameter(
    client: openai.OpenAI, body: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.post("/responses", body={"model": "gpt-5-mini", **body}, cast_to=object)
    assert refused.value.body["param"] == param  # type: ignore[index]


def test_a_web_search_tool_leaves_a_web_search_call_item_whole_and_streamed(
    client: openai.OpenAI,
) -> None:
    tools: Any = [{"type": "web_search"}]
    whole = client.responses.create(model="gpt-5-mini", input="news today", tools=tools)
    assert [i.type for i in whole.output] == ["web_search_call", "message"]
    with client.responses.stream(model="gpt-5-mini", input="news today", tools=tools) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.web_search_call.completed" in kinds
    assert [i.type for i in final.output] == ["web_search_call", "message"]
