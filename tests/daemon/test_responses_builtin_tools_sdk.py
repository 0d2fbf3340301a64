"""Built-in OpenAI tools through ``/v1/responses``, driven by the official ``openai`` SDK.

To a model served by OpenAI's Responses API (``api = "responses"``, the fake upstream on
loopback) every built-in tool, its items and its stream events pass as the upstream sent them,
in its order, whole and streamed, and its items go back upstream on the next turn (stateless
or chained). To a model of another API (Chat Completions, Anthropic, the deterministic
provider) each built-in tool is refused with a 400 naming its type (README: Responses API).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import orjson
import pytest

from palyra.config.schema import (
    ModelConfig,
    ModelProviderRegistryConfig,
    PalyraConfig,
    ProviderConfig,
    default_config,
)
from palyra.testing import FakeUpstream
from palyra.testing import openai_builtin_tools as builtin

RunningDaemon = Any
StartDaemon = Any

KEY_ENV = "PALYRA_BUILTIN_TOOLS_KEY"
KEY = "sk-builtin-tools-upstream-key"
QUERY = "palyra gateway news"

TOOLS: dict[str, dict[str, Any]] = {
    "web_search": {"type": "web_search", "search_context_size": "low"},
    "file_search": {"type": "file_search", "vector_store_ids": ["vs_docs"]},
    "code_interpreter": {"type": "code_interpreter", "container": {"type": "auto"}},
    "image_generation": {"type": "image_generation", "size": "1024x1024"},
    "mcp": {
        "type": "mcp",
        "server_label": "docs",
        "server_url": "https://mcp.example/sse",
        "require_approval": "never",
    },
    "computer_use_preview": {
        "type": "computer_use_preview",
        "display_width": 1024,
        "display_height": 768,
        "environment": "browser",
    },
}
# The item types each tool leaves in the output, in order (then the message, but for a
# computer call, which ends the turn).
ITEM_TYPES = {
    "web_search": ["web_search_call", "message"],
    "file_search": ["file_search_call", "message"],
    "code_interpreter": ["code_interpreter_call", "message"],
    "image_generation": ["image_generation_call", "message"],
    "mcp": ["mcp_list_tools", "mcp_call", "message"],
    "computer_use_preview": ["computer_call"],
}


def _config(kind: str, base_url: str, model: str, **extra: Any) -> PalyraConfig:
    provider = ProviderConfig(id="up", kind=kind, base_url=base_url, api_key=f"env:{KEY_ENV}")
    return PalyraConfig(
        model_provider=ModelProviderRegistryConfig(
            providers=[provider],
            models=[ModelConfig(id="default", provider="up", model=model, **extra)],
        )
    )


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeUpstream(api_keys={KEY}) as upstream:
        yield upstream


@pytest.fixture
def responses_daemon(fake: FakeUpstream, start_daemon: StartDaemon) -> RunningDaemon:
    return start_daemon(_config("openai", fake.openai_base_url, "gpt-5-mini", api="responses"))


@pytest.fixture
def sdk(responses_daemon: RunningDaemon) -> openai.OpenAI:
    return responses_daemon.openai_client()  # type: ignore[no-any-return]


def _upstream_id(output: list[dict[str, Any]]) -> str:
    """The fake's response id, read off the first built-in item's id (``ws_<id>``...)."""
    first = next(i for i in output if i["type"] != "message" and i["type"] != "reasoning")
    return str(first["id"]).split("_", 1)[1]


def _dump(items: Any) -> list[dict[str, Any]]:
    return [item.model_dump(mode="json", exclude_unset=True) for item in items]


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_each_builtin_tool_item_comes_back_whole_as_the_upstream_sent_it(
    sdk: openai.OpenAI, fake: FakeUpstream, name: str
) -> None:
    answer = sdk.responses.create(model="default", input=QUERY, tools=[TOOLS[name]])
    assert fake.requests[-1].body["tools"] == [TOOLS[name]]
    output = _dump(answer.output)
    assert [item["type"] for item in output] == ITEM_TYPES[name]
    sent = builtin.tool_items([TOOLS[name]], QUERY, _upstream_id(output))
    assert output[: len(sent)] == sent
    assert [t.type for t in answer.tools] == [name]


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_each_builtin_tool_streams_its_own_events_in_place(
    sdk: openai.OpenAI, fake: FakeUpstream, name: str
) -> None:
    with sdk.responses.stream(model="default", input=QUERY, tools=[TOOLS[name]]) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert [e.sequence_number for e in events] == list(range(len(events)))
    output = _dump(final.output)
    assert [item["type"] for item in output] == ITEM_TYPES[name]
    sent = builtin.tool_items([TOOLS[name]], QUERY, _upstream_id(output))
    assert output[: len(sent)] == sent
    for position, item in enumerate(sent):
        # Between the item's added and done: exactly the events OpenAI sends for it, with this
        # stream's output_index.
        about = [
            e
            for e in events
            if getattr(e, "output_index", None) == position and e.type.startswith("response.")
        ]
        kinds = [e.type for e in about]
        assert kinds == [
            "response.output_item.added",
            *(kind for kind, _ in builtin.item_events(item)),
            "response.output_item.done",
        ]
        assert all(getattr(e, "item_id", item["id"]) == item["id"] for e in about)
        assert getattr(about[0].item, "status", None) in ("in_progress", None)  # type: ignore[attr-defined]
    stored = sdk.responses.retrieve(final.id)
    assert [i.id for i in stored.output] == [i["id"] for i in output]
    assert _dump(stored.output)[: len(sent)] == sent


@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_search_and_cited_text_keep_the_upstream_order(
    sdk: openai.OpenAI, stream: bool
) -> None:
    ask: dict[str, Any] = {
        "model": "default",
        "input": QUERY,
        "tools": [TOOLS["web_search"]],
        "reasoning": {"effort": "low", "summary": "auto"},
    }
    if stream:
        with sdk.responses.stream(**ask) as events:
            kinds = [e.type for e in events]
            answer = events.get_final_response()
        assert "response.output_text.annotation.added" in kinds
        assert kinds.index("response.web_search_call.searching") < kinds.index(
            "response.output_text.delta"
        )
    else:
        answer = sdk.responses.create(**ask)
    assert [item.type for item in answer.output] == ["reasoning", "web_search_call", "message"]
    message = answer.output[2]
    [citation] = message.content[0].annotations  # type: ignore[union-attr]
    assert citation.type == "url_citation"
    assert citation.url == builtin.citation_url(QUERY)  # type: ignore[union-attr]


@pytest.mark.parametrize("chained", [False, True])
def test_a_computer_call_goes_back_upstream_before_its_output(
    sdk: openai.OpenAI, fake: FakeUpstream, chained: bool
) -> None:
    tool = TOOLS["computer_use_preview"]
    first = sdk.responses.create(model="default", input="open the page", tools=[tool])
    [call] = first.output
    assert call.type == "computer_call"
    screenshot = {
        "type": "computer_call_output",
        "call_id": call.call_id,
        "output": {"type": "computer_screenshot", "image_url": "data:image/png;base64,AAAA"},
    }
    if chained:
        turn: dict[str, Any] = {"previous_response_id": first.id, "input": [screenshot]}
    else:
        echoed = _dump(first.output)
        turn = {"input": [{"role": "user", "content": "open the page"}, *echoed, screenshot]}
    second = sdk.responses.create(model="default", tools=[tool], **turn)
    sent = fake.requests[-1].body["input"]
    assert sent[1:] == [_dump(first.output)[0], screenshot]
    assert [item.type for item in second.output] == ["computer_call"]


def test_a_chained_turn_sends_reasoning_and_search_back_in_order(
    sdk: openai.OpenAI, fake: FakeUpstream
) -> None:
    first = sdk.responses.create(
        model="default",
        input=QUERY,
        tools=[TOOLS["web_search"]],
        reasoning={"effort": "low", "summary": "auto"},
    )
    sdk.responses.create(
        model="default", previous_response_id=first.id, input="thanks", tools=[TOOLS["web_search"]]
    )
    sent = fake.requests[-1].body["input"]
    kinds = [item.get("type", item.get("role")) for item in sent]
    assert kinds == ["user", "reasoning", "web_search_call", "assistant", "user"]
    assert sent[2] == _dump(first.output)[1]


@pytest.mark.parametrize("stream", [False, True])
def test_item_kinds_events_and_fields_palyra_does_not_know_come_through(
    responses_daemon: RunningDaemon, fake: FakeUpstream, stream: bool
) -> None:
    fake.settings.responses_future_item = True
    body = {"model": "default", "input": QUERY, "stream": stream}
    answer = httpx2.post(
        f"{responses_daemon.url}/v1/responses", json=body, headers=responses_daemon.headers
    )
    assert answer.status_code == 200
    if not stream:
        whole = answer.json()
        assert whole["future_field"] == {"added_in": "a later API version"}
        output = whole["output"]
    else:
        events = [
            orjson.loads(frame.split(b"data: ", 1)[1])
            for frame in answer.content.split(b"\n\n")
            if frame.strip()
        ]
        assert [e["sequence_number"] for e in events] == list(range(len(events)))
        kinds = [e["type"] for e in events]
        spin = kinds.index(builtin.FUTURE_EVENT)
        assert kinds[spin - 1] == "response.output_item.added"
        assert kinds[spin + 1] == "response.output_item.done"
        assert events[spin] == {
            "type": builtin.FUTURE_EVENT,
            "sequence_number": spin,
            "item_id": events[spin - 1]["item"]["id"],
            "output_index": 0,
            "spin": 1,
        }
        assert events[-1]["response"]["future_field"] == {"added_in": "a later API version"}
        output = events[-1]["response"]["output"]
    assert output[0] == builtin.future_item(str(output[0]["id"]).split("_", 1)[1])
    assert output[1]["type"] == "message"


CROSS_FORMAT = {
    "deterministic": lambda fake: default_config(),
    "openai-chat": lambda fake: _config("openai", fake.openai_base_url, "gpt-4o-mini"),
    "anthropic": lambda fake: _config("anthropic", fake.anthropic_base_url, "claude-haiku-4-5"),
}


@pytest.fixture(params=sorted(CROSS_FORMAT))
def other_api(request: pytest.FixtureRequest, fake: FakeUpstream, start_daemon: StartDaemon) -> Any:
    return start_daemon(CROSS_FORMAT[request.param](fake))


@pytest.mark.parametrize("name", [*sorted(TOOLS), "a_tool_newer_than_palyra"])
def test_a_builtin_tool_is_refused_by_a_model_of_another_api_naming_it(
    other_api: RunningDaemon, fake: FakeUpstream, name: str
) -> None:
    tool = TOOLS.get(name, {"type": name})
    with pytest.raises(openai.BadRequestError) as refused:
        other_api.openai_client().responses.create(model="default", input=QUERY, tools=[tool])
    assert refused.value.body["param"] == "tools"  # type: ignore[index]
    assert f"tools: {name} are built-in OpenAI tools" in refused.value.message
    assert 'api = "responses"' in refused.value.message
    assert not fake.requests  # refused before any upstream call


def test_builtin_items_in_the_input_are_refused_by_a_model_of_another_api(
    other_api: RunningDaemon, fake: FakeUpstream
) -> None:
    search = {"id": "ws_1", "type": "web_search_call", "status": "completed", "action": {}}
    items = [{"role": "user", "content": QUERY}, search, {"role": "user", "content": "more"}]
    with pytest.raises(openai.BadRequestError) as refused:
        other_api.openai_client().responses.create(model="default", input=items)
    assert refused.value.body["param"] == "input[1]"  # type: ignore[index]
    assert "web_search_call items belong to OpenAI's built-in tools" in refused.value.message
    assert not fake.requests


INCLUDE = ["web_search_call.action.sources", "reasoning.encrypted_content"]


def test_include_values_reach_a_responses_upstream_as_sent(
    sdk: openai.OpenAI, fake: FakeUpstream
) -> None:
    sdk.responses.create(
        model="default",
        input=QUERY,
        tools=[TOOLS["web_search"]],
        include=INCLUDE,  # type: ignore[arg-type]
    )
    sent = fake.requests[-1].body["include"]
    assert set(INCLUDE) <= set(sent) and len(sent) == len(set(sent))


def test_include_values_are_dropped_by_a_model_of_another_api(
    other_api: RunningDaemon, fake: FakeUpstream
) -> None:
    answer = other_api.openai_client().responses.create(
        model="default",
        input=QUERY,
        include=INCLUDE,  # type: ignore[arg-type]
    )
    assert answer.output_text == f"You said: {QUERY}"
    assert all("include" not in r.body for r in fake.requests)


ALLOWED: Any = {
    "type": "allowed_tools",
    "mode": "required",
    "tools": [{"type": "web_search"}],
}


def test_a_builtin_tool_choice_reaches_a_responses_upstream_as_sent(
    sdk: openai.OpenAI, fake: FakeUpstream
) -> None:
    for choice in (ALLOWED, {"type": "web_search_preview"}):
        answer = sdk.responses.create(
            model="default", input=QUERY, tools=[TOOLS["web_search"]], tool_choice=choice
        )
        assert fake.requests[-1].body["tool_choice"] == choice
        assert answer.tool_choice.model_dump(exclude_none=True) == choice  # type: ignore[union-attr]


def test_a_builtin_tool_choice_is_refused_by_a_model_of_another_api(
    other_api: RunningDaemon, fake: FakeUpstream
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        other_api.openai_client().responses.create(
            model="default", input=QUERY, tool_choice=ALLOWED
        )
    assert refused.value.body["param"] == "tool_choice"  # type: ignore[index]
    assert not fake.requests
