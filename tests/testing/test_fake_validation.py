"""Bad requests get a 400 (or 401) in the shape of the API they called, naming what is wrong."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from palyra.testing import FakeUpstream

OPENAI_HEADERS = {"authorization": "Bearer k"}
ANTHROPIC_HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
USER = {"role": "user", "content": "hi"}
CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
TOOL_USE = {"type": "tool_use", "id": "t1", "name": "f", "input": {}}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_keys=frozenset({"k"}), context_window=20) as running:
        yield running


OPENAI_CASES: list[tuple[str, Any, str | None, str]] = [
    ("not an object", [1], None, "JSON object"),
    ("missing model", {"messages": [USER]}, None, "model"),
    ("missing messages", {"model": "m"}, "messages", "Missing required parameter: 'messages'"),
    ("empty messages", {"model": "m", "messages": []}, "messages", "empty array"),
    (
        "bad role",
        {"model": "m", "messages": [{"role": "robot", "content": "x"}]},
        "messages[0].role",
        "'robot'",
    ),
    (
        "unknown content part",
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "video"}]}]},
        "messages[0].content[0].type",
        "'video'",
    ),
    (
        "tool message answering nothing",
        {
            "model": "m",
            "messages": [USER, {"role": "tool", "tool_call_id": "nope", "content": "x"}],
        },
        "messages[1].tool_call_id",
        "'nope'",
    ),
    (
        "tool call left unanswered",
        {"model": "m", "messages": [USER, {"role": "assistant", "tool_calls": [CALL]}, USER]},
        "messages[2].role",
        "c1",
    ),
    (
        "assistant without content or calls",
        {"model": "m", "messages": [USER, {"role": "assistant", "content": None}]},
        "messages[1].content",
        "got null",
    ),
    ("max_tokens zero", {"model": "m", "messages": [USER], "max_tokens": 0}, "max_tokens", ">= 1"),
    (
        "stream_options without stream",
        {"model": "m", "messages": [USER], "stream_options": {"include_usage": True}},
        "stream_options",
        "only allowed when 'stream' is enabled",
    ),
    (
        "tool_choice without tools",
        {"model": "m", "messages": [USER], "tool_choice": "auto"},
        "tool_choice",
        "tools",
    ),
    (
        "malformed tool",
        {"model": "m", "messages": [USER], "tools": [{"type": "x"}]},
        "tools[0]",
        "function",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "param", "needle"), OPENAI_CASES, ids=[c[0] for c in OPENAI_CASES]
)
def test_openai_bad_chat_bodies_get_400_in_openai_shape(
    fake: FakeUpstream, case: str, body: Any, param: str | None, needle: str
) -> None:
    r = httpx2.post(fake.openai_base_url + "/chat/completions", json=body, headers=OPENAI_HEADERS)
    assert r.status_code == 400, case
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert needle in error["message"]


def test_openai_unparseable_json_is_a_400(fake: FakeUpstream) -> None:
    r = httpx2.post(
        fake.openai_base_url + "/chat/completions", content=b"{oops", headers=OPENAI_HEADERS
    )
    assert r.status_code == 400
    assert "could not parse the JSON body" in r.json()["error"]["message"]


def test_openai_long_input_gets_context_length_error_the_sdk_maps(fake: FakeUpstream) -> None:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "w " * 21}])
    assert info.value.code == "context_length_exceeded"


ANTHROPIC_CASES: list[tuple[str, Any, str]] = [
    ("missing model", {"max_tokens": 5, "messages": [USER]}, "model: Field required"),
    ("missing max_tokens", {"model": "c", "messages": [USER]}, "max_tokens: Field required"),
    ("missing messages", {"model": "c", "max_tokens": 5}, "messages: Field required"),
    (
        "bad role",
        {"model": "c", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
        "messages.0.role",
    ),
    (
        "non-alternating roles",
        {"model": "c", "max_tokens": 5, "messages": [USER, USER]},
        "roles must alternate",
    ),
    (
        "assistant first",
        {"model": "c", "max_tokens": 5, "messages": [{"role": "assistant", "content": "x"}]},
        "first message",
    ),
    (
        "tool_use without tool_result next",
        {
            "model": "c",
            "max_tokens": 5,
            "messages": [USER, {"role": "assistant", "content": [TOOL_USE]}, USER],
        },
        "`tool_use` ids were found without `tool_result` blocks immediately after: t1",
    ),
    (
        "tool_result answering nothing",
        {
            "model": "c",
            "max_tokens": 5,
            "messages": [
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "zz"}]}
            ],
        },
        "unexpected `tool_use_id` found in `tool_result` blocks: zz",
    ),
    (
        "non-string system",
        {"model": "c", "max_tokens": 5, "system": 7, "messages": [USER]},
        "system:",
    ),
    (
        "system list with non-text block",
        {"model": "c", "max_tokens": 5, "system": [{"type": "image"}], "messages": [USER]},
        "system:",
    ),
    (
        "tool without input_schema",
        {"model": "c", "max_tokens": 5, "tools": [{"name": "f"}], "messages": [USER]},
        "tools.0.custom.input_schema",
    ),
    (
        "tool_use block in a user message",
        {"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": [TOOL_USE]}]},
        "messages.0.content.0.type",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "needle"), ANTHROPIC_CASES, ids=[c[0] for c in ANTHROPIC_CASES]
)
def test_anthropic_bad_message_bodies_get_400_in_anthropic_shape(
    fake: FakeUpstream, case: str, body: Any, needle: str
) -> None:
    r = httpx2.post(fake.base_url + "/v1/messages", json=body, headers=ANTHROPIC_HEADERS)
    assert r.status_code == 400, case
    assert r.json()["type"] == "error"
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert needle in r.json()["error"]["message"]


def test_anthropic_missing_version_header_is_a_400(fake: FakeUpstream) -> None:
    body = {"model": "c", "max_tokens": 5, "messages": [USER]}
    r = httpx2.post(fake.base_url + "/v1/messages", json=body, headers={"x-api-key": "k"})
    assert r.status_code == 400
    assert "anthropic-version" in r.json()["error"]["message"]


def test_anthropic_long_input_gets_prompt_too_long(fake: FakeUpstream) -> None:
    client = anthropic.Anthropic(base_url=fake.base_url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.BadRequestError, match="prompt is too long"):
        client.messages.create(
            model="c", max_tokens=5, messages=[{"role": "user", "content": "w " * 21}]
        )


@pytest.mark.parametrize(
    ("headers", "message"),
    [({}, "didn't provide an API key"), ({"authorization": "Bearer wrong"}, "Incorrect API key")],
)
def test_openai_missing_or_wrong_key_is_401_in_openai_shape(
    fake: FakeUpstream, headers: dict[str, str], message: str
) -> None:
    r = httpx2.get(fake.openai_base_url + "/models", headers=headers)
    assert r.status_code == 401
    assert message in r.json()["error"]["message"]
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}


def test_openai_key_in_x_api_key_is_not_accepted(fake: FakeUpstream) -> None:
    r = httpx2.get(fake.openai_base_url + "/models", headers={"x-api-key": "k"})
    assert r.status_code == 401


@pytest.mark.parametrize(
    "headers",
    [{"x-api-key": "k"}, {"authorization": "Bearer k"}],
)
def test_anthropic_accepts_x_api_key_or_bearer(fake: FakeUpstream, headers: dict[str, str]) -> None:
    body = {"model": "c", "max_tokens": 5, "messages": [USER]}
    r = httpx2.post(
        fake.base_url + "/v1/messages",
        json=body,
        headers={**headers, "anthropic-version": "2023-06-01"},
    )
    assert r.status_code == 200


def test_sdks_see_wrong_keys_as_authentication_errors(fake: FakeUpstream) -> None:
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=fake.openai_base_url, api_key="bad", max_retries=0).models.list()
    with pytest.raises(anthropic.AuthenticationError) as info:
        anthropic.Anthropic(base_url=fake.base_url, api_key="bad", max_retries=0).models.list()
    assert info.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
    }


def test_unknown_path_is_404_and_wrong_method_405(fake: FakeUpstream) -> None:
    assert httpx2.post(fake.openai_base_url + "/nope", headers=OPENAI_HEADERS).status_code == 404
    assert (
        httpx2.get(fake.openai_base_url + "/chat/completions", headers=OPENAI_HEADERS).status_code
        == 405
    )


def test_default_settings_accept_any_non_empty_key() -> None:
    with FakeUpstream() as open_fake:
        assert (
            httpx2.get(
                open_fake.openai_base_url + "/models", headers={"authorization": "Bearer x"}
            ).status_code
            == 200
        )
        assert (
            httpx2.get(
                open_fake.openai_base_url + "/models", headers={"authorization": "Basic x"}
            ).status_code
            == 401
        )
