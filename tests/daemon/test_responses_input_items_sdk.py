"""``GET /v1/responses/{id}/input_items`` with the official SDK's ``responses.input_items.list``.

The items come back as the client sent them (ids added where it gave none), in OpenAI's list
shape, paged by ``limit`` / ``order`` / ``after``, for the token that made the response only;
a chained response lists every item it was made from.
"""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest
from jsonschema import Draft202012Validator

from palyra.config.schema import default_config
from palyra.daemon import AppState
from palyra.daemon.security.policy import Authenticator
from palyra.daemon.security.tokens_store import TokenKind, generate_token

RunningDaemon = Any
StartDaemon = Any

WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
def sdk(daemon: RunningDaemon) -> openai.OpenAI:
    return daemon.openai_client()  # type: ignore[no-any-return]


def _items(page: Any) -> list[dict[str, Any]]:
    return [item.model_dump(mode="json", exclude_unset=True) for item in page.data]


def test_a_string_input_is_one_user_message_item(sdk: openai.OpenAI) -> None:
    created = sdk.responses.create(model="default", input="hello items")
    listed = sdk.responses.input_items.list(created.id)
    suffix = created.id.removeprefix("resp_")
    assert _items(listed) == [
        {
            "id": f"msg_{suffix}_in0",
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [{"type": "input_text", "text": "hello items"}],
        }
    ]
    assert listed.has_more is False
    assert (listed.first_id, listed.last_id) == (f"msg_{suffix}_in0", f"msg_{suffix}_in0")


def test_items_keep_what_the_client_sent_and_page_in_both_orders(sdk: openai.OpenAI) -> None:
    sent: list[Any] = [
        {"type": "message", "id": "msg_mine", "role": "user", "content": [
            {"type": "input_text", "text": 'call get_weather {"city": "Oslo"}'}
        ]},
        {"type": "function_call", "id": "fc_mine", "call_id": "call_1", "name": "get_weather",
         "arguments": '{"city":"Oslo"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"role": "user", "content": "and tomorrow?"},
    ]  # fmt: skip
    created = sdk.responses.create(model="default", input=sent, tools=[WEATHER])
    suffix = created.id.removeprefix("resp_")
    ids = ["msg_mine", "fc_mine", f"fco_{suffix}_in2", f"msg_{suffix}_in3"]
    listed = sdk.responses.input_items.list(created.id, order="asc")
    assert [item["id"] for item in _items(listed)] == ids
    assert _items(listed)[1] == {**sent[1], "status": "completed"}
    assert _items(listed)[3]["content"] == [{"type": "input_text", "text": "and tomorrow?"}]
    newest_first = sdk.responses.input_items.list(created.id)  # OpenAI's default: desc
    assert [item.id for item in newest_first.data] == ids[::-1]
    first = sdk.responses.input_items.list(created.id, order="asc", limit=2)
    assert [item.id for item in first.data] == ids[:2] and first.has_more is True
    rest = sdk.responses.input_items.list(created.id, order="asc", limit=2, after=first.last_id)
    assert [item.id for item in rest.data] == ids[2:] and rest.has_more is False
    # The SDK's cursor page follows ``after`` by itself.
    walked = sdk.responses.input_items.list(created.id, order="asc", limit=1)
    assert [item.id for item in walked] == ids
    included = sdk.responses.input_items.list(
        created.id, include=["message.input_image.image_url", "reasoning.encrypted_content"]
    )
    assert [item.id for item in included.data] == ids[::-1]


def test_a_chained_response_lists_every_item_it_was_made_from(sdk: openai.OpenAI) -> None:
    first = sdk.responses.create(
        model="default", input='call get_weather {"city": "Oslo"}', tools=[WEATHER]
    )
    [call] = first.output
    second = sdk.responses.create(
        model="default",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "rainy"}],
        tools=[WEATHER],
    )
    listed = sdk.responses.input_items.list(second.id, order="asc")
    kinds = [item.type for item in listed.data]
    assert kinds == ["message", "function_call", "function_call_output"]
    assert listed.data[1].id == call.id  # the first answer's own item, as it was returned
    # An earlier link deleted: the later items are still listed.
    sdk.responses.delete(first.id)
    left = sdk.responses.input_items.list(second.id, order="asc")
    assert [item.type for item in left.data] == ["function_call_output"]


def test_bad_paging_is_a_400_naming_the_parameter(daemon: RunningDaemon) -> None:
    sdk = daemon.openai_client()
    created = sdk.responses.create(model="default", input="page me")
    url = f"{daemon.url}/v1/responses/{created.id}/input_items"
    for query, param in (
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"order": "sideways"}, "order"),
        ({"after": "msg_nowhere"}, "after"),
        ({"include[]": "message.everything"}, "include"),
    ):
        answer = httpx2.get(url, params=query, headers=daemon.headers)
        assert answer.status_code == 400, query
        error = answer.json()["error"]
        assert (error["type"], error["param"]) == ("invalid_request_error", param), error
    assert (
        "msg_nowhere"
        in httpx2.get(url, params={"after": "msg_nowhere"}, headers=daemon.headers).text
    )


def test_the_list_matches_openai_schema(
    daemon: RunningDaemon, openai_components: dict[str, Any]
) -> None:
    sdk = daemon.openai_client()
    created = sdk.responses.create(
        model="default",
        input=[
            {"role": "user", "content": 'call get_weather {"city": "Oslo"}'},
            {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        ],
        tools=[WEATHER],
    )
    body = httpx2.get(
        f"{daemon.url}/v1/responses/{created.id}/input_items", headers=daemon.headers
    ).json()
    schema = {"$ref": "#/components/schemas/ResponseItemList", "components": openai_components}
    errors = [e.message for e in Draft202012Validator(schema).iter_errors(body)]
    assert errors == []


def test_input_items_belong_to_the_token_that_made_the_response(
    start_daemon: StartDaemon,
) -> None:
    mine, theirs = generate_token(TokenKind.CLIENT), generate_token(TokenKind.CLIENT)
    auth = Authenticator(fixed_tokens={mine: TokenKind.CLIENT, theirs: TokenKind.CLIENT})
    daemon = start_daemon(AppState.from_config(default_config()), auth=auth)
    owner = openai.OpenAI(base_url=f"{daemon.url}/v1", api_key=mine, max_retries=0)
    other = openai.OpenAI(base_url=f"{daemon.url}/v1", api_key=theirs, max_retries=0)
    created = owner.responses.create(model="default", input="private")
    with pytest.raises(openai.NotFoundError) as hidden:
        other.responses.input_items.list(created.id)
    assert created.id in hidden.value.message
    assert owner.responses.input_items.list(created.id).data[0].type == "message"
    unstored = owner.responses.create(model="default", input="forget", store=False)
    with pytest.raises(openai.NotFoundError):
        owner.responses.input_items.list(unstored.id)
